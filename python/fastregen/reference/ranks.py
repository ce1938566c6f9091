"""NumPy reference of the rank-counting kernel in ``csrc/ranks.hpp``.

`rank_counts` is the test oracle of the compiled ``fastregen._core.rank_counts``
(what `fastregen.evaluation.target_ranks` and `item_ranks` call on CPU): the
same counts, written the plain way, with the ``B x width`` comparison matrix
the kernel avoids. `fma_scores` is the exact float32 score of the two-pass
kernel in ``csrc/amx_ranks.hpp`` (``fastregen._core.exact_scores``, the scores
`fastregen.evaluation.item_ranks` ranks with ``backend="amx"``), and
`capped_rank_counts` that kernel's count with a rank cap (``max_rank``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rank_counts", "fma_scores", "capped_rank_counts"]


def rank_counts(scores, targets, thresholds, ex_offsets, ex_items, c0: int = 0, n_columns: int | None = None,
                lo=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-row candidate counts of the block of columns ``[c0, c0 + width)`` of a score matrix.

    Parameters
    ----------
    scores : np.ndarray of float32 or float64, shape (B, width)
        ``scores[r, j - c0]`` is row r's score of item j.
    targets : array of int64, shape (B,)
        Each row's target item, in ``1..n_columns - 1``.
    thresholds : array of float, shape (B,)
        Each row's comparison value (the target's score for a rank).
    ex_offsets : array of int64, shape (B + 1,)
    ex_items : array of int64, shape (ex_offsets[-1],)
        Row r's excluded items are ``ex_items[ex_offsets[r]:ex_offsets[r + 1]]``
        (ids in ``1..n_columns - 1``, any order, repeats allowed).
    c0 : int, default 0
    n_columns : int, optional
        Columns of the whole matrix (item ids ``0..n_columns - 1``); default
        ``c0 + width``.
    lo : array of float, shape (B,), optional
        Also return the candidates scoring in ``[lo[r], thresholds[r])``.

    Returns
    -------
    count : np.ndarray of int64, shape (B,)
        ``#{j in block : j != 0, j != targets[r], j not excluded,
        scores[r, j - c0] >= thresholds[r]}`` (IEEE ``>=``: false with a NaN).
    excluded : np.ndarray of int64, shape (B,)
        Distinct excluded items of the row inside the block, target aside.
    band_rows : np.ndarray of int64, band_values : np.ndarray of the scores' dtype
        The (row, score) pairs of the band, ordered by row then column
        (empty without ``lo``).
    """
    scores = np.asarray(scores)
    B, width = scores.shape
    n_columns = c0 + width if n_columns is None else n_columns
    targets = np.asarray(targets, dtype=np.int64)
    thr = np.asarray(thresholds, dtype=scores.dtype)
    ex_offsets = np.asarray(ex_offsets, dtype=np.int64)
    ex_items = np.asarray(ex_items, dtype=np.int64)
    if targets.size and (targets.min() < 1 or targets.max() >= n_columns):
        raise ValueError(f"targets must be item ids in 1..{n_columns - 1}")
    if ex_items.size and (ex_items.min() < 1 or ex_items.max() >= n_columns):
        raise ValueError(f"ex_items must be item ids in 1..{n_columns - 1}")
    items = np.arange(c0, c0 + width)
    candidate = np.broadcast_to(items != 0, (B, width)).copy()
    candidate &= items[None, :] != targets[:, None]
    excluded = np.zeros(B, dtype=np.int64)
    for r in range(B):
        ex = np.unique(ex_items[ex_offsets[r] : ex_offsets[r + 1]])
        ex = ex[(ex >= c0) & (ex < c0 + width) & (ex != targets[r])]
        candidate[r, ex - c0] = False
        excluded[r] = ex.size
    with np.errstate(invalid="ignore"):
        count = (candidate & (scores >= thr[:, None])).sum(1).astype(np.int64)
        if lo is None:
            band = np.zeros((B, width), dtype=bool)
        else:
            lo = np.asarray(lo, dtype=scores.dtype)
            band = candidate & (scores >= lo[:, None]) & (scores < thr[:, None])
    rows, cols = np.nonzero(band)
    return count, excluded, rows.astype(np.int64), scores[rows, cols]


