"""One step of constrained (hybrid) greedy decoding over a large item vocabulary.

For each row ``b`` (one sequence being regenerated) this returns::

    argmax_{v in C_b}  states[b] . table[v]

with ties broken by the lowest id, where the candidate set ``C_b`` is

* generative rows (``generative[b]``): every id in ``[vocab_start, vocab_stop)``;
* restrictive rows: the ids of ``allowed[b]`` that lie in ``[vocab_start, vocab_stop)``;

minus, in both cases, the ids already in ``generated[b]`` (an item is never
repeated inside one pattern). A row with no candidate gets id ``-1`` and
score ``-inf``. Scores must be finite: every path refuses ``states`` or
``table`` holding NaN or inf, or so large that a float32 dot product could
overflow (``D * max|states| * max|table|`` beyond float32's range), with a
``ValueError`` -- a NaN has no place in an argmax, and the paths would
otherwise each resolve it differently. This is the decision rule of DR4SR's hybrid inference (paper
§4.2.3): generative steps may produce any item, restrictive steps only items
of the input sequence.

The authors' code builds the full (B, V) logit matrix and a (B, V) mask each
step. Neither path here does:

* `constrained_argmax_torch` (the reference and CPU path) scores generative
  rows a vocabulary chunk at a time, keeping a running max/argmax (peak extra
  memory ``B x chunk_size`` floats), and scores restrictive rows only on their
  allowed items (``B x S``);
* the triton path tiles the vocabulary: one program per (row block, vocabulary
  tile) computes a ``BLOCK_B x BLOCK_V`` score tile with ``tl.dot``, masks it
  and writes that tile's max and lowest-id argmax; a second kernel reduces the
  per-tile partials of each generative row (two-stage reduction) and scores
  the restrictive rows on their allowed ids only. Peak extra memory is
  ``B x ceil(V / BLOCK_V)`` partials.

`constrained_argmax_naive` is the full-logits version (the test oracle and
the benchmark baseline); `constrained_argmax` dispatches.
"""

from __future__ import annotations

import functools

import torch

from ._backend import resolve_backend

__all__ = ["constrained_argmax", "constrained_argmax_torch", "constrained_argmax_naive", "table_max_abs"]

_NO_ID = -1
_INT_MAX = 2**31 - 1


def _prepare(states, table, allowed, generated, generative, vocab_start, vocab_stop, table_max_abs=None):
    """Validate the inputs; return them normalised (2-D id matrices, bool mode, stop)."""
    for name, t in (("states", states), ("table", table), ("allowed", allowed),
                    ("generated", generated), ("generative", generative)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
    if states.dim() != 2:
        raise ValueError(f"states must have shape (B, D), got {tuple(states.shape)}")
    if table.dim() != 2:
        raise ValueError(f"table must have shape (V, D), got {tuple(table.shape)}")
    B, D = states.shape
    V = table.shape[0]
    if table.shape[1] != D:
        raise ValueError(f"states have D = {D} but table rows have {table.shape[1]}")
    if not states.is_floating_point() or not table.is_floating_point():
        raise TypeError(f"states and table must be floating point, got {states.dtype}, {table.dtype}")
    if generative.shape != (B,):
        raise ValueError(f"generative must have shape (B,) = ({B},), got {tuple(generative.shape)}")
    if generative.dtype != torch.bool:
        raise TypeError(f"generative must be a bool tensor, got {generative.dtype}")
    if allowed.dim() != 2 or allowed.shape[0] != B:
        raise ValueError(f"allowed must have shape (B, S) with B = {B}, got {tuple(allowed.shape)}")
    if generated.dim() != 2 or generated.shape[0] != B:
        raise ValueError(f"generated must have shape (B, T) with B = {B}, got {tuple(generated.shape)}")
    for name, t in (("allowed", allowed), ("generated", generated)):
        if t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must hold int32/int64 ids (-1 = padding), got {t.dtype}")
        if t.numel():
            lo, hi = int(t.min()), int(t.max())
            if lo < -1 or hi >= V:
                bad = lo if lo < -1 else hi
                raise ValueError(f"{name} holds id {bad}, outside [-1, {V}) (V = table rows, -1 = padding)")
    stop = V if vocab_stop is None else int(vocab_stop)
    if not 0 <= int(vocab_start) <= stop <= V:
        raise ValueError(f"need 0 <= vocab_start <= vocab_stop <= V = {V}; got {vocab_start}, {vocab_stop}")
    devices = {t.device for t in (states, table, allowed, generated, generative)}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(map(str, devices))}")
    _check_finite_scores(states, table, table_max_abs)
    return allowed.long(), generated.long(), int(vocab_start), stop


