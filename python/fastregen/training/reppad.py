"""RepPad (Dang et al., RecSys 2024): pad short training sequences with copies of themselves.

A causal model trained on left-padded rows spends most of a short
sequence's row on padding. RepPad fills it instead with repetitions of the
sequence: with ``x`` the training input and ``y`` its next-item targets,
``n = |x| < max_len`` and ``p`` drawn uniformly from ``1..floor(max_len / n)``
afresh every epoch,

* mode 1: ``x' = x x ... x`` (``p + 1`` copies), ``y'`` likewise;
* mode 2: ``x' = x 0 x 0 ... x`` (a delimiter 0, the padding id, between the
  copies; its target is 0, so it is no target and no key of attention);

then left-padded and cut to the last ``max_len`` columns. Sequences with
``n >= max_len`` are left alone; validation and test are untouched. It is
parameter-free and needs nothing of the model but causality.

This follows the authors' code (``KingGugu/RepPad``, ``SASRec/src/datasets.py``,
``aug_type`` 1 and 2 of ``SASRecDataset.__getitem__``): there the input is
``items[:-3]`` and the target ``items[1:-2]`` of the whole sequence, i.e.
our training split's ``seq[:-1]`` and ``seq[1:]``, one row per user, which is
the ``"all"`` protocol of `fastregen.training.Examples` for sequences no
longer than ``max_len + 1`` (the only ones RepPad changes).

Every repeated target keeps the interaction index of its original
(``Batch.index``) and every repeated input its timestamp, so the time gap
at the seam between two copies spans the whole sequence (a model with a
time bias sees it as a jump back in time).
"""

from __future__ import annotations

import numpy as np
import torch

from .._batching import length_bucketed_batches
from .examples import Batch, Examples

__all__ = ["RepPad", "MODES", "reppad_rows"]

#: 1: repeat; 2: repeat with a delimiter 0 between the copies (the authors' ``aug_type``).
MODES = (1, 2)


def reppad_rows(rows: tuple[np.ndarray, ...], n: np.ndarray, pad: np.ndarray, mode: int) -> tuple[np.ndarray, ...]:
    """Repeat the right-aligned rows of a batch (vectorised).

    Parameters
    ----------
    rows : tuple of np.ndarray, each (B, L)
        ``inputs, targets, weights, index, in_pos`` as `Examples` gathers them
        at full width ``L`` (each example's ``n`` items in its last columns).
    n : np.ndarray of int64, shape (B,)
        Items of each row (its length).
    pad : np.ndarray of int64, shape (B,)
        Extra copies of each row (``p``; 0 leaves the row as it is).
    mode : {1, 2}

    Returns
    -------
    tuple of np.ndarray, each (B, L)
        The same arrays, repeated: column ``L - 1 - r`` holds the original
        column ``L - 1 - (r mod c)`` (``c = n`` in mode 1, ``n + 1`` in mode 2
        with the delimiter at ``r mod c == n``) for ``r < (p + 1) n + p (c - n)``,
        and padding beyond (0; -1 for the index arrays).
    """
    B, L = rows[0].shape
    d = 1 if mode == 2 else 0
    c = np.maximum(n + d, 1)[:, None]
    total = np.minimum((pad + 1) * n + pad * d, L)[:, None]
    r = np.arange(L)[None, :]
    q = r % c
    real = (r < total) & ~((d == 1) & (q == n[:, None]))
    src = np.where(real, L - 1 - q, 0)
    out = []
    for k, a in enumerate(rows):
        fill = -1 if k >= 3 else 0  # index and in_pos mark "none" with -1
        g = np.take_along_axis(a, src, axis=1)
        g = np.where(real, g, np.asarray(fill, dtype=a.dtype))
        out.append(np.ascontiguousarray(g[:, ::-1]))  # r counts from the right
    return tuple(out)


