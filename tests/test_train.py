"""The trainer: example building, losses, fit_and_evaluate, config, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen._batching import length_bucketed_batches
from fastregen.config import load_config, save_config
from fastregen.data import SequenceDataset, leave_one_out
from fastregen.models import load_model
from fastregen.training import (
    TrainConfig,
    bce_loss,
    build_examples,
    fit_and_evaluate,
    gather_windows,
    pack_segments,
    resolve_loss,
    sampled_softmax_loss,
    softmax_loss,
)


def _random_data(seed=0, n=30, num_items=25, max_len=30):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, num_items + 1, rng.integers(0, max_len)) for _ in range(n)]
    return SequenceDataset.from_lists(seqs, num_items=num_items)


def _planted(n_users=40, length=9, num_items=10, seed=0):
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, num_items, n_users)
    return SequenceDataset.from_lists([((s + np.arange(length)) % num_items) + 1 for s in starts], num_items=num_items)


def test_gather_windows_left_pads():
    items = np.array([1, 2, 3, 4, 5])
    out = gather_windows(items, np.array([0, 2, 0]), np.array([3, 5, 1]), 4)
    assert out.tolist() == [[0, 1, 2, 3], [0, 3, 4, 5], [0, 0, 0, 1]]


@pytest.mark.parametrize("L", [1, 3, 7])
def test_all_positions_examples_use_every_target_once(L):
    ds = _random_data()
    x, y, w = build_examples(ds, L, "all")
    # brute force: (target, the up-to-L items before it within its window)
    expected, got = [], []
    for seq in ds:
        seq = seq.tolist()
        for t in range(1, len(seq)):
            expected.append(seq[t])
    for xi, yi in zip(x, y):
        for j in np.flatnonzero(yi):
            got.append(int(yi[j]))
            assert xi[j] > 0
    assert sorted(got) == sorted(expected)
    np.testing.assert_array_equal(w, (y > 0).astype(np.float32))
    # every input row is a contiguous slice of its sequence followed by its targets
    for xi, yi in zip(x, y):
        valid = xi > 0
        np.testing.assert_array_equal(xi[valid][1:], yi[valid][:-1])


def test_last_position_examples_are_prefixes():
    ds = _random_data(seed=1)
    L = 4
    x, y, w = build_examples(ds, L, "last", sequence_weights=np.arange(len(ds), dtype=np.float32) + 1)
    rows = []
    for u, seq in enumerate(ds):
        seq = seq.tolist()
        for t in range(1, len(seq)):
            hist = seq[max(0, t - L) : t]
            rows.append(([0] * (L - len(hist)) + hist, seq[t], u + 1))
    assert x.tolist() == [r[0] for r in rows]
    assert y[:, -1].tolist() == [r[1] for r in rows]
    assert not y[:, :-1].any()
    assert w[:, -1].tolist() == [r[2] for r in rows]
    with pytest.raises(ValueError, match="mode"):
        build_examples(ds, L, "middle")
    with pytest.raises(ValueError, match="sequence_weights"):
        build_examples(ds, L, "all", sequence_weights=np.ones(3))


def _greedy_reference(lengths, width):
    """The DR4SR CondenseDataset rule written plainly: rows as lists of segment ids."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable
    rows, lo, hi = [], 0, len(order) - 1
    while lo <= hi:
        row, used = [order[lo]], lengths[order[lo]]
        lo += 1
        while lo <= hi and used + lengths[order[hi]] <= width:
            used += lengths[order[hi]]
            row.append(order[hi])
            hi -= 1
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed, L", [(0, 5), (1, 8), (2, 50), (3, 1)])
def test_packed_examples_keep_every_segment_contiguous(seed, L):
    ds = _random_data(seed=seed, n=40, max_len=20)
    sw = np.arange(len(ds), dtype=np.float32) + 1
    xa, ya, wa = build_examples(ds, L, "all", sequence_weights=sw)
    keep = (ya > 0).any(1)
    xa, ya, wa = xa[keep], ya[keep], wa[keep]
    xp, yp, wp = build_examples(ds, L, "packed", sequence_weights=sw)
    segs = [(xi[xi > 0].tolist(), yi[xi > 0].tolist(), wi[xi > 0].tolist()) for xi, yi, wi in zip(xa, ya, wa)]
    lengths = [len(s[0]) for s in segs]
    rows = _greedy_reference(lengths, L)
    assert xp.shape == (len(rows), L)
    for r, ids in enumerate(rows):
        want_x = [v for i in ids for v in segs[i][0]]
        want_y = [v for i in ids for v in segs[i][1]]
        want_w = [v for i in ids for v in segs[i][2]]
        pad = L - len(want_x)
        assert pad >= 0
        assert xp[r].tolist() == [0] * pad + want_x  # left-padded, segments back to back
        assert yp[r].tolist() == [0] * pad + want_y
        assert wp[r].tolist() == [0.0] * pad + want_w
    # nothing lost, nothing duplicated
    assert int((yp > 0).sum()) == int((ya > 0).sum())
    assert np.isclose(wp.sum(), wa.sum())


