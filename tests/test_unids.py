"""The UniDS pipeline on tiny data: stages, resumption, ablations, bad input, the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from fastregen import UniDS, UniDSConfig
from fastregen.cli import app
from fastregen.data import SequenceDataset, save
from fastregen.unids import load_generator, stage_thetas

TINY_GEN = dict(d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1, K=2, epochs=1,
                batch_size=16)


def planted(n=30, num_items=20, seed=0, timestamps=True):
    """Sequences that often contain the runs (1 2 3) and (4 5), on a clock."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        s = []
        while len(s) < rng.integers(8, 14):
            r = rng.random()
            s.extend([1, 2, 3] if r < 0.3 else [4, 5] if r < 0.5 else [int(rng.integers(6, num_items + 1))])
        seqs.append(s)
    ts = np.concatenate([np.cumsum(rng.integers(1, 10_000, size=len(s))) for s in seqs]) if timestamps else None
    return SequenceDataset.from_lists(seqs, num_items=num_items, timestamps=ts, name="planted")


def cfg(**kw):
    base = dict(max_len=12, theta_recall=1.3, theta_coarse=1.4, theta_fine=1.5, generator=dict(TINY_GEN),
                progress=False, max_pattern_len=4)
    base.update(kw)
    return UniDSConfig(**base)


@pytest.mark.parametrize("target", ["sequence", "segment"])
def test_end_to_end_and_resume(tmp_path, target):
    ds = planted()
    lines = []
    run = UniDS(cfg(target=target), log=lines.append).fit(ds, out_dir=tmp_path)
    assert set(run.patterns) == {"recall", "coarse", "fine"}
    assert run.thetas["recall"] < run.thetas["coarse"] < run.thetas["fine"]
    train = run.generate()
    gen = run.generated()
    assert len(gen) > 0 and gen.num_items == ds.num_items and gen.items.max() <= ds.num_items
    assert np.all(gen.lengths >= 2)
    assert gen.timestamps is not None and train.timestamps is not None  # HSTU reads the clock of both parts
    assert train.num_interactions == run.train.num_interactions + gen.num_interactions
    assert set(np.unique(train.meta["source"])) == {0, 1}
    assert any(line.startswith("generator") for line in lines)
    for name in ("config.yaml", "stages.json", "generator.pt", "generated.npz", "train.txt", "unids.json",
                 "patterns_fine.txt"):
        assert (tmp_path / name).exists(), name
    # a rerun reuses every stage and returns the same data
    again = UniDS(cfg(target=target)).fit(ds, out_dir=tmp_path)
    assert again.stage_seconds == {"mine": 0.0, "generator": 0.0}
    assert again.generated().to_lists() == gen.to_lists() and again.stage_seconds["generate"] == 0.0
    # another gamma decodes again with the same generator
    other = UniDS(cfg(target=target, generator={**TINY_GEN, "gamma": 0.9})).fit(ds, out_dir=tmp_path)
    assert other.stage_seconds["generator"] == 0.0
    other.generated()
    assert other.stage_seconds["generate"] > 0.0


def test_config_yaml_roundtrip(tmp_path):
    from fastregen.config import load_config, save_config

    c = cfg(threshold_control=False, token_fine="position", generator={**TINY_GEN, "gamma": 0.3})
    save_config(c, tmp_path / "c.yaml")
    assert load_config(UniDSConfig, tmp_path / "c.yaml") == c
    _, pre, dec = c.generator_configs()
    assert dec.gamma == 0.3 and pre.entropy_weight == -c.diversity_weight


def test_ablations():
    ds = planted()
    no_tc = UniDS(cfg(threshold_control=False, uniform_generation=False))
    no_tc.fit(ds)
    assert len(set(no_tc.thetas.values())) == 1
    no_uf = UniDS(cfg(uniform_format=False)).fit(ds)
    assert no_uf.vocab.blocks == () and no_uf.vocab.stages == () and no_uf.vocab.size == ds.num_items
    assert no_uf.sources.items.max() <= ds.num_items
    no_ug = UniDS(cfg(uniform_generation=False)).fit(ds)
    assert no_ug.generator is None
    gen = no_ug.generated()
    segs = {tuple(s.tolist()) for st in no_ug.segmentations.values() for u in range(len(ds))
            for s in st.segments(u) if s.size >= 2}
    assert {tuple(s) for s in gen.to_lists()} == segs


