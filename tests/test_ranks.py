"""The compiled rank count (`_core.rank_counts`) against its NumPy reference, and `target_ranks` /
`item_ranks` / `evaluate` on the native backend against the torch one: identical ranks (issue 25)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen.data import SequenceDataset, leave_one_out
from fastregen.evaluation import REPEATED_TARGET, evaluate, item_ranks, target_ranks
from fastregen.models import build_model
from fastregen.reference import ranks as ref

# Scores from a handful of values (ties everywhere), now and then a non-finite one.
_VALUES = [-1.0, 0.0, 0.5, 1.0, 2.0, float("inf"), float("-inf"), float("nan")]


@st.composite
def rank_problem(draw, max_rows=7, max_cols=30):
    B = draw(st.integers(0, max_rows))
    C = draw(st.integers(2, max_cols))
    c0 = draw(st.integers(0, C - 1))
    width = draw(st.integers(0, C - c0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_values = draw(st.sampled_from([2, 3, 5, 8]))
    scores = rng.choice(_VALUES[:n_values], size=(B, width))
    targets = rng.integers(1, C, B)
    lengths = rng.integers(0, 6, B)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    items = rng.integers(1, C, offsets[-1])
    # some rows name their own target and repeat an item
    for r in range(B):
        if lengths[r] >= 2 and rng.random() < 0.5:
            items[offsets[r]] = targets[r]
            items[offsets[r] + 1] = items[offsets[r + 1] - 1]
    if draw(st.booleans()):  # the order the Python layer passes: ascending within each row
        for r in range(B):
            items[offsets[r] : offsets[r + 1]].sort()
    return scores, targets.astype(np.int64), offsets, items.astype(np.int64), c0, C, seed


@settings(max_examples=300, deadline=None)
@given(rank_problem(), st.sampled_from([np.float32, np.float64]), st.sampled_from([1, 2]), st.booleans())
def test_kernel_equals_reference(problem, dtype, threads, band):
    scores, targets, offsets, items, c0, C, seed = problem
    scores = scores.astype(dtype)
    rng = np.random.default_rng(seed + 1)
    thr = rng.choice(_VALUES, size=targets.size).astype(dtype)
    lo = (thr - rng.choice([0.0, 0.5, 1.0, 3.0], size=targets.size)).astype(dtype) if band else None
    got = _core.rank_counts(scores, targets, thr, offsets, items, c0, C, lo, threads)
    want = ref.rank_counts(scores, targets, thr, offsets, items, c0, C, lo)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_kernel_on_large_rows_uses_every_thread_and_agrees():
    rng = np.random.default_rng(3)
    B, C = 300, 5000  # above the parallel threshold
    s = rng.integers(0, 50, (B, C)).astype(np.float32)
    t = rng.integers(1, C, B)
    off = np.arange(0, 10 * B + 1, 10, dtype=np.int64)
    ex = rng.integers(1, C, 10 * B)
    thr = s[np.arange(B), t]
    want = ref.rank_counts(s, t, thr, off, ex)
    for threads in (1, 2, 3):
        got = _core.rank_counts(s, t, thr, off, ex, 0, C, None, threads)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def _torch_problem(scores, targets, offsets, items):
    rows = torch.from_numpy(np.repeat(np.arange(targets.size), np.diff(offsets)))
    return torch.from_numpy(scores), torch.from_numpy(targets), rows, torch.from_numpy(items)


@settings(max_examples=300, deadline=None)
@given(rank_problem(), st.sampled_from([torch.float32, torch.float64]))
def test_target_ranks_native_equals_torch_and_reference(problem, dtype):
    scores, targets, offsets, items, _, C, seed = problem
    B = targets.size
    full = np.random.default_rng(seed).choice(_VALUES[: 3 + seed % 6], size=(B, C))
    s, t, er, ec = _torch_problem(full, targets, offsets, items)
    s = s.to(dtype)
    before = s.clone()
    native = target_ranks(s, t, er, ec, backend="native")
    torch_ = target_ranks(s, t, er, ec, backend="torch")
    assert torch.equal(s, before) or torch.isnan(before).any()  # neither backend writes the scores
    assert native[0].dtype == torch_[0].dtype == torch.int64
    assert torch.equal(native[0], torch_[0]) and torch.equal(native[1], torch_[1])
    # the definition, written with the reference
    sn = s.numpy()
    count, excluded, _, _ = ref.rank_counts(sn, targets, sn[np.arange(B), targets], offsets, items)
    np.testing.assert_array_equal(native[0].numpy(), count)
    np.testing.assert_array_equal(native[1].numpy(), C - 1 - excluded)
    # without exclusions, and the default backend
    assert torch.equal(target_ranks(s, t)[0], target_ranks(s, t, backend="torch")[0])


def test_target_ranks_definition_on_edge_scores():
    nan, inf = float("nan"), float("inf")
    s = torch.tensor([[9.0, 1.0, 1.0, 2.0, 0.0],    # tie counts against the target
                      [9.0, nan, 1.0, nan, 0.0],    # NaN candidates never count
                      [9.0, 1.0, nan, 2.0, 5.0],    # NaN target: no comparison holds
                      [-inf, -inf, -inf, -inf, 3.0],  # -inf target: padding and excluded items never count
                      [inf, 0.0, inf, inf, 1.0]])   # +inf target: only +inf candidates tie
    t = torch.tensor([1, 2, 2, 1, 2])
    er, ec = torch.tensor([0, 3, 3, 3, 4]), torch.tensor([3, 2, 2, 1, 3])
    want_ranks = [1, 0, 0, 2, 0]  # row 3: item 2 excluded (twice), the target's own pair ignored
    want_cands = [3, 4, 4, 3, 3]
    for backend in ("torch", "native"):
        r, c = target_ranks(s, t, er, ec, backend=backend)
        assert r.tolist() == want_ranks and c.tolist() == want_cands, backend


def test_target_ranks_on_empty_and_tiny_inputs():
    for backend in ("torch", "native"):
        r, c = target_ranks(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), backend=backend)
        assert r.shape == c.shape == (0,)
        r, c = target_ranks(torch.tensor([[3.0, 1.0]]), torch.tensor([1]), torch.tensor([0]), torch.tensor([1]),
                            backend=backend)
        assert r.tolist() == [0] and c.tolist() == [1]


def test_target_ranks_backend_choice_and_errors():
    s, t = torch.randn(3, 6), torch.tensor([1, 2, 5])
    with pytest.raises(ValueError, match="backend must be one of auto, torch, native, got 'fast'"):
        target_ranks(s, t, backend="fast")
    with pytest.raises(ValueError, match="backend='native' ranks CPU float32/float64 scores, got torch.float16"):
        target_ranks(s.half(), t, backend="native")
    # half precision falls back to torch under auto
    assert torch.equal(target_ranks(s.half(), t)[0], target_ranks(s.half(), t, backend="torch")[0])
    with pytest.raises(ValueError, match=r"exclude_rows must be rows in 0..2, got range \[0, 3\]"):
        target_ranks(s, t, torch.tensor([0, 3]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="excluded items must be ids in 1..5"):
        target_ranks(s, t, torch.tensor([0]), torch.tensor([6]))
    with pytest.raises(ValueError, match="1-D of equal length"):
        target_ranks(s, t, torch.tensor([0, 1]), torch.tensor([1]))
    with pytest.raises(ValueError, match="go together"):
        target_ranks(s, t, torch.tensor([0]))


def test_kernel_refuses_bad_input_naming_it():
    s = np.zeros((2, 4), np.float32)
    t, thr = np.array([1, 3]), np.zeros(2, np.float32)
    off, ex = np.array([0, 1, 2]), np.array([2, 3])

    def call(**kw):
        args = dict(scores=s, targets=t, thresholds=thr, ex_offsets=off, ex_items=ex, c0=0, n_columns=4)
        args.update(kw)
        return _core.rank_counts(**args)

    call()
    with pytest.raises(TypeError, match="scores must be a C-contiguous float32 or float64 array, got dtype float16"):
        call(scores=s.astype(np.float16))
    with pytest.raises(TypeError, match="scores must be a C-contiguous"):
        call(scores=np.zeros((4, 2), np.float32).T)
    with pytest.raises(TypeError, match="thresholds must be a C-contiguous float32 array, got dtype float64"):
        call(thresholds=thr.astype(np.float64))
    with pytest.raises(TypeError, match="targets must be a C-contiguous int64 array, got dtype int32"):
        call(targets=t.astype(np.int32))
    with pytest.raises(TypeError, match="ex_items must be a C-contiguous int64"):
        call(ex_items=ex.astype(np.int32))
    with pytest.raises(TypeError, match="lo must be None or a C-contiguous float32 array"):
        call(lo=np.zeros(2))
    with pytest.raises(ValueError, match="2-D"):
        call(scores=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"targets\[1\] = 4 is not an item id in 1..3"):
        call(targets=np.array([1, 4]))
    with pytest.raises(ValueError, match=r"targets\[0\] = 0 is not an item id"):
        call(targets=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"ex_items\[1\] = 0 is not an item id in 1..3"):
        call(ex_items=np.array([2, 0]))
    with pytest.raises(ValueError, match="ex_offsets must have shape \\(3,\\)"):
        call(ex_offsets=np.array([0, 2]))
    with pytest.raises(ValueError, match="ex_offsets\\[0\\] must be 0, got 1"):
        call(ex_offsets=np.array([1, 1, 2]))
    with pytest.raises(ValueError, match="non-decreasing"):
        call(ex_offsets=np.array([0, 2, 1]), ex_items=np.array([2]))
    with pytest.raises(ValueError, match="does not match len\\(ex_items\\) = 2"):
        call(ex_offsets=np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"thresholds must have shape \(2,\)"):
        call(thresholds=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"the block \[c0, c0 \+ width\) = \[1, 5\) does not lie inside n_columns = 4"):
        call(c0=1)


@settings(max_examples=80, deadline=None)
@given(B=st.integers(0, 12), C=st.integers(2, 80), d=st.integers(1, 8), chunk=st.integers(1, 90),
       n_excl=st.integers(0, 40), seed=st.integers(0, 2**31 - 1))
def test_item_ranks_native_equals_torch_on_exact_scores(B, C, d, chunk, n_excl, seed):
    """Small-integer embeddings: exact products, ties everywhere; chunked and whole, with history."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randint(-2, 3, (B, d), generator=g).float()
    table = torch.randint(-2, 3, (C, d), generator=g).float()
    targets = torch.randint(1, C, (B,), generator=g)
    rows = torch.cat([torch.randint(0, max(B, 1), (n_excl if B else 0,), generator=g), torch.arange(B)])
    cols = torch.cat([torch.randint(1, C, (n_excl if B else 0,), generator=g), targets])
    rows, cols = torch.cat([rows, rows[:3]]), torch.cat([cols, cols[:3]])
    for size in (chunk, None):
        want = item_ranks(hidden, table, targets, rows, cols, chunk_size=size, backend="torch")
        got = item_ranks(hidden, table, targets, rows, cols, chunk_size=size, backend="native")
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@settings(max_examples=80, deadline=None)
@given(B=st.integers(1, 40), C=st.integers(2, 150), d=st.integers(1, 8), chunk=st.integers(1, 160),
       block_items=st.integers(1, 50), block_rows=st.integers(1, 40), n_excl=st.integers(0, 60),
       seed=st.integers(0, 2**31 - 1))
