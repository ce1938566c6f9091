"""Full-ranking leave-one-out evaluation (Krichene & Rendle, KDD 2020: no sampled metrics).

Each evaluated user has one held-out target item; the model scores **every**
item, and the metrics are functions of the target's 0-based rank ``r``:

* ``recall@K`` (= HR@K with one target): ``1[r < K]``;
* ``ndcg@K``: ``1[r < K] / log2(r + 2)``;
* ``mrr``: ``1 / (r + 1)`` (untruncated);
* ``auc``: ``1 - r / (C - 1)``, the fraction of the ``C - 1`` other
  candidates scored below the target.

Ties are broken **pessimistically**: every other candidate whose score equals
the target's counts as ranked ahead of it, ``r = #{j != t : s_j >= s_t}``.
This is deterministic and never rewards a model for constant scores (a model
scoring everything 0 gets the worst rank, not an id-dependent one).

History exclusion: with ``exclude_history=True`` (the default, what DR4SR's
and RecBole's code do) the items already in the user's history are removed
from the candidates, except the target itself, which is ranked with
``repeated_target="keep"`` (the default); ``"mask"`` masks it too, as
DR4SR's evaluator does (see `REPEATED_TARGET`), which only matters for
repeat consumption. Pass ``exclude_history=False`` for repeat-consumption
data. Padding (id 0) is never a candidate.

Backends: on CPU the ranks are counted by a compiled kernel
(`fastregen._core.rank_counts`, reference `fastregen.reference.ranks`)
without the ``B x C`` comparison matrix; ``backend="torch"`` is the tensor
path (any device) it is tested against; both give identical ranks.

For the fine-ranking stage (pointwise labels), `binary_metrics` gives AUC
and Logloss. `evaluate_stages` reports UniDS's three stages (recall: MRR,
HR@10/50; coarse ranking: NDCG@10/50; fine ranking: AUC, Logloss), each
per user over all items, scoring the catalogue in chunks.


Vocabulary scale: `evaluate` ranks with `item_ranks`, which scores the items
a chunk at a time (history mask and counts chunk by chunk), so a batch never
holds ``batch x num_items`` scores once that would exceed
`FULL_SCORES_LIMIT` (at 700k items, 1,024 x V would be 2.7 GiB). Below the
limit it is `target_ranks` on the full score matrix, as before.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _core

__all__ = [
    "target_ranks",
    "ranking_metrics",
    "recall_at_k",
    "ndcg_at_k",
    "mrr",
    "auc_from_ranks",
    "binary_metrics",
    "evaluate",
    "item_ranks",
    "FULL_SCORES_LIMIT",
    "REPEATED_TARGET",
    "DEFAULT_KS",
    "STAGE_METRICS",
    "stage_metrics",
    "stage_scores",
    "evaluate_stages",
]

DEFAULT_KS = (10, 20, 50)
#: `item_ranks` scores the whole vocabulary at once up to this many scores per batch (128 MiB of float32).
FULL_SCORES_LIMIT = 1 << 25
#: Scores per chunk (batch x chunk) above the limit: 16 MiB of float32.
_CHUNK_ELEMENTS = 1 << 22
#: The native path of `item_ranks` scores this many items x users at a time (4 MiB of float32: an L2 cache).
_SCORE_BLOCK = 1 << 20
#: ... in blocks of at least this many users (see `_full_ranks_native`).
_MIN_BLOCK_ROWS = 16
#: The item-chunked native path (`_item_ranks_native`) scores blocks of at most this many items ...
_BLOCK_ITEMS = 1024
#: ... and about this many users (1 MiB of float32 scores: the L2 cache of one core holds them).
_BLOCK_ROWS = 256
#: `evaluate`'s ``repeated_target`` modes: what happens to a target that is also in the user's history.
#: ``"keep"`` ranks it among the candidates (the history is excluded, the target never is).
#: ``"mask"`` masks the whole history, target included, as DR4SR's evaluator does
#: (USTC-StarTeam/DR4SR, model/basemodel.py:361 in `topk`,
#: ``masked_score = torch.scatter(masked_score, 1, user_h, -torch.inf)``): such a target can never
#: be hit. It then gets the worst rank, ``n_candidates - 1`` (every other candidate ahead of it; it
#: still counts in ``n_candidates``): a miss at every K < n_candidates, ``auc`` 0, ``mrr``
#: ``1 / n_candidates``.
REPEATED_TARGET = ("keep", "mask")


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude_rows=None, exclude_cols=None,
                 inplace: bool = False, *, backend: str = "auto",
                 threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based rank of each target among the candidates (pessimistic ties).

    Parameters
    ----------
    scores : torch.Tensor of float, shape (B, num_items + 1)
        Column 0 (padding) is never a candidate.
    targets : torch.Tensor of int64, shape (B,)
        Target item of each row, in 1..num_items.
    exclude_rows, exclude_cols : torch.Tensor of int64, shape (M,), optional
        (row, item) pairs removed from the candidates (history items); a pair
        naming the row's target is ignored, duplicates count once.
    inplace : bool, default False
        Kept for callers of earlier versions; neither backend writes ``scores``.
    backend : {"auto", "torch", "native"}, default "auto"
        ``"native"``: the compiled kernel (`fastregen._core.rank_counts`,
        OpenMP over rows), which counts without materialising the ``B x C``
        comparison; CPU float32 / float64 scores only. ``"torch"``: tensor
        operations on any device (the reference the kernel is tested
        against). ``"auto"``: native for CPU float32 / float64 scores, else
        torch. Both give identical ranks.
    threads : int, optional
        Threads of the native kernel; default ``torch.get_num_threads()``.

    Returns
    -------
    ranks : torch.Tensor of int64, shape (B,)
        ``#{j candidate, j != target : s_j >= s_target}``; comparisons are
        IEEE ``>=`` (false with a NaN), so a NaN target score ranks 0 and a
        NaN candidate never counts.
    n_candidates : torch.Tensor of int64, shape (B,)
        Candidates per row, target included.
    """
    if scores.dim() != 2 or targets.dim() != 1 or scores.size(0) != targets.size(0):
        raise ValueError(f"scores (B, C) and targets (B,) do not match: {tuple(scores.shape)} vs {tuple(targets.shape)}")
    B, C = scores.shape
    _check_targets(targets, C)
    er, ec = _checked_exclusions(exclude_rows, exclude_cols, B, C)
    if _use_native(backend, scores):
        s = scores.detach().contiguous().numpy()
        t = targets.long().cpu().numpy()
        ex_offsets, ex_items = _exclusion_csr(er, ec, B, C)
        count, excluded, _, _ = _core.rank_counts(s, t, s[np.arange(B), t], ex_offsets, ex_items, 0, C, None,
                                                  _threads(threads))
        return torch.from_numpy(count), torch.from_numpy(C - 1 - excluded)
    s = scores.detach()
    targets = targets.long().to(s.device)
    rows = torch.arange(B, device=s.device)
    target_score = s[rows, targets]
    n_candidates = torch.full((B,), C - 1, dtype=torch.long, device=s.device)
    # the comparison of every score, then padding, the target and the excluded pairs taken out
    # (rather than their scores set to -inf: a -inf or NaN target score must not count them)
    ge = s >= target_score[:, None]
    ge[:, 0] = False
    ge[rows, targets] = False
    if er is not None:
        # distinct (row, item) pairs other than the row's target
        key = torch.unique(er.to(s.device) * C + ec.to(s.device))
        kr, kc = key // C, key % C
        drop = kc != targets[kr]
        kr, kc = kr[drop], kc[drop]
        ge[kr, kc] = False
        n_candidates -= torch.bincount(kr, minlength=B)
    return ge.sum(1), n_candidates