def test_packed_edge_cases():
    empty = np.zeros((0, 4), np.int64)
    out = pack_segments(empty, empty, empty.astype(np.float32))
    assert all(a.shape == (0, 4) for a in out)
    ds = SequenceDataset.from_lists([[1, 2], [3, 4, 5, 6, 7], [2, 2, 2]], num_items=7)
    x, y, _ = build_examples(ds, 4, "packed")
    # segments (input lengths): [3,4,5,6] -> 4, [4,5,6,7]... windows of 5 items: [3..7] -> 4; [2,2,2] -> 2; [1,2] -> 1
    assert x.tolist() == [[3, 4, 5, 6], [0, 2, 2, 1]]
    assert y.tolist() == [[4, 5, 6, 7], [0, 2, 2, 2]]


def test_packed_needs_a_causal_model():
    ds = _planted()
    with pytest.raises(ValueError, match="causal"):
        fit_and_evaluate(ds, model="fmlp", train_targets="packed", epochs=1, progress=False, num_threads=1)
    with pytest.raises(ValueError, match="train_targets"):
        TrainConfig(train_targets="pack")


def test_losses_match_their_formulas():
    torch.manual_seed(0)
    h = torch.randn(2, 3, 4)
    E = torch.randn(6, 4)
    t = torch.tensor([[0, 2, 3], [1, 5, 0]])
    neg = torch.tensor([[[4], [1], [2]], [[3], [3], [1]]])
    mask = t > 0
    pos_s = (h * E[t]).sum(-1)
    neg_s = (h * E[neg[..., 0]]).sum(-1)
    ref = ((F.softplus(-pos_s) + F.softplus(neg_s)) * mask).sum() / mask.sum()
    torch.testing.assert_close(bce_loss(h, E, t, neg), ref)
    # weights scale each position; normalised by the number of targets
    w = torch.tensor([[0, 2.0, 0], [1, 0, 0]])
    ref_w = ((F.softplus(-pos_s) + F.softplus(neg_s)) * w).sum() / mask.sum()
    torch.testing.assert_close(bce_loss(h, E, t, neg, w), ref_w)

    logits = h[mask] @ E.T
    logits[:, 0] = float("-inf")
    torch.testing.assert_close(softmax_loss(h, E, t), F.cross_entropy(logits, t[mask]))
    torch.testing.assert_close(softmax_loss(h, E, t, temperature=0.5), F.cross_entropy(logits / 0.5, t[mask]))

    shared = torch.tensor([2, 4])
    out = sampled_softmax_loss(h, E, t, shared, temperature=0.5)
    per = []
    for b, l in zip(*torch.nonzero(mask, as_tuple=True)):
        cand = [int(t[b, l])] + [int(j) for j in shared if int(j) != int(t[b, l])]  # clash masked
        lg = (E[cand] @ h[b, l]) / 0.5
        per.append(torch.logsumexp(lg, 0) - lg[0])
    torch.testing.assert_close(out, torch.stack(per).mean())


def test_train_config_validation_and_yaml_round_trip(tmp_path):
    cfg = TrainConfig(model="gru4rec", epochs=3, ks=(5, 10), valid_metric="ndcg@10", model_kwargs={"dropout": 0.2})
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(TrainConfig, tmp_path / "c.yaml") == cfg
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        TrainConfig(loss="mse")
    with pytest.raises(ValueError, match="valid_metric 'ndcg@20' is not computed"):
        TrainConfig(ks=(10,))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="num_negatives"):
        TrainConfig(num_negatives=-1)
    assert resolve_loss(TrainConfig(model="sasrec")) == ("bce", 1)
    assert resolve_loss(TrainConfig(model="hstu")) == ("sampled_softmax", 128)
    assert resolve_loss(TrainConfig(model="hstu", loss="softmax", num_negatives=5)) == ("softmax", 5)


