"""Hybrid inference, the DR4SR pipeline (resumable, atomic, with provenance) and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import fastregen
from fastregen.data import SequenceDataset, load
from fastregen.ops import constrained_argmax_naive
from fastregen.dr4sr import DR4SR, RegenConfig
from fastregen.generator import Regenerator, hybrid_inference, step_modes

TINY = dict(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=1,
            batch_size=64, max_len=12, max_pattern_len=5, progress=False, dropout=0.1)


def planted_data(n=80, num_items=40, seed=0) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    planted = [[1, 2, 3], [4, 5], [6, 7, 8]]
    seqs = []
    for _ in range(n):
        s = rng.integers(9, num_items + 1, size=rng.integers(3, 8)).tolist()
        for p in rng.choice(3, size=2, replace=False):
            cut = rng.integers(0, len(s) + 1)
            s = s[:cut] + planted[p] + s[cut:]
        seqs.append(s)
    return SequenceDataset.from_lists(seqs, num_items=num_items, name="planted")


def reference_decode(model, sources, modes, max_len, restrict="items", span=5):
    """One sequence at a time with full logits and masks, as the authors' script decodes.

    ``restrict``: "ordered" / "span" allow a restrictive step only the input
    positions after the last one taken (within ``max_span`` of the first one).
    """
    out = []
    eos, bos = model.eos, model.bos
    V = model.item_embedding.num_embeddings
    for k in range(model.config.K):
        for i, seq in enumerate(sources):
            src = torch.tensor([seq.tolist()], dtype=torch.long)
            memory = model.encode(src)[:, :, k]
            ys = [bos]
            first = last = -1
            for step in range(max_len):
                states = model.decode(torch.tensor([ys]), memory, src == 0)[:, -1]
                open_ = [p for p in range(len(seq)) if restrict == "items" or (
                    p > last and (restrict == "ordered" or first < 0 or p < first + span))]
                items = [int(seq[p]) if p in open_ else -1 for p in range(len(seq))]
                allowed = torch.tensor([items + [eos]])
                gen = torch.tensor([ys[1:]]) if len(ys) > 1 else torch.zeros(1, 0, dtype=torch.long)
                ids, _ = constrained_argmax_naive(states, model.item_embedding.weight, allowed, gen,
                                                  torch.tensor([bool(modes[k][i, step])]),
                                                  vocab_start=1, vocab_stop=V - 1)
                nxt = int(ids[0])
                if nxt in (eos, -1):
                    break
                ys.append(nxt)
                if nxt in items:
                    last = items.index(nxt)
                    first = last if first < 0 else first
            out.append(tuple(ys[1:]))
    return out


@torch.no_grad()
@pytest.mark.parametrize("gamma, schedule, restrict", [
    (0.0, "paper", "items"), (0.5, "paper", "items"), (0.1, "released", "items"),
    (0.0, "paper", "ordered"), (0.3, "paper", "ordered"), (0.0, "paper", "span"), (0.3, "released", "span"),
])
def test_batched_inference_equals_one_at_a_time_reference(gamma, schedule, restrict):
    data = planted_data(n=15)
    # max_span 3 < max_pattern_len 5, so the span limit binds
    model = Regenerator(40, RegenConfig(**{**TINY, "max_span": 3})).eval()
    got, info = hybrid_inference(model, data, gamma=gamma, schedule=schedule, restrict=restrict, batch_size=7,
                                 seed=3, min_pattern_len=1, max_span=3)
    modes = [step_modes(len(data), 5, gamma=gamma, schedule=schedule, seed=3, memory=k) for k in range(3)]
    # hybrid_inference orders rows by length inside; modes are indexed by the row itself
    ref = reference_decode(model, list(data.truncate(12)), modes, 5, restrict, span=3)
    seen, want = set(), []
    for p in ref:
        if len(p) >= 1 and p not in seen:
            seen.add(p)
            want.append(p)
    assert sorted(map(tuple, got.to_lists())) == sorted(want)
    assert info["decoded"] == 45 and info["kept"] == len(got)


@torch.no_grad()
def test_inference_invariants():
    data = planted_data(n=40)
    model = Regenerator(40, RegenConfig(**{**TINY, "K": 4})).eval()
    sources = [set(s.tolist()) for s in data]
    restrictive, info = hybrid_inference(model, data, gamma=0.0)
    pats = restrictive.to_lists()
    assert len({tuple(p) for p in pats}) == len(pats), "patterns are deduplicated globally"
    for p in pats:
        assert 2 <= len(p) <= 5
        assert len(set(p)) == len(p), "no item repeats inside a pattern"
        assert all(1 <= x <= 40 for x in p), "never PAD, BOS or EOS"
        assert any(set(p) <= s for s in sources), "restrictive decoding only uses the input's items"
    generative, _ = hybrid_inference(model, data, gamma=1.0)
    assert any(not any(set(p) <= s for s in sources) for p in generative.to_lists())
    # batch size does not change the result
    again, _ = hybrid_inference(model, data, gamma=0.3, batch_size=5)
    base, _ = hybrid_inference(model, data, gamma=0.3, batch_size=64)
    assert again.to_lists() == base.to_lists()


def _occurs_within(pattern, seq, span=None) -> bool:
    """Is ``pattern`` a subsequence of ``seq`` (first to last position < ``span`` apart, if given)?"""
    def match(i, start, first):
        if i == len(pattern):
            return True
        return any(match(i + 1, p + 1, p if first is None else first) for p in range(start, len(seq))
                   if seq[p] == pattern[i] and (span is None or first is None or p < first + span))
    return match(0, 0, None)


@torch.no_grad()
@pytest.mark.parametrize("restrict, span", [("ordered", None), ("span", 3)])
def test_ordered_restriction_decodes_subsequences(restrict, span):
    # all-restrictive decoding with restrict="ordered"/"span" can only produce
    # subsequences of some input (within the span), whatever the weights are
    data = planted_data(n=40, seed=1)
    model = Regenerator(40, RegenConfig(**{**TINY, "K": 4, "max_span": 3})).eval()
    got, _ = hybrid_inference(model, data, gamma=0.0, restrict=restrict, min_pattern_len=1, max_span=3)
    seqs = [s.tolist() for s in data.truncate(12)]
    assert len(got) > 0
    for p in got.to_lists():
        assert any(_occurs_within(p, s, span) for s in seqs), p
        if span is not None:
            assert len(p) <= span
    # "items" (the paper) is not bound by order: the same model decodes some pattern that is no subsequence
    loose, _ = hybrid_inference(model, data, gamma=0.0, restrict="items", min_pattern_len=1)
    assert any(not any(_occurs_within(p, s) for s in seqs) for p in loose.to_lists())


def test_step_modes():
    m = step_modes(2000, 6, gamma=0.1, schedule="paper", seed=0)
    assert abs(m.mean() - 0.1) < 0.01
    assert np.array_equal(m, step_modes(2000, 6, gamma=0.1, schedule="paper", seed=0))
    r = step_modes(3000, 5, gamma=0.7, schedule="released", seed=0)
    assert not r[:, :2].any() and abs(r[:, 2:].mean() - 0.7) < 0.02
    # the released code's value gamma = 1: every step after the second is generative
    assert step_modes(3, 5, gamma=1.0, schedule="released", seed=0)[:, 2:].all()
    # the same draws as "paper" after step 1, so gamma moves both schedules alike
    np.testing.assert_array_equal(r[:, 2:], step_modes(3000, 5, gamma=0.7, schedule="paper", seed=0)[:, 2:])
    with pytest.raises(ValueError, match="schedule must be one of 'paper', 'released', got 'random'"):
        step_modes(1, 1, gamma=0.1, schedule="random", seed=0)
    with pytest.raises(ValueError, match="gamma must be in"):
        step_modes(1, 1, gamma=1.01, schedule="paper", seed=0)


def test_inference_rejects_bad_arguments():
    model = Regenerator(40, RegenConfig(**TINY))
    data = planted_data(n=3)
    with pytest.raises(ValueError, match="gamma must be in"):
        hybrid_inference(model, data, gamma=-0.5)
    with pytest.raises(ValueError, match="max_pattern_len"):
        hybrid_inference(model, data, max_pattern_len=100)
    with pytest.raises(ValueError, match="restrict must be one of .*'loose'"):
        hybrid_inference(model, data, restrict="loose")
    bigger = SequenceDataset.from_lists([[1, 2, 50]], num_items=50)
    with pytest.raises(ValueError, match="trained on 40"):
        hybrid_inference(model, bigger)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "planted.txt"
    data = planted_data(n=60)
    path.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(data.to_lists())))
    return path


def test_pipeline_writes_loadable_dataset_with_provenance_and_resumes(tmp_path, data_file):
    out = tmp_path / "run"
    dr = DR4SR(RegenConfig(**TINY)).fit(data_file, out_dir=out)
    combined = dr.regenerate()
    sets = dr.training_sets()
    assert len(combined) == sum(len(sets[k]) for k in ("original", "patterns", "regenerated"))
    written = load(out / "regenerated.txt")
    assert written.to_lists() == combined.to_lists()
    assert load(out / "regenerated_patterns.txt").to_lists() == sets["regenerated"].to_lists()
    prov = json.loads((out / "regenerated.json").read_text())
    assert prov["config"]["K"] == 3 and prov["seed"] == 0 and prov["fastregen_version"] == fastregen.__version__
    assert len(prov["source"]["sha256"]) == 64 and prov["source"]["file_sha256"]
    assert prov["statistics"]["combined"]["users"] == len(combined)
    assert set(prov["statistics"]) == {"original", "patterns", "original+patterns", "regenerated", "combined",
                                       "combined_authors"}
    assert sets["original+patterns"].to_lists() == sets["original"].to_lists() + sets["patterns"].to_lists()
    # the authors' file: original, mined (their patterns.pth also holds the originals), regenerated
    assert sets["combined_authors"].to_lists() == (sets["original"].to_lists() + sets["patterns"].to_lists()
                                                   + sets["original"].to_lists() + sets["regenerated"].to_lists())
    assert dr.regenerate("combined_authors").to_lists() == sets["combined_authors"].to_lists()
    with pytest.raises(ValueError, match="training_set must be one of 'combined', 'combined_authors', "
                                         "'regenerated', got 'everything'"):
        dr.regenerate("everything")
    only = dr.regenerate("regenerated")
    assert only.to_lists() == sets["regenerated"].to_lists()

    # a rerun reuses every finished stage
    mtime = (out / "regenerator.pt").stat().st_mtime_ns
    dr2 = DR4SR(RegenConfig(**TINY)).fit(data_file, out_dir=out)
    assert dr2.regenerate().to_lists() == combined.to_lists()
    assert all(dr2.stage_seconds[s] == 0.0 for s in ("patterns", "pairs", "regenerator", "inference"))
    assert (out / "regenerator.pt").stat().st_mtime_ns == mtime
    # changing an inference option reruns inference only
    dr3 = DR4SR(RegenConfig(**{**TINY, "gamma": 0.9})).fit(data_file, out_dir=out)
    dr3.regenerate()
    assert dr3.stage_seconds["regenerator"] == 0.0 and dr3.stage_seconds["inference"] > 0.0
    assert (out / "regenerator.pt").stat().st_mtime_ns == mtime
    # other data in the same folder is refused
    with pytest.raises(ValueError, match="different data"):
        DR4SR(RegenConfig(**TINY)).fit(planted_data(n=30, seed=5), out_dir=out)


def test_mine_alone_gives_the_sets_without_regenerated_patterns(tmp_path, data_file):
    out = tmp_path / "run"
    full = DR4SR(RegenConfig(**TINY)).fit(data_file, out_dir=out).training_sets()
    mtime, config_text = (out / "regenerator.pt").stat().st_mtime_ns, (out / "config.yaml").read_text()

    # another regenerator setting, the same mining: the finished regenerator and its config stay
    mined = DR4SR(RegenConfig(**{**TINY, "epochs": 2, "K": 1})).mine(data_file, out_dir=out)
    assert mined.stage_seconds["patterns"] == 0.0 and mined.regenerator is None
    sets = mined.training_sets()
    assert list(sets) == ["original", "patterns", "original+patterns"]
    for name, ds in sets.items():
        assert ds.to_lists() == full[name].to_lists(), name
        assert ds.num_items == full[name].num_items and ds.name == name
    assert full["combined"].to_lists() == sets["original+patterns"].to_lists() + full["regenerated"].to_lists()
    assert (out / "regenerator.pt").stat().st_mtime_ns == mtime
    assert (out / "config.yaml").read_text() == config_text
    with pytest.raises(RuntimeError, match="trains no regenerator"):
        mined.regenerate()

    # without a folder: the same sets
    alone = DR4SR(RegenConfig(**TINY)).mine(data_file).training_sets()
    assert all(alone[k].to_lists() == v.to_lists() for k, v in sets.items())

    # a mining option changed: every artifact made from the old patterns goes, then fit reuses the new ones
    wider = RegenConfig(**{**TINY, "max_span": 6})
    again = DR4SR(wider).mine(data_file, out_dir=out)
    assert again.stage_seconds["patterns"] > 0.0
    left = sorted(p.name for p in out.iterdir())
    assert left == ["config.yaml", "patterns.txt", "source.json", "stages.json"], left  # stages.json: the runner's record
    assert set(json.loads((out / "stages.json").read_text())) == {"patterns"}
    refit = DR4SR(wider).fit(data_file, out_dir=out)
    assert refit.stage_seconds["patterns"] == 0.0 and refit.stage_seconds["regenerator"] > 0.0
    assert len(refit.patterns) >= len(mined.patterns)  # a wider span finds every narrower pattern

    with pytest.raises(RuntimeError, match="call mine"):
        DR4SR(RegenConfig(**TINY)).training_sets()
    with pytest.raises(ValueError, match="empty dataset"):
        DR4SR(RegenConfig(**TINY)).mine(SequenceDataset.from_lists([], num_items=5))


def test_interrupted_inference_leaves_no_dataset(tmp_path, data_file, monkeypatch):
    out = tmp_path / "run"
    dr = DR4SR(RegenConfig(**TINY)).fit(data_file, out_dir=out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fastregen.dr4sr.pipeline.hybrid_inference", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dr.regenerate()
    names = sorted(p.name for p in out.iterdir())
    assert not any(n.startswith("regenerated") for n in names)
    assert not any(n.endswith(".tmp") for n in names)
    monkeypatch.undo()
    dr2 = DR4SR(RegenConfig(**TINY)).fit(data_file, out_dir=out)
    dr2.regenerate()
    assert dr2.stage_seconds["regenerator"] == 0.0 and (out / "regenerated.txt").exists()


def test_empty_pattern_set_is_a_clear_error():
    with pytest.raises(ValueError, match="pattern set is\\s+empty"):
        DR4SR(RegenConfig(**{**TINY, "min_support": 10_000})).fit(planted_data(n=20))


def test_regenerate_before_fit_and_bad_training_set():
    with pytest.raises(RuntimeError, match="call fit"):
        DR4SR(RegenConfig(**TINY)).regenerate()
    with pytest.raises(ValueError, match="gamma must be in"):
        DR4SR(gamma=2.0)
    with pytest.raises(ValueError, match="K must be >= 1"):
        fastregen.DR4SR(K=0)


def test_cli_regenerate(tmp_path, data_file):
    from fastregen.cli import app

    out = tmp_path / "cli"
    cfg = tmp_path / "c.yaml"
    from fastregen.config import save_config

    save_config(RegenConfig(**TINY), cfg)
    runner = CliRunner()
    res = runner.invoke(app, ["regenerate", str(data_file), "--out", str(out), "--config", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (out / "regenerated.txt").exists() and "combined" in res.output
    res = runner.invoke(app, ["regenerate", str(data_file), "--out", str(out), "--config", str(cfg), "--quiet"])
    assert res.exit_code == 0 and res.output.count("reused") == 5
    # a new restrictive rule redoes inference and what follows, and reuses the trained regenerator
    res = runner.invoke(app, ["regenerate", str(data_file), "--out", str(out), "--config", str(cfg), "--quiet",
                              "--restrict", "span"])
    assert res.exit_code == 0, res.output
    assert res.output.count("reused") == 3
    assert json.loads((out / "regenerated.json").read_text())["config"]["restrict"] == "span"
    res = runner.invoke(app, ["regenerate", str(data_file), "--out", str(out), "--gamma", "1.5"])
    assert res.exit_code != 0 and "gamma" in res.output
    res = runner.invoke(app, ["regenerate", str(data_file), "--out", str(out), "--restrict", "loose"])
    assert res.exit_code != 0 and "restrict must be one of" in res.output


def test_demo_step_prints_before_after_table(tmp_path, capsys):
    from fastregen.cli._regen import demo_step

    res = demo_step({"dataset": planted_data(n=40), "out_dir": tmp_path}, quiet=True, epochs=1)
    assert (tmp_path / "regen" / "regenerated.txt").exists()
    out = capsys.readouterr().out
    assert "original" in out and "regenerated" in out and "combined" in out
    assert res["statistics"]["original"]["users"] == 40


def test_item_table_initialisation(tmp_path, data_file):
    with pytest.raises(ValueError, match="item table must have shape"):
        DR4SR(RegenConfig(**TINY)).fit(data_file, item_embedding=torch.zeros(5, 16))
    from fastregen.cli import app

    table = torch.randn(41, 16)
    torch.save({"state_dict": {"item_embedding.weight": table}}, tmp_path / "model.pt")
    cfg = tmp_path / "c.yaml"
    from fastregen.config import save_config

    save_config(RegenConfig(**{**TINY, "epochs": 0}), cfg)  # 0 epochs: the table stays as initialised
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["regenerate", str(data_file), "--out", str(out), "--config", str(cfg),
                                   "--embedding", str(tmp_path / "model.pt"), "--quiet"])
    assert res.exit_code == 0, res.output
    from fastregen.generator import load_checkpoint

    model, _ = load_checkpoint(out / "regenerator.pt", num_items=40)
    assert torch.equal(model.item_embedding.weight[1:41], table[1:])