_BACKENDS = ("auto", "torch", "native")


def _use_native(backend: str, scores: torch.Tensor) -> bool:
    """Whether ``backend`` runs the compiled kernel on ``scores``; ValueError for what it cannot run."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
    fits = scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64)
    if backend == "native" and not fits:
        raise ValueError(f"backend='native' ranks CPU float32/float64 scores, got {scores.dtype} on {scores.device}")
    return backend == "native" or (backend == "auto" and fits)


def _threads(threads: int | None) -> int:
    return torch.get_num_threads() if threads is None else int(threads)


def _check_targets(targets: torch.Tensor, C: int) -> None:
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= C):
        raise ValueError(f"targets must be item ids in 1..{C - 1}, got range [{int(targets.min())}, {int(targets.max())}]")


def _checked_exclusions(exclude_rows, exclude_cols, B: int, C: int):
    """``(rows, items)`` int64 tensors of the excluded pairs, or ``(None, None)`` when there are none."""
    if exclude_rows is None or exclude_cols is None:
        if (exclude_rows is None) != (exclude_cols is None):
            raise ValueError("exclude_rows and exclude_cols go together")
        return None, None
    er, ec = torch.as_tensor(exclude_rows).long(), torch.as_tensor(exclude_cols).long()
    if er.shape != ec.shape or er.dim() != 1:
        raise ValueError(f"exclude_rows and exclude_cols must be 1-D of equal length, got {tuple(er.shape)} "
                         f"and {tuple(ec.shape)}")
    if not er.numel():
        return None, None
    if int(ec.min()) < 1 or int(ec.max()) >= C:
        raise ValueError(f"excluded items must be ids in 1..{C - 1}")
    if int(er.min()) < 0 or int(er.max()) >= B:
        raise ValueError(f"exclude_rows must be rows in 0..{B - 1}, got range [{int(er.min())}, {int(er.max())}]")
    return er, ec


def _exclusion_csr(er, ec, B: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    """The excluded pairs as per-row CSR (``ex_offsets`` (B + 1,), ``ex_items``), each row's items
    distinct and ascending (the kernel then cuts a row's items for a block of columns by binary search)."""
    if er is None:
        return np.zeros(B + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    key = np.unique(er.cpu().numpy() * C + ec.cpu().numpy())
    rows = key // C
    offsets = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=B), out=offsets[1:])
    return offsets, key % C