def test_fit_and_evaluate_end_to_end(tmp_path):
    data = _planted()
    out = fit_and_evaluate(data, model="sasrec", seed=1, out_dir=tmp_path / "run", epochs=4, batch_size=8,
                           embed_dim=16, max_len=8, progress=False, num_threads=1, ks=(1, 5, 20))
    assert set(out["test"]) >= {"recall@1", "ndcg@5", "recall@20", "mrr", "auc", "n_users"}
    assert set(out["valid"]) >= {"ndcg@20"}
    assert out["epochs"] == 4 and 0 <= out["best_epoch"] < 4
    run = tmp_path / "run"
    for name in ("config.yaml", "provenance.json", "metrics.jsonl", "result.json", "model.pt"):
        assert (run / name).is_file(), name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and "valid_ndcg@20" in json.loads(lines[0])
    assert json.loads((run / "provenance.json").read_text())["config"]["seed"] == 1
    assert load_config(TrainConfig, run / "config.yaml").epochs == 4
    # the checkpoint is the returned (best) model
    m = load_model(out["checkpoint"]).eval()
    x = torch.tensor([[0, 1, 2, 3]])
    torch.testing.assert_close(m(x), out["model"](x))
    # same seed, same result
    again = fit_and_evaluate(data, model="sasrec", seed=1, epochs=4, batch_size=8, embed_dim=16, max_len=8,
                             progress=False, num_threads=1, ks=(1, 5, 20))
    assert again["test"] == out["test"]


def test_train_data_replaces_the_train_split_and_carries_weights():
    data = _planted()
    split = leave_one_out(data)
    common = dict(epochs=2, batch_size=8, embed_dim=16, max_len=8, progress=False, num_threads=1)
    zero = split.train.replace(meta={"weights": np.zeros(len(split.train))})
    out = fit_and_evaluate(data, model="gru4rec", train_data=zero, **common)
    # zero weights: nothing is learned, the loss is exactly 0
    assert all(r["loss"] == 0.0 for r in out["history"])
    other = SequenceDataset.from_lists([[1, 2, 3]] * 5, num_items=data.num_items)
    out = fit_and_evaluate(data, model="gru4rec", train_data=other, **common)
    assert out["train_examples"] == 5


def test_base_config_is_overridden_by_keywords():
    base = TrainConfig(model="sasrec", epochs=5, batch_size=8, embed_dim=8, max_len=6, progress=False, num_threads=1)
    out = fit_and_evaluate(_planted(), model="gru4rec", seed=3, config=base, epochs=1)
    assert out["config"]["model"] == "gru4rec" and out["config"]["seed"] == 3
    assert out["config"]["epochs"] == 1 and out["config"]["embed_dim"] == 8
    assert out["epochs"] == 1 and out["loss"] == "bce"


def test_concat_tags_sources_and_weights():
    from fastregen.data import concat

    a = SequenceDataset.from_lists([[1, 2], [3, 4, 5]], num_items=6)
    b = SequenceDataset.from_lists([[6, 1, 2]], num_items=6)
    u = concat(a, b, weights=[1.0, 0.5])
    assert u.to_lists() == [[1, 2], [3, 4, 5], [6, 1, 2]]
    assert u.meta["source"].tolist() == [0, 0, 1] and u.meta["source_names"] == ["part0", "part1"]
    assert u.meta["weights"].tolist() == [1.0, 1.0, 0.5]
    x, y, w = build_examples(u, 4, "all", u.meta["weights"])
    assert w.max(1).tolist() == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="2 weights for 1 datasets"):
        concat(a, weights=[1, 2])


def test_bad_inputs_are_clear_errors():
    data = _planted(num_items=10)
    with pytest.raises(ValueError, match="unknown model 'foo'; valid models: cl4srec"):
        fit_and_evaluate(data, model="foo")
    with pytest.raises(ValueError, match="unknown TrainConfig option"):
        fit_and_evaluate(data, epochz=3)
    with pytest.raises(TypeError, match="SequenceDataset or a path"):
        fit_and_evaluate([[1, 2, 3]])
    lonely = SequenceDataset.from_lists([[1], [2]] * 3, num_items=10)
    with pytest.raises(ValueError, match="no sequence with two or more items"):
        fit_and_evaluate(data, train_data=lonely, epochs=1, progress=False)