def fma_scores(hidden, table) -> np.ndarray:
    """The float32 fused-multiply-add chain of every (row, item) pair.

    ``s = 0; for k in 0..d-1: s = fma(hidden[r, k], table[j, k], s)``, each
    step rounded once to float32 (nearest, ties to even), in that order: the
    score ``csrc/amx_ranks.hpp`` defines (on this project's x86-64 machines
    also what MKL's sgemm returns for d <= 300 and >= 16 rows).

    Parameters
    ----------
    hidden : np.ndarray of float32, shape (B, d)
    table : np.ndarray of float32, shape (C, d)

    Returns
    -------
    np.ndarray of float32, shape (B, C)

    Notes
    -----
    NumPy has no fma. One step is emulated exactly in float64: the product
    of two float32 is exact there (48 bits), ``p + s`` is rounded once to
    float64 (``t``) and its error ``e`` is recovered exactly (TwoSum). Rounding
    ``t`` to float32 gives the fma's result unless ``t`` lies exactly halfway
    between two float32 (no halfway point can lie strictly between the exact
    sum and ``t``: halfway points are float64 numbers, and ``t`` is the float64
    nearest the sum); then the sign of ``e`` says which side the exact sum is on.
    """
    u = np.asarray(hidden, dtype=np.float32).astype(np.float64)
    v = np.asarray(table, dtype=np.float32).astype(np.float64)
    s = np.zeros((u.shape[0], v.shape[0]), dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(u.shape[1]):
            p = u[:, k, None] * v[None, :, k]
            acc = s.astype(np.float64)
            t = p + acc
            # TwoSum: t + e == p + acc exactly
            pv = t - acc
            e = (p - pv) + (acc - (t - pv))
            r = t.astype(np.float32)
            r64 = r.astype(np.float64)
            other = np.where(t > r64, np.nextafter(r, np.float32(np.inf)),
                             np.nextafter(r, np.float32(-np.inf))).astype(np.float64)
            halfway = (t != r64) & ((r64 + other) / 2 == t) & (e != 0) & np.isfinite(t)
            # halfway: the exact sum lies on the side of t that e points to
            pick_other = halfway & ((e > 0) == (other > r64))
            s = np.where(pick_other, other.astype(np.float32), r)
    return s


def capped_rank_counts(hidden, table, targets, ex_offsets, ex_items, max_rank: int,
                       bounds=None) -> tuple[np.ndarray, np.ndarray, int]:
    """The capped count of ``csrc/amx_ranks.hpp`` (``fastregen._core.amx_rank_counts`` with
    ``max_rank``), segment by segment as the kernel scans.

    Each row's count over the items of the segments ``[bounds[s], bounds[s + 1])`` scanned so far
    (candidates as in `rank_counts`, scores `fma_scores`); a row stops once its count reaches
    ``max_rank``, and the count returned is ``min(count, max_rank)``: ``min(full count, max_rank)``
    whatever the segments.

    Parameters
    ----------
    hidden : np.ndarray of float32, shape (B, d)
    table : np.ndarray of float32, shape (C, d)
    targets, ex_offsets, ex_items
        As in `rank_counts` (``n_columns = C``).
    max_rank : int
        The cap m >= 1.
    bounds : array of int64, shape (n + 1,), optional
        ``0 = bounds[0] < ... < bounds[n] = C``; default one segment.

    Returns
    -------
    count : np.ndarray of int64, shape (B,)
        ``min(count, max_rank)``.
    excluded : np.ndarray of int64, shape (B,)
        As in `rank_counts` (never capped).
    scanned : int
        The (row, item) pairs of the segments each row took part in, a row stopping at the cap only:
        the kernel's statistic is at most this (it also stops a row once no later item's norm lets
        it reach the target's score, csrc/amx_ranks.hpp; that changes no count).
    """
    scores = fma_scores(hidden, table)
    B, C = scores.shape
    targets = np.asarray(targets, dtype=np.int64)
    bounds = np.array([0, C]) if bounds is None else np.asarray(bounds, dtype=np.int64)
    thresholds = scores[np.arange(B), targets]
    count = np.zeros(B, dtype=np.int64)
    excluded = np.zeros(B, dtype=np.int64)
    scanned = 0
    for c0, c1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        active = count < max_rank  # rows that still count: the others' full count is already >= max_rank
        scanned += int(active.sum()) * (c1 - c0)
        seg_count, seg_excluded, _, _ = rank_counts(scores[:, c0:c1], targets, thresholds, ex_offsets, ex_items,
                                                    c0, C)
        count += np.where(active, seg_count, 0)
        excluded += seg_excluded
    return np.minimum(count, max_rank), excluded, scanned