def item_ranks(hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, exclude_rows=None,
               exclude_cols=None, chunk_size: int | None = None, *, backend: str = "auto",
               threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`target_ranks` of the scores ``hidden @ table.T``, computed a chunk of items at a time.

    Parameters
    ----------
    hidden : torch.Tensor of float, shape (B, d)
    table : torch.Tensor of float, shape (C, d)
        Row 0 (padding) is never a candidate.
    targets, exclude_rows, exclude_cols
        As in `target_ranks`.
    chunk_size : int, optional
        Items scored at once. Default: all ``C`` when ``B x C`` is at most
        `FULL_SCORES_LIMIT`, else ``2**22 / B``.

    Returns
    -------
    (ranks, n_candidates)
        As `target_ranks`. With one chunk it *is* `target_ranks` on
        ``hidden @ table.T``. With several, every score comes from its
        chunk's product (the target's too), the history mask is applied
        chunk by chunk, and the rank is exactly ``#{j != target :
        s_j >= s_target}`` over those scores: chunks before the target's
        are compared against a float64 estimate of the target's score and
        any score within the float32 error bound of it is kept aside and
        decided once the target's own chunk is scored. A product of other
        shape may round a score differently in its last bit (matrix
        kernels pick their blocking by shape), so a near-tie may rank
        differently than in one product of all items.
    backend, threads
        As in `target_ranks` (``"native"``: the compiled kernel counts each
        chunk, CPU only); both backends give identical ranks.
    """
    if hidden.dim() != 2 or table.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden (B, d) and table (C, d) do not match: {tuple(hidden.shape)} vs {tuple(table.shape)}")
    B, C = hidden.shape[0], table.shape[0]
    if chunk_size is None:
        chunk_size = C if B * C <= FULL_SCORES_LIMIT else max(_CHUNK_ELEMENTS // max(B, 1), 1)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    hidden, table = hidden.detach(), table.detach()
    if chunk_size >= C and B >= _MIN_BLOCK_ROWS and _use_native(backend, hidden.new_empty(0, dtype=torch.result_type(hidden, table))):
        return _full_ranks_native(hidden, table, targets, exclude_rows, exclude_cols, _threads(threads))
    if chunk_size >= C:
        return target_ranks(hidden @ table.T, targets, exclude_rows, exclude_cols, inplace=True, backend=backend,
                            threads=threads)
    if targets.dim() != 1 or targets.size(0) != B:
        raise ValueError(f"hidden (B, d) and targets (B,) do not match: {tuple(hidden.shape)} vs {tuple(targets.shape)}")
    _check_targets(targets, C)
    er, ec = _checked_exclusions(exclude_rows, exclude_cols, B, C)
    dev = hidden.device
    targets = targets.long()
    # float64 estimate of each target's score and a bound on the float32 product's error
    # (|fl(h.e) - h.e| <= gamma_d sum |h_k e_k|, gamma_d ~ d 2^-24; doubled for safety)
    h64, e64 = hidden.double(), table[targets].double()
    approx = (h64 * e64).sum(1)
    bound = 2.0 * (hidden.shape[1] + 2) * 2.0**-24 * (h64.abs() * e64.abs()).sum(1) + 1e-30
    hi = _round_out(approx + bound, up=True)
    lo = _round_out(approx - bound, up=False)
    if _use_native(backend, hidden.float()):
        return _item_ranks_native(hidden.float(), table, targets, er, ec, chunk_size, hi, lo, _threads(threads))
    n_candidates = torch.full((B,), C - 1, dtype=torch.long, device=dev)
    kr = kc = torch.zeros(0, dtype=torch.long, device=dev)
    if er is not None:
        key = torch.unique(ec * B + er)  # distinct pairs, sorted by item: each chunk takes a slice
        kc, kr = key // B, key % B
        keep = kc != targets[kr]
        kc, kr = kc[keep], kr[keep]
        n_candidates -= torch.bincount(kr, minlength=B)
    ahead = torch.zeros(B, dtype=torch.long, device=dev)
    exact = torch.full((B,), float("nan"), dtype=torch.float32, device=dev)
    near_rows, near_vals = [], []
    rows = torch.arange(B, device=dev)
    hi, lo = hi[:, None], lo[:, None]
    # one set of buffers for every chunk: per-chunk temporaries of a few MiB would each be a fresh
    # allocation, which glibc serves from its heap and keeps (RSS grew by GiBs over a Books evaluation)
    width = min(chunk_size, C)
    buf = torch.empty(B * width, dtype=torch.float32, device=dev)
    above_buf = torch.empty(B * width, dtype=torch.bool, device=dev)
    near_buf = torch.empty(B * width, dtype=torch.bool, device=dev)
    h32 = hidden.float()
    for c0 in range(0, C, chunk_size):
        c1 = min(c0 + chunk_size, C)
        w = c1 - c0
        s = buf[: B * w].view(B, w)
        torch.mm(h32, table[c0:c1].float().T, out=s)
        if c0 == 0:
            s[:, 0] = float("-inf")
        a, b = torch.searchsorted(kc, torch.tensor([c0, c1], device=dev)).tolist()
        if b > a:
            s[kr[a:b], kc[a:b] - c0] = float("-inf")
        here = (targets >= c0) & (targets < c1)
        if bool(here.any()):
            r, col = rows[here], targets[here] - c0
            exact[r] = s[r, col]
            s[r, col] = float("-inf")  # the target never counts against itself
        above = above_buf[: B * w].view(B, w)
        near = near_buf[: B * w].view(B, w)
        torch.gt(s, hi, out=above)
        ahead += above.sum(1)
        torch.ge(s, lo, out=near)
        near &= above.logical_not_()
        if bool(near.any()):
            r, col = torch.nonzero(near, as_tuple=True)
            near_rows.append(r)
            near_vals.append(s[r, col])
    if near_rows:
        r, v = torch.cat(near_rows), torch.cat(near_vals)
        ahead += torch.bincount(r[v >= exact[r]], minlength=B)
    return ahead, n_candidates


def _full_ranks_native(hidden, table, targets, exclude_rows, exclude_cols, threads):
    """`target_ranks` of ``hidden @ table.T`` with the compiled count, the scores computed a block of
    rows at a time (`_SCORE_BLOCK` scores): the block stays in cache between the product that writes
    it and the count that reads it (on Beauty's 12k items, one thread, this more than halves the
    product's time: `benchmarks/engine.py validation`, benchmarks/results/engine.csv). Blocks have at least
    `_MIN_BLOCK_ROWS` rows: matrix kernels treat very thin products differently and may round a
    score otherwise in its last bit."""
    B, C = hidden.shape[0], table.shape[0]
    dtype = torch.result_type(hidden, table)
    if targets.dim() != 1 or targets.size(0) != B:
        raise ValueError(f"hidden (B, d) and targets (B,) do not match: {tuple(hidden.shape)} vs {tuple(targets.shape)}")
    _check_targets(targets, C)
    er, ec = _checked_exclusions(exclude_rows, exclude_cols, B, C)
    ex_offsets, ex_items = _exclusion_csr(er, ec, B, C)
    t = targets.long().cpu().numpy()
    h, table_t = hidden.to(dtype), table.to(dtype).T.contiguous()
    bounds = _row_blocks(B, C)
    count = np.empty(B, dtype=np.int64)
    excluded = np.empty(B, dtype=np.int64)
    buf = torch.empty(int(np.diff(bounds).max()) * C, dtype=dtype)
    for r0, r1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        s = buf[: (r1 - r0) * C].view(r1 - r0, C)
        torch.mm(h[r0:r1], table_t, out=s)
        s_np = s.numpy()
        tt = t[r0:r1]
        o = ex_offsets[r0 : r1 + 1]
        count[r0:r1], excluded[r0:r1], _, _ = _core.rank_counts(
            s_np, tt, s_np[np.arange(r1 - r0), tt], o - o[0], ex_items[o[0] : o[-1]], 0, C, None, threads)
    return torch.from_numpy(count), torch.from_numpy(C - 1 - excluded)


def _row_blocks(B: int, width: int, scores: int | None = None) -> np.ndarray:
    """Bounds of near-equal blocks of the ``B`` rows, each of at least `_MIN_BLOCK_ROWS` rows (or all
    of them) and about ``scores`` (default `_SCORE_BLOCK`) scores of ``width`` columns."""
    scores = _SCORE_BLOCK if scores is None else scores
    n_blocks = max(1, B // max(_MIN_BLOCK_ROWS, scores // max(width, 1)))
    return np.linspace(0, B, n_blocks + 1).astype(np.int64)


def _item_ranks_native(h32, table, targets, er, ec, chunk_size, hi, lo, threads):
    """`item_ranks`' chunk loop with the compiled count: per chunk, rows whose target lies in it or
    before compare against the target's exact score; rows whose target comes later count the scores
    above ``hi`` and keep those in ``[lo, hi]`` for after (see `item_ranks`).

    Cache blocking (issue 28): the items go in chunks of at most `_BLOCK_ITEMS` and the users in
    blocks of `_BLOCK_ROWS`, so that a block's scores (1 MiB) stay in the 2 MiB L2 cache of a core
    from the product that writes them to the count that reads them (4 MiB blocks before); each chunk
    of the table is copied once, transposed and contiguous (256 KiB); each row block's exclusions are
    cut once, not per chunk. Profiled at Books' shape (700k items, d = 64, one thread, CPU time of
    `evaluate` with an untrained SASRec: `benchmarks/engine.py evaluate`): the product takes ~45%
    and runs near the core's peak (~200 GFLOP/s at 256 x 1,024 x 64), the count ~17%, this loop's
    Python/NumPy work per block ~20%, the forward pass ~11%; the blocking saved ~6% of the CPU time
    (benchmarks/results/engine.csv)."""
    B, C = h32.shape[0], table.shape[0]
    ex_offsets, ex_items = _exclusion_csr(er, ec, B, C)
    t = targets.numpy()
    hi, lo = hi.numpy(), lo.numpy()
    above_hi = np.nextafter(hi, np.float32(np.inf))  # s >= above_hi  <=>  s > hi
    exact = np.full(B, np.nan, dtype=np.float32)
    ahead = np.zeros(B, dtype=np.int64)
    excluded = np.zeros(B, dtype=np.int64)
    band_rows, band_values = [], []
    width = min(chunk_size, _BLOCK_ITEMS, C)
    bounds = _row_blocks(B, width, min(_SCORE_BLOCK, _BLOCK_ROWS * width))
    blocks = []
    for r0, r1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        o = ex_offsets[r0 : r1 + 1]
        blocks.append((r0, r1, o - o[0], ex_items[o[0] : o[-1]], t[r0:r1]))
    buf = torch.empty(int(np.diff(bounds).max(initial=0)) * width, dtype=torch.float32)  # one for every chunk
    thr = np.empty(B, dtype=np.float32)
    low = np.empty(B, dtype=np.float32)
    for c0 in range(0, C, width):
        c1 = min(c0 + width, C)
        part_t = table[c0:c1].float().T.contiguous()
        for r0, r1, o, ex, tt in blocks:
            s = buf[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
            torch.mm(h32[r0:r1], part_t, out=s)
            s_np = s.numpy()
            here = np.flatnonzero((tt >= c0) & (tt < c1))
            if here.size:
                exact[r0 + here] = s_np[here, tt[here] - c0]
            known = tt < c1
            np.copyto(thr[r0:r1], np.where(known, exact[r0:r1], above_hi[r0:r1]))
            np.copyto(low[r0:r1], np.where(known, thr[r0:r1], lo[r0:r1]))
            count, n_ex, br, bv = _core.rank_counts(s_np, tt, thr[r0:r1], o, ex, c0, C, low[r0:r1], threads)
            ahead[r0:r1] += count
            excluded[r0:r1] += n_ex
            if br.size:
                band_rows.append(br + r0)
                band_values.append(bv)
    if band_rows:
        r, v = np.concatenate(band_rows), np.concatenate(band_values)
        ahead += np.bincount(r[v >= exact[r]], minlength=B)
    return torch.from_numpy(ahead), torch.from_numpy(C - 1 - excluded)


def _round_out(x: torch.Tensor, *, up: bool) -> torch.Tensor:
    """float64 -> float32, rounded away from the interval's inside (so the float32 bound still holds)."""
    y = x.float()
    inf = torch.tensor(float("inf") if up else float("-inf"), device=x.device)
    fix = (y.double() < x) if up else (y.double() > x)
    return torch.where(fix, torch.nextafter(y, inf), y)


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


