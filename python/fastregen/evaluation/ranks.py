"""Target ranks: the full-ranking count, on a score matrix (`target_ranks`) or from hidden states and the
item table without ever holding all scores (`item_ranks`).

Ties are broken pessimistically (see `fastregen.evaluation`). On CPU the
count is the compiled `fastregen._core.rank_counts` (reference
`fastregen.reference.ranks`), blocked over items and users so a block of
scores stays in cache between the product and the count; ``backend="torch"``
is the tensor path it is tested against. Where the CPU has AMX tiles,
`item_ranks` ranks float32 scores by `fastregen._core.amx_rank_counts`
(``backend="amx"``, issue 28): a bf16 pass with a proven error bound decides
almost every comparison and the exact float32 score decides the rest, so the
ranks are those of the exact scores (csrc/amx_ranks.hpp).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .. import _core
from .metrics import _check_max_rank

__all__ = ["target_ranks", "item_ranks", "FULL_SCORES_LIMIT"]

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
#: ``backend="auto"`` takes the AMX path up to this many dimensions: there the exact score (an fma chain
#: over k in order) is what MKL's sgemm, hence the other backends, computes (tests/test_ranks_amx.py).
_AMX_MAX_DIM = 256


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
    if backend == "amx":  # item_ranks' own: here (target_ranks, stage_scores) the native count
        backend = "native"
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
    fits = scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64)
    if backend == "native" and not fits:
        raise ValueError(f"backend='native' ranks CPU float32/float64 scores, got {scores.dtype} on {scores.device}")
    return backend == "native" or (backend == "auto" and fits)


def _use_amx(backend: str, hidden: torch.Tensor, table: torch.Tensor) -> bool:
    """Whether `item_ranks` runs the two-pass AMX count (see its ``backend``); ValueError when
    ``backend="amx"`` cannot run."""
    if backend not in _BACKENDS + ("amx",):
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS + ('amx',))}, got {backend!r}")
    if backend not in ("auto", "amx"):
        return False
    fits = (hidden.device.type == "cpu" and table.device.type == "cpu" and hidden.dtype == torch.float32
            and table.dtype == torch.float32)
    if backend == "amx":
        if not fits:
            raise ValueError(f"backend='amx' ranks CPU float32 scores, got hidden {hidden.dtype} on {hidden.device}, "
                             f"table {table.dtype} on {table.device}")
        if not _core.amx_available():
            raise ValueError("backend='amx' needs a CPU with AMX-BF16 tiles (and an OS granting them); use 'auto'")
        return True
    return (fits and hidden.shape[0] >= _MIN_BLOCK_ROWS and hidden.shape[1] <= _AMX_MAX_DIM
            and _core.amx_available())


class _AmxTable(NamedTuple):
    """An item table ready for `_core.amx_rank_counts`: its rows in scan order (``table``, float32
    C-contiguous), packed (``packed``), and each item's row there (``position``, int64 (C,), None for
    the identity)."""

    table: np.ndarray
    packed: object
    position: np.ndarray | None


def _amx_ranks(hidden, table, targets, er, ec, threads, packed=None, max_rank=None, stats=None):
    """`item_ranks` by `fastregen._core.amx_rank_counts` (inputs checked by `_checked_item_inputs`);
    ``packed`` (`_amx_table`) saves packing the table again for each batch of users. With ``max_rank``
    the items are scanned in `_segments` of the table in `_amx_table`'s ``"norm"`` order. ``stats``
    (a dict) gets the kernel's ``scanned`` and ``rechecked`` pairs added."""
    B, C = hidden.shape[0], table.shape[0]
    if packed is None:
        packed = _amx_table(table, "amx", threads, order="id" if max_rank is None else "norm")
    t = targets.long().cpu().numpy()
    if packed.position is not None:  # ids to rows of the reordered table: a rank does not depend on the order
        t = packed.position[t]
        ec = None if ec is None else torch.from_numpy(packed.position[ec.cpu().numpy()])
    ex_offsets, ex_items = _exclusion_csr(er, ec, B, C)
    bounds = None if max_rank is None else _segments(C)
    count, excluded, rechecked, _, scanned = _core.amx_rank_counts(
        hidden.contiguous().numpy(), packed.table, packed.packed, t, ex_offsets, ex_items, threads,
        max_rank=max_rank, bounds=bounds)
    if stats is not None:
        stats["scanned"] = stats.get("scanned", 0) + scanned
        stats["rechecked"] = stats.get("rechecked", 0) + rechecked
    return torch.from_numpy(count), torch.from_numpy(C - 1 - excluded)