def test_cli_train(tmp_path):
    from typer.testing import CliRunner

    from fastregen.cli import app

    path = tmp_path / "d.txt"
    path.write_text("\n".join(f"{u} " + " ".join(str(i) for i in seq) for u, seq in enumerate(_planted().to_lists())) + "\n")
    res = CliRunner().invoke(app, ["train", "--data", str(path), "--model", "gru4rec", "--epochs", "2", "--no-progress",
                                   "--threads", "1", "--set", "embed_dim=16", "--set", "max_len=8",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # stderr carries the per-epoch time estimate
    assert summary["epochs"] == 2 and "ndcg@20" in summary["test"]
    assert (tmp_path / "run" / "model.pt").is_file()
    bad = CliRunner().invoke(app, ["train", "--data", str(path), "--model", "nope"])
    assert bad.exit_code == 2 and "valid models" in bad.output


@pytest.mark.data
def test_beauty_examples_cover_every_training_target(beauty_path):
    from fastregen.data import load

    train = leave_one_out(load(beauty_path)).train
    x, y, w = build_examples(train, 50, "all")
    assert int((y > 0).sum()) == int(np.maximum(train.lengths - 1, 0).sum())


# -- length-bucketed batch order (shared by this trainer and the regenerator) --

@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), batch_size=st.integers(1, 40), bucket=st.integers(0, 4), seed=st.integers(0, 3))
def test_length_bucketed_batches_partition_and_buckets(n, batch_size, bucket, seed):
    lengths = np.random.default_rng(seed).integers(1, 9, size=n)
    rng = np.random.default_rng(seed)
    batches = length_bucketed_batches(n, batch_size, rng.permutation, lengths, bucket=bucket)
    flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(n))  # every example exactly once
    assert all(0 < len(b) <= batch_size for b in batches)
    assert sum(len(b) == batch_size for b in batches) >= len(batches) - 1  # only one short batch
    # inside a batch, lengths are sorted (each batch lies inside one sorting window)
    assert all(np.all(np.diff(lengths[b]) >= 0) for b in batches)
    again = length_bucketed_batches(n, batch_size, np.random.default_rng(seed).permutation, lengths, bucket=bucket)
    assert [b.tolist() for b in again] == [b.tolist() for b in batches]  # same seed, same order


def test_length_bucketed_batches_without_rng_is_in_order():
    batches = length_bucketed_batches(7, 3, None)
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    # with lengths but no rng (the regenerator's validation pass): sorted windows, batches in order
    batches = length_bucketed_batches(5, 2, None, np.array([5, 1, 4, 2, 3]), bucket=8)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 2], [0]]


def test_trainer_batches_reduce_padding_with_bucketing():
    from fastregen.training import Examples

    rng = np.random.default_rng(0)
    ds = SequenceDataset.from_lists([rng.integers(1, 9, n) for n in rng.integers(2, 52, size=2048)], num_items=8)
    ex = Examples(ds, 50, "all")

    def width(batches):
        return sum(int(ex.lengths[b].max()) for b in batches)
    plain = ex.batch_order(64, torch.Generator().manual_seed(0), bucketing=False)
    bucketed = ex.batch_order(64, torch.Generator().manual_seed(0), bucketing=True)
    assert sorted(np.concatenate(bucketed).tolist()) == list(range(len(ex)))
    assert len(plain) == len(bucketed) == -(-len(ex) // 64)
    assert width(bucketed) < 0.7 * width(plain)


def test_a_whole_epoch_window_pads_least_on_mixed_lengths():
    # long sequences among many short patterns: a window of 32 batches sorts the long ones coarsely
    from fastregen.training import Examples

    rng = np.random.default_rng(0)
    long = [rng.integers(1, 9, n) for n in rng.integers(2, 52, size=1500)]
    short = [rng.integers(1, 9, n) for n in rng.integers(2, 5, size=3500)]
    ex = Examples(SequenceDataset.from_lists(long + short, num_items=8), 50, "all")

    def cells(window):
        batches = ex.batch_order(64, torch.Generator().manual_seed(0), True, window=window)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(ex)))
        return sum(len(b) * int(ex.lengths[b].max()) for b in batches)
    assert cells(0) < cells(32) < cells(1)
    with pytest.raises(ValueError, match="bucket must be an int >= 0"):
        ex.batch_order(64, None, True, window=-1)


def test_bucket_window_reaches_the_trainer_and_is_checked(tmp_path):
    from fastregen.training import TrainConfig, fit_and_evaluate

    with pytest.raises(ValueError, match="bucket_window must be an int >= 0"):
        TrainConfig(bucket_window=-2)
    rng = np.random.default_rng(0)
    ds = SequenceDataset.from_lists([rng.integers(1, 30, n) for n in rng.integers(4, 20, size=80)], num_items=30)
    seen = []
    from fastregen.training import Examples
    orig = Examples.batch_order

    def spy(self, *a, **k):
        seen.append(k.get("window"))
        return orig(self, *a, **k)
    Examples.batch_order = spy
    try:
        fit_and_evaluate(ds, "sasrec", epochs=1, embed_dim=8, max_len=10, bucket_window=0, progress=False,
                         num_threads=1)
    finally:
        Examples.batch_order = orig
    assert seen == [0]
