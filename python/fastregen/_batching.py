"""Length-bucketed batch order shared by the target-model trainer and the regenerator."""
from __future__ import annotations

from typing import Callable

import numpy as np


def length_bucketed_batches(n: int, batch_size: int, permutation: Callable[[int], np.ndarray] | None,
                            lengths: np.ndarray | None = None, bucket: int = 32,
                            groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Index batches of one epoch.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
        Examples per batch (the last batch may be smaller).
    permutation : callable or None
        ``permutation(m)`` returns a random permutation of ``range(m)`` as an
        int64 array; the caller owns the random stream (a torch generator
        for the trainer, a NumPy one for the regenerator), so each keeps its
        own seeded sequence. ``None``: examples in order, batches in order.
    lengths : np.ndarray of shape (n,), optional
        Example lengths. When given, the shuffled order is sorted by length
        (stable) inside windows of ``bucket`` batches, and, with a
        ``permutation``, the batch order is shuffled again. Batches then hold
        sequences of similar length, so little of them is padding, while
        every epoch still sees a fresh random grouping.
    bucket : int, default 32
        Batches per sorting window; 0 sorts the whole epoch at once (the
        least padding: batches then hold examples of one length where they
        can, still drawn at random among the examples of that length).
    groups : np.ndarray of int, shape (n,), optional
        Group of each example (e.g. the source sequence of a regenerator
        pre-training pair). The shuffle then permutes groups and keeps each
        group's examples next to each other, so a batch holds few groups
        (work shared within a group, such as encoding its source, is done
        once per batch). Examples of a group should share one length, so
        that the length sort does not separate them.

    Returns
    -------
    list of np.ndarray of int64
        Example indices of each batch; together a permutation of ``range(n)``;
        ``ceil(n / batch_size)`` batches whatever the options.
    """
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        if groups.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
        ids, first = np.unique(groups, return_inverse=True)
        rank = np.asarray(permutation(ids.size), dtype=np.int64) if permutation is not None else np.arange(ids.size)
        order = np.lexsort((np.arange(n), rank[first]))
    else:
        order = np.asarray(permutation(n), dtype=np.int64) if permutation is not None else np.arange(n)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if isinstance(bucket, bool) or not isinstance(bucket, (int, np.integer)) or bucket < 0:
            raise ValueError(f"bucket must be an int >= 0 (0: the whole epoch), got {bucket!r}")
        window = batch_size * bucket if bucket else max(n, 1)
        for i in range(0, n, window):
            part = order[i : i + window]
            order[i : i + window] = part[np.argsort(lengths[part], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if permutation is not None and lengths is not None:
        batches = [batches[j] for j in permutation(len(batches))]
    return batches