#: `_segments`: the first segment of a capped AMX scan (items), the factor by which each next one
#: grows, and the largest. Small segments first, because with the items in descending norm order most
#: users stop within the first few thousand items; larger ones later, because each segment costs a
#: compaction and a parallel region. At Books' shape (a trained SASRec, cap 50) first segments of 256 to
#: 2,048 items tie (`benchmarks/engine.py scan-order`, the scan_order rows of results/engine.csv).
_FIRST_SEGMENT = 1024
_SEGMENT_GROWTH = 2
_LARGEST_SEGMENT = 32768


def _segments(C: int, first: int | None = None, growth: float | None = None,
              largest: int | None = None) -> np.ndarray:
    """Item boundaries ``0 = b_0 < ... < b_n = C`` of a capped scan (int64): segments of ``first``
    items, then each ``growth`` times the last, at most ``largest``."""
    first = _FIRST_SEGMENT if first is None else first
    growth = _SEGMENT_GROWTH if growth is None else growth
    largest = _LARGEST_SEGMENT if largest is None else largest
    bounds, size, at = [0], float(first), 0
    while at < C:
        at = min(C, at + max(1, int(size)))
        bounds.append(at)
        size = min(size * growth, largest)
    return np.asarray(bounds, dtype=np.int64)


#: `_amx_table`'s scan orders: item ids as they are, or descending item norm (item 0 first either way).
SCAN_ORDERS = ("id", "norm")


def _amx_table(table: torch.Tensor, backend: str = "auto", threads: int | None = None, *, order: str = "id"):
    """The item table packed for `item_ranks`' AMX path (pass it as ``_packed`` for every batch scored
    against this very table), or None when ``backend`` would not take that path for it.

    ``order="norm"``: the items 1..C-1 in descending order of their norm (ties by id; padding stays
    row 0), the order a capped count (``max_rank``) scans them in: an item of large norm scores high
    for many users, so that users reach their cap, and stop, earlier."""
    if order not in SCAN_ORDERS:
        raise ValueError(f"order must be one of {', '.join(SCAN_ORDERS)}, got {order!r}")
    table = table.detach()
    probe = torch.empty(_MIN_BLOCK_ROWS, table.shape[1], dtype=torch.float32)
    if not _use_amx(backend, probe, table):
        return None
    table_np = table.contiguous().numpy()
    position = None
    if order == "norm" and table_np.shape[0] > 2:
        norms = torch.linalg.vector_norm(torch.from_numpy(table_np[1:]), dim=1).numpy()
        rows = np.r_[0, 1 + np.argsort(-norms, kind="stable")]  # NaN norms last
        position = np.empty_like(rows)
        position[rows] = np.arange(rows.size)
        table_np = np.ascontiguousarray(table_np[rows])
    return _AmxTable(table_np, _core.pack_items(table_np, _threads(threads)), position)


def _threads(threads: int | None) -> int:
    return torch.get_num_threads() if threads is None else int(threads)


