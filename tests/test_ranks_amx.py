"""The two-pass AMX rank count (`_core.amx_rank_counts`, `item_ranks(backend="amx")`, issue 28):
identical ranks to `target_ranks` on the exact float32 scores (`fastregen.reference.ranks.fma_scores`),
whatever the inputs: ties, near-ties one float32 step apart, huge / tiny / zero / non-finite vectors,
masked history naming the target, empty and all-in-band bands; and the exact score itself against
its reference and against torch.mm (what makes ``backend="auto"`` agree with the other backends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen.data import SequenceDataset, leave_one_out
from fastregen.evaluation import evaluate, item_ranks, target_ranks
from fastregen.models import build_model
from fastregen.reference.ranks import fma_scores

needs_amx = pytest.mark.skipif(not _core.amx_available(), reason="the CPU (or the OS) offers no AMX-BF16 tiles")

# How the vectors of a problem are drawn: each mode stresses one part of the bound or of the fallbacks.
_MODES = ["normal", "coarse", "near", "huge", "tiny", "mixed", "nonfinite"]


def _vectors(rng, mode, n, d):
    x = rng.standard_normal((n, d))
    if mode == "coarse":  # few distinct values: exact ties everywhere
        x = np.round(x * 2) / 2
    elif mode == "huge":  # around and beyond the safe range's top (2^50)
        x *= 2.0 ** rng.choice([20, 45, 55, 62], size=(n, 1))
    elif mode == "tiny":  # around and below its bottom (2^-60), subnormals included
        x *= 2.0 ** rng.choice([-40, -58, -62, -130], size=(n, 1))
    elif mode == "mixed":  # scales per component, zeros
        x *= 2.0 ** rng.integers(-70, 55, size=(n, d))
        x[rng.random((n, d)) < 0.2] = 0.0
    elif mode == "nonfinite":
        x[rng.random((n, d)) < 0.02] = rng.choice([np.inf, -np.inf, np.nan])
    return x.astype(np.float32)


@st.composite
def amx_problem(draw):
    B = draw(st.integers(1, 40))
    C = draw(st.integers(2, 120))
    d = draw(st.sampled_from([1, 3, 16, 31, 32, 33, 64, 70]))
    mode = draw(st.sampled_from(_MODES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hidden = _vectors(rng, mode, B, d)
    table = _vectors(rng, mode, C, d)
    targets = rng.integers(1, C, B)
    if mode == "near":
        # items one float32 step (or a few) away from a row's target: only the exact pass can tell
        for j in rng.integers(1, C, size=min(C - 1, 20)):
            src = table[targets[rng.integers(0, B)]].copy()
            k = rng.integers(0, d)
            src[k] = np.nextafter(src[k], np.float32(rng.choice([-np.inf, np.inf])), dtype=np.float32)
            table[j] = src if rng.random() < 0.7 else table[targets[0]]  # or an exact copy of a target
    if draw(st.booleans()):
        hidden[rng.integers(0, B)] = 0.0  # a zero user: every score 0, every item in the band
    lengths = rng.integers(0, 6, B)
    rows = np.repeat(np.arange(B), lengths)
    cols = rng.integers(1, C, rows.size)
    for r in np.flatnonzero(lengths)[::2]:  # a history naming the row's own target, a repeated item
        cols[np.flatnonzero(rows == r)[0]] = targets[r]
    return hidden, table, targets.astype(np.int64), rows.astype(np.int64), cols.astype(np.int64)


def _want(hidden, table, targets, rows, cols):
    """The reference: `target_ranks` (torch backend) on the exact scores."""
    scores = torch.from_numpy(fma_scores(hidden, table))
    return target_ranks(scores, torch.from_numpy(targets), torch.from_numpy(rows), torch.from_numpy(cols),
                        backend="torch")


@needs_amx
@settings(max_examples=250, deadline=None)
@given(amx_problem(), st.sampled_from([1, 2]))
def test_amx_ranks_equal_exact_reference(problem, threads):
    hidden, table, targets, rows, cols = problem
    want = _want(hidden, table, targets, rows, cols)
    got = item_ranks(torch.from_numpy(hidden), torch.from_numpy(table), torch.from_numpy(targets),
                     torch.from_numpy(rows), torch.from_numpy(cols), backend="amx", threads=threads)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(1, 80), st.sampled_from(_MODES), st.integers(0, 2**32 - 1))
def test_exact_scores_equal_reference(B, C, d, mode, seed):
    rng = np.random.default_rng(seed)
    hidden, table = _vectors(rng, mode, B, d), _vectors(rng, mode, C, d)
    r, j = np.repeat(np.arange(B), C), np.tile(np.arange(C), B)
    got = _core.exact_scores(hidden, table, r, j).reshape(B, C)
    np.testing.assert_array_equal(got, fma_scores(hidden, table))


def test_fma_scores_round_once():
    # fl(fl(u0 v0) + u1 v1) in float64 then float32 would round twice: 1 + 2^-23 + 2^-24 - 2^-70 is
    # float64's 1 + 2^-23 + 2^-24, halfway, and ties-to-even would give 1 + 2^-22
    u = np.array([[1 + 2.0**-23, 2.0**-24 * (1 + 2.0**-23)]], dtype=np.float32)
    v = np.array([[1.0, 1 - 2.0**-23]], dtype=np.float32)
    want = np.float32(1 + 2.0**-23)
    assert fma_scores(u, v)[0, 0] == want
    assert _core.exact_scores(u, v, np.zeros(1, np.int64), np.zeros(1, np.int64))[0] == want


@needs_amx  # the premise of the AMX path only: elsewhere "auto" never takes it, and other BLAS kernels may differ
@pytest.mark.parametrize("shape", [(16, 1024, 64), (256, 1024, 64), (300, 777, 50), (1024, 4096, 64), (64, 64, 256)])
def test_sgemm_is_the_fma_chain(shape):
    """What makes ``backend="auto"`` (AMX) rank like the native and torch backends: torch.mm's float32
    product is, element by element, the exact score. A fact of MKL's kernels on x86-64 for d <= 300
    and >= 16 rows, not of the library: if it fails on a new machine, lower `_AMX_MAX_DIM` or take
    the AMX path out of "auto" there."""
    B, C, d = shape
    rng = np.random.default_rng(B + C + d)
    hidden = rng.standard_normal((B, d)).astype(np.float32)
    table = rng.standard_normal((C, d)).astype(np.float32)
    with torch.no_grad():
        mm = (torch.from_numpy(hidden) @ torch.from_numpy(table).T).numpy()
    np.testing.assert_array_equal(mm, fma_scores(hidden, table))


@needs_amx
@pytest.mark.parametrize("d", [16, 64, 100])
def test_amx_equals_native_and_torch(d):
    rng = np.random.default_rng(d)
    B, C = 200, 3000
    hidden = torch.from_numpy(rng.standard_normal((B, d)).astype(np.float32))
    table = torch.from_numpy((rng.standard_normal((C, d)) * 0.3).astype(np.float32))
    table[100:110] = table[5]  # tied items
    targets = torch.from_numpy(rng.integers(1, C, B))
    targets[:10] = 5
    rows = torch.from_numpy(np.repeat(np.arange(B), 7))
    cols = torch.from_numpy(rng.integers(1, C, 7 * B))
    got = item_ranks(hidden, table, targets, rows, cols, backend="amx")
    assert torch.equal(got[0], item_ranks(hidden, table, targets, rows, cols)[0])  # "auto"
    for backend in ("native", "torch"):
        for chunk in (None, 512):
            want = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk, backend=backend)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (backend, chunk)


@needs_amx
def test_band_is_empty_or_everything():
    rng = np.random.default_rng(0)
    B, C, d = 40, 500, 64
    targets = np.arange(1, B + 1, dtype=np.int64)
    none = np.zeros(B + 1, np.int64), np.zeros(0, np.int64)
    # well separated scores (items on a grid of directions far from each user's score): nothing to recheck
    table = np.zeros((C, d), np.float32)
    table[:, 0] = np.arange(C, dtype=np.float32)
    hidden = np.zeros((B, d), np.float32)
    hidden[:, 0] = 1.0
    count, _, rechecked, exact_rows, _ = _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, *none, 1)
    assert rechecked == 0 and exact_rows == 0
    np.testing.assert_array_equal(count, C - 1 - targets)
    # every item equal to the target: every pair in the band, ties counted
    table = np.tile(rng.standard_normal(d).astype(np.float32), (C, 1))
    hidden = rng.standard_normal((B, d)).astype(np.float32)
    count, _, rechecked, _, _ = _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, *none, 2)
    assert rechecked == B * (C - 2)
    np.testing.assert_array_equal(count, np.full(B, C - 2))
    # users outside the safe range are ranked by the exact score alone
    hidden[:3] *= np.float32(2.0**60)
    count, _, _, exact_rows, _ = _core.amx_rank_counts(hidden, table, _core.pack_items(table), targets, *none, 1)
    assert exact_rows == 3
    np.testing.assert_array_equal(count, np.full(B, C - 2))


@needs_amx
@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("repeated_target", ["keep", "mask"])
def test_evaluate_backends_agree(exclude, repeated_target):
    rng = np.random.default_rng(1)
    ds = SequenceDataset.from_lists([rng.integers(1, 401, rng.integers(3, 15)) for _ in range(90)], num_items=400)
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    model = build_model("sasrec", ds.num_items, embed_dim=16, max_len=8).eval()
    res = {b: evaluate(model, split, exclude_history=exclude, batch_size=32, return_ranks=True, backend=b,
                       repeated_target=repeated_target) for b in ("amx", "auto", "native", "torch")}
    for b in ("auto", "native", "torch"):
        np.testing.assert_array_equal(res[b]["ranks"], res["amx"]["ranks"])
        assert res[b]["ndcg@10"] == res["amx"]["ndcg@10"]


def test_backend_errors():
    h, t = torch.randn(20, 4), torch.randn(10, 4)
    with pytest.raises(ValueError, match="backend must be one of auto, torch, native, amx, got 'fast'"):
        item_ranks(h, t, torch.ones(20, dtype=torch.long), backend="fast")
    with pytest.raises(ValueError, match="backend='amx' ranks CPU float32 scores, got hidden torch.float64"):
        item_ranks(h.double(), t, torch.ones(20, dtype=torch.long), backend="amx")


@needs_amx
def test_kernel_input_errors():
    table = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    hidden = table[:3].copy()
    packed = _core.pack_items(table)
    targets = np.array([1, 2, 3], np.int64)
    offsets = np.array([0, 2, 2, 2], np.int64)
    with pytest.raises(ValueError, match="strictly ascending"):
        _core.amx_rank_counts(hidden, table, packed, targets, offsets, np.array([4, 4], np.int64))
    with pytest.raises(ValueError, match=r"ex_items\[1\] = 10 is not an item id in 1..9"):
        _core.amx_rank_counts(hidden, table, packed, targets, offsets, np.array([4, 10], np.int64))
    with pytest.raises(ValueError, match=r"targets\[2\] = 0 is not an item id"):
        _core.amx_rank_counts(hidden, table, packed, np.array([1, 2, 0], np.int64), offsets, np.array([1, 2], np.int64))
    with pytest.raises(ValueError, match="do not match"):
        _core.amx_rank_counts(hidden, table[:9], packed, targets, offsets, np.array([1, 2], np.int64))
    with pytest.raises(TypeError, match="hidden must be a C-contiguous float32 array"):
        _core.amx_rank_counts(hidden.astype(np.float64), table, packed, targets, offsets, np.array([1, 2], np.int64))
    with pytest.raises(ValueError, match=r"pair 0 = \(5, 0\) is outside"):
        _core.exact_scores(hidden, table, np.array([5], np.int64), np.array([0], np.int64))


def test_evaluate_table_with_an_overflowing_sum():
    # evaluate checks the item table's sum before the entries: a finite table whose sum overflows is
    # no divergence (and a NaN still is: tests/test_evaluation.py)
    rng = np.random.default_rng(2)
    ds = SequenceDataset.from_lists([rng.integers(1, 200, rng.integers(3, 10)) for _ in range(40)], num_items=300)
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    model = build_model("sasrec", ds.num_items, embed_dim=16, max_len=8).eval()
    with torch.no_grad():
        model.item_weight()[250:260] = 3e38  # items no history holds
    assert not torch.isfinite(model.item_weight().sum())
    res = {b: evaluate(model, split, batch_size=20, return_ranks=True, backend=b) for b in ("auto", "torch")}
    np.testing.assert_array_equal(res["auto"]["ranks"], res["torch"]["ranks"])
