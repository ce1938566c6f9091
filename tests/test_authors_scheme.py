"""The DR4SR authors' training scheme (`fastregen.training.AUTHORS_SCHEME`) and benchmarks/authors.py's conversion."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.data import SequenceDataset, leave_one_out
from fastregen.models import build_model, load_model, save_model
from fastregen.training import AUTHORS_SCHEME, Examples, NextItemLoss, TrainConfig, Trainer, fit_and_evaluate

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import authors  # noqa: E402


def _sasrec(positions="oldest", num_items=30, max_len=12, seed=0):
    torch.manual_seed(seed)
    return build_model("sasrec", num_items, embed_dim=16, max_len=max_len, num_layers=2, num_heads=2,
                       hidden_size=32, positions=positions).eval()


# ------------------------------------------------------------------ positions
def test_oldest_positions_count_from_each_rows_first_item():
    m = _sasrec()
    left = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
    assert m.position_ids(left).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]
    post = torch.tensor([[3, 4, 5, 0, 0]])
    assert m.position_ids(post).tolist() == [[0, 1, 2, 3, 4]]  # the authors' numbering: the column index
    recent = _sasrec("recent")
    assert recent.position_ids(left).tolist() == list(range(7, 12))  # the last column is max_len - 1


@given(st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=12), min_size=1, max_size=6))
@settings(max_examples=25, deadline=None)
def test_post_padded_rows_give_the_left_padded_outputs_with_oldest_positions(seqs):
    """What the authors' post-padded rows compute is what left-padded rows compute with positions="oldest"."""
    m = _sasrec()
    L = max(map(len, seqs))
    left = torch.tensor([[0] * (L - len(s)) + s for s in seqs])
    post = torch.tensor([s + [0] * (L - len(s)) for s in seqs])
    with torch.no_grad():
        a, b = m(left), m(post)
    for i, s in enumerate(seqs):
        n = len(s)
        torch.testing.assert_close(a[i, L - n:], b[i, :n], rtol=1e-5, atol=1e-5)
    # and the default numbering differs (the most recent item, not the oldest, has a fixed position)
    if any(len(s) < L for s in seqs):
        r = _sasrec("recent")
        with torch.no_grad():
            i = next(i for i, s in enumerate(seqs) if len(s) < L)
            assert not torch.allclose(r(left)[i, L - len(seqs[i]):], r(post)[i, :len(seqs[i])], atol=1e-5)