def ranking_metrics(ranks, n_candidates=None, ks=DEFAULT_KS) -> dict[str, float]:
    """Mean metrics over rows: ``recall@K``, ``ndcg@K`` for each K, ``mrr`` and (with
    ``n_candidates``) ``auc``."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    if ranks.size == 0:
        raise ValueError("no rows to evaluate")
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"cut-offs must be >= 1, got {k}")
        out[f"recall@{k}"] = float(recall_at_k(ranks, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(ranks, k).mean())
    out["mrr"] = float(mrr(ranks).mean())
    if n_candidates is not None:
        out["auc"] = float(auc_from_ranks(ranks, n_candidates).mean())
    return out


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


def _check_repeated_target(mode) -> None:
    if mode not in REPEATED_TARGET:
        raise ValueError(f"repeated_target must be one of {', '.join(REPEATED_TARGET)}, got {mode!r}")


def _in_history(offsets: np.ndarray, items: np.ndarray, targets: np.ndarray, b: int, e: int) -> np.ndarray:
    """Whether each of the users ``b..e-1`` (CSR ``offsets``/``items``) has its target in its own history."""
    lengths = np.diff(offsets[b : e + 1])
    row = np.repeat(np.arange(e - b), lengths)
    same = items[offsets[b] : offsets[e]] == np.repeat(targets[b:e], lengths)
    return np.bincount(row[same], minlength=e - b) > 0


def _checked_split(model, split):
    """``(history, targets int64)`` of an evaluation split, refused when empty or beyond the model's items."""
    hist = split.history
    targets = np.asarray(split.target, dtype=np.int64)
    if targets.size == 0:
        raise ValueError("the split holds no users to evaluate")
    if int(targets.max()) > model.num_items or hist.num_items > model.num_items:
        raise ValueError(
            f"evaluation data holds item id {max(int(targets.max()), hist.num_items)} beyond the model's "
            f"num_items = {model.num_items}"
        )
    return hist, targets