def test_pm_from_a_trained_model():
    from fastregen.data import leave_one_out
    from fastregen.models import build_model
    from fastregen.unids import model_probs

    ds = planted()
    train = leave_one_out(ds).train
    model = build_model("sasrec", ds.num_items, embed_dim=8, max_len=6)
    p = model_probs(model, train)
    assert p.shape == train.items.shape and np.all((p > 0) & (p <= 1))
    run = UniDS(cfg(uniform_generation=False)).fit(ds, pm=model)
    assert all(len(p) for p in run.patterns.values())


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="theta_fine must be a finite number > 0"):
        UniDSConfig(theta_fine=0)
    with pytest.raises(ValueError, match="theta_recall must be a finite number > 0"):
        UniDSConfig(theta_recall=-1.0)
    with pytest.raises(ValueError, match="unknown stage 'ranking'; the stages are recall, coarse, fine"):
        UniDSConfig(stages=("recall", "ranking"))
    with pytest.raises(ValueError, match="unknown stage 'final'"):
        stage_thetas(planted(), {"final": 1.0})
    with pytest.raises(ValueError, match="token_fine = 'time' needs timestamps, but planted has none"):
        UniDS(cfg(token_fine="time")).fit(planted(timestamps=False))
    with pytest.raises(ValueError, match="generator may not set max_len"):
        UniDSConfig(generator={"max_len": 10})
    with pytest.raises(ValueError, match="generator: unknown generator option"):
        UniDSConfig(generator={"colour": 1})
    with pytest.raises(ValueError, match="unknown model 'bert4rec'"):
        UniDSConfig(pm="bert4rec")
    # a generator checkpoint for another token vocabulary
    ds = planted()
    UniDS(cfg(token_fine="time")).fit(ds, out_dir=tmp_path / "a")
    other = UniDS(cfg(token_fine="position", token_coarse="position", token_recall="category"))
    with pytest.raises(ValueError, match="token_recall = 'category' needs item categories"):
        other.fit(ds)
    b = UniDS(cfg(token_fine="position", token_coarse="position")).fit(ds, out_dir=tmp_path / "b")
    with pytest.raises(ValueError, match=r"generator\.pt was trained on another token vocabulary .* than this run's"):
        load_generator(tmp_path / "a" / "generator.pt", b.vocab)


def test_cli(tmp_path):
    ds = planted()
    path = tmp_path / "d.txt"
    save(ds, path, format="lines")
    conf = tmp_path / "u.yaml"
    conf.write_text(yaml.safe_dump({"max_len": 12, "theta_recall": 1.3, "theta_coarse": 1.4, "theta_fine": 1.5,
                                    "max_pattern_len": 4, "generator": TINY_GEN}))
    runner = CliRunner()
    res = runner.invoke(app, ["unids", str(path), "--out", str(tmp_path / "run"), "--config", str(conf), "-q"])
    assert res.exit_code == 0, res.output
    assert "mine      recall" in res.output and "original+generated" in res.output
    res = runner.invoke(app, ["unids", str(path), "--out", str(tmp_path / "run"), "--config", str(conf), "-q"])
    assert res.exit_code == 0 and "reused" in res.output
    # the untimed lines file: time tokens asked for -> one line, exit 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"token_fine": "time", "generator": TINY_GEN}))
    res = runner.invoke(app, ["unids", str(path), "--out", str(tmp_path / "r2"), "--config", str(bad), "-q"])
    assert res.exit_code == 2 and res.output.strip().startswith("error: token_fine = 'time' needs timestamps")
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["unids", str(path), "--out", str(tmp_path / "r3"), "--epochs", "-1"])
    assert res.exit_code == 2 and "error:" in res.output
    shutil.rmtree(tmp_path / "run")