def test_item_ranks_native_blocks_equal_target_ranks(B, C, d, chunk, block_items, block_rows, n_excl, seed):
    """The native chunk loop's cache blocks (items and users, issue 28) against `target_ranks` on the
    whole score matrix: small-integer embeddings (exact products, ties everywhere), history items
    masked, some of them the row's own target, some repeated."""
    from fastregen.evaluation import ranks as evaluation  # the module whose block sizes are patched

    g = torch.Generator().manual_seed(seed)
    hidden = torch.randint(-2, 3, (B, d), generator=g).float()
    table = torch.randint(-2, 3, (C, d), generator=g).float()
    targets = torch.randint(1, C, (B,), generator=g)
    rows = torch.cat([torch.randint(0, B, (n_excl,), generator=g), torch.arange(B)[::2]])
    cols = torch.cat([torch.randint(1, C, (n_excl,), generator=g), targets[::2]])
    rows, cols = torch.cat([rows, rows[:5]]), torch.cat([cols, cols[:5]])
    want = target_ranks(hidden @ table.T, targets, rows, cols, backend="torch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "_BLOCK_ITEMS", block_items)
        mp.setattr(evaluation, "_BLOCK_ROWS", block_rows)
        got = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk, backend="native")
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("B, C, d, chunk", [(64, 3000, 64, 256), (7, 1000, 50, 33), (1, 5000, 16, 999),
                                            (300, 2000, 17, 2000), (40, 20000, 8, 1024)])
