"""Full-ranking metrics against hand-computed cases and a brute-force oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastregen.data import SequenceDataset, leave_one_out
from fastregen.evaluation import (
    auc_from_ranks,
    binary_metrics,
    evaluate,
    mrr,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
    target_ranks,
)
from fastregen.models import build_model


def test_metric_functions_hand_computed():
    ranks = np.array([0, 1, 4, 9, 25])
    np.testing.assert_allclose(recall_at_k(ranks, 5), [1, 1, 1, 0, 0])
    np.testing.assert_allclose(recall_at_k(ranks, 10), [1, 1, 1, 1, 0])
    np.testing.assert_allclose(ndcg_at_k(ranks, 10), [1.0, 1 / math.log2(3), 1 / math.log2(6), 1 / math.log2(11), 0.0])
    np.testing.assert_allclose(mrr(ranks), [1, 1 / 2, 1 / 5, 1 / 10, 1 / 26])
    # 11 candidates: rank 0 beats all 10 others, rank 10 beats none
    np.testing.assert_allclose(auc_from_ranks([0, 5, 10], [11, 11, 11]), [1.0, 0.5, 0.0])
    m = ranking_metrics(ranks, ks=(5,))
    assert m["recall@5"] == pytest.approx(3 / 5)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert m["mrr"] == pytest.approx(np.mean([1, 1 / 2, 1 / 5, 1 / 10, 1 / 26]))
    assert "auc" not in m


def test_target_ranks_hand_computed():
    # columns: pad, item1..item5
    scores = torch.tensor([[9.0, 0.1, 0.9, 0.5, 0.7, 0.3],
                           [9.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    ranks, cands = target_ranks(scores, torch.tensor([3, 2]))
    # row 0: item3 (0.5) is beaten by item2 (0.9) and item4 (0.7); padding never counts
    # row 1: all tied -> pessimistic: the 4 other items rank ahead
    assert ranks.tolist() == [2, 4]
    assert cands.tolist() == [5, 5]
    assert scores[0, 0] == 9.0  # input untouched unless inplace=True


def test_history_exclusion_keeps_the_target_and_counts_duplicates_once():
    scores = torch.tensor([[0.0, 0.1, 0.9, 0.5, 0.7, 0.3]])
    # history = items 2, 4, 4, 3 ; target = 3 (a repeat) stays rankable
    rows = torch.tensor([0, 0, 0, 0])
    cols = torch.tensor([2, 4, 4, 3])
    ranks, cands = target_ranks(scores, torch.tensor([3]), rows, cols)
    assert ranks.tolist() == [0]
    assert cands.tolist() == [3]  # items 1, 3, 5
    with pytest.raises(ValueError, match="targets must be item ids"):
        target_ranks(scores, torch.tensor([0]))
    with pytest.raises(ValueError, match="excluded items"):
        target_ranks(scores, torch.tensor([1]), torch.tensor([0]), torch.tensor([6]))


def test_binary_metrics_hand_computed():
    s = np.array([2.0, 1.0, 1.0, -1.0])
    y = np.array([1, 1, 0, 0])
    out = binary_metrics(s, y)
    # positive pairs: (2 > 1) (2 > -1) (1 == 1 -> 1/2) (1 > -1) = 3.5 / 4
    assert out["auc"] == pytest.approx(3.5 / 4)
    p = 1 / (1 + np.exp(-s))
    assert out["logloss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    with pytest.raises(ValueError, match="both classes"):
        binary_metrics([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([1.0, 2.0], [1, 2])


def _data(seed=0, n=40, num_items=30):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, num_items + 1, rng.integers(3, 15)) for _ in range(n)]
    return SequenceDataset.from_lists(seqs, num_items=num_items)


@pytest.mark.parametrize("exclude", [True, False])
def test_evaluate_matches_brute_force(exclude):
    ds = _data()
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    model = build_model("sasrec", ds.num_items, embed_dim=8, max_len=6).eval()
    out = evaluate(model, split, ks=(1, 5, 10), exclude_history=exclude, batch_size=7, return_ranks=True)
    ranks, aucs = [], []
    with torch.no_grad():
        table = model.item_embedding.weight
        for hist, target in zip(split.history, split.target):
            x = torch.tensor([hist[-6:].tolist()])
            s = (model(x)[0, -1] @ table.T).numpy()
            cand = set(range(1, ds.num_items + 1))
            if exclude:
                cand -= set(hist.tolist()) - {int(target)}
            others = [j for j in cand if j != target]
            r = sum(s[j] >= s[target] for j in others)
            ranks.append(r)
            aucs.append(1 - r / len(others))
    assert out["ranks"].tolist() == ranks
    assert out["recall@5"] == pytest.approx(np.mean(np.array(ranks) < 5))
    assert out["auc"] == pytest.approx(np.mean(aucs))
    assert out["n_users"] == len(split)


def test_evaluate_rejects_ids_beyond_the_model():
    ds = _data(num_items=30)
    model = build_model("gru4rec", 10)
    with pytest.raises(ValueError, match="beyond the model's num_items"):
        evaluate(model, leave_one_out(ds).test)


def test_evaluate_refuses_a_diverged_model():
    # a NaN score compares false with every other, so without the check its target would rank 0
    ds = _data()
    split = leave_one_out(ds).test
    model = build_model("sasrec", ds.num_items, embed_dim=8, max_len=6)
    with torch.no_grad():
        model.item_embedding.weight[3, 0] = float("nan")
    with pytest.raises(ValueError, match="item table holds NaN"):
        evaluate(model, split)
    model = build_model("sasrec", ds.num_items, embed_dim=8, max_len=6)
    with torch.no_grad():
        model.position_embedding.weight.fill_(float("inf"))
    with pytest.raises(ValueError, match="user row .* is not finite"):
        evaluate(model, split)


def test_excluding_history_never_lowers_metrics():
    ds = _data(seed=3)
    split = leave_one_out(ds).test
    model = build_model("sasrec", ds.num_items, embed_dim=8, max_len=6)
    a = evaluate(model, split, exclude_history=True)
    b = evaluate(model, split, exclude_history=False)
    assert a["mrr"] >= b["mrr"]
    assert a["recall@10"] >= b["recall@10"]


@pytest.mark.parametrize("fn", ["evaluate", "evaluate_stages"])
def test_evaluation_builds_no_autograd_graph(fn):
    # scoring under autograd kept every batch's graph alive: the memory model
    # caught `evaluate` losing its no_grad once; check it directly
    import fastregen.evaluation as ev

    ds = SequenceDataset.from_lists([[1, 2, 3, 4], [2, 3, 4, 5], [5, 4, 3, 2, 1]])
    model = build_model("sasrec", ds.num_items, embed_dim=8, max_len=6)
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        seen.append(torch.is_grad_enabled())
        return forward(*args, **kwargs)

    model.forward = spy
    getattr(ev, fn)(model, leave_one_out(ds).test)
    assert seen and not any(seen)