class RepPad:
    """The training examples of an `Examples` (``"all"`` protocol) with repeated padding.

    Parameters
    ----------
    examples : Examples
        ``mode="all"``: one row per sequence window, every position a target.
    mode : {1, 2}
        1 repeats the sequence; 2 puts a delimiter 0 between the copies.
    seed : int, default 0
        Seeds the draws of ``p`` when `batch_order` gets no generator (the
        Trainer passes its own, seeded one).

    Attributes
    ----------
    eligible : np.ndarray of bool, shape (n_examples,)
        Examples RepPad changes: fewer than ``max_len`` inputs.
    total_targets : float
        Expected targets per epoch (repeated ones included), the Trainer's
        normaliser, so a repeated target weighs what any other does.
    """

    def __init__(self, examples: Examples, mode: int, seed: int = 0) -> None:
        if not isinstance(examples, Examples):
            raise TypeError(f"RepPad wraps an Examples, got {type(examples).__name__}")
        if examples.mode != "all":
            raise ValueError(f"RepPad needs the 'all' protocol (one row per sequence), got {examples.mode!r}")
        if mode not in MODES:
            raise ValueError(f"RepPad mode must be 1 (repeat) or 2 (repeat with delimiter 0), got {mode!r}")
        self.examples, self.mode, self.max_len = examples, int(mode), examples.max_len
        self.data = examples.data
        n = examples.num_targets  # inputs = targets per window
        self.eligible = (n >= 1) & (n < self.max_len)
        self.max_pad = np.where(self.eligible, self.max_len // np.maximum(n, 1), 0).astype(np.int64)
        self.total_targets = float(self._expected_targets())
        self.lengths = examples.lengths
        self._pad = np.zeros(len(examples), dtype=np.int64)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.examples)

    def __repr__(self) -> str:
        return f"RepPad(mode={self.mode}, examples={len(self):,}, padded={int(self.eligible.sum()):,})"

    def _targets_after(self, n: np.ndarray, pad: np.ndarray) -> np.ndarray:
        """Targets of rows of ``n`` items with ``pad`` extra copies (delimiters are none)."""
        d = 1 if self.mode == 2 else 0
        total = np.minimum((pad + 1) * n + pad * d, self.max_len)
        delimiters = np.where(total > n, (total - 1 - n) // np.maximum(n + d, 1) + 1, 0) * d
        return total - delimiters

    def _expected_targets(self) -> float:
        n, P = self.examples.num_targets, self.max_pad
        total = float(n[~self.eligible].sum())
        for p in np.unique(P[self.eligible]):
            rows = self.eligible & (P == p)
            # p ~ U{1..P}: the mean over its values of the targets each gives
            per = np.mean([self._targets_after(n[rows], np.full(int(rows.sum()), k)) for k in range(1, p + 1)], axis=0)
            total += float(per.sum())
        return total

    def draw(self, generator: torch.Generator | None) -> np.ndarray:
        """Draw this epoch's extra copies ``p`` of every example (0 where it is not padded)."""
        m = len(self)
        u = (torch.rand(m, generator=generator, dtype=torch.float64).numpy() if generator is not None
             else self._rng.random(m))
        self._pad = np.where(self.eligible, 1 + np.minimum((u * self.max_pad).astype(np.int64), self.max_pad - 1), 0)
        return self._pad

    def padded_lengths(self) -> np.ndarray:
        """Each example's row length under the current draw."""
        n, p = self.examples.num_targets, self._pad
        d = 1 if self.mode == 2 else 0
        return np.minimum((p + 1) * n + p * d, self.max_len)

    def batch_order(self, batch_size: int, generator: torch.Generator | None, bucketing: bool = True,
                    window: int = 32):
        """Draw the epoch's ``p`` (from ``generator``), then batches bucketed by the padded lengths."""
        self.draw(generator)
        perm = None if generator is None else (lambda m: torch.randperm(m, generator=generator).numpy())
        return length_bucketed_batches(len(self), batch_size, perm, self.padded_lengths() if bucketing else None,
                                       bucket=window)

    def batch(self, idx) -> Batch:
        """The rows of examples ``idx`` with their current repetitions, trimmed to the longest."""
        idx = np.asarray(idx, dtype=np.int64)
        ex = self.examples
        rows = ex._rows(idx, self.max_len)
        rows = reppad_rows(rows, ex.num_targets[idx], self._pad[idx], self.mode)
        width = max(int(self.padded_lengths()[idx].max()) if idx.size else 1, 1)
        return ex._batch(idx, *(a[:, -width:] for a in rows))