def test_item_ranks_native_equals_torch_on_random_floats(B, C, d, chunk):
    g = torch.Generator().manual_seed(B + C)
    hidden = torch.randn(B, d, generator=g)
    table = torch.randn(C, d, generator=g)
    table[5] = table[7]  # exact ties across items
    table[C - 3 :] = table[7]  # and across chunks, after the target's
    targets = torch.randint(1, C, (B,), generator=g)
    targets[: B // 2] = 7
    rows = torch.randint(0, B, (5 * B,), generator=g)
    cols = torch.randint(1, C, (5 * B,), generator=g)
    want = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk, backend="torch")
    got = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk, backend="native")
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_item_ranks_native_decides_near_ties_before_the_targets_chunk():
    hidden = torch.tensor([[1.0, 1.0]])
    t = 1.0 + 2.0**-20
    up, down = float(np.nextafter(np.float32(t), np.float32(2))), float(np.nextafter(np.float32(t), np.float32(0)))
    table = torch.tensor([[0.0, 0.0], [up, 0], [down, 0], [t, 0], [9.0, 0], [t, 0], [up, 0], [down, 0], [t, 0.0]])
    for chunk in range(1, 10):
        assert item_ranks(hidden, table, torch.tensor([5]), chunk_size=chunk, backend="native")[0].tolist() == [5]