def _checked_item_inputs(hidden, targets, exclude_rows, exclude_cols, C: int):
    """`item_ranks`' targets and excluded pairs checked once for whichever path ranks them: the
    ``(rows, items)`` of `_checked_exclusions`."""
    B = hidden.shape[0]
    if targets.dim() != 1 or targets.size(0) != B:
        raise ValueError(f"hidden (B, d) and targets (B,) do not match: {tuple(hidden.shape)} vs {tuple(targets.shape)}")
    _check_targets(targets, C)
    return _checked_exclusions(exclude_rows, exclude_cols, B, C)


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
               threads: int | None = None, max_rank: int | None = None, _packed=None,
               _stats: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
    backend : {"auto", "torch", "native", "amx"}, default "auto"
        As in `target_ranks` (``"native"``: the compiled kernel counts each
        chunk, CPU only). ``"amx"``: `fastregen._core.amx_rank_counts`, the
        two-pass count (bf16 tiles, then the exact score of the pairs the
        error bound leaves open; csrc/amx_ranks.hpp); CPU float32 with AMX
        only, ``chunk_size`` unused (it never holds a block of scores beyond
        32 x 32). Its score is the float32 fma chain over the dimensions in
        order (`fastregen.reference.ranks.fma_scores`), what MKL's sgemm
        computes for d <= 300 and >= 16 rows, so ``"auto"`` takes it for
        CPU float32, at least `_MIN_BLOCK_ROWS` rows and d <= `_AMX_MAX_DIM`
        when the CPU has AMX (else native / torch as before): all backends
        then give identical ranks.
    threads : int, optional
        As in `target_ranks`.
    max_rank : int, optional
        A cap m >= 1: the ranks returned are ``min(rank, m)``, exactly,
        which decides every ``recall@k`` / ``ndcg@k`` with k <= m (and no
        other metric of the rank). The AMX path counts only as far as it
        must: it scans the items (in descending norm order) a segment at a
        time and drops each user as soon as m candidates are known to score
        at least its target's score, or no later item's norm lets it reach
        that score (csrc/amx_ranks.hpp); the other paths rank fully and
        clip. ``n_candidates`` is never capped.
    """
    max_rank = _check_max_rank(max_rank)
    ranks, n_candidates = _item_ranks(hidden, table, targets, exclude_rows, exclude_cols, chunk_size, backend,
                                      threads, max_rank, _packed, _stats)
    if max_rank is not None:
        ranks = ranks.clamp(max=max_rank)  # a no-op on the AMX path's capped counts
    return ranks, n_candidates


def _item_ranks(hidden, table, targets, exclude_rows, exclude_cols, chunk_size, backend, threads, max_rank,
                _packed, _stats):
    """`item_ranks` after its own argument check: the paths (``max_rank`` reaches the AMX path only)."""
    if hidden.dim() != 2 or table.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden (B, d) and table (C, d) do not match: {tuple(hidden.shape)} vs {tuple(table.shape)}")
    B, C = hidden.shape[0], table.shape[0]
    if chunk_size is None:
        chunk_size = C if B * C <= FULL_SCORES_LIMIT else max(_CHUNK_ELEMENTS // max(B, 1), 1)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    hidden, table = hidden.detach(), table.detach()
    if _use_amx(backend, hidden, table):
        er, ec = _checked_item_inputs(hidden, targets, exclude_rows, exclude_cols, C)
        return _amx_ranks(hidden, table, targets, er, ec, _threads(threads), _packed, max_rank, _stats)
    if chunk_size >= C and B >= _MIN_BLOCK_ROWS and _use_native(backend, hidden.new_empty(0, dtype=torch.result_type(hidden, table))):
        er, ec = _checked_item_inputs(hidden, targets, exclude_rows, exclude_cols, C)
        return _full_ranks_native(hidden, table, targets, er, ec, _threads(threads))
    if chunk_size >= C:
        return target_ranks(hidden @ table.T, targets, exclude_rows, exclude_cols, inplace=True, backend=backend,
                            threads=threads)
    er, ec = _checked_item_inputs(hidden, targets, exclude_rows, exclude_cols, C)
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


def _full_ranks_native(hidden, table, targets, er, ec, threads):
    """`target_ranks` of ``hidden @ table.T`` with the compiled count, the scores computed a block of
    rows at a time (`_SCORE_BLOCK` scores): the block stays in cache between the product that writes
    it and the count that reads it (on Beauty's 12k items, one thread, this more than halves the
    product's time: `benchmarks/engine.py validation`, benchmarks/results/engine.csv). Blocks have at least
    `_MIN_BLOCK_ROWS` rows: matrix kernels treat very thin products differently and may round a
    score otherwise in its last bit. Inputs checked by `_checked_item_inputs`."""
    B, C = hidden.shape[0], table.shape[0]
    dtype = torch.result_type(hidden, table)
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