_F32_MAX = torch.finfo(torch.float32).max


def table_max_abs(table: torch.Tensor) -> float:
    """``max |table|``, after checking that every entry is finite (ValueError otherwise).

    One O(V x D) pass: a caller that decodes many steps with one table (hybrid
    inference) calls this once and passes the result to `constrained_argmax`
    as ``table_max_abs``, which then checks only the states each step. At
    700,000 items this scan had cost more than the scoring itself.
    """
    if not isinstance(table, torch.Tensor) or table.dim() != 2:
        raise ValueError(f"table must be a (V, D) tensor, got {getattr(table, 'shape', type(table).__name__)}")
    _check_finite(("table", table))
    return float(table.abs().max()) if table.numel() else 0.0


def _check_finite(*named) -> None:
    for name, t in named:
        if t.numel() == 0:
            continue
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            row = int(bad.any(dim=1).nonzero()[0])
            value = float(t[row][bad[row]][0])
            raise ValueError(
                f"{name} row {row} holds {value}; constrained_argmax needs finite states and table "
                "(a NaN state usually means the model diverged)")


def _check_finite_scores(states, table, table_bound=None) -> None:
    """ValueError unless every score ``states[b] . table[v]`` is a finite float32.

    NaN or inf inputs (a diverged model, typically) would make the argmax
    undefined, and each path resolves it its own way (torch's max propagates
    NaN, triton's drops it). Finite inputs with ``D * max|states| *
    max|table|`` below float32's maximum bound every product and partial sum,
    so no score can overflow to inf or NaN either. ``table_bound``: ``max
    |table|`` from `table_max_abs` (the table then is not scanned again).
    """
    if table_bound is None:
        _check_finite(("states", states), ("table", table))
        table_bound = float(table.abs().max()) if table.numel() else 0.0
    else:
        table_bound = float(table_bound)
        if not 0.0 <= table_bound < float("inf"):
            raise ValueError(f"table_max_abs must be a finite number >= 0 (from table_max_abs(table)), "
                             f"got {table_bound}")
        _check_finite(("states", states))
    if states.numel() and table.numel():
        bound = states.shape[1] * float(states.abs().max()) * table_bound
        if bound >= _F32_MAX:
            raise ValueError(
                f"states and table are too large for float32 scores: D * max|states| * max|table| = {bound:.3g} "
                f"reaches {_F32_MAX:.3g}, so a score could overflow to inf; rescale them")