def test_oldest_positions_survive_a_checkpoint_and_default_checkpoints_are_unchanged(tmp_path):
    m = _sasrec()
    save_model(m, tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt").eval()
    assert back.position_origin == "oldest"
    x = torch.tensor([[0, 0, 3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x))
    assert "positions" not in _sasrec("recent").init_kwargs
    with pytest.raises(ValueError, match="positions must be 'recent' or 'oldest', got 'newest'"):
        build_model("sasrec", 10, positions="newest")


# ------------------------------------------------------------------ normalisation
def _trainer_and_batch(normalisation):
    data = SequenceDataset.from_lists([[1, 2, 3, 4, 5, 6], [2, 3], [4, 5, 6, 7], [1, 7]])
    ex = Examples(data, 8, "all")
    tr = Trainer(_sasrec(num_items=7, max_len=8).train(), NextItemLoss("bce", 1), batch_size=2, progress=False)
    tr.normalisation = normalisation
    tr.set_normaliser(ex)
    return tr, ex.batch(np.array([1, 3]))  # two rows with one target each


@pytest.mark.parametrize("normalisation", ["constant", "batch_mean"])
def test_loss_normalisation(normalisation):
    tr, batch = _trainer_and_batch(normalisation)
    assert tr.targets_per_batch == pytest.approx(10 / 2)  # 5 + 1 + 3 + 1 targets over 2 batches
    torch.manual_seed(1)
    loss, terms = tr.loss(batch, torch.Generator().manual_seed(0))
    denom = batch.num_targets if normalisation == "batch_mean" else tr.targets_per_batch
    assert batch.num_targets == 2
    torch.testing.assert_close(loss, terms.total / denom)


# ------------------------------------------------------------------ truncation before the split
@given(st.lists(st.integers(1, 40), min_size=3, max_size=120))
@settings(max_examples=50, deadline=None)
def test_truncating_before_the_split_gives_the_authors_rows(seq):
    """fastregen's cut-then-split equals benchmarks/authors.py's transcription of their notebook (cell 20)."""
    split = leave_one_out(SequenceDataset.from_lists([seq]).truncate(50))
    train, val, test = authors.split_rows(1, seq)
    n = train[3]
    ours = split.train[0].tolist()
    assert ours[:-1] == train[1][:n] and ours[1:] == train[2][:n]  # same inputs, same targets
    assert train[1][n:] == [0] * (50 - n) and train[2][n:] == [0] * (50 - n)  # post-padded
    assert split.valid.history[0].tolist() == val[1][:val[3]] and int(split.valid.target[0]) == val[2]
    assert split.test.history[0].tolist() == test[1][:test[3]] and int(split.test.target[0]) == test[2]


def test_fit_and_evaluate_cuts_before_the_split(monkeypatch):
    fit_mod = sys.modules["fastregen.training.fit"]  # the module (the package's `fit` is the function)
    seen = {}
    real = fit_mod.leave_one_out

    def spy(ds):
        seen["lengths"] = ds.lengths.tolist()
        return real(ds)

    monkeypatch.setattr(fit_mod, "leave_one_out", spy)
    rng = np.random.default_rng(0)
    data = SequenceDataset.from_lists([rng.integers(1, 20, size=n).tolist() for n in (3, 9, 14, 6)])
    extra = SequenceDataset.from_lists([rng.integers(1, 20, size=12).tolist()], num_items=19)
    res = fit_and_evaluate(data, "sasrec", epochs=1, progress=False, num_threads=1, embed_dim=8, batch_size=2,
                           train_data=extra, **{**AUTHORS_SCHEME, "truncate_before_split": 5})
    assert seen["lengths"] == [3, 5, 5, 5]
    assert res["train_examples"] == 1  # the 12-item training sequence, cut to 5, is one row
    assert res["model"].position_origin == "oldest"
    assert res["trainer"].normalisation == "batch_mean" and res["trainer"].bucketing is False


def test_scheme_defaults_are_unchanged_and_bad_values_are_named():
    cfg = TrainConfig()
    assert (cfg.positions, cfg.loss_normalisation, cfg.truncate_before_split, cfg.length_bucketing) == \
        ("recent", "constant", 0, True)
    assert TrainConfig(**AUTHORS_SCHEME).truncate_before_split == 50
    with pytest.raises(ValueError, match="positions must be one of 'recent', 'oldest', got 'left'"):
        TrainConfig(positions="left")
    with pytest.raises(ValueError, match="loss_normalisation must be .* got 'mean'"):
        TrainConfig(loss_normalisation="mean")
    for bad in (2, -1, True):
        with pytest.raises(ValueError, match="truncate_before_split must be 0"):
            TrainConfig(truncate_before_split=bad)


# ------------------------------------------------------------------ benchmarks/authors.py
def test_relabelling_is_recovered_and_checked():
    rng = np.random.default_rng(3)
    n_items = 25
    seqs = [rng.integers(1, n_items + 1, size=rng.integers(5, 12)).tolist() for _ in range(40)]
    seqs.append(list(seqs[0]))  # an identical user: paired in order
    perm = np.concatenate([[0], rng.permutation(n_items) + 1])
    released = [perm[np.asarray(s[:-2])].tolist() for s in seqs]
    items, users, unseen = authors.derive_relabelling(seqs, released, n_items)
    assert users.tolist() == list(range(1, len(seqs) + 1))
    seen = sorted({x for s in seqs for x in s[:-2]})
    assert items[seen].tolist() == perm[seen].tolist()
    assert sorted(items[1:].tolist()) == list(range(1, n_items + 1)) and unseen == n_items - len(seen)
    bad = [list(r) for r in released]
    bad[5] = bad[5][::-1] if bad[5] != bad[5][::-1] else bad[5] + [1]
    with pytest.raises(ValueError, match="no exact counterpart|would map"):
        authors.derive_relabelling(seqs, bad, n_items)
    with pytest.raises(ValueError, match="41 users here, 40"):
        authors.derive_relabelling(seqs, released[:-1], n_items)


def test_training_rows_follow_the_authors_regenerated_row_rule():
    assert authors.train_row([5]) is None
    u, x, y, n, label, dom = authors.train_row(list(range(1, 61)))
    assert (u, n) == (1, 50) and x == list(range(10, 60)) and y == list(range(11, 61))
    u, x, y, n, label, dom = authors.train_row([4, 5, 6], user=7)
    assert (u, n) == (7, 2) and x[:3] == [4, 5, 0] and y[:3] == [5, 6, 0] and label[:3] == [1, 1, 0]


def test_authors_cli_errors_are_one_line(tmp_path, capsys):
    assert authors.main(["convert", "--authors", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert authors.main(["check", "--authors", str(tmp_path), "--converted", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the DR4SR authors' repository (no run.py)" in err
    assert authors.main(["run", "--authors", str(tmp_path), "--converted", str(tmp_path), "--epochs", "1"]) == 2
    assert "smoke run" in capsys.readouterr().err


# ------------------------------------------------------------------ the study's declaration
def test_study_declares_the_authors_scheme_without_moving_existing_run_ids():
    import dr4sr_study as study
    from _results import read_rows

    assert study.SCHEMES["authors"] == AUTHORS_SCHEME  # the frozen declaration is the library's preset
    rows = read_rows(study.RESULTS, study.COLUMNS)
    setting = study.selected_setting(rows) or ("V1", 5, 0.3)
    declared = {r.run_id for r in study.selection_runs() + study.queued_runs(setting)}
    assert {row["run_id"] for row in rows} <= declared  # every committed row is still a declared run
    queued = study.queued_runs(setting)
    authors_runs = [r for r in queued if r.scheme == "authors"]
    assert [(r.train_set, r.target_seed) for r in authors_runs] == \
        [(t, s) for s in (0, 1, 2) for t in ("original", "dr4sr")]
    first_gru = next(i for i, r in enumerate(queued) if r.model == "gru4rec")
    assert queued.index(authors_runs[-1]) < first_gru
    plain = study.Run("replicate", "beauty", "sasrec", "original", target_seed=0)
    assert "scheme" not in plain.key() and plain.protocol == "all"
    assert authors_runs[0].protocol == "all/authors" and authors_runs[0].run_id != plain.run_id


def test_xavier_qkv_init_matches_pytorch_attention():
    torch.manual_seed(0)
    m = build_model("sasrec", 50, embed_dim=16, qkv_init="xavier")
    w = m.blocks[0].qkv.weight.detach()
    bound = (6 / (w.size(0) + w.size(1))) ** 0.5  # xavier-uniform over the stacked (3d, d) matrix
    assert 0.5 * bound < float(w.abs().max()) <= bound * (1 + 1e-6)
    assert float(m.blocks[0].out.weight.detach().std()) < 0.03  # every other weight keeps N(0, 0.02)
    assert m.init_kwargs["qkv_init"] == "xavier" and "qkv_init" not in build_model("sasrec", 50).init_kwargs
    ref = torch.nn.MultiheadAttention(16, 2)
    assert ref.in_proj_weight.shape == w.shape  # the matrix PyTorch's default initialises as one
    with pytest.raises(ValueError, match="qkv_init must be 'normal' or 'xavier', got 'he'"):
        build_model("sasrec", 50, qkv_init="he")


def test_a_dr4sr_folder_is_read_from_a_copy(tmp_path):
    from test_dr4sr_pipeline import TINY, planted_data

    from fastregen.dr4sr import DR4SR, RegenConfig

    data = planted_data(n=60)
    regen = tmp_path / "regen"
    DR4SR(RegenConfig(**TINY)).fit(data, out_dir=regen).regenerate()
    before = {p.name: p.stat().st_mtime_ns for p in regen.iterdir()}
    name, train = authors.load_training_set(str(regen), data, "combined_authors")
    assert name == "dr4sr:combined_authors" and len(train) > 2 * len(data)  # the original sequences twice, and more
    assert {p.name: p.stat().st_mtime_ns for p in regen.iterdir()} == before  # the study's folder is never written
    with pytest.raises(authors.UsageError, match="not a finished DR4SR folder"):
        authors.load_training_set(str(tmp_path), data, "combined_authors")


def test_authors_queue_converts_runs_in_order_and_waits_for_an_unfinished_dr4sr_folder(tmp_path, monkeypatch):
    """`authors.py queue` (a study worker's turn): the original first, the DR4SR set once its folder is
    finished, each converted once; exit codes as the other study queues (0 ran, 3 waiting, 4 none)."""
    monkeypatch.setattr(authors, "WORK", tmp_path / "work")
    monkeypatch.setattr(authors, "HERE", tmp_path / "benchmarks")
    monkeypatch.setattr(authors, "Authors", lambda where: None)
    monkeypatch.setattr(authors, "_needs", lambda: None)
    converted, trained = [], []

    def convert(args):
        out = Path(args.out)
        (out / authors.DOMAIN).mkdir(parents=True)
        (out / authors.DOMAIN / "train.pth").write_bytes(b"")
        (out / "convert.json").write_text(f'{{"train_set": "{args.train}", "train_sha256": "{len(converted)}"}}')
        converted.append(args.train)

    def run(args):
        meta = authors._converted(args.converted)[1]
        authors.append_row(args.results, {**{c: "" for c in authors.COLUMNS},
                                          "run_id": authors._run_id(meta, args.dataset, 2023, None)}, authors.COLUMNS)
        trained.append(meta["train_set"])
    monkeypatch.setattr(authors, "convert", convert)
    monkeypatch.setattr(authors, "run", run)
    results = tmp_path / "authors.csv"
    argv = ["queue", "--authors", "x", "--results", str(results), "--max-runs", "1"]
    assert authors.main(argv) == 0 and trained == ["original"]
    assert authors.main(argv) == 3  # the DR4SR folder has no regenerated.json yet
    folder = tmp_path / authors.QUEUE[1][1]
    folder.mkdir(parents=True)
    (folder / "regenerated.json").write_text("{}")
    assert authors.main(argv) == 0 and trained == ["original", str(folder)]
    assert authors.main(argv) == 4
    assert converted == ["original", str(folder)]  # each set converted once
    monkeypatch.delenv("FASTREGEN_DR4SR_AUTHORS", raising=False)
    assert authors.main(["queue", "--results", str(results)]) == 4  # no checkout configured: nothing to run


@pytest.mark.parametrize("normalisation", ["batch_mean", "constant"])
def test_a_checkpoint_from_before_the_trainer_recorded_its_normalisation_resumes(tmp_path, normalisation):
    """Checkpoints written before the Trainer recorded ``normalisation`` (and ``bucket_window``) in its
    fingerprint trained with what the run's TrainConfig said; a live authors'-scheme study run (batch_mean)
    was refused as 'absent in the checkpoint, batch_mean now' before the default came from the config."""
    data = SequenceDataset.from_lists([[1, 2, 3, 4, 5, 6], [2, 3, 4, 5], [4, 5, 6, 7, 1], [1, 7, 2, 3]] * 3)
    kw = dict(model="sasrec", seed=0, epochs=3, patience=5, embed_dim=8, max_len=8, progress=False,
              num_threads=1, loss_normalisation=normalisation, out_dir=tmp_path)

    def stop(record):  # a run cut after its first epoch (its checkpoint is written before the log line)
        if record["epoch"] >= 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fit_and_evaluate(data, log=stop, **kw)
    ck = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert not ck["finished"]
    for key in ("normalisation", "bucket_window"):  # as the older code wrote it
        del ck["fingerprint"]["trainer"][key]
    torch.save(ck, tmp_path / "checkpoint.pt")
    again = fit_and_evaluate(data, **kw)  # resumes instead of refusing
    assert again["resumed_epochs"] >= 1 and again["epochs"] == 3
    other = "constant" if normalisation == "batch_mean" else "batch_mean"
    with pytest.raises(ValueError, match="loss_normalisation"):
        fit_and_evaluate(data, **{**kw, "loss_normalisation": other})
