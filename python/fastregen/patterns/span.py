"""DR4SR's span-constrained sequential pattern miner, its pre-training pairs, and window counts.

DR4SR (KDD'24, §4.2.1, Fig. 3) builds its pre-training task from item
*transition patterns*: ordered item lists that occur, with gaps allowed,
inside a window of ``alpha`` consecutive positions in at least ``beta``
users' sequences. The authors mined them with Seq2Pat
(``Seq2Pat(sequences, max_span=alpha).get_patterns(min_frequency=beta)``,
alpha = 5, beta = 2); `mine_patterns` returns exactly the same patterns and
supports, from the compiled core.

Quick start::

    from fastregen import data, patterns
    ds = data.load("beauty.txt")
    pats = patterns.mine_patterns(patterns.dr4sr_input(ds), max_span=5, min_support=2)
    len(pats)                   # 40,664 on beauty.txt
    pairs = patterns.pretrain_pairs(patterns.dr4sr_input(ds), pats, max_per_sequence=10, seed=0)

The pure-Python oracle is `fastregen.reference.mining`; the pattern type is `fastregen.patterns.Patterns`.
"""

from __future__ import annotations

import concurrent.futures
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._progress import progress_bar
from ..data import LeaveOneOutSplit, SequenceDataset, leave_one_out
from ..data.dataset import check_dense_ids
from .base import Patterns

__all__ = [
    "PretrainPairs",
    "mine_patterns",
    "pretrain_pairs",
    "window_counts",
    "dr4sr_input",
]


# ---------------------------------------------------------------- helpers
def _as_dataset(data, what: str = "data") -> SequenceDataset:
    """A `SequenceDataset` from a dataset, a split (its ``.train``) or a list of lists."""
    if isinstance(data, SequenceDataset):
        return data
    if isinstance(data, LeaveOneOutSplit):
        return data.train
    if isinstance(data, (list, tuple)):
        return SequenceDataset.from_lists(data)
    raise TypeError(
        f"{what} must be a SequenceDataset, a LeaveOneOutSplit or a list of item-id lists, "
        f"got {type(data).__name__}"
    )


def _check_not_empty(ds: SequenceDataset, what: str = "data") -> None:
    if len(ds) == 0:
        raise ValueError(f"{what} is empty: 0 sequences")
    if ds.num_interactions == 0:
        raise ValueError(f"{what} is empty: {len(ds)} sequences but 0 interactions")


