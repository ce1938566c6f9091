"""Training examples of a sequence dataset, built per batch from its CSR arrays.

A target model reads a left-padded row of item ids and predicts, at every
column with a target, the next item. `Examples` describes every example of
a dataset by a few integers (which sequence, where its window ends) and
gathers the rows of a batch only when the batch is drawn, so memory stays
proportional to the data, not to ``n_examples x max_len``.

Protocols (``mode``)
--------------------
``"all"``
    Every position of every sequence is a target: the input is ``seq[:-1]``
    and the target at each column the next item, so one forward pass covers
    all prefixes. Sequences longer than ``max_len + 1`` are cut into windows
    of ``max_len + 1`` items, stepping back ``max_len`` from the end, so
    every target is used exactly once per epoch. This is what the DR4SR
    authors' released configs train with (``SeparateDataset``).
``"last"``
    One example per (sequence, position >= 1): the ``max_len`` items before
    it, the target in the last column only. For non-causal models
    (FMLP-Rec), which would see their targets under "all".
``"packed"``
    The "all" windows sorted by length and packed greedily (longest first,
    then the shortest that still fit) into rows of ``max_len`` columns; each
    position keeps its own sequence's next item as target, and attention is
    plain causal over the row, so a segment also attends to the segments
    packed before it. This is the authors' ``CondenseDataset``, which none
    of their released configs selects. Packing changes the training signal,
    not only the speed: short sequences get the context of other sequences.

Every target carries the index of its interaction in ``data.items``
(``Batch.index``), so a loss term can always be traced back to its source
sequence and position (`Examples.sequence_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._batching import length_bucketed_batches
from ..data import SequenceDataset

__all__ = ["Batch", "Examples", "build_examples", "gather_windows", "pack_segments", "MODES"]

MODES = ("all", "last", "packed")


def gather_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Rows ``items[max(start, end - width):end]`` left-padded with 0 to ``width`` (vectorised).

    Returns np.ndarray of int64, shape (len(ends), width).
    """
    return _window_positions(starts, ends, width, items)[1]


def _window_positions(starts, ends, width: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values) of `gather_windows`: the index into ``items`` of each cell (-1 at padding)."""
    ends = np.asarray(ends, dtype=np.int64)
    idx = ends[:, None] - width + np.arange(width, dtype=np.int64)[None, :]
    valid = idx >= np.asarray(starts, dtype=np.int64)[:, None]
    pos = np.where(valid, idx, -1)
    if items.size == 0:
        return pos, np.zeros(idx.shape, dtype=np.int64)
    return pos, np.where(valid, np.asarray(items, dtype=np.int64)[np.clip(idx, 0, items.size - 1)], 0)


@dataclass
class Batch:
    """One batch of next-item examples (tensors on one device).

    Attributes
    ----------
    inputs : torch.Tensor of int64, shape (B, W)
        Left-padded item ids, ``W`` = the longest row of the batch.
    targets : torch.Tensor of int64, shape (B, W)
        The item to predict at each column, 0 where there is none.
    weights : torch.Tensor of float32, shape (B, W)
        Weight of each target (the sequence weight), 0 where there is none.
    index : torch.Tensor of int64, shape (B, W)
        Position in the dataset's ``items`` of each target, -1 where none.
    timestamps : torch.Tensor of int64, shape (B, W), optional
        Timestamp of each input item (0 at padding) when the data has them.
    examples : torch.Tensor of int64, shape (B,)
        Which examples of the `Examples` the rows are.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    index: torch.Tensor
    examples: torch.Tensor
    timestamps: torch.Tensor | None = None

    def to(self, device) -> "Batch":
        move = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**move)

    @property
    def num_targets(self) -> int:
        return int((self.targets > 0).sum())


