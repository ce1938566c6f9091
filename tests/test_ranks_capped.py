"""Ranks with a cap (`item_ranks(max_rank=m)`, `evaluate(max_rank=m)`, issue 28 item 6): exactly
``min(full rank, m)`` on every backend, the AMX kernel's segmented count with early exit against its
reference (`fastregen.reference.ranks.capped_rank_counts`), the metrics a cap leaves exact (and no
other), the validation option `TrainConfig.valid_max_rank`, and the errors for bad caps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ranks_amx import _MODES, _vectors, amx_problem, needs_amx

from fastregen import _core
from fastregen.data import SequenceDataset, leave_one_out
from fastregen.evaluation import evaluate, item_ranks, ranking_metrics
from fastregen.evaluation import ranks as ranks_mod
from fastregen.models import build_model
from fastregen.reference.ranks import capped_rank_counts, fma_scores, rank_counts
from fastregen.training import TrainConfig, fit

_BACKENDS = ["torch", "native"] + (["amx"] if _core.amx_available() else [])


def _csr(rows, cols, B):
    """Per-row ascending, distinct exclusions (the kernel's promise), as `item_ranks` builds them."""
    key = np.unique(rows * 10**9 + cols)
    r, c = key // 10**9, key % 10**9
    return np.r_[0, np.cumsum(np.bincount(r, minlength=B))].astype(np.int64), c.astype(np.int64)


@st.composite
def bounds_for(draw, C):
    """Segment boundaries 0 = b_0 < ... < b_n = C, any sizes (not multiples of the 16-item groups)."""
    inner = draw(st.lists(st.integers(1, max(C - 1, 1)), max_size=8, unique=True)) if C > 1 else []
    return np.array([0, *sorted(b for b in inner if 0 < b < C), C], dtype=np.int64)


@needs_amx
@settings(max_examples=250, deadline=None)
@given(amx_problem(), st.data(), st.sampled_from([1, 2]))
def test_capped_kernel_equals_reference(problem, data, threads):
    hidden, table, targets, rows, cols = problem
    B, C = hidden.shape[0], table.shape[0]
    m = data.draw(st.sampled_from([1, 2, 3, 10, C - 1, C, C + 5, 2**40]), label="max_rank")
    bounds = data.draw(bounds_for(C), label="bounds")
    if data.draw(st.booleans(), label="descending norm order"):  # the order item_ranks scans in
        order = np.r_[0, 1 + np.argsort(-np.linalg.norm(table[1:].astype(np.float64), axis=1), kind="stable")]
        position = np.empty_like(order)
        position[order] = np.arange(C)
        table, targets, cols = np.ascontiguousarray(table[order]), position[targets], position[cols]
    offsets, items = _csr(rows, cols, B)
    count, excluded, _, _, scanned = _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, offsets,
                                                          items, threads, max_rank=m, bounds=bounds)
    want_count, want_excluded, most = capped_rank_counts(hidden, table, targets, offsets, items, m, bounds)
    np.testing.assert_array_equal(count, want_count)
    np.testing.assert_array_equal(excluded, want_excluded)
    scores = fma_scores(hidden, table)
    full = rank_counts(scores, targets, scores[np.arange(B), targets], offsets, items, 0, C)[0]
    np.testing.assert_array_equal(count, np.minimum(full, m))
    assert scanned <= most <= B * C


def test_capped_reference_is_min_of_full():
    # the reference itself against the plain count, segments or not
    rng = np.random.default_rng(3)
    hidden, table = _vectors(rng, "coarse", 12, 5), _vectors(rng, "coarse", 50, 5)
    targets = rng.integers(1, 50, 12)
    offsets, items = _csr(np.repeat(np.arange(12), 3), rng.integers(1, 50, 36), 12)
    scores = fma_scores(hidden, table)
    full = rank_counts(scores, targets, scores[np.arange(12), targets], offsets, items, 0, 50)
    for m in (1, 4, 49, 100):
        for bounds in (None, np.array([0, 7, 8, 33, 50])):
            count, excluded, scanned = capped_rank_counts(hidden, table, targets, offsets, items, m, bounds)
            np.testing.assert_array_equal(count, np.minimum(full[0], m))
            np.testing.assert_array_equal(excluded, full[1])
            assert scanned == 12 * 50 if bounds is None else scanned <= 12 * 50


