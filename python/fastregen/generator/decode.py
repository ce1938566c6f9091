"""Hybrid inference (DR4SR §4.2.3): decode every memory of every sequence, then deduplicate.

Each step of each row is *generative* (any item) or *restrictive* (only items
of the row's input sequence); the argmax over the allowed ids is
`fastregen.ops.constrained_argmax`, which never builds the (B, V) logits.

The output is assembled as CSR arrays: the decoded patterns of all
sequences and memories sit in one (K x n, P) id matrix, deduplicated by
`deduplicate_rows` (one sort of the rows, no Python per pattern), so the
cost at Amazon-Books scale (800k sequences x K = 5) is a few seconds.
Under torch.distributed each rank decodes whole batches dealt round-robin
(`fastregen.training.distributed`) and rank 0 assembles the result.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .._progress import progress_bar
from ..data import SequenceDataset, stats
from ..ops import constrained_argmax, table_max_abs
from ..training import distributed
from .config import RESTRICT, SCHEDULES, DecodeConfig
from .model import PAD, Regenerator

__all__ = ["hybrid_inference", "step_modes", "deduplicate", "deduplicate_rows", "table2"]


def step_modes(n_rows: int, n_steps: int, *, gamma: float, schedule: str, seed: int, memory: int = 0) -> np.ndarray:
    """Whether each decoding step of each row is generative, a bool (n_rows, n_steps) array.

    Each entry is True with probability ``gamma``, drawn from a generator
    seeded by ``(seed, memory)``, so the draws of a row do not depend on the
    batch it is decoded in. ``schedule="paper"`` uses the draws at every
    step; ``schedule="released"`` makes the first two steps restrictive
    whatever the draw (the authors' ``3.Hybrid_inference.py``, see
    `DecodeConfig.schedule`; with ``gamma = 1`` every later step is
    generative, as released).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {schedule!r}")
    modes = np.random.default_rng([seed, memory]).random((n_rows, n_steps)) < gamma
    if schedule == "released":
        modes[:, :2] = False
    return modes


def deduplicate(patterns: list[np.ndarray], min_len: int, return_index: bool = False):
    """Drop patterns shorter than ``min_len`` and repeats (first occurrence kept, order preserved).

    Returns ``(kept, counts)``, and with ``return_index`` also the position in
    ``patterns`` of each kept one (int64).

    The one-pattern-at-a-time reference of `deduplicate_rows`.
    """
    seen: set[bytes] = set()
    out, index, short, dup = [], [], 0, 0
    for k, p in enumerate(patterns):
        if p.size < min_len:
            short += 1
            continue
        key = p.astype(np.int32).tobytes()
        if key in seen:
            dup += 1
            continue
        seen.add(key)
        out.append(p)
        index.append(k)
    counts = {"decoded": len(patterns), "too_short": short, "duplicates": dup, "kept": len(out)}
    if return_index:
        return out, counts, np.asarray(index, dtype=np.int64)
    return out, counts


def deduplicate_rows(rows: np.ndarray, min_len: int) -> tuple[np.ndarray, dict]:
    """`deduplicate` for patterns stored as the rows of a zero-padded id matrix, vectorised.

    Parameters
    ----------
    rows : np.ndarray of int, shape (M, P)
        Row r is a pattern (ids >= 1) followed by zeros.
    min_len : int
        Shorter patterns are dropped.

    Returns
    -------
    keep : np.ndarray of int64, shape (kept,)
        Increasing indices of the rows kept: each distinct pattern of length
        >= ``min_len`` at its first occurrence, as `deduplicate` keeps them.
    info : dict
        ``decoded``, ``too_short``, ``duplicates``, ``kept``, as `deduplicate`.

    Notes
    -----
    Two zero-padded rows are equal exactly when their patterns are, so the
    rows are compared as opaque byte strings: one stable sort
    (``np.unique(..., return_index=True)`` over a void view) finds each
    distinct row's first occurrence.
    """
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"rows must be a 2-D id matrix, got shape {rows.shape}")
    M = rows.shape[0]
    long_enough = np.flatnonzero((rows != 0).sum(1) >= min_len) if M else np.zeros(0, np.int64)
    keep = long_enough
    if long_enough.size and rows.shape[1]:
        r = np.ascontiguousarray(rows[long_enough])
        keys = r.view(np.dtype((np.void, r.dtype.itemsize * r.shape[1]))).ravel()
        _, first = np.unique(keys, return_index=True)
        keep = long_enough[np.sort(first)]
    elif long_enough.size:  # zero columns: every pattern is empty (only min_len <= 0 keeps them)
        keep = long_enough[:1]
    keep = keep.astype(np.int64)
    info = {"decoded": int(M), "too_short": int(M - long_enough.size),
            "duplicates": int(long_enough.size - keep.size), "kept": int(keep.size)}
    return keep, info