def _repeat_data():
    rng = np.random.default_rng(1)
    # a small catalogue, so that many targets also occur earlier in their user's history
    ds = SequenceDataset.from_lists([rng.integers(1, 21, rng.integers(3, 15)) for _ in range(80)], num_items=20)
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    return split, build_model("sasrec", ds.num_items, embed_dim=8, max_len=8).eval()


@pytest.mark.parametrize("exclude", [True, False])
def test_evaluate_native_equals_torch_and_repeated_targets(exclude):
    split, model = _repeat_data()
    res = {b: evaluate(model, split, exclude_history=exclude, batch_size=16, return_ranks=True, backend=b)
           for b in ("torch", "native")}
    np.testing.assert_array_equal(res["native"]["ranks"], res["torch"]["ranks"])
    assert res["native"]["auc"] == res["torch"]["auc"]
    keep = res["native"]
    mask = evaluate(model, split, exclude_history=exclude, batch_size=16, return_ranks=True, repeated_target="mask")
    repeated = np.array([t in split.history[u] for u, t in enumerate(split.target)])
    assert 5 < repeated.sum() < repeated.size
    np.testing.assert_array_equal(mask["ranks"][~repeated], keep["ranks"][~repeated])
    # a repeated target gets the last place among its candidates: n_candidates - 1
    n_cands = 20 - np.array([len(set(split.history[u]) - {t}) if exclude else 0
                             for u, t in enumerate(split.target)])
    np.testing.assert_array_equal(mask["ranks"][repeated], n_cands[repeated] - 1)
    assert mask["recall@10"] <= keep["recall@10"]
    with pytest.raises(ValueError, match="repeated_target must be one of keep, mask, got 'drop'"):
        evaluate(model, split, repeated_target="drop")
    assert REPEATED_TARGET == ("keep", "mask")