def test_plot_thresholds(tmp_path):
    import csv

    rows = tmp_path / "u.csv"
    cols = ["experiment", "dataset", "model", "theta", "seed", "test_auc", "test_ndcg@10", "test_mrr"]
    with open(rows, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for theta in (1.1, 1.3, 1.5):
            for seed in (0, 1):
                w.writerow({"experiment": "theta", "dataset": "ml-100k", "model": "hstu", "theta": theta,
                            "seed": seed, "test_auc": 0.9 + theta / 100, "test_ndcg@10": 0.2 - theta / 100,
                            "test_mrr": 0.1})
    out = tmp_path / "fig.png"
    res = CliRunner().invoke(app, ["plot", "thresholds", str(rows), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG" and "1.1: 0.9110" in res.output
    res = CliRunner().invoke(app, ["plot", "thresholds", str(rows), "--dataset", "beauty", "--out", str(out)])
    assert res.exit_code == 2 and "no theta-sweep rows" in res.output


@pytest.mark.parametrize("max_len", [3, 5, 40])
def test_sources_and_pairs_layout(max_len):
    from fastregen import patterns
    from fastregen.unids import build_pairs, build_sources, build_vocab, pattern_token_sequences

    ds = planted(n=12)
    seg = patterns.segment(ds, patterns.mine_entropy_patterns(ds, theta=9.0, min_count=2, max_len=3))
    vocab = build_vocab(ds.num_items, ["position"], ("recall", "fine"), position_buckets=4)
    pt, end = pattern_token_sequences(seg, "position", vocab)
    sources, info = build_sources({"recall": (pt, end, seg), "fine": (pt, end, seg)}, vocab, max_len)
    assert len(sources) == 2 * len(ds) and np.all(sources.lengths <= max_len)
    for r in range(len(sources)):
        row = sources[r].tolist()
        if not row:
            continue
        stage = ("recall", "fine")[info["stage"][r]]
        assert row[0] == vocab.stage_token(stage)
        full = pt[info["user"][r]].tolist()
        assert full[len(full) - (len(row) - 1):] == row[1:]  # the most recent tokens
    # every segment inside a window: its tokens are where seg_start/seg_end say
    inside = np.flatnonzero(info["seg_start"] >= 0)
    seq_of = np.repeat(np.arange(len(ds)), np.diff(seg.offsets))
    for k in inside:
        got = sources.items[info["seg_start"][k]:info["seg_end"][k]]
        kk = k % seg.num_segments
        want = ds.items[seg.bounds[kk]:seg.bounds[kk + 1]]
        assert got[:-1].tolist() == want.tolist() and got[-1] > ds.num_items  # items, then the T token
        assert info["user"][info["seg_source"][k]] == seq_of[kk]
    one = build_pairs(sources, info, target="segment", min_items=2, max_pairs=2, seed=0)
    assert np.all(np.bincount(one.source) <= 2) and np.all(one.patterns.lengths >= 3)
    whole = build_pairs(sources, info, target="sequence")
    for p in range(len(whole)):
        src = whole.sequences[p].tolist()
        assert whole.patterns[p].tolist() == src[1:]  # the window without its stage token
        ids = whole.segments[p] - 1
        assert ids[0] == 0 and np.all(np.diff(ids) >= 0) and np.all(np.diff(ids) <= 1)
    with pytest.raises(ValueError, match="target must be 'sequence' or 'segment'"):
        build_pairs(sources, info, target="window")


def test_generated_timestamps_follow_the_users_clock():
    from fastregen.unids import stamp

    train = SequenceDataset.from_lists([[1, 2, 3, 2], [4, 5]], num_items=9, timestamps=np.array([10, 20, 30, 40, 7, 8]))
    gen = SequenceDataset.from_lists([[9, 3, 2, 8], [5, 9], [9, 8]], num_items=9)
    got = stamp(gen, np.array([0, 1, 1]), train)
    # 9 first: the next known (3 at 30); 2: its last occurrence (40); 8 unknown: the previous (40)
    assert got.tolist() == [30, 30, 40, 40, 8, 8, 8, 8]
