"""Evaluating a model on a leave-one-out split: `evaluate` (full-ranking metrics per user) and
`evaluate_stages` / `stage_scores` (UniDS's recall, coarse- and fine-ranking stages over all items)."""

from __future__ import annotations

import numpy as np
import torch

from .. import _core
from .metrics import DEFAULT_KS, _check_cutoffs, _check_max_rank, ranking_metrics, stage_metrics
from .ranks import _amx_table, _threads, _use_native, item_ranks

__all__ = ["REPEATED_TARGET", "evaluate", "stage_scores", "evaluate_stages"]

#: `evaluate`'s ``repeated_target`` modes: what happens to a target that is also in the user's history.
#: ``"keep"`` ranks it among the candidates (the history is excluded, the target never is).
#: ``"mask"`` masks the whole history, target included, as DR4SR's evaluator does
#: (USTC-StarTeam/DR4SR, model/basemodel.py:361 in `topk`,
#: ``masked_score = torch.scatter(masked_score, 1, user_h, -torch.inf)``): such a target can never
#: be hit. It then gets the worst rank, ``n_candidates - 1`` (every other candidate ahead of it; it
#: still counts in ``n_candidates``): a miss at every K < n_candidates, ``auc`` 0, ``mrr``
#: ``1 / n_candidates``.
REPEATED_TARGET = ("keep", "mask")


def _check_repeated_target(mode) -> None:
    if mode not in REPEATED_TARGET:
        raise ValueError(f"repeated_target must be one of {', '.join(REPEATED_TARGET)}, got {mode!r}")


def _in_history(offsets: np.ndarray, items: np.ndarray, targets: np.ndarray, b: int, e: int) -> np.ndarray:
    """Whether each of the users ``b..e-1`` (CSR ``offsets``/``items``) has its target in its own history."""
    lengths = np.diff(offsets[b : e + 1])
    row = np.repeat(np.arange(e - b), lengths)
    same = items[offsets[b] : offsets[e]] == np.repeat(targets[b:e], lengths)
    return np.bincount(row[same], minlength=e - b) > 0


def _sorted_split(model, split):
    """``(history, targets int64, order)`` of an evaluation split, its users sorted by history length
    (``order``: their positions in ``split``), so that each batch can drop the columns that are padding
    for all its rows (results are per user, order-free); refused when empty or beyond the model's items."""
    hist = split.history
    targets = np.asarray(split.target, dtype=np.int64)
    if targets.size == 0:
        raise ValueError("the split holds no users to evaluate")
    if int(targets.max()) > model.num_items or hist.num_items > model.num_items:
        raise ValueError(
            f"evaluation data holds item id {max(int(targets.max()), hist.num_items)} beyond the model's "
            f"num_items = {model.num_items}"
        )
    order = np.argsort(hist.lengths, kind="stable")
    return hist.subset(order), targets[order], order