@needs_amx
def test_capped_kernel_drops_and_compacts():
    # 70 users (not a multiple of 32), items in segments of 37: users leave at different segments, the
    # rest are compacted; users outside the safe range (exact chain alone) and a NaN target score
    rng = np.random.default_rng(5)
    B, C, d = 70, 1000, 16
    hidden = rng.standard_normal((B, d)).astype(np.float32)
    table = rng.standard_normal((C, d)).astype(np.float32)
    hidden[3] *= np.float32(2.0**60)
    hidden[4, 0] = np.nan
    targets = rng.integers(1, C, B).astype(np.int64)
    offsets, items = _csr(np.repeat(np.arange(B), 4), rng.integers(1, C, 4 * B), B)
    bounds = np.r_[np.arange(0, C, 37), C].astype(np.int64)
    full = _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, offsets, items, 1)
    assert full[3] == 2 and full[4] == B * C
    for m in (1, 5, 200):
        got = _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, offsets, items, 2, max_rank=m,
                                    bounds=bounds)
        np.testing.assert_array_equal(got[0], np.minimum(full[0], m))
        np.testing.assert_array_equal(got[1], full[1])
        assert got[4] < B * C  # users did stop
        assert got[4] == _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, offsets, items, 1,
                                               max_rank=m, bounds=bounds)[4]  # whatever the threads


@needs_amx
def test_norm_bound_ends_users_exactly():
    # items in descending norm order, each user's target the first item: after the first segment no
    # later item can reach it, so every user stops with its exact (full) count, without a cap too
    rng = np.random.default_rng(6)
    B, C, d = 40, 4000, 8
    direction = rng.standard_normal(d).astype(np.float32)
    table = (rng.standard_normal((C, d)) * 0.01).astype(np.float32)
    table[1] = direction * 10
    hidden = (direction + rng.standard_normal((B, d)) * 0.01).astype(np.float32)
    targets = np.ones(B, dtype=np.int64)
    none = np.zeros(B + 1, np.int64), np.zeros(0, np.int64)
    packed = _core.pack_items(table)
    full = _core.amx_rank_counts(hidden, table, packed, targets, *none, 1)
    bounds = np.array([0, 64, 1000, C], dtype=np.int64)
    got = _core.amx_rank_counts(hidden, table, packed, targets, *none, 1, max_rank=None, bounds=bounds)
    np.testing.assert_array_equal(got[0], full[0])
    assert got[4] == B * 64


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(2, 150), st.sampled_from([1, 4, 16, 33]), st.sampled_from(_MODES),
       st.integers(0, 2**32 - 1), st.data())
def test_item_ranks_capped_is_min_of_full_every_backend(B, C, d, mode, seed, data):
    rng = np.random.default_rng(seed)
    hidden = torch.from_numpy(_vectors(rng, mode, B, d))
    table = torch.from_numpy(_vectors(rng, mode, C, d))
    targets = torch.from_numpy(rng.integers(1, C, B))
    rows = torch.from_numpy(np.repeat(np.arange(B), 3))
    cols = torch.from_numpy(rng.integers(1, C, 3 * B))
    cols[::5] = targets[rows[::5]]  # histories naming their own target
    m = data.draw(st.sampled_from([1, 2, 7, C - 1, C, 10**6]), label="max_rank")
    chunk = data.draw(st.sampled_from([None, 16]), label="chunk_size")
    for backend in _BACKENDS:
        full = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk, backend=backend)
        got = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk, backend=backend, max_rank=m)
        assert torch.equal(got[0], full[0].clamp(max=m)), backend
        assert torch.equal(got[1], full[1]), backend