@torch.no_grad()
def evaluate(model, split, ks=DEFAULT_KS, exclude_history: bool = True, batch_size: int = 1024,
             device=None, return_ranks: bool = False, *, chunk_size: int | None = None,
             repeated_target: str = "keep", backend: str = "auto") -> dict:
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
    backend : {"auto", "torch", "native"}, default "auto"
        How ranks are counted (`target_ranks`); identical results.

    Returns
    -------
    dict
        ``recall@K``, ``ndcg@K`` for each K, ``mrr``, ``auc``, ``n_users``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_repeated_target(repeated_target)
    hist, targets = _checked_split(model, split)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Users sorted by history length, so that each batch can drop the columns
    # that are padding for all its rows (results are per user, order-free).
    order = np.argsort(hist.lengths, kind="stable")
    hist = hist.subset(order)
    targets = targets[order]
    offsets, items = hist.offsets, hist.items
    ranks = np.empty(targets.size, dtype=np.int64)
    cands = np.empty(targets.size, dtype=np.int64)
    table = model.item_weight()
    if not bool(torch.isfinite(table).all()):
        raise ValueError("the model's item table holds NaN or inf: the model diverged; lower the learning rate")
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
                r, c = item_ranks(h, table, t, rows, cols, chunk_size=chunk_size, backend=backend)
            else:
                r, c = item_ranks(h, table, t, chunk_size=chunk_size, backend=backend)
            r, c = r.cpu().numpy(), c.cpu().numpy()
            if repeated_target == "mask":
                r = np.where(_in_history(offsets, items, targets, b, e), c - 1, r)
            ranks[order[b:e]] = r
            cands[order[b:e]] = c
    finally:
        model.train(was_training)
    out = ranking_metrics(ranks, cands, ks)
    out["n_users"] = int(ranks.size)
    if return_ranks:
        out["ranks"] = ranks
    return out


# ---------------------------------------------------------------------------
# Multi-stage evaluation (UniDS): recall, coarse ranking and fine ranking.

#: The metrics UniDS (Table 1) reports for each stage of a recommender.
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
    hist, targets = _checked_split(model, split)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = np.argsort(hist.lengths, kind="stable")
    hist = hist.subset(order)
    targets = targets[order]
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
