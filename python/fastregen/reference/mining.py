"""Pure-Python oracle of the mining kernels (``fastregen.patterns.span``).

Written for clarity, not speed: it enumerates, for every sequence, every
pattern the sequence contains and counts them. The compiled miner must agree
with it exactly (same patterns, supports and order).

Definitions (DR4SR §4.2.1, Seq2Pat ``max_span=alpha``):

* a pattern ``p = (p1, ..., pm)`` is *contained within span alpha* in ``s``
  if there are positions ``i1 < ... < im`` with ``s[ij] == pj`` and
  ``im - i1 <= alpha - 1``;
* its support is the number of sequences that contain it.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Iterable, Sequence

__all__ = [
    "mine_patterns",
    "window_counts",
    "contains",
    "pretrain_pairs",
    "splitmix64_stream",
    "choose",
]

MASK64 = (1 << 64) - 1


def _patterns_in(seq: Sequence[int], max_span: int, max_len: int) -> set[tuple[int, ...]]:
    """Every distinct pattern of length 1..max_len contained in ``seq`` within the span."""
    found: set[tuple[int, ...]] = set()
    n = len(seq)
    for i1 in range(n):
        rest = range(i1 + 1, min(n, i1 + max_span))  # positions i1+1 .. i1+alpha-1
        for k in range(0, max_len):
            for tail in combinations(rest, k):
                found.add((seq[i1],) + tuple(seq[j] for j in tail))
    return found


def _canonical(patterns: dict[tuple[int, ...], int]) -> list[tuple[tuple[int, ...], int]]:
    """Order by length, then lexicographically (the order of the compiled miner)."""
    return sorted(patterns.items(), key=lambda kv: (len(kv[0]), kv[0]))


def mine_patterns(
    sequences: Iterable[Sequence[int]],
    max_span: int = 5,
    min_support: int = 2,
    min_len: int = 2,
    max_len: int | None = None,
) -> list[tuple[tuple[int, ...], int]]:
    """Patterns with ``min_len <= len <= max_len`` and support >= ``min_support``.

    Returns ``[(pattern, support), ...]`` ordered by length, then
    lexicographically. ``max_len=None`` means ``max_span``.
    """
    max_len = max_span if max_len is None else min(max_len, max_span)
    support: Counter[tuple[int, ...]] = Counter()
    for seq in sequences:
        support.update(_patterns_in(list(seq), max_span, max_len))  # a sequence counts once
    return _canonical(
        {p: c for p, c in support.items() if c >= min_support and min_len <= len(p) <= max_len}
    )


def window_counts(
    sequences: Iterable[Sequence[int]], window: int, min_count: int
) -> list[tuple[tuple[int, ...], int]]:
    """Occurrence counts of every contiguous window of ``window`` items (>= ``min_count``)."""
    counts: Counter[tuple[int, ...]] = Counter()
    for seq in sequences:
        seq = list(seq)
        for i in range(len(seq) - window + 1):
            counts[tuple(seq[i : i + window])] += 1
    return _canonical({p: c for p, c in counts.items() if c >= min_count})


def contains(seq: Sequence[int], pattern: Sequence[int], span: int | None) -> bool:
    """Whether ``seq`` contains ``pattern`` (within ``span`` items, or anywhere if None).

    For a fixed first position, matching every next item as early as possible
    is optimal, so trying every first position is exact.
    """
    if not pattern:
        return False
    n = len(seq)
    for i1 in range(n):
        if seq[i1] != pattern[0]:
            continue
        end = n if span is None else min(n, i1 + span)
        j, k = i1 + 1, 1
        while k < len(pattern) and j < end:
            if seq[j] == pattern[k]:
                k += 1
            j += 1
        if k == len(pattern):
            return True
    return False


def splitmix64_stream(seed: int, u: int):
    """The per-sequence random stream of ``pretrain_pairs`` (see csrc/mining.hpp)."""
    state = (seed ^ ((u + 1) * 0xD1B54A32D192ED03)) & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def choose(candidates: list[int], k: int, seed: int, u: int) -> list[int]:
    """``k`` of the ascending ``candidates``, uniformly at random, returned ascending."""
    cand = list(candidates)
    n = len(cand)
    if n <= k:
        return cand
    stream = splitmix64_stream(seed, u)
    for i in range(k):
        m = n - i
        threshold = (1 << 64) % m  # reject these so every residue is equally likely
        while True:
            r = next(stream)
            if r >= threshold:
                break
        j = i + r % m
        cand[i], cand[j] = cand[j], cand[i]
    return sorted(cand[:k])


def pretrain_pairs(
    sequences: Sequence[Sequence[int]],
    patterns: Sequence[Sequence[int]],
    max_per_sequence: int = 10,
    seed: int = 0,
    span: int | None = None,
) -> tuple[list[int], list[int]]:
    """``(source, pattern_index)`` lists: for each sequence, up to ``max_per_sequence``
    of the patterns it contains, chosen with `choose`, ordered by sequence then pattern.
    """
    source: list[int] = []
    chosen: list[int] = []
    for u, seq in enumerate(sequences):
        seq = list(seq)
        cand = [k for k, p in enumerate(patterns) if contains(seq, list(p), span)]
        for k in choose(cand, max_per_sequence, seed, u):
            source.append(u)
            chosen.append(k)
    return source, chosen