@needs_amx
def test_item_ranks_amx_segments(monkeypatch):
    # item_ranks' own schedule and scan order, with segments small enough to matter here: 33 and
    # 1 users, ties exactly at the target (copies of it), near-ties one float32 step away, cap 1 and
    # caps beyond the catalogue
    monkeypatch.setattr(ranks_mod, "_FIRST_SEGMENT", 23)
    monkeypatch.setattr(ranks_mod, "_LARGEST_SEGMENT", 200)
    rng = np.random.default_rng(7)
    C, d = 3001, 32
    table = (rng.standard_normal((C, d)) * rng.uniform(0.1, 2.0, (C, 1))).astype(np.float32)
    for B in (33, 1):
        hidden = rng.standard_normal((B, d)).astype(np.float32)
        targets = rng.integers(1, C, B)
        table[100:120] = table[targets[0]]  # exact ties with user 0's target
        near = table[targets[0]].copy()
        near[0] = np.nextafter(near[0], np.float32(np.inf))
        table[200:210] = near
        rows = np.repeat(np.arange(B), 5)
        cols = rng.integers(1, C, 5 * B)
        cols[0] = targets[0]
        args = [torch.from_numpy(x) for x in (hidden, table, targets, rows, cols)]
        full = item_ranks(*args, backend="amx")
        assert torch.equal(full[0], item_ranks(*args, backend="torch")[0])
        for m in (1, 3, 20, C - 1, C + 10):
            stats = {}
            got = item_ranks(*args, backend="amx", max_rank=m, _stats=stats)
            assert torch.equal(got[0], full[0].clamp(max=m)) and torch.equal(got[1], full[1]), (B, m)
            assert 0 < stats["scanned"] <= B * C


def test_segments():
    for C, first, growth, largest in [(1, 1024, 2, 32768), (5, 2, 2, 4), (3001, 23, 2, 200), (700001, 1024, 2, 32768),
                                      (100, 7, 1.5, 20)]:
        b = ranks_mod._segments(C, first, growth, largest)
        assert b[0] == 0 and b[-1] == C and (np.diff(b) > 0).all()
        assert np.diff(b)[0] == min(first, C) and np.diff(b).max() <= max(first, largest)


def test_amx_table_scan_order():
    rng = np.random.default_rng(8)
    table = torch.from_numpy(rng.standard_normal((50, 6)).astype(np.float32))
    if not _core.amx_available():
        assert ranks_mod._amx_table(table, "auto", order="norm") is None
        return
    packed = ranks_mod._amx_table(table, "amx", order="norm")
    assert packed.position[0] == 0 and sorted(packed.position) == list(range(50))
    np.testing.assert_array_equal(packed.table[packed.position], table.numpy())
    norms = np.linalg.norm(packed.table[1:], axis=1)
    assert (np.diff(norms) <= 1e-6).all()
    assert ranks_mod._amx_table(table, "amx").position is None
    with pytest.raises(ValueError, match="order must be one of id, norm, got 'popular'"):
        ranks_mod._amx_table(table, "amx", order="popular")


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), (True, TypeError), (2.5, TypeError),
                                        ("10", TypeError), (np.float64(4), TypeError)])
def test_bad_max_rank(bad, error):
    h, t = torch.randn(20, 4), torch.randn(10, 4)
    with pytest.raises(error, match=f"max_rank must be an int >= 1 or None, got {bad!r}".replace("(", r"\(")
                       .replace(")", r"\)")):
        item_ranks(h, t, torch.ones(20, dtype=torch.long), max_rank=bad)
    with pytest.raises(error, match="max_rank must be an int >= 1 or None"):
        ranking_metrics(np.zeros(3), ks=(1,), max_rank=bad)


def test_numpy_int_max_rank():
    h, t = torch.randn(20, 4), torch.randn(10, 4)
    targets = torch.ones(20, dtype=torch.long)
    assert torch.equal(item_ranks(h, t, targets, max_rank=np.int64(2))[0], item_ranks(h, t, targets)[0].clamp(max=2))


@needs_amx
def test_kernel_cap_and_bounds_errors():
    table = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    hidden, packed = table[:3].copy(), _core.pack_items(table)
    args = (hidden, table, packed, np.array([1, 2, 3], np.int64), np.zeros(4, np.int64), np.zeros(0, np.int64), 1)
    with pytest.raises(ValueError, match="max_rank must be >= 1, got 0"):
        _core.amx_rank_counts(*args, max_rank=0)
    with pytest.raises(TypeError, match="max_rank must be an int or None, got True"):
        _core.amx_rank_counts(*args, max_rank=True)
    with pytest.raises(TypeError, match="max_rank must be an int or None, got 1.5"):
        _core.amx_rank_counts(*args, max_rank=1.5)
    for bounds in ([0, 5, 10], np.array([0, 5, 10], np.int32)):
        with pytest.raises(TypeError, match="bounds must be"):
            _core.amx_rank_counts(*args, bounds=bounds)
    for bounds, msg in [([1, 10], "from 0 to n_items = 10"), ([0, 9], "from 0 to n_items = 10"), ([0], "in >= 2"),
                        ([0, 5, 5, 10], r"bounds\[2\] = 5 follows 5")]:
        with pytest.raises(ValueError, match=msg):
            _core.amx_rank_counts(*args, bounds=np.array(bounds, np.int64))


