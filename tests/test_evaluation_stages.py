"""Multi-stage evaluation (recall / coarse / fine) against a brute-force per-user reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fastregen.data import SequenceDataset, leave_one_out
from fastregen.evaluation import evaluate, evaluate_stages, stage_metrics, stage_scores


class LastItem(nn.Module):
    """h = embedding of the last history item; the item table is the same embedding."""

    def __init__(self, weight: torch.Tensor, max_len: int = 6) -> None:
        super().__init__()
        self.emb = nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=0)
        self.num_items, self.max_len = weight.shape[0] - 1, max_len

    def item_weight(self):
        return self.emb.weight

    def forward(self, x, timestamps=None):
        return self.emb(x)


def data(seed: int, n_users: int = 30, num_items: int = 12, timestamps: bool = False):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, num_items + 1, size=rng.integers(3, 10)).tolist() for _ in range(n_users)]
    ts = None
    if timestamps:
        ts = np.concatenate([np.sort(rng.integers(0, 10_000, size=len(s))) for s in seqs])
    return SequenceDataset.from_lists(seqs, num_items=num_items, timestamps=ts)


def brute_force(model, split, exclude_history=True, temperature=1.0):
    """Per user, literally: full scores, candidates, rank, AUC, log loss."""
    hist, targets = split.history, split.target
    padded = torch.from_numpy(hist.padded(model.max_len))
    with torch.no_grad():
        scores = (model(padded)[:, -1] @ model.item_weight().T).double().numpy()
    out = []
    for u in range(len(targets)):
        t = int(targets[u])
        seen = set(hist[u].tolist()) if exclude_history else set()
        cand = [j for j in range(1, model.num_items + 1) if j == t or j not in seen]
        s_t = scores[u, t]
        rank = sum(1 for j in cand if j != t and scores[u, j] >= s_t)
        auc = sum(1 for j in cand if j != t and scores[u, j] < s_t) / (len(cand) - 1)
        m = max(scores[u, j] / temperature for j in cand)
        lse = m + math.log(sum(math.exp(scores[u, j] / temperature - m) for j in cand))
        out.append((rank, len(cand), auc, lse - s_t / temperature))
    return out


@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force_float_scores(seed, exclude):
    torch.manual_seed(seed)
    model = LastItem(torch.randn(13, 5))
    split = leave_one_out(data(seed)).test
    got = stage_scores(model, split, exclude, batch_size=7, item_chunk=1000, temperature=0.7)
    want = brute_force(model, split, exclude, temperature=0.7)
    assert got["ranks"].tolist() == [w[0] for w in want]
    assert got["n_candidates"].tolist() == [w[1] for w in want]
    np.testing.assert_allclose(got["logloss"], [w[3] for w in want], rtol=1e-5, atol=1e-6)
    m = stage_metrics(got["ranks"], got["n_candidates"], got["logloss"])
    assert m["auc"] == pytest.approx(np.mean([w[2] for w in want]), abs=1e-12)
    assert m["mrr"] == pytest.approx(np.mean([1 / (w[0] + 1) for w in want]))
    assert m["hr@10"] == pytest.approx(np.mean([w[0] < 10 for w in want]))
    assert m["ndcg@10"] == pytest.approx(np.mean([(w[0] < 10) / math.log2(w[0] + 2) for w in want]))
    # the same ranks as the full-ranking evaluate
    assert got["ranks"].tolist() == evaluate(model, split, exclude_history=exclude, return_ranks=True)["ranks"].tolist()


@pytest.mark.parametrize("chunk", [1, 3, 5, 13, 100])
def test_item_chunks_and_ties(chunk):
    # integer embeddings: every dot product is exact, so chunking cannot change a score and ties are real
    torch.manual_seed(0)
    weight = torch.randint(-2, 3, (13, 3)).float()
    weight[0] = 0
    model = LastItem(weight)
    split = leave_one_out(data(5)).test
    got = stage_scores(model, split, item_chunk=chunk, batch_size=4)
    want = brute_force(model, split)
    assert got["ranks"].tolist() == [w[0] for w in want]
    np.testing.assert_allclose(got["logloss"], [w[3] for w in want], rtol=1e-9)


def test_timestamps_reach_the_model_and_keys():
    from fastregen.models import build_model

    ds = data(1, timestamps=True)
    split = leave_one_out(ds).test
    torch.manual_seed(0)
    model = build_model("hstu", ds.num_items, embed_dim=8, max_len=6)
    with torch.no_grad():
        model.rel_time.normal_()  # a time bias that changes the scores
    res = evaluate_stages(model, split, return_per_user=True)
    assert set(res) == {"mrr", "hr@10", "hr@50", "ndcg@10", "ndcg@50", "auc", "logloss", "n_users", "per_user"}
    assert res["per_user"]["ranks"].tolist() == evaluate(model, split, return_ranks=True)["ranks"].tolist()
    no_time = split.history.replace(timestamps=None)
    from fastregen.data import EvalSplit

    other = evaluate_stages(model, EvalSplit(no_time, split.target, split.users))
    assert other["logloss"] != res["logloss"]


def test_bad_input():
    model = LastItem(torch.randn(13, 5))
    split = leave_one_out(data(0)).test
    with pytest.raises(ValueError, match="item_chunk must be >= 1"):
        stage_scores(model, split, item_chunk=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        stage_scores(model, split, temperature=0)
    small = LastItem(torch.randn(5, 5))
    with pytest.raises(ValueError, match="beyond the model's num_items = 4"):
        stage_scores(small, split)
    with pytest.raises(ValueError, match="no rows"):
        stage_metrics([], [], [])