def _no_candidates(B: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(-1, -inf) for every row: the answer when the vocabulary is empty."""
    return (torch.full((B,), _NO_ID, dtype=torch.long, device=device),
            torch.full((B,), float("-inf"), dtype=torch.float32, device=device))


def constrained_argmax_naive(states, table, allowed, generated, generative, *, vocab_start=0, vocab_stop=None):
    """Full-logits version: builds the (B, V) logits and mask, as the authors' code does.

    Same contract as `constrained_argmax`; memory O(B x V). Used as the test
    oracle and the benchmark baseline, never by the library.
    """
    allowed, generated, start, stop = _prepare(states, table, allowed, generated, generative, vocab_start, vocab_stop)
    B, V = states.shape[0], table.shape[0]
    if V == 0:
        return _no_candidates(B, states.device)
    logits = states.float() @ table.float().T
    mask = torch.zeros((B, V + 1), dtype=torch.bool, device=states.device)  # column V absorbs padding
    mask[generative, start:stop] = True
    restrictive = ~generative
    a = torch.where(allowed < 0, V, allowed)
    rows = torch.arange(B, device=states.device)[:, None].expand_as(a)
    keep = restrictive[:, None].expand_as(a)
    mask[rows[keep], a[keep]] = True
    mask[:, :start] = False
    mask[:, stop:] = False
    g = torch.where(generated < 0, V, generated)
    mask.scatter_(1, g, False)
    logits = logits.masked_fill(~mask[:, :V], float("-inf"))
    best, ids = logits.max(dim=1)  # torch documents: first (lowest) index among ties
    ids = torch.where(best == float("-inf"), _NO_ID, ids)
    return ids, best


def _restrictive_torch(states, table, allowed, generated, start, stop):
    """Scores of restrictive rows on their allowed ids only: (R, S) work and memory."""
    valid = (allowed >= start) & (allowed < stop)
    if generated.shape[1]:
        valid &= ~(allowed[:, :, None] == generated[:, None, :]).any(-1)
    rows = table[allowed.clamp(min=0)].float()  # (R, S, D)
    scores = torch.einsum("rsd,rd->rs", rows, states.float())
    scores = scores.masked_fill(~valid, float("-inf"))
    if scores.shape[1] == 0:
        return (torch.full((scores.shape[0],), _NO_ID, dtype=torch.long, device=states.device),
                torch.full((scores.shape[0],), float("-inf"), device=states.device))
    best = scores.max(dim=1).values
    # lowest id among the maximal allowed ids (allowed is not sorted)
    ties = valid & (scores == best[:, None])
    ids = torch.where(ties, allowed, _INT_MAX).min(dim=1).values
    ids = torch.where(best == float("-inf"), _NO_ID, ids)
    return ids, best


def constrained_argmax_torch(states, table, allowed, generated, generative, *, vocab_start=0, vocab_stop=None,
                             chunk_size: int = 8192, table_max_abs: float | None = None):
    """Vocabulary-chunked torch version of `constrained_argmax` (the reference and CPU path).

    Extra memory is ``B x chunk_size`` floats for generative rows and
    ``B x S x D`` for restrictive rows, never ``B x V``.
    """
    allowed, generated, start, stop = _prepare(states, table, allowed, generated, generative, vocab_start, vocab_stop,
                                               table_max_abs)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    B = states.shape[0]
    dev = states.device
    if table.shape[0] == 0:  # nothing to index the table with (restrictive rows would)
        return _no_candidates(B, dev)
    ids = torch.full((B,), _NO_ID, dtype=torch.long, device=dev)
    best = torch.full((B,), float("-inf"), dtype=torch.float32, device=dev)
    gen_rows = torch.nonzero(generative).flatten()
    res_rows = torch.nonzero(~generative).flatten()
    if res_rows.numel():
        r_ids, r_best = _restrictive_torch(states[res_rows], table, allowed[res_rows], generated[res_rows], start, stop)
        ids[res_rows] = r_ids
        best[res_rows] = r_best
    if gen_rows.numel() and stop > start:
        ids[gen_rows], best[gen_rows] = _generative_torch(states[gen_rows].float(), table, generated[gen_rows],
                                                          start, stop, chunk_size)
    return ids, best


def _generative_torch(s, table, g, start, stop, chunk_size):
    """Argmax of ``s @ table[start:stop].T`` (n, D) per row, minus the ids in ``g``, a chunk at a time.

    Chunks are at most ``chunk_size`` wide (narrower for many rows). Each
    chunk's scores land in one reused buffer; the chunk's row maxima
    come from ``amax`` (a plain vectorised reduction, ~5x cheaper than
    ``max(dim=1)`` with indices, which had cost as much as the matmul), and
    the position of the maximum is looked up only in the rows whose best it
    beats, a few chunks per row. Same scores, same comparisons: the result
    is that of ``max(dim=1)`` per chunk (first index among ties) with the
    earlier chunk kept on ties across chunks.
    """
    dev = s.device
    n = s.shape[0]
    g_ids = torch.full((n,), _NO_ID, dtype=torch.long, device=dev)
    g_best = torch.full((n,), float("-inf"), dtype=torch.float32, device=dev)
    row_of = torch.arange(n, device=dev)[:, None].expand_as(g)
    # many rows: narrower chunks, so that one chunk's scores (n x width) stay near the cache between the
    # matmul that writes them and the reductions that read them (measured: 2048 beats 8192 from ~1000 rows)
    step = min(chunk_size, max(2048, 2**21 // n))
    buf = torch.empty(n * min(step, stop - start), dtype=torch.float32, device=dev)
    for c0 in range(start, stop, step):
        c1 = min(c0 + step, stop)
        scores = torch.mm(s, table[c0:c1].float().T, out=buf[: n * (c1 - c0)].view(n, c1 - c0))
        rel = g - c0
        hit = (g >= 0) & (rel >= 0) & (rel < c1 - c0)
        scores[row_of[hit], rel[hit]] = float("-inf")
        m = scores.amax(dim=1)
        # strict '>' keeps the earlier chunk (lower ids) on ties across chunks
        upd = torch.nonzero(m > g_best).flatten()
        if upd.numel():
            g_best[upd] = m[upd]
            g_ids[upd] = scores[upd].argmax(dim=1) + c0  # first (lowest) index among ties
    return g_ids, g_best


def constrained_argmax(states: torch.Tensor, table: torch.Tensor, allowed: torch.Tensor,
                       generated: torch.Tensor, generative: torch.Tensor, *, vocab_start: int = 0,
                       vocab_stop: int | None = None, backend: str = "auto",
                       chunk_size: int = 8192, table_max_abs: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Constrained argmax of ``states @ table.T`` per row, without the (B, V) logits.

    Parameters
    ----------
    states : torch.Tensor, shape (B, D), float
        Decoder output of each row at this step.
    table : torch.Tensor, shape (V, D), float
        Output embedding table (the regenerator ties it to its item table).
    allowed : torch.Tensor, shape (B, S), int32/int64
        Ids a restrictive row may produce (its input sequence, plus EOS),
        padded with -1; ignored for generative rows.
    generated : torch.Tensor, shape (B, T), int32/int64
        Ids each row has already produced, padded with -1; never produced again.
        ``T`` may be 0.
    generative : torch.Tensor, shape (B,), bool
        True: the row may produce any id in ``[vocab_start, vocab_stop)``;
        False: only its allowed ids.
    vocab_start, vocab_stop : int
        Range of ids that can ever be produced (default all of ``[0, V)``);
        the regenerator uses it to exclude PAD and BOS.
    backend : {"auto", "torch", "triton"}
        ``"auto"``: triton on CUDA tensors, torch otherwise.
    chunk_size : int, default 8192
        Vocabulary chunk of the torch path (memory ``B x chunk_size`` floats).
    table_max_abs : float, optional
        ``max |table|`` as `table_max_abs` returned it (it also checks the
        table is finite): a caller scoring many steps against one table saves
        an O(V x D) scan per call. By default the table is scanned here.

    Returns
    -------
    ids : torch.Tensor, shape (B,), int64
        Chosen id per row (lowest id among equal scores); -1 where no id is allowed.
    scores : torch.Tensor, shape (B,), float32
        Its score (``-inf`` where no id is allowed).
    """
    if resolve_backend(backend, states, table) == "torch":
        return constrained_argmax_torch(states, table, allowed, generated, generative, vocab_start=vocab_start,
                                        vocab_stop=vocab_stop, chunk_size=chunk_size, table_max_abs=table_max_abs)
    allowed, generated, start, stop = _prepare(states, table, allowed, generated, generative, vocab_start, vocab_stop,
                                               table_max_abs)
    if table.shape[0] == 0:
        return _no_candidates(states.shape[0], states.device)
    return _constrained_argmax_triton(states, table, allowed, generated, generative, start, stop)


# ---------------------------------------------------------------- triton side
_BLOCK_B = 16    # rows per program of the tile kernel (tl.dot needs >= 16)
_BLOCK_V = 128   # vocabulary tile
_BLOCK_T = 1024  # partials reduced per iteration of the finishing kernel


@functools.lru_cache(maxsize=1)
def _kernels():
    # Decorated on first use (see memory_mix._kernels for why).
    import triton
    import triton.language as tl

    @triton.jit
    def tile_kernel(s_ptr, t_ptr, gen_ptr, mode_ptr, pval_ptr, pidx_ptr,
                    B, D, T, start, stop, NT,
                    BLOCK_B: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
        # vocabulary tiles on axis 0: its grid limit is 2**31 - 1, axis 1's only 65535
        pv = tl.program_id(0)
        pb = tl.program_id(1)
        rows = pb * BLOCK_B + tl.arange(0, BLOCK_B)
        rmask = rows < B
        mode = tl.load(mode_ptr + rows, mask=rmask, other=0)
        active = rmask & (mode != 0)
        cols = start + pv * BLOCK_V + tl.arange(0, BLOCK_V)
        cmask = cols < stop
        acc = tl.zeros([BLOCK_B, BLOCK_V], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dd = d0 + tl.arange(0, BLOCK_D)
            dmask = dd < D
            s = tl.load(s_ptr + rows[:, None].to(tl.int64) * D + dd[None, :],
                        mask=rmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
            t = tl.load(t_ptr + cols[None, :].to(tl.int64) * D + dd[:, None],
                        mask=cmask[None, :] & dmask[:, None], other=0.0).to(tl.float32)
            # ieee: exact fp32 products, so the argmax matches the torch path
            acc += tl.dot(s, t, input_precision="ieee")
        valid = active[:, None] & cmask[None, :]
        for ti in range(T):
            g = tl.load(gen_ptr + rows.to(tl.int64) * T + ti, mask=rmask, other=-1)
            valid = valid & (cols[None, :] != g[:, None])
        acc = tl.where(valid, acc, float("-inf"))
        m = tl.max(acc, axis=1)
        cand = tl.where(valid & (acc == m[:, None]), cols[None, :], 2147483647)
        idx = tl.min(cand, axis=1)
        out = rows.to(tl.int64) * NT + pv
        tl.store(pval_ptr + out, m, mask=rmask)
        tl.store(pidx_ptr + out, idx, mask=rmask)

    @triton.jit
    def finish_kernel(s_ptr, t_ptr, allowed_ptr, gen_ptr, mode_ptr, pval_ptr, pidx_ptr, id_ptr, val_ptr,
                      D, S, T, start, stop, NT,
                      BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr):
        r = tl.program_id(0)
        r64 = r.to(tl.int64)
        mode = tl.load(mode_ptr + r)
        best = tl.full([], float("-inf"), tl.float32)
        bid = tl.full([], 2147483647, tl.int32)
        if mode != 0:
            # stage 2 of the generative reduction: tiles are in id order, so
            # keep the lowest id among equal maxima
            for t0 in range(0, NT, BLOCK_T):
                tt = t0 + tl.arange(0, BLOCK_T)
                tm = tt < NT
                v = tl.load(pval_ptr + r64 * NT + tt, mask=tm, other=float("-inf"))
                i = tl.load(pidx_ptr + r64 * NT + tt, mask=tm, other=2147483647)
                m = tl.max(v, axis=0)
                ci = tl.min(tl.where(tm & (v == m), i, 2147483647), axis=0)
                better = (m > best) | ((m == best) & (ci < bid))
                best = tl.where(better, m, best)
                bid = tl.where(better, ci, bid)
        else:
            ss = tl.arange(0, BLOCK_S)
            smask = ss < S
            a = tl.load(allowed_ptr + r64 * S + ss, mask=smask, other=-1)
            valid = smask & (a >= start) & (a < stop)
            for ti in range(T):
                g = tl.load(gen_ptr + r64 * T + ti)
                valid = valid & (a != g)
            acc = tl.zeros([BLOCK_S], dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                dd = d0 + tl.arange(0, BLOCK_D)
                dmask = dd < D
                s = tl.load(s_ptr + r64 * D + dd, mask=dmask, other=0.0).to(tl.float32)
                t = tl.load(t_ptr + a[:, None].to(tl.int64) * D + dd[None, :],
                            mask=valid[:, None] & dmask[None, :], other=0.0).to(tl.float32)
                acc += tl.sum(t * s[None, :], axis=1)
            acc = tl.where(valid, acc, float("-inf"))
            best = tl.max(acc, axis=0)
            bid = tl.min(tl.where(valid & (acc == best), a, 2147483647), axis=0)
        found = bid != 2147483647
        tl.store(id_ptr + r, tl.where(found, bid, -1).to(tl.int64))
        tl.store(val_ptr + r, tl.where(found, best, float("-inf")))

    return tile_kernel, finish_kernel


def _next_pow2(n: int, floor: int) -> int:
    p = floor
    while p < n:
        p *= 2
    return p


def _constrained_argmax_triton(states, table, allowed, generated, generative, start, stop):
    import triton

    B, D = states.shape
    dev = states.device
    states = states.contiguous()
    table = table.contiguous()
    allowed = allowed.to(torch.int32).contiguous()
    generated = generated.to(torch.int32).contiguous()
    mode = generative.to(torch.int8).contiguous()
    # kernels index real memory: give empty id matrices one padding column
    if allowed.shape[1] == 0:
        allowed = torch.full((B, 1), -1, dtype=torch.int32, device=dev)
    if generated.shape[1] == 0:
        generated = torch.full((B, 1), -1, dtype=torch.int32, device=dev)
    T = generated.shape[1]
    S = allowed.shape[1]
    ids = torch.empty((B,), dtype=torch.long, device=dev)
    vals = torch.empty((B,), dtype=torch.float32, device=dev)
    if B == 0:
        return ids, vals
    block_d = min(_next_pow2(D, 16), 128)
    nt = max(triton.cdiv(stop - start, _BLOCK_V), 0)
    pval = torch.empty((B, max(nt, 1)), dtype=torch.float32, device=dev)
    pidx = torch.empty((B, max(nt, 1)), dtype=torch.int32, device=dev)
    tile_kernel, finish_kernel = _kernels()
    if nt and bool(generative.any()):
        tile_kernel[(nt, triton.cdiv(B, _BLOCK_B))](
            states, table, generated, mode, pval, pidx, B, D, T, start, stop, nt,
            BLOCK_B=_BLOCK_B, BLOCK_V=_BLOCK_V, BLOCK_D=block_d)
    finish_kernel[(B,)](
        states, table, allowed, generated, mode, pval, pidx, ids, vals, D, S, T, start, stop, nt,
        BLOCK_S=_next_pow2(S, 16), BLOCK_D=block_d, BLOCK_T=min(_next_pow2(nt, 16), _BLOCK_T))
    return ids, vals