def test_ranking_metrics_with_a_cap():
    ranks = np.array([0, 3, 9, 10, 49, 50, 700])
    full = ranking_metrics(ranks, np.full(7, 1000), ks=(1, 10, 50))
    capped = ranking_metrics(np.minimum(ranks, 50), np.full(7, 1000), ks=(1, 10, 50), max_rank=50)
    assert set(capped) == {f"{m}@{k}" for m in ("recall", "ndcg") for k in (1, 10, 50)}  # no mrr, no auc
    assert all(capped[k] == full[k] for k in capped)
    with pytest.raises(ValueError, match="cut-off 50 exceeds max_rank = 20"):
        ranking_metrics(np.minimum(ranks, 20), ks=(10, 50), max_rank=20)


def _tiny(n_users=90, n_items=400, seed=1):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, n_items + 1, rng.integers(3, 15)) for _ in range(n_users)]
    for s in seqs[::4]:
        s[-1] = s[0]  # targets repeating a history item
    return SequenceDataset.from_lists(seqs, num_items=n_items)


@pytest.mark.parametrize("repeated_target", ["keep", "mask"])
def test_evaluate_with_a_cap(repeated_target):
    ds = _tiny()
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    model = build_model("sasrec", ds.num_items, embed_dim=16, max_len=8).eval()
    for backend in ["auto", *_BACKENDS]:
        full = evaluate(model, split, ks=(1, 5, 20), batch_size=32, return_ranks=True, backend=backend,
                        repeated_target=repeated_target)
        for m in (1, 20, 1000):
            ks = tuple(k for k in (1, 5, 20) if k <= m)
            got = evaluate(model, split, ks=ks, batch_size=32, return_ranks=True, backend=backend, max_rank=m,
                           repeated_target=repeated_target)
            np.testing.assert_array_equal(got["ranks"], np.minimum(full["ranks"], m))
            assert "mrr" not in got and "auc" not in got
            for k in ks:
                assert got[f"ndcg@{k}"] == full[f"ndcg@{k}"] and got[f"recall@{k}"] == full[f"recall@{k}"]
    with pytest.raises(ValueError, match="cut-off 20 exceeds max_rank = 10"):
        evaluate(model, split, ks=(10, 20), max_rank=10)
    with pytest.raises(TypeError, match="max_rank must be an int >= 1 or None, got 5.0"):
        evaluate(model, split, ks=(1,), max_rank=5.0)


def test_valid_max_rank_config():
    assert TrainConfig(valid_max_rank=50).valid_ks() == (10, 20, 50)
    assert TrainConfig(valid_max_rank=20).valid_ks() == (10, 20)
    assert TrainConfig().valid_ks() == (10, 20, 50)
    for bad in (0, -1, True, 2.5, "50"):
        with pytest.raises(ValueError, match=f"valid_max_rank must be an int >= 1 or None, got {bad!r}"):
            TrainConfig(valid_max_rank=bad)
    for metric in ("mrr", "auc", "ndcg@50"):
        with pytest.raises(ValueError, match=f"valid_metric {metric!r} needs ranks beyond valid_max_rank = 20"):
            TrainConfig(valid_max_rank=20, valid_metric=metric)


def test_fit_with_a_capped_validation():
    # the same training, the same early-stopping decisions and the same valid metrics (less mrr, auc)
    ds = _tiny(seed=2)
    split = leave_one_out(ds)
    base = dict(embed_dim=16, max_len=8, epochs=3, batch_size=32, progress=False, num_threads=1, patience=1)
    full = fit(TrainConfig(**base), split.train, split.valid, num_items=ds.num_items)
    capped = fit(TrainConfig(**base, valid_max_rank=20), split.train, split.valid, num_items=ds.num_items)
    assert capped["best_epoch"] == full["best_epoch"] and capped["epochs"] == full["epochs"]
    assert set(capped["valid"]) == {"recall@10", "ndcg@10", "recall@20", "ndcg@20", "n_users"}
    assert all(capped["valid"][k] == full["valid"][k] for k in capped["valid"])
    for a, b in zip(full["history"], capped["history"]):
        assert a["valid_ndcg@20"] == b["valid_ndcg@20"] and "valid_mrr" not in b