def _csr(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, items) of zero-padded pattern rows."""
    lengths = (rows != 0).sum(1)
    offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, rows[rows != 0].astype(np.int32)


@torch.no_grad()
def hybrid_inference(model: Regenerator, sources: SequenceDataset, *, gamma: float | None = None,
                     schedule: str | None = None, restrict: str | None = None, max_pattern_len: int | None = None,
                     min_pattern_len: int | None = None, batch_size: int | None = None,
                     seed: int | None = None, backend: str | None = None,
                     progress: bool | None = None, repeatable_from: int | None = None,
                     unique: bool = True, max_span: int | None = None,
                     config: DecodeConfig | None = None) -> tuple[SequenceDataset, dict]:
    """Regenerate patterns from every sequence with every memory, batched over sequences.

    Parameters
    ----------
    model : Regenerator
        A pre-trained regenerator (put in eval mode here).
    sources : SequenceDataset
        Input sequences (DR4SR uses each user's training part, `fastregen.patterns.dr4sr_input`);
        the last ``max_len`` items of each are read; empty ones are skipped.
    gamma, schedule, restrict, max_pattern_len, min_pattern_len, batch_size, seed, backend, progress, max_span
        Override ``config``'s fields (``batch_size``: its ``decode_batch_size``;
        ``restrict``: what a restrictive step may choose, see `DecodeConfig`).
        ``max_pattern_len`` defaults to the model's, ``backend`` to the
        model's when ``config`` leaves it at "auto".
    config : DecodeConfig, optional
        The decoding options (default ``DecodeConfig()``; the model stores
        its architecture alone, so nothing of decoding comes from it).
    repeatable_from : int, optional
        Ids from this one up may occur more than once in a pattern (UniDS's
        T tokens, which follow every segment); by default no id repeats.
    unique : bool, default True
        Drop repeated patterns (DR4SR); False keeps every decoded pattern
        (UniDS deduplicates per user itself).

    Returns
    -------
    (patterns, info)
        The deduplicated patterns of length >= ``min_pattern_len`` as a
        `SequenceDataset` (same item ids as ``sources``), in the order
        (memory k, sequence) of first appearance, with ``meta["source"]``
        (int64: the row of ``sources`` each was first decoded from) and
        ``meta["memory"]`` (its memory k); and counts (decoded, too short,
        duplicates, kept, per memory) and the seconds it took.

    Notes
    -----
    Greedy decoding per memory ``k``: the decoder reads ``m'_k`` alone. At
    each step a row takes the highest-scoring allowed id: generative rows any
    item or EOS, restrictive rows an item of their sequence or EOS; items
    already in the pattern are excluded, PAD and BOS never produced. EOS (or
    no allowed id left) ends the pattern; so does reaching
    ``max_pattern_len`` items. With ``restrict="ordered"`` / ``"span"`` each
    row also tracks the input position of the last item it took from its
    sequence (the first later occurrence of the chosen id), and a restrictive
    step may choose only from positions after it (and, for ``"span"``, within
    ``max_span`` positions of the first position taken).
    """
    cfg = DecodeConfig() if config is None else config
    gamma = cfg.gamma if gamma is None else float(gamma)
    schedule = cfg.schedule if schedule is None else schedule
    restrict = cfg.restrict if restrict is None else restrict
    max_pattern_len = (cfg.max_pattern_len or model.config.max_pattern_len) if max_pattern_len is None \
        else int(max_pattern_len)
    min_pattern_len = cfg.min_pattern_len if min_pattern_len is None else int(min_pattern_len)
    batch_size = cfg.decode_batch_size if batch_size is None else int(batch_size)
    seed = cfg.seed if seed is None else int(seed)
    backend = (model.backend if cfg.backend == "auto" else cfg.backend) if backend is None else backend
    progress = cfg.progress if progress is None else progress
    max_span = cfg.max_span if max_span is None else int(max_span)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if max_pattern_len < 1 or max_pattern_len + 1 > model.position_embedding.num_embeddings:
        raise ValueError(
            f"max_pattern_len must be in [1, {model.position_embedding.num_embeddings - 1}], got {max_pattern_len}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if restrict not in RESTRICT:
        raise ValueError(f"restrict must be one of {', '.join(RESTRICT)}; got {restrict!r}")
    if sources.num_items > model.num_items:
        raise ValueError(
            f"sources use {sources.num_items} items but the regenerator was trained on {model.num_items}"
        )
    model.eval()
    t0 = time.perf_counter()
    K = model.config.K
    nonempty = np.flatnonzero(sources.lengths > 0)
    seqs = sources.subset(nonempty).truncate(model.config.max_len)
    n = len(seqs)
    world = distributed.current()
    if world is not None and world.size > n:
        raise ValueError(f"{world.size} processes but only {n} non-empty sequences to decode: "
                         "run fewer processes (--nproc-per-node)")
    # batches of similar lengths waste little on padding; the mode draws are
    # per row, so the batching does not change the result. Under
    # torch.distributed every rank decodes whole batches of this one list.
    by_length = np.argsort(seqs.lengths, kind="stable")
    batches = [by_length[b0 : b0 + batch_size] for b0 in range(0, n, batch_size)]
    mine = batches if world is None else batches[world.rank :: world.size]
    rows = np.concatenate(mine) if mine else np.zeros(0, np.int64)
    modes = np.stack([step_modes(n, max_pattern_len, gamma=gamma, schedule=schedule, seed=seed, memory=k)
                      for k in range(K)])
    # alone: one row per sequence; a rank: one row per sequence it decodes, in its batch order
    out = np.zeros((K, n if world is None else rows.size, max_pattern_len), dtype=np.int32)
    bar = progress_bar(total=rows.size, enabled=progress and distributed.is_main(), desc="hybrid inference",
                       unit="seq")
    bound = table_max_abs(model.item_embedding.weight)  # checked once, not at every step
    b0 = 0
    for part_rows in mine:
        b1 = b0 + len(part_rows)
        got = _decode_batch(model, seqs.subset(part_rows), modes[:, part_rows], max_pattern_len, restrict, backend,
                            repeatable_from, max_span, bound)
        out[:, part_rows if world is None else slice(b0, b1), : got.shape[2]] = got
        b0 = b1
        bar.update(len(part_rows))
    bar.close()
    del modes

    if world is not None:
        width = int((out != PAD).sum(2).max()) if out.size else 0
        parts = distributed.gather_object((rows, out[:, :, : max(width, 1)]))
        out = None
        if world.is_main:
            out = np.zeros((K, n, max_pattern_len), dtype=np.int32)
            for r, o in parts:
                out[:, r, : o.shape[2]] = o
            del parts
    result = None
    if world is None or world.is_main:
        lengths = (out != PAD).sum(2)
        per_memory = [float(lengths[k].mean()) if n else 0.0 for k in range(K)]
        flat = out.reshape(K * n, max_pattern_len)  # memory k, then sequence: the order of first appearance
        if unique:
            keep, info = deduplicate_rows(flat, min_pattern_len)
        else:
            keep = np.flatnonzero(lengths.reshape(-1) >= min_pattern_len).astype(np.int64)
            info = {"decoded": K * n, "too_short": K * n - keep.size, "duplicates": 0, "kept": int(keep.size)}
        offsets, items = _csr(flat[keep])
        info.update(sequences=n, memories=K, mean_length_per_memory=per_memory, gamma=gamma, schedule=schedule,
                    restrict=restrict, seconds=time.perf_counter() - t0)
        if world is not None:
            info["processes"] = world.size
        # memory k, then sequence: row r of `flat` is sequence r % n of memory r // n
        origin = {"source": nonempty[keep % n] if n else keep, "memory": keep // n if n else keep}
        result = (offsets, items, info, origin)
    offsets, items, info, origin = distributed.broadcast_object(result)
    ds = SequenceDataset(offsets, items, num_items=sources.num_items, item_ids=sources.item_ids, name="regenerated",
                         meta=origin)
    return ds, info


def _decode_batch(model: Regenerator, part: SequenceDataset, modes: np.ndarray, max_pattern_len: int,
                  restrict: str, backend: str, repeatable_from: int | None = None,
                  max_span: int = DecodeConfig.max_span, table_bound: float | None = None) -> np.ndarray:
    """Greedy hybrid decoding of one batch with every memory: (K, B, steps) int32 ids, 0 after the end.

    The K memories decode together as K x B rows (row ``k B + b``: memory k
    of sequence b), so each step runs the decoder and scores the vocabulary
    once for all of them; the decoder keeps each row's keys and values
    (`Regenerator.start_decoding`), so a step computes only its new
    position; a row that ends leaves the batch and the cache.
    ``table_bound``: `fastregen.ops.table_max_abs` of the item table.
    """
    dev = model.device
    K = model.config.K
    table = model.item_embedding.weight
    eos, bos = model.eos, model.bos
    src = torch.from_numpy(part.padded(int(part.lengths.max()), side="right")).to(dev)
    B = src.shape[0]
    src_pad = src == PAD
    cache = model.start_decoding(model.encode(src), src_pad, max_pattern_len)  # (B, L, K, D) memories
    src, src_pad = src.repeat(K, 1), src_pad.repeat(K, 1)
    eos_col = torch.full((K * B, 1), eos, dtype=torch.long, device=dev)
    allowed = torch.cat([src.masked_fill(src_pad, -1), eos_col], 1)
    mode = torch.from_numpy(np.ascontiguousarray(modes).reshape(K * B, -1)).to(dev)
    window = _InputWindow(src, src_pad, restrict, max_span)
    ys = torch.zeros((K * B, max_pattern_len + 1), dtype=torch.long, device=dev)
    ys[:, 0] = bos
    alive = torch.arange(K * B, device=dev)
    # the rows the cache holds, and where the live ones sit among them: ended rows stay (and are
    # decoded for nothing) until half the cache has ended, since copying the live rows' keys and
    # values out costs about what decoding a dead row for a step does
    rows, at = alive, None
    steps = 0
    for step in range(max_pattern_len):
        states = model.decode_step(ys[rows, step], step, cache)
        if at is not None:
            states = states[at]
        taken = ys[alive, 1 : step + 1]
        if repeatable_from is not None:
            taken = taken.masked_fill(taken >= repeatable_from, -1)
        ids, _ = constrained_argmax(
            states, table, window.allowed(alive, allowed), taken, mode[alive, step],
            vocab_start=1, vocab_stop=eos + 1, backend=backend, table_max_abs=table_bound,
        )
        window.take(alive, ids)
        ended = (ids == eos) | (ids < 0)
        ys[alive, step + 1] = torch.where(ended, 0, ids)
        steps = step + 1
        if bool(ended.any()):
            alive = alive[~ended]
            if alive.numel() == 0:
                break
            at = (torch.arange(rows.numel(), device=dev) if at is None else at)[~ended]
            if 2 * alive.numel() <= rows.numel():
                cache.select(at, step + 1)
                rows, at = alive, None
    return ys[:, 1 : steps + 1].reshape(K, B, steps).cpu().numpy().astype(np.int32)


class _InputWindow:
    """The input positions a restrictive step may still choose from, per row (``restrict``).

    ``"items"`` never narrows the input. ``"ordered"`` keeps the positions after
    the last one taken; ``"span"`` also stops ``max_span - 1`` positions after
    the first one taken, which is how far a mined pattern's occurrence reaches.
    """

    def __init__(self, src: torch.Tensor, src_pad: torch.Tensor, restrict: str, max_span: int) -> None:
        self.src, self.restrict, self.max_span = src, restrict, max_span
        self.valid = ~src_pad
        n = src.shape[0]
        self.last = torch.full((n,), -1, dtype=torch.long, device=src.device)
        self.first = torch.full((n,), -1, dtype=torch.long, device=src.device)
        self.positions = torch.arange(src.shape[1], device=src.device)

    def _open(self, rows: torch.Tensor) -> torch.Tensor:
        ok = self.valid[rows] & (self.positions[None] > self.last[rows, None])
        if self.restrict == "span":
            first = self.first[rows, None]
            ok &= (first < 0) | (self.positions[None] < first + self.max_span)
        return ok

    def allowed(self, rows: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``allowed[rows]`` (input items then EOS) with the closed positions set to -1."""
        if self.restrict == "items":
            return allowed[rows]
        out = allowed[rows].clone()
        out[:, :-1].masked_fill_(~self._open(rows), -1)
        return out

    def take(self, rows: torch.Tensor, ids: torch.Tensor) -> None:
        """Advance each row past the first open position holding its chosen id (if any)."""
        if self.restrict == "items":
            return
        hit = self._open(rows) & (self.src[rows] == ids[:, None])
        pos = torch.where(hit, self.positions[None], self.src.shape[1]).min(1).values
        found = pos < self.src.shape[1]
        r = rows[found]
        self.last[r] = pos[found]
        self.first[r] = torch.where(self.first[r] < 0, pos[found], self.first[r])


def table2(ds: SequenceDataset) -> dict:
    """The DR4SR paper's Table 2 columns for ``ds``: users (sequences), items, interactions, avg length."""
    s = stats(ds)
    return {"users": s.users, "items": s.items, "interactions": s.interactions, "avg_length": s.avg_length}