@torch.no_grad()
def evaluate(model, split, ks=DEFAULT_KS, exclude_history: bool = True, batch_size: int = 1024,
             device=None, return_ranks: bool = False, *, chunk_size: int | None = None,
             repeated_target: str = "keep", backend: str = "auto", max_rank: int | None = None,
             _stats: dict | None = None) -> dict:
    """Full-ranking metrics of ``model`` on a leave-one-out split.

    Parameters
    ----------
    model : fastregen.models.SequentialRecommender
        Scores are ``model.score(model(history, timestamps)[:, -1])``; the
        histories' timestamps are passed when ``split.history`` has them.
    split : fastregen.data.EvalSplit
        ``split.history`` (the model reads its last ``model.max_len`` items) and
        ``split.target``.
    ks : tuple of int, default (10, 20, 50)
    exclude_history : bool, default True
        Remove the user's (whole, untruncated) history from the candidates,
        target excepted. See the module docstring.
    batch_size : int, default 1024
    device : torch.device, optional
        Defaults to the device of the model's parameters.
    return_ranks : bool, default False
        Also return the per-user ranks under ``"ranks"`` (np.int64).
    chunk_size : int, optional
        Items scored at once (`item_ranks`); default: the whole vocabulary
        up to `FULL_SCORES_LIMIT` scores per batch, chunks above.
    repeated_target : {"keep", "mask"}, default "keep"
        A target that also occurs in the user's history: ``"keep"`` ranks it
        like any target; ``"mask"`` gives it the worst rank (see
        `REPEATED_TARGET`), what DR4SR's evaluator does.
    backend : {"auto", "torch", "native", "amx"}, default "auto"
        How ranks are counted (`item_ranks`: ``"auto"`` is the two-pass AMX
        count where the CPU has AMX tiles); identical results.
    max_rank : int, optional
        Rank only as far as the metrics need (`item_ranks`' ``max_rank``):
        every K of ``ks`` must be <= ``max_rank``; ``mrr`` and ``auc``
        (which need the full rank) are then left out, and ``"ranks"`` holds
        ``min(rank, max_rank)``. The metrics reported are exactly the
        uncapped ones; with AMX tiles, most users stop after a small share
        of the items (validation for early stopping).

    Returns
    -------
    dict
        ``recall@K``, ``ndcg@K`` for each K, ``mrr``, ``auc`` (not with
        ``max_rank``), ``n_users``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_repeated_target(repeated_target)
    max_rank = _check_max_rank(max_rank)
    _check_cutoffs(ks, max_rank)
    hist, targets, order = _sorted_split(model, split)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    offsets, items = hist.offsets, hist.items
    ranks = np.empty(targets.size, dtype=np.int64)
    cands = np.empty(targets.size, dtype=np.int64)
    table = model.item_weight()
    # the sum first: one pass and no 700k x d mask at Books' scale (0.2 s a call); a non-finite sum is
    # a NaN/inf entry or an overflow, told apart by the full check
    if not bool(torch.isfinite(table.detach().sum())) and not bool(torch.isfinite(table).all()):
        raise ValueError("the model's item table holds NaN or inf: the model diverged; lower the learning rate")
    # the AMX path's packed table, once for every batch (700k items: 270 MB, ~1 s)
    packed = (_amx_table(table, backend, order="id" if max_rank is None else "norm")
              if table.device.type == "cpu" else None)
    try:
        for b in range(0, targets.size, batch_size):
            e = min(b + batch_size, targets.size)
            width = max(int(min(hist.lengths[e - 1], model.max_len)), 1)
            # rows padded per batch, not for every user at once (800k x max_len at Books scale)
            part = hist.subset(np.arange(b, e))
            x = torch.from_numpy(part.padded(width, side="left")).to(device)
            # models with a time bias (HSTU) read the histories' timestamps when the data has them
            ts = None if part.timestamps is None else torch.from_numpy(
                part.padded(width, side="left", values=part.timestamps)).to(device)
            h = model(x, timestamps=ts)[:, -1]
            if not bool(torch.isfinite(h).all()):
                # a NaN score compares false with everything, so its target would rank first: a
                # diverged model must not look perfect
                bad = int(order[b + int((~torch.isfinite(h)).any(1).nonzero()[0])])
                raise ValueError(f"the model's representation of user row {bad} is not finite (NaN or inf): "
                                 "the model diverged; lower the learning rate or check the inputs")
            t = torch.from_numpy(targets[b:e]).to(device)
            if exclude_history:
                lengths = np.diff(offsets[b : e + 1])
                rows = torch.from_numpy(np.repeat(np.arange(e - b), lengths)).to(device)
                cols = torch.from_numpy(items[offsets[b] : offsets[e]].astype(np.int64)).to(device)
                r, c = item_ranks(h, table, t, rows, cols, chunk_size=chunk_size, backend=backend,
                                  max_rank=max_rank, _packed=packed, _stats=_stats)
            else:
                r, c = item_ranks(h, table, t, chunk_size=chunk_size, backend=backend, max_rank=max_rank,
                                  _packed=packed, _stats=_stats)
            r, c = r.cpu().numpy(), c.cpu().numpy()
            if repeated_target == "mask":
                worst = c - 1 if max_rank is None else np.minimum(c - 1, max_rank)
                r = np.where(_in_history(offsets, items, targets, b, e), worst, r)
            ranks[order[b:e]] = r
            cands[order[b:e]] = c
    finally:
        model.train(was_training)
    out = ranking_metrics(ranks, cands, ks, max_rank=max_rank)
    out["n_users"] = int(ranks.size)
    if return_ranks:
        out["ranks"] = ranks
    return out


# ---------------------------------------------------------------------------
# Multi-stage evaluation (UniDS): recall, coarse ranking and fine ranking.

#: The metrics UniDS (Table 1) reports for each stage of a recommender.


@torch.no_grad()
def stage_scores(model, split, exclude_history: bool = True, batch_size: int = 256, item_chunk: int = 65536,
                 temperature: float = 1.0, device=None, *, repeated_target: str = "keep",
                 backend: str = "auto") -> dict[str, np.ndarray]:
    """Per-user rank, candidate count and log loss of the held-out target, scoring items in chunks.

    Each user's representation ``h = model(history, timestamps)[:, -1]`` is
    scored against the item table ``item_chunk`` items at a time, so memory
    is ``batch_size x item_chunk`` floats whatever the catalogue size. Two
    passes over the chunks: the first takes the target's score and the
    log-sum-exp over the candidates, the second counts the candidates scoring
    at least as high as the target (so the target's score comes from the same
    matrix product as the others', and ties are exact).

    Candidates are the items ``1..num_items`` minus, with
    ``exclude_history``, the user's history (the target is always one), as
    in `evaluate`.

    Parameters
    ----------
    model : fastregen.models.SequentialRecommender
    split : fastregen.data.EvalSplit
    exclude_history : bool, default True
    batch_size : int, default 256
        Users per forward pass.
    item_chunk : int, default 65536
        Items scored per matrix product.
    temperature : float, default 1.0
        Scores are divided by it before the softmax of the log loss (ranks
        do not depend on it).
    device : torch.device, optional
    repeated_target : {"keep", "mask"}, default "keep"
        As in `evaluate`: with ``"mask"`` a target found in the user's
        history gets rank ``n_candidates - 1``. Its ``logloss`` stays that of
        the target among the candidates (a masked target's would be infinite).
    backend : {"auto", "torch", "native"}, default "auto"
        How the second pass counts (`target_ranks`); identical ranks.

    Returns
    -------
    dict of np.ndarray, each of shape (n_users,), in the order of ``split``
        ``ranks`` int64 (pessimistic: ``#{j != t candidate : s_j >= s_t}``,
        equal to `evaluate`'s), ``n_candidates`` int64, ``logloss`` float64
        (``logsumexp_j s_j / T - s_t / T`` over the candidates j).
    """
    if batch_size < 1 or item_chunk < 1:
        raise ValueError(f"batch_size and item_chunk must be >= 1, got {batch_size}, {item_chunk}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    _check_repeated_target(repeated_target)
    hist, targets, order = _sorted_split(model, split)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    padded = hist.padded(model.max_len, side="left")
    stamps = None if hist.timestamps is None else hist.padded(model.max_len, side="left", values=hist.timestamps)
    table = model.item_weight()
    C = int(table.shape[0])
    n = targets.size
    ranks = np.empty(n, dtype=np.int64)
    cands = np.empty(n, dtype=np.int64)
    loss = np.empty(n, dtype=np.float64)
    try:
        for b in range(0, n, batch_size):
            e = min(b + batch_size, n)
            width = max(int(min(hist.lengths[e - 1], model.max_len)), 1)
            x = torch.from_numpy(padded[b:e, -width:]).to(device)
            ts = None if stamps is None else torch.from_numpy(stamps[b:e, -width:]).to(device)
            h = model(x, timestamps=ts)[:, -1]
            t = torch.from_numpy(targets[b:e]).to(device)
            B = e - b
            # excluded (row, item) pairs: the history minus the target, each pair once
            if exclude_history:
                lengths = np.diff(hist.offsets[b : e + 1])
                er = torch.from_numpy(np.repeat(np.arange(B), lengths)).to(device)
                ec = torch.from_numpy(hist.items[hist.offsets[b] : hist.offsets[e]].astype(np.int64)).to(device)
                key = torch.unique(er * C + ec)
                er, ec = key // C, key % C
                keep = ec != t[er]
                er, ec = er[keep], ec[keep]
            else:
                er = ec = torch.zeros(0, dtype=torch.long, device=device)
            rows = torch.arange(B, device=device)

            def chunks():
                for c0 in range(0, C, item_chunk):
                    c1 = min(c0 + item_chunk, C)
                    s = h @ table[c0:c1].T
                    s[:, : max(1 - c0, 0)] = float("-inf")  # padding id 0
                    sel = (ec >= c0) & (ec < c1)
                    s[er[sel], ec[sel] - c0] = float("-inf")
                    yield c0, c1, s

            target_score = torch.empty(B, dtype=h.dtype, device=device)
            lse = torch.full((B,), float("-inf"), dtype=torch.float64, device=device)
            for c0, c1, s in chunks():
                inside = (t >= c0) & (t < c1)
                target_score[inside] = s[rows[inside], t[inside] - c0]
                lse = torch.logaddexp(lse, torch.logsumexp(s.double() / temperature, 1))
            n_ex = torch.bincount(er, minlength=B) if er.numel() else torch.zeros(B, dtype=torch.long, device=device)
            c = (C - 1 - n_ex).cpu().numpy()
            if _use_native(backend, target_score):
                # er, ec: distinct pairs sorted by row, then item: the kernel's CSR as they are
                ex_offsets = np.zeros(B + 1, dtype=np.int64)
                np.cumsum(np.bincount(er.numpy(), minlength=B), out=ex_offsets[1:])
                ex_items, t_np, ts_np = ec.numpy(), t.numpy(), target_score.numpy()
                r = np.zeros(B, dtype=np.int64)
                for c0, c1, s in chunks():
                    r += _core.rank_counts(s.contiguous().numpy(), t_np, ts_np, ex_offsets, ex_items, c0, C, None,
                                           _threads(None))[0]
            else:
                ge = torch.zeros(B, dtype=torch.long, device=device)
                for c0, c1, s in chunks():
                    ge += (s >= target_score[:, None]).sum(1)
                r = (ge - 1).cpu().numpy()
            if repeated_target == "mask":
                r = np.where(_in_history(hist.offsets, hist.items, targets, b, e), c - 1, r)
            ranks[order[b:e]] = r
            cands[order[b:e]] = c
            loss[order[b:e]] = (lse - target_score.double() / temperature).cpu().numpy()
    finally:
        model.train(was_training)
    return {"ranks": ranks, "n_candidates": cands, "logloss": loss}


def evaluate_stages(model, split, ks=(10, 50), exclude_history: bool = True, batch_size: int = 256,
                    item_chunk: int = 65536, temperature: float = 1.0, device=None,
                    return_per_user: bool = False, *, repeated_target: str = "keep", backend: str = "auto") -> dict:
    """UniDS's multi-stage metrics on a leave-one-out split, full ranking over all items.

    * Recall stage: ``mrr``, ``hr@10``, ``hr@50`` (HR@K = Recall@K with one
      target);
    * coarse ranking: ``ndcg@10``, ``ndcg@50``;
    * fine ranking: ``auc`` and ``logloss``.

    UniDS does not say how it computes AUC (and names Logloss without
    reporting it). Here both are **per user over all items** (no sampled
    negatives, after Krichene & Rendle 2020), then averaged over users:

    * ``auc`` = ``1 - r / (C - 1)``: the share of the user's ``C - 1``
      non-target candidates scored strictly below the target, ties counted
      against it (``r`` is the pessimistic rank of `target_ranks`; this is
      the ``auc`` `evaluate` reports);
    * ``logloss`` = ``-log softmax(s / T)[target]`` over the same candidates
      (natural log): the cross-entropy of the model's next-item distribution,
      the quantity a softmax-trained model (HSTU, LLaMA) minimises. A
      pointwise binary log loss would need calibrated click probabilities,
      which a next-item model trained with sampled negatives does not give;
      for pointwise labels use `binary_metrics`.

    Candidates exclude the user's history (target kept) with
    ``exclude_history``, as everywhere in this module.

    Parameters
    ----------
    model, split, exclude_history, batch_size, item_chunk, temperature, device, repeated_target, backend
        See `stage_scores`.
    ks : tuple of int, default (10, 50)
    return_per_user : bool, default False
        Also return `stage_scores`'s arrays under ``"per_user"``.

    Returns
    -------
    dict
        ``mrr``, ``hr@K``, ``ndcg@K``, ``auc``, ``logloss``, ``n_users``.
    """
    per = stage_scores(model, split, exclude_history, batch_size, item_chunk, temperature, device,
                       repeated_target=repeated_target, backend=backend)
    out = stage_metrics(per["ranks"], per["n_candidates"], per["logloss"], ks)
    out["n_users"] = int(per["ranks"].size)
    if return_per_user:
        out["per_user"] = per
    return out