@pytest.mark.parametrize("B", [16, 17, 40, 300])
def test_item_ranks_native_scores_in_row_blocks_of_16_or_more(monkeypatch, B):
    from fastregen.evaluation import ranks as evaluation  # the module whose block sizes are patched

    C, d = 200, 12
    g = torch.Generator().manual_seed(B)
    exact = (torch.randint(-2, 3, (B, d), generator=g).float(), torch.randint(-2, 3, (C, d), generator=g).float())
    floats = (torch.randn(B, d, generator=g), torch.randn(C, d, generator=g))
    targets = torch.randint(1, C, (B,), generator=g)
    rows, cols = torch.randint(0, B, (4 * B,), generator=g), torch.randint(1, C, (4 * B,), generator=g)
    want = {k: item_ranks(h, e, targets, rows, cols, backend="torch") for k, (h, e) in
            {"exact": exact, "floats": floats}.items()}
    shapes = []
    real_mm = torch.mm
    monkeypatch.setattr(evaluation, "_SCORE_BLOCK", 500)  # 16-row blocks (500 // 200 < 16)
    monkeypatch.setattr(torch, "mm", lambda a, b, **k: shapes.append(tuple(a.shape)) or real_mm(a, b, **k))
    for k, (h, e) in {"exact": exact, "floats": floats}.items():
        got = item_ranks(h, e, targets, rows, cols, backend="native")
        assert torch.equal(got[0], want[k][0]) and torch.equal(got[1], want[k][1]), k
    assert len(shapes) == 2 * max(1, B // 16) and all(16 <= s[0] < 32 for s in shapes)
    # item chunks (the Books path): each chunk's product in the same blocks of users
    monkeypatch.setattr(torch, "mm", real_mm)
    for k, (h, e) in {"exact": exact, "floats": floats}.items():
        want = item_ranks(h, e, targets, rows, cols, chunk_size=37, backend="torch")
        shapes.clear()
        monkeypatch.setattr(torch, "mm", lambda a, b, **kw: shapes.append(tuple(a.shape)) or real_mm(a, b, **kw))
        got = item_ranks(h, e, targets, rows, cols, chunk_size=37, backend="native")
        monkeypatch.setattr(torch, "mm", real_mm)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), k
        assert len(shapes) == 6 * max(1, B // 16) and all(16 <= s[0] < 32 for s in shapes)  # 6 chunks of 37


def test_fit_and_evaluate_passes_repeated_target_to_validation_and_test(monkeypatch):
    import importlib

    from fastregen.training import TrainConfig, fit_and_evaluate

    fit = importlib.import_module("fastregen.training.fit")  # the module (the package exports the function `fit`)

    with pytest.raises(ValueError, match="repeated_target must be one of keep, mask, got 'drop'"):
        TrainConfig(repeated_target="drop")
    seen = []
    real = fit.evaluate
    monkeypatch.setattr(fit, "evaluate", lambda *a, **k: seen.append(k.get("repeated_target")) or real(*a, **k))
    rng = np.random.default_rng(0)
    ds = SequenceDataset.from_lists([rng.integers(1, 31, rng.integers(4, 10)) for _ in range(40)], num_items=30)
    res = fit_and_evaluate(ds, model="sasrec", epochs=1, embed_dim=8, max_len=8, progress=False, num_threads=1,
                           repeated_target="mask")
    assert seen == ["mask", "mask"]  # one validation, the test
    assert 0.0 <= res["test"]["recall@10"] <= 1.0


def test_stage_scores_native_equals_torch_and_masks_repeated_targets():
    from fastregen.evaluation import stage_scores

    split, model = _repeat_data()
    got = {b: stage_scores(model, split, batch_size=16, item_chunk=7, backend=b) for b in ("torch", "native")}
    for key in ("ranks", "n_candidates"):
        np.testing.assert_array_equal(got["native"][key], got["torch"][key])
    np.testing.assert_array_equal(got["native"]["ranks"], evaluate(model, split, batch_size=16, return_ranks=True)["ranks"])
    mask = stage_scores(model, split, batch_size=16, item_chunk=7, repeated_target="mask")
    repeated = np.array([t in split.history[u] for u, t in enumerate(split.target)])
    np.testing.assert_array_equal(mask["ranks"][repeated], mask["n_candidates"][repeated] - 1)
    np.testing.assert_array_equal(mask["ranks"][~repeated], got["native"]["ranks"][~repeated])
    np.testing.assert_array_equal(mask["logloss"], got["native"]["logloss"])
    with pytest.raises(ValueError, match="repeated_target must be one of keep, mask"):
        stage_scores(model, split, repeated_target="x")