def _int(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int (no bools, no floats), optionally >= ``minimum``."""
    if isinstance(value, bool) or isinstance(value, (float, np.floating)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value >= 1 << 63:
        raise ValueError(f"{name} = {value} does not fit in int64")
    return value


def _threads(threads) -> int:
    return 0 if threads is None else _int("threads", threads, 1)


def _run_with_progress(call: Callable, total: int, desc: str, enabled: bool):
    """Run ``call(counter)`` (a core kernel that releases the GIL and advances
    ``counter[0]`` up to ``total``) while a progress bar follows the counter.
    Exceptions raised by the kernel are re-raised here."""
    if not enabled or total <= 0:
        return call(None)
    counter = np.zeros(1, dtype=np.int64)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(call, counter)
        with progress_bar(total=total, desc=desc, enabled=True, unit="it") as bar:
            while not concurrent.futures.wait([future], timeout=0.1).done:
                bar.update(int(counter[0]) - bar.n)
            if future.exception() is None:
                bar.update(total - bar.n)
        return future.result()


@dataclass(frozen=True)
class PretrainPairs:
    """(sequence, pattern) pairs the DR4SR regenerator is pre-trained on.

    Attributes
    ----------
    sequences : SequenceDataset
        Row r: the input of pair r, the last ``max_len`` items of training sequence ``source[r]``.
    patterns : SequenceDataset
        Row r: the target pattern of pair r (contained in row r of ``sequences``).
    source : np.ndarray of int64, shape (n_pairs,)
        Index of each pair's training sequence in ``data``.
    pattern_index : np.ndarray of int64, shape (n_pairs,)
        Index of each pair's pattern in the `Patterns` it was drawn from.
    segments : SequenceDataset, optional
        Aligned with ``patterns``: the segment (0, 1, ...) of each target
        token, when targets hold several segments (UniDS's pattern-token
        targets, whose promoter weighs the memories per segment). Stored as
        a `SequenceDataset` of segment ids + 1.
    """

    sequences: SequenceDataset
    patterns: SequenceDataset
    source: np.ndarray
    pattern_index: np.ndarray | None = None
    segments: SequenceDataset | None = None

    def __len__(self) -> int:
        return int(self.source.size)

    def save(self, path) -> None:
        """Write the pairs to ``path`` (``.npz``, atomically; ``segments`` are not stored: DR4SR's
        pairs have none, and UniDS keeps its own)."""
        from .._io import atomic_open

        with atomic_open(path, "wb") as f:
            np.savez(f, seq_offsets=self.sequences.offsets, seq_items=self.sequences.items,
                     pat_offsets=self.patterns.offsets, pat_items=self.patterns.items, source=self.source,
                     pattern_index=np.asarray([] if self.pattern_index is None else self.pattern_index, np.int64),
                     num_items=np.int64(self.sequences.num_items))

    @classmethod
    def load(cls, path) -> PretrainPairs:
        """The pairs `save` wrote to ``path``."""
        with np.load(path) as z:
            n = int(z["num_items"])
            return cls(
                sequences=SequenceDataset(z["seq_offsets"], z["seq_items"], num_items=n),
                patterns=SequenceDataset(z["pat_offsets"], z["pat_items"], num_items=n),
                source=z["source"],
                pattern_index=z["pattern_index"] if z["pattern_index"].size else None,
            )


# ---------------------------------------------------------------- API
def dr4sr_input(ds) -> SequenceDataset:
    """DR4SR's mining input: each sequence without its last two items (the
    validation and test targets), full length. Same as ``leave_one_out(ds).train``."""
    if isinstance(ds, LeaveOneOutSplit):
        return ds.train
    ds = _as_dataset(ds, "ds")
    return leave_one_out(ds).train


def mine_patterns(
    data,
    max_span: int = 5,
    min_support: int = 2,
    min_len: int = 2,
    max_len: int | None = None,
    threads: int | None = None,
    progress: bool = False,
    max_patterns: int | None = 20_000_000,
) -> Patterns:
    """Frequent span-constrained sequential patterns (Seq2Pat's ``max_span`` / ``min_frequency``).

    A pattern ``p = (p1, ..., pm)`` is contained in sequence ``s`` within span
    ``alpha = max_span`` if there are positions ``i1 < ... < im`` with
    ``s[ij] == pj`` and ``im - i1 <= alpha - 1`` (gaps allowed; the occurrence
    fits in ``alpha`` consecutive positions). Its support is the number of
    sequences containing it (each sequence counts once). Returns every
    pattern with ``min_len <= m <= max_len`` and support >= ``min_support``;
    identical to ``Seq2Pat(seqs, max_span=alpha).get_patterns(min_frequency=beta)``
    for an int ``beta``.

    Parameters
    ----------
    data : SequenceDataset, LeaveOneOutSplit (its ``.train``) or list of lists
        The sequences to mine. For DR4SR pass ``dr4sr_input(ds)``.
    max_span : int, default 5
        ``alpha`` >= 2.
    min_support : int, default 2
        ``beta`` >= 1, an absolute number of sequences.
    min_len : int, default 2
        Shortest pattern returned (1 also returns frequent single items).
    max_len : int, optional
        Longest pattern returned; default ``max_span`` (no occurrence is longer).
    threads : int, optional
        OpenMP threads (default: the runtime default). The result does not depend on it.
    progress : bool, default False
        Show a progress bar (interactions whose patterns are mined).
    max_patterns : int or None, default 20,000,000
        Safety limit: stop with a ValueError once more patterns than this are
        found (None: no limit). The number of frequent patterns can grow
        exponentially with ``max_span`` (two identical sequences of length n
        share 2^n subsequences), so a large ``max_span`` with a low
        ``min_support`` can otherwise exhaust memory. The limit never
        truncates: either every pattern is returned or none.

    Returns
    -------
    Patterns
        Ordered by length, then lexicographically.

    Raises
    ------
    ValueError
        ``max_span < 2``, ``min_support < 1``, ``min_len < 1``, ``min_len > max_len``,
        ``min_len > max_span``, or an empty dataset (no sequences or no interactions).
    """
    ds = _as_dataset(data)
    max_span = _int("max_span", max_span, 2)
    min_support = _int("min_support", min_support, 1)
    min_len = _int("min_len", min_len, 1)
    max_len = max_span if max_len is None else _int("max_len", max_len, 1)
    if min_len > max_len:
        raise ValueError(f"min_len = {min_len} is larger than max_len = {max_len}")
    if min_len > max_span:
        raise ValueError(
            f"min_len = {min_len} is larger than max_span = {max_span}: no occurrence is that long"
        )
    threads = _threads(threads)
    limit = 0 if max_patterns is None else _int("max_patterns", max_patterns, 1)
    _check_not_empty(ds)
    check_dense_ids(ds)  # the miner keeps per-item tables (16 bytes per id and thread)
    from .. import _core

    def call(counter):
        return _core.mine_patterns(
            ds.offsets, ds.items, max_span, min_support, min_len, max_len, threads, counter, limit
        )

    offsets, items, support = _run_with_progress(call, ds.num_interactions, "mining patterns", progress)
    return Patterns(
        offsets,
        items,
        support,
        max_span=max_span,
        min_support=min_support,
        min_len=min_len,
        max_len=max_len,
        kind="span",
        num_items=ds.num_items,
    )


def window_counts(data, window: int, min_count: int, threads: int | None = None) -> Patterns:
    """Contiguous-window counts (UniDS appendix variant).

    Every run of ``window`` consecutive items in every sequence is counted,
    by occurrences (a sequence holding a window twice counts twice); windows
    with count >= ``min_count`` are kept.

    Parameters
    ----------
    data : SequenceDataset, LeaveOneOutSplit (its ``.train``) or list of lists
    window : int
        Window length, >= 1 (no default: UniDS leaves it to the user).
    min_count : int
        Minimum number of occurrences, >= 1.
    threads : int, optional
        OpenMP threads (default None: the runtime default). The result does not depend on it.

    Returns
    -------
    Patterns
        ``kind="window"``, ``support`` = occurrence counts, ordered lexicographically.
    """
    ds = _as_dataset(data)
    window = _int("window", window, 1)
    min_count = _int("min_count", min_count, 1)
    threads = _threads(threads)
    _check_not_empty(ds)
    check_dense_ids(ds)  # per-item buckets
    from .. import _core

    offsets, items, support = _core.window_counts(ds.offsets, ds.items, window, min_count, threads)
    return Patterns(
        offsets,
        items,
        support,
        max_span=None,
        min_support=min_count,
        min_len=window,
        max_len=window,
        kind="window",
        num_items=ds.num_items,
    )


def pretrain_pairs(
    data,
    patterns: Patterns,
    max_per_sequence: int = 10,
    seed: int = 0,
    max_len: int | None = 50,
    span: str | int | None = "alpha",
    threads: int | None = None,
    progress: bool = False,
) -> PretrainPairs:
    """The (sequence, pattern) pairs DR4SR pre-trains its regenerator on.

    For each training sequence, its input is its last ``max_len`` items; its
    candidate targets are the patterns of ``patterns`` that this input
    contains; when there are more than ``max_per_sequence``, that many are
    drawn uniformly at random without replacement (a per-sequence random
    stream derived from ``seed``, so the result is the same for every thread
    count). Sequences that contain no pattern give no pair.

    Containment (``span``):

    * ``"alpha"`` (default): within ``patterns.max_span`` consecutive
      positions, the test the patterns were mined with. It is the default
      because a pattern is then a transition the sequence actually exhibits
      locally, as mined; a plain subsequence test lets a long sequence
      "contain" a pattern whose items lie dozens of positions apart, which
      is not the local transition the pattern stands for.
    * ``None``: plain subsequence anywhere in the input, what the DR4SR
      authors' script does; use it to reproduce their pre-training set.
    * an int >= 2: within that span.

    Parameters
    ----------
    data : SequenceDataset or LeaveOneOutSplit (its ``.train``)
        Training sequences (for DR4SR: ``dr4sr_input(ds)``).
    patterns : Patterns
        Mined patterns (no duplicates).
    max_per_sequence : int, default 10
        At most this many pairs per sequence (>= 1).
    seed : int, default 0
        Non-negative, < 2**64.
    max_len : int or None, default 50
        Keep the last ``max_len`` items of each sequence (None: all).
    span : "alpha", None or int, default "alpha"
        See above.
    threads : int, optional
        OpenMP threads (default None: the runtime default); the result does not depend on it.
    progress : bool, default False
        Show a progress bar (sequences searched).

    Returns
    -------
    PretrainPairs
        Ordered by source sequence, then pattern index.
    """
    ds = _as_dataset(data)
    if not isinstance(patterns, Patterns):
        raise TypeError(f"patterns must be a Patterns object, got {type(patterns).__name__}")
    max_per_sequence = _int("max_per_sequence", max_per_sequence, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    if span == "alpha":
        if patterns.max_span is None:
            raise ValueError(
                "span='alpha' needs patterns.max_span, which these patterns do not record; "
                "pass span=<int> or span=None"
            )
        span_value = int(patterns.max_span)
    elif span is None:
        span_value = 0
    elif isinstance(span, str):
        raise ValueError(f"span must be 'alpha', None or an int >= 2, got {span!r}")
    else:
        span_value = _int("span", span, 2)
    threads = _threads(threads)
    _check_not_empty(ds)
    # per-item tables (24 bytes per id and thread) sized by the largest id of both
    check_dense_ids(ds)
    check_dense_ids(patterns.as_dataset(num_items=None))
    if max_len is not None:
        ds = ds.truncate(_int("max_len", max_len, 1))
    from .. import _core

    def call(counter):
        return _core.pretrain_pairs(
            ds.offsets,
            ds.items,
            patterns.offsets,
            patterns.items,
            span_value,
            max_per_sequence,
            seed,
            threads,
            counter,
        )

    source, index = _run_with_progress(call, len(ds), "pre-training pairs", progress)
    num_items = ds.num_items
    if patterns.items.size:
        num_items = max(num_items, int(patterns.items.max()))
    return PretrainPairs(
        sequences=ds.subset(source),
        patterns=patterns.as_dataset(num_items=num_items).subset(index),
        source=source,
        pattern_index=index,
    )