class Examples:
    """The training examples of a dataset under one protocol, gathered batch by batch.

    Parameters
    ----------
    data : SequenceDataset
    max_len : int
        Columns of a row (the model's ``max_len``).
    mode : {"all", "last", "packed"}, default "all"
        See the module docstring.
    sequence_weights : array of float, shape (len(data),), optional
        Weight of every target of each sequence (default 1).

    Attributes
    ----------
    lengths : np.ndarray of int64, shape (n_examples,)
        Input items of each example (what length bucketing sorts by).
    num_targets : np.ndarray of int64, shape (n_examples,)
        Targets of each example.
    total_targets : int
    """

    def __init__(self, data: SequenceDataset, max_len: int, mode: str = "all", sequence_weights=None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        n = len(data)
        sw = np.ones(n, dtype=np.float32) if sequence_weights is None else np.asarray(sequence_weights, np.float32)
        if sw.shape != (n,):
            raise ValueError(f"sequence_weights must have shape ({n},), got {sw.shape}")
        self.data, self.max_len, self.mode, self.sequence_weights = data, int(max_len), mode, sw
        self._arrays = None
        offsets, lengths = data.offsets, data.lengths
        L = self.max_len
        if mode in ("all", "packed"):
            # windows end at n, n - L, n - 2L, ... while they hold >= 2 items
            n_windows = np.where(lengths >= 2, -(-np.maximum(lengths - 1, 0) // L), 0).astype(np.int64)
            seq = np.repeat(np.arange(n, dtype=np.int64), n_windows)
            k = np.arange(seq.size, dtype=np.int64) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
            self._seq = seq
            self._ends = offsets[seq + 1] - k * L
            self._starts = offsets[seq]
            self.num_targets = np.minimum(self._ends - self._starts, L + 1) - 1
            self.lengths = self.num_targets.copy()  # inputs = targets in a window
            if mode == "packed":
                self._pack()
        else:
            pos = np.arange(data.num_interactions, dtype=np.int64)
            seq_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
            keep = pos > offsets[seq_of]  # an item with at least one item before it
            self._seq, self._ends = seq_of[keep], pos[keep]
            self._starts = offsets[self._seq]
            self.lengths = np.minimum(self._ends - self._starts, L)
            self.num_targets = np.ones(self._seq.size, dtype=np.int64)
        self.total_targets = int(self.num_targets.sum())

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __repr__(self) -> str:
        return (f"Examples(mode={self.mode!r}, max_len={self.max_len}, examples={len(self):,}, "
                f"targets={self.total_targets:,})")

    # ----------------------------------------------------------------- rows
    def _rows(self, idx: np.ndarray, width: int):
        """inputs, targets, weights, index, input positions of examples ``idx``: their last ``width`` columns.

        ``index`` is the interaction index of each target and ``in_pos`` that
        of each input item (both -1 where there is none).
        """
        items = self.data.items
        if self._arrays is not None:
            return tuple(a[idx][:, -width:] for a in self._arrays)
        if self.mode == "last":
            in_pos, inputs = _window_positions(self._starts[idx], self._ends[idx], width, items)
            targets = np.zeros_like(inputs)
            index = np.full_like(inputs, -1)
            targets[:, -1] = items[self._ends[idx]]
            index[:, -1] = self._ends[idx]
        else:
            pos, win = _window_positions(self._starts[idx], self._ends[idx], width + 1, items)
            inputs, in_pos = win[:, :-1], pos[:, :-1]
            targets, index = win[:, 1:].copy(), pos[:, 1:].copy()
            none = inputs == 0  # the first item of a sequence has no history to predict it from
            targets[none], index[none] = 0, -1
        weights = (targets > 0).astype(np.float32) * self.sequence_weights[self._seq[idx]][:, None]
        return inputs, targets, weights, index, in_pos

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All examples as (inputs, targets, weights), each (n_examples, max_len) (tests, inspection)."""
        return self._rows(np.arange(len(self)), self.max_len)[:3]

    def _pack(self) -> None:
        """Materialise the packed rows (`pack_segments`) of the "all" windows."""
        self.mode = "all"
        rows = self._rows(np.arange(self._seq.size), self.max_len)
        self.mode = "packed"
        self._arrays = pack_segments(*rows)
        x, y = self._arrays[:2]
        self.num_targets = (y > 0).sum(1).astype(np.int64)
        self.lengths = (x > 0).sum(1).astype(np.int64)

    def sequence_of(self, index) -> np.ndarray:
        """Source sequence of each interaction index (``Batch.index``; -1 stays -1)."""
        index = np.asarray(index, dtype=np.int64)
        seq = np.searchsorted(self.data.offsets, np.maximum(index, 0), side="right") - 1
        return np.where(index >= 0, seq, -1)

    def batch(self, idx) -> Batch:
        """The rows of examples ``idx``, trimmed to the batch's longest input (left padding dropped)."""
        idx = np.asarray(idx, dtype=np.int64)
        width = max(int(self.lengths[idx].max()) if idx.size else 1, 1)
        return self._batch(idx, *self._rows(idx, width))

    def _batch(self, idx, inputs, targets, weights, index, in_pos) -> Batch:
        """A `Batch` of gathered rows; the timestamps of the input items follow ``in_pos`` (-1: padding)."""
        ts = None
        if self.data.timestamps is not None:
            ts = np.where(in_pos >= 0, self.data.timestamps[np.maximum(in_pos, 0)], 0) if in_pos.size else in_pos
        return Batch(
            inputs=torch.from_numpy(np.ascontiguousarray(inputs)),
            targets=torch.from_numpy(np.ascontiguousarray(targets)),
            weights=torch.from_numpy(np.ascontiguousarray(weights)),
            index=torch.from_numpy(np.ascontiguousarray(index)),
            examples=torch.from_numpy(idx),
            timestamps=None if ts is None else torch.from_numpy(np.ascontiguousarray(ts, dtype=np.int64)),
        )

    def batch_order(self, batch_size: int, generator: torch.Generator | None, bucketing: bool = True,
                    window: int = 32) -> list[np.ndarray]:
        """Example indices of each batch of one epoch (`length_bucketed_batches`).

        A ``generator`` shuffles (None keeps the order); ``bucketing`` groups
        examples of similar length, sorting windows of ``window`` batches
        (0: the whole epoch). The number of batches is
        ``ceil(len(self) / batch_size)`` either way.
        """
        perm = None if generator is None else (lambda m: torch.randperm(m, generator=generator).numpy())
        return length_bucketed_batches(len(self), batch_size, perm, self.lengths if bucketing else None,
                                       bucket=window)


def build_examples(data: SequenceDataset, max_len: int, mode: str = "all", sequence_weights=None):
    """All training examples of a dataset as arrays (see `Examples`).

    Returns
    -------
    inputs, targets : np.ndarray of int64, shape (n_examples, max_len)
    weights : np.ndarray of float32, shape (n_examples, max_len)
        ``sequence_weight`` where ``targets > 0``, else 0.
    """
    return Examples(data, max_len, mode, sequence_weights).arrays()


def _greedy_rows(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The order segments are laid out in, and the row of each laid-out segment.

    Longest remaining segment first, then the shortest ones while they fit
    (the DR4SR code's ``CondenseDataset`` rule). A sequential two-pointer
    walk, run once per training run, not per epoch. Rows come out in
    order, so the returned rows are non-decreasing.
    """
    order = np.argsort(-lengths, kind="stable")
    lens = lengths[order].tolist()
    layout = np.empty(lengths.size, dtype=np.int64)
    seg_row = np.empty(lengths.size, dtype=np.int64)
    lo, hi, row, k = 0, lengths.size - 1, 0, 0
    while lo <= hi:
        used = lens[lo]
        layout[k], seg_row[k] = order[lo], row
        lo, k = lo + 1, k + 1
        while lo <= hi and used + lens[hi] <= width:
            used += lens[hi]
            layout[k], seg_row[k] = order[hi], row
            hi, k = hi - 1, k + 1
        row += 1
    return layout, seg_row


def pack_segments(inputs: np.ndarray, targets: np.ndarray, *per_position: np.ndarray):
    """Pack left-padded training segments into as few full rows as possible.

    Parameters
    ----------
    inputs, targets : np.ndarray of int64, shape (n, L)
        Left-padded segments (``Examples(..., "all")``); a segment's length
        is its number of non-zero inputs.
    *per_position : np.ndarray, shape (n, L)
        Further per-position arrays that travel with the segments: weights
        (padding 0) and interaction indices (signed integers, padding -1).

    Returns
    -------
    tuple of np.ndarray, shape (n_rows, L)
        ``inputs, targets, *per_position`` with rows left-padded, segments in
        layout order (`_greedy_rows`), each position with its own values;
        padding is 0 for inputs, targets and float arrays, -1 for the
        other integer arrays.
        Every input item and target is kept exactly once.
    """
    n, L = inputs.shape
    arrays = (inputs, targets, *per_position)
    if n == 0:
        return arrays
    lengths = (inputs > 0).sum(1).astype(np.int64)
    layout, seg_row = _greedy_rows(lengths, L)
    n_rows = int(seg_row[-1]) + 1
    seg_len = lengths[layout]
    row_len = np.bincount(seg_row, weights=seg_len, minlength=n_rows).astype(np.int64)
    # column where each segment starts: rows are right-aligned, segments in layout order
    before = np.cumsum(seg_len) - seg_len
    row_first = np.searchsorted(seg_row, np.arange(n_rows))
    start = (L - row_len[seg_row]) + before - before[row_first[seg_row]]
    seg = np.repeat(layout, seg_len)
    j = np.arange(seg.size) - np.repeat(before, seg_len)
    src_col = L - lengths[seg] + j
    dst_row = np.repeat(seg_row, seg_len)
    dst_col = np.repeat(start, seg_len) + j
    out = []
    for k, a in enumerate(arrays):
        fill = -1 if k >= 2 and a.dtype.kind == "i" else 0
        b = np.full((n_rows, L), fill, dtype=a.dtype)
        b[dst_row, dst_col] = a[seg, src_col]
        out.append(b)
    return tuple(out)
