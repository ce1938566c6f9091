"""Item-chunked full ranking (`item_ranks`) gives the ranks of the full score matrix (`target_ranks`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.evaluation import ranks as evaluation  # the module whose limits are patched
from fastregen.data import SequenceDataset, leave_one_out
from fastregen.evaluation import evaluate, item_ranks, target_ranks
from fastregen.models import build_model


def _exclusions(g, B, C, n):
    rows = torch.randint(0, B, (n,), generator=g)
    cols = torch.randint(1, C, (n,), generator=g)
    return rows, cols


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 12), C=st.integers(2, 80), d=st.integers(1, 8), chunk=st.integers(1, 90),
       n_excl=st.integers(0, 40), seed=st.integers(0, 2**31 - 1))
def test_chunked_ranks_equal_full_ranks_on_exact_scores(B, C, d, chunk, n_excl, seed):
    """Small-integer embeddings: every product is exact, so ties abound and any kernel gives the same
    scores; the chunked ranks must then equal the full-matrix ranks exactly (history mask included)."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randint(-2, 3, (B, d), generator=g).float()
    table = torch.randint(-2, 3, (C, d), generator=g).float()
    targets = torch.randint(1, C, (B,), generator=g)
    rows, cols = _exclusions(g, B, C, n_excl)
    # a target in its own history is never excluded; duplicates count once
    rows = torch.cat([rows, torch.arange(B), rows[:3]])
    cols = torch.cat([cols, targets, cols[:3]])
    want = target_ranks(hidden @ table.T, targets, rows, cols)
    got = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    want = target_ranks(hidden @ table.T, targets)
    got = item_ranks(hidden, table, targets, chunk_size=chunk)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("B, C, d, chunk", [(64, 3000, 64, 256), (7, 1000, 50, 33), (1, 5000, 16, 999),
                                            (300, 2000, 17, 2000)])
def test_chunked_ranks_equal_the_ranks_of_their_own_chunk_scores(B, C, d, chunk):
    """Random float scores: the ranks are exactly those of `target_ranks` on the scores each chunk's
    product gives (the target's score included), whatever the chunk width."""
    g = torch.Generator().manual_seed(B + C)
    hidden = torch.randn(B, d, generator=g)
    table = torch.randn(C, d, generator=g)
    table[5] = table[7]  # exact ties across items
    targets = torch.randint(1, C, (B,), generator=g)
    targets[: B // 2] = 7
    rows, cols = _exclusions(g, B, C, 5 * B)
    scores = torch.cat([hidden @ table[c0 : c0 + chunk].T for c0 in range(0, C, chunk)], 1)
    want = target_ranks(scores, targets, rows, cols)
    got = item_ranks(hidden, table, targets, rows, cols, chunk_size=chunk)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_near_ties_before_the_targets_chunk_are_decided_exactly():
    """Items one float32 step above and below the target score, in chunks before and after the target's."""
    hidden = torch.tensor([[1.0, 1.0]])
    t = 1.0 + 2.0**-20
    up, down = float(np.nextafter(np.float32(t), np.float32(2))), float(np.nextafter(np.float32(t), np.float32(0)))
    table = torch.tensor([[0.0, 0.0], [up, 0], [down, 0], [t, 0], [9.0, 0], [t, 0], [up, 0], [down, 0], [t, 0.0]])
    # target 5 (score t): ahead are 1 (up), 3 (tie), 4, 6 (up), 8 (tie) -> rank 5
    want = target_ranks(hidden @ table.T, torch.tensor([5]))
    assert want[0].tolist() == [5]
    for chunk in range(1, 10):
        assert item_ranks(hidden, table, torch.tensor([5]), chunk_size=chunk)[0].tolist() == [5]


def test_item_ranks_checks_its_input():
    h, t = torch.randn(2, 3), torch.randn(10, 3)
    with pytest.raises(ValueError, match="targets must be item ids in 1..9"):
        item_ranks(h, t, torch.tensor([0, 3]), chunk_size=4)
    with pytest.raises(ValueError, match="excluded items"):
        item_ranks(h, t, torch.tensor([1, 3]), torch.tensor([0]), torch.tensor([10]), chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        item_ranks(h, t, torch.tensor([1, 3]), chunk_size=0)
    with pytest.raises(ValueError, match="do not match"):
        item_ranks(h, torch.randn(10, 4), torch.tensor([1, 3]))


@pytest.mark.parametrize("exclude", [True, False])
def test_evaluate_in_chunks_equals_evaluate_in_one_product(monkeypatch, exclude):
    rng = np.random.default_rng(0)
    ds = SequenceDataset.from_lists([rng.integers(1, 301, rng.integers(3, 15)) for _ in range(60)], num_items=300)
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    model = build_model("sasrec", ds.num_items, embed_dim=16, max_len=8).eval()
    whole = evaluate(model, split, exclude_history=exclude, batch_size=16, return_ranks=True)
    chunked = evaluate(model, split, exclude_history=exclude, batch_size=16, return_ranks=True, chunk_size=37)
    np.testing.assert_array_equal(chunked["ranks"], whole["ranks"])
    assert chunked["auc"] == whole["auc"]
    # the automatic choice goes to chunks above the limit
    calls = []
    real_matmul, real_mm = torch.Tensor.__matmul__, torch.mm
    monkeypatch.setattr(evaluation, "FULL_SCORES_LIMIT", 100)
    monkeypatch.setattr(evaluation, "_CHUNK_ELEMENTS", 16 * 50)
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: calls.append(tuple(b.shape)) or real_matmul(a, b))
    monkeypatch.setattr(torch, "mm", lambda a, b, **k: calls.append(tuple(b.shape)) or real_mm(a, b, **k))
    # (the native backend: "auto" may take the AMX path, which scores no chunks)
    auto = evaluate(model, split, exclude_history=exclude, batch_size=16, return_ranks=True, backend="native")
    np.testing.assert_array_equal(auto["ranks"], whole["ranks"])
    assert (16, 50) in calls and (16, 301) not in calls  # item chunks of 50, never the whole table
