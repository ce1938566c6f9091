"""Metrics of 0-based target ranks (recall/HR, NDCG, MRR, AUC), pointwise AUC/Logloss, and UniDS's stages."""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_KS", "recall_at_k", "ndcg_at_k", "mrr", "auc_from_ranks", "ranking_metrics", "binary_metrics",
           "STAGE_METRICS", "stage_metrics"]

DEFAULT_KS = (10, 20, 50)


def recall_at_k(ranks, k: int) -> np.ndarray:
    """``1[r < k]`` per row (Recall@K = HR@K with a single target)."""
    ranks = np.asarray(ranks)
    return (ranks < k).astype(np.float64)


def ndcg_at_k(ranks, k: int) -> np.ndarray:
    """``1[r < k] / log2(r + 2)`` per row (one relevant item, so IDCG = 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def mrr(ranks) -> np.ndarray:
    """``1 / (r + 1)`` per row."""
    return 1.0 / (np.asarray(ranks, dtype=np.float64) + 1.0)


def auc_from_ranks(ranks, n_candidates) -> np.ndarray:
    """``1 - r / (C - 1)`` per row: share of the other candidates ranked below the target."""
    ranks = np.asarray(ranks, dtype=np.float64)
    others = np.maximum(np.asarray(n_candidates, dtype=np.float64) - 1.0, 1.0)
    return 1.0 - ranks / others


def ranking_metrics(ranks, n_candidates=None, ks=DEFAULT_KS, *, max_rank: int | None = None) -> dict[str, float]:
    """Mean metrics over rows: ``recall@K``, ``ndcg@K`` for each K, ``mrr`` and (with
    ``n_candidates``) ``auc``.

    ``max_rank``: the ranks are ``min(rank, max_rank)`` (`item_ranks`' cap). Only the metrics that
    cap leaves exact are reported: ``recall@K`` / ``ndcg@K`` for K <= ``max_rank`` (a K above it
    raises ValueError), never ``mrr`` or ``auc``."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    if ranks.size == 0:
        raise ValueError("no rows to evaluate")
    max_rank = _check_max_rank(max_rank)
    _check_cutoffs(ks, max_rank)
    for k in ks:
        out[f"recall@{k}"] = float(recall_at_k(ranks, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(ranks, k).mean())
    if max_rank is not None:
        return out
    out["mrr"] = float(mrr(ranks).mean())
    if n_candidates is not None:
        out["auc"] = float(auc_from_ranks(ranks, n_candidates).mean())
    return out


def _check_max_rank(max_rank) -> int | None:
    """``max_rank`` as an int >= 1 or None; TypeError / ValueError naming anything else."""
    if max_rank is None:
        return None
    if isinstance(max_rank, (bool, np.bool_)) or not isinstance(max_rank, (int, np.integer)):
        raise TypeError(f"max_rank must be an int >= 1 or None, got {max_rank!r}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be an int >= 1 or None, got {max_rank!r}")
    return int(max_rank)


def _check_cutoffs(ks, max_rank: int | None = None) -> None:
    """ValueError for a cut-off < 1, or one above ``max_rank`` (its metric would need ranks beyond the cap)."""
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"cut-offs must be >= 1, got {k}")
        if max_rank is not None and int(k) > max_rank:
            raise ValueError(f"cut-off {k} exceeds max_rank = {max_rank}: ranks capped there cannot give "
                             f"recall@{k} or ndcg@{k}")


def binary_metrics(scores, labels) -> dict[str, float]:
    """AUC and Logloss of pointwise predictions (the fine-ranking stage).

    Parameters
    ----------
    scores : array of float, shape (n,)
        Logits; probabilities are ``sigmoid(scores)``.
    labels : array of {0, 1}, shape (n,)

    Returns
    -------
    dict with ``auc`` (Mann-Whitney statistic, ties count 1/2) and
    ``logloss`` (mean binary cross-entropy, natural log).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.size} vs {y.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    y = y.astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        raise ValueError(f"AUC needs both classes, got {npos} positives and {nneg} negatives")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    uniq, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    auc = (ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg)
    logloss = float(np.mean(np.logaddexp(0.0, -s) * y + np.logaddexp(0.0, s) * (~y)))
    return {"auc": float(auc), "logloss": logloss}


STAGE_METRICS = {
    "recall": ("mrr", "hr@10", "hr@50"),
    "coarse": ("ndcg@10", "ndcg@50"),
    "fine": ("auc", "logloss"),
}


def stage_metrics(ranks, n_candidates, logloss, ks=(10, 50)) -> dict[str, float]:
    """Mean stage metrics from per-user values (see `evaluate_stages`).

    Parameters
    ----------
    ranks : array of int, shape (n_users,)
        0-based pessimistic rank of each target (`target_ranks`).
    n_candidates : array of int, shape (n_users,)
        Candidates per user, target included.
    logloss : array of float, shape (n_users,)
        Each user's ``-log softmax(scores)[target]`` over its candidates.
    ks : tuple of int, default (10, 50)

    Returns
    -------
    dict
        ``mrr``, ``hr@K`` and ``ndcg@K`` for each K, ``auc``, ``logloss``.
    """
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no rows to evaluate")
    out = {"mrr": float(mrr(ranks).mean())}
    for k in ks:
        out[f"hr@{k}"] = float(recall_at_k(ranks, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(ranks, k).mean())
    out["auc"] = float(auc_from_ranks(ranks, n_candidates).mean())
    out["logloss"] = float(np.mean(logloss))
    return out
