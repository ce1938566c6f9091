"""Pure-Python references of the entropy core (test oracles, no compiler needed).

Each function implements its definition literally and slowly:

- :func:`lambda_sum` / :func:`real_entropy`: the Lempel-Ziv estimator of
  Kontoyiannis et al. (1998) as used by Song et al. (Science 2010), by direct
  substring search (O(n^3) per sequence);
- :func:`predictability`: Fano's inequality solved by scalar bisection;
- :class:`MarkovModel`: order-k counts with interpolated Witten-Bell backoff;
- :func:`mine_entropy_patterns` / :func:`segment`: the UniDS conditional-entropy
  miner and the greedy longest-match segmenter.

The fast paths in :mod:`fastregen.entropy` agree with these exactly: integer
outputs are equal, and float outputs are evaluated with the same operations
in the same order (``math.log2`` and C++ ``std::log2`` are the same libm call),
so they are compared with ``==``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

__all__ = [
    "lambda_i",
    "lambda_sum",
    "entropy_from_sum",
    "real_entropy",
    "predictability",
    "MarkovModel",
    "item_entropies",
    "mine_entropy_patterns",
    "segment",
]


def _occurs_before(s: Sequence[int], i: int, length: int) -> bool:
    """Whether s[i:i+length] occurs as a contiguous run lying entirely inside s[0:i]."""
    target = list(s[i : i + length])
    for j in range(0, i - length + 1):
        if list(s[j : j + length]) == target:
            return True
    return False


def lambda_i(s: Sequence[int], i: int) -> int:
    """Length of the shortest substring starting at i that does not occur in s[0:i].

    ``n - i + 1`` when every substring starting at i occurs there. Items are
    compared as whole symbols (lists, never joined strings).
    """
    n = len(s)
    for length in range(1, n - i + 1):
        if not _occurs_before(s, i, length):
            return length
    return n - i + 1


def lambda_sum(s: Sequence[int]) -> int:
    """sum_i Lambda_i (an exact integer)."""
    return sum(lambda_i(s, i) for i in range(len(s)))


def entropy_from_sum(n: int, total: int, base: float = 2.0) -> float:
    """``n log2(n) / total / log2(base)``; NaN for n = 0 (the estimator is undefined)."""
    if n == 0:
        return math.nan
    bits = float(n) * math.log2(float(n)) / float(total)
    return bits if base == 2.0 else bits / math.log2(base)


def real_entropy(sequences: Sequence[Sequence[int]], base: float = 2.0) -> list[float]:
    """Lempel-Ziv real entropy of each sequence."""
    return [entropy_from_sum(len(s), lambda_sum(s), base) for s in sequences]


def _fano_rhs(p: float, n: int) -> float:
    h = 0.0
    if 0.0 < p < 1.0:
        h = -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)
    return h + (1.0 - p) * math.log2(n - 1)


def predictability(s: float, n: int, iterations: int = 200) -> float:
    """Pi_max with S = H(Pi) + (1 - Pi) log2(N - 1), by bisection on [1/N, 1].

    N = 1 or S = 0 gives 1.0; S >= log2 N gives 1/N; NaN S or N = 0 gives NaN.
    """
    if math.isnan(s) or n == 0:
        return math.nan
    if n == 1 or s == 0.0:
        return 1.0
    if s >= math.log2(n):
        return 1.0 / n
    lo, hi = 1.0 / n, 1.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _fano_rhs(mid, n) > s:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class MarkovModel:
    """Order-k next-item model with interpolated Witten-Bell backoff.

    ``P_{-1}(s) = 1/V``; ``P_j(s | h) = (c(h, s) + T(h) P_{j-1}(s | h')) / (c(h) + T(h))``
    for the last j context items h (h' its last j - 1), where c(h) counts the
    times h is followed by an item, c(h, s) the times by s, and T(h) the number
    of distinct followers; an unseen h backs off (``P_j = P_{j-1}``). Contexts
    do not cross sequence boundaries.
    """

    def __init__(self, order: int, num_items: int):
        self.order = order
        self.num_items = num_items
        self.unigram: dict[int, int] = {}
        self.tokens = 0
        self.ctx_count: dict[tuple, int] = {}
        self.ctx_distinct: dict[tuple, int] = {}
        self.pairs: dict[tuple, int] = {}

    def fit(self, sequences: Sequence[Sequence[int]]) -> "MarkovModel":
        for s in sequences:
            s = [int(x) for x in s]
            for t, x in enumerate(s):
                self.unigram[x] = self.unigram.get(x, 0) + 1
                self.tokens += 1
                for j in range(1, min(self.order, t) + 1):
                    h = tuple(s[t - j : t])
                    self.ctx_count[h] = self.ctx_count.get(h, 0) + 1
                    if (h, x) not in self.pairs:
                        self.ctx_distinct[h] = self.ctx_distinct.get(h, 0) + 1
                    self.pairs[(h, x)] = self.pairs.get((h, x), 0) + 1
        return self

    def prob(self, context: Sequence[int], s: int) -> float:
        context = [int(x) for x in context]
        p = 1.0 / float(self.num_items)
        if self.tokens > 0:
            t0 = len(self.unigram)
            p = (float(self.unigram.get(s, 0)) + float(t0) * p) / float(self.tokens + t0)
        for j in range(1, min(self.order, len(context)) + 1):
            h = tuple(context[len(context) - j :])
            if h not in self.ctx_count:
                break
            t_h = float(self.ctx_distinct[h])
            p = (float(self.pairs.get((h, s), 0)) + t_h * p) / (float(self.ctx_count[h]) + t_h)
        return p


def item_entropies(sequences: Sequence[Sequence[int]]) -> dict[int, tuple[int, float]]:
    """item -> (occurrences f_i, -log2(f_i / F))."""
    counts: dict[int, int] = {}
    for s in sequences:
        for x in s:
            counts[int(x)] = counts.get(int(x), 0) + 1
    total = sum(counts.values())
    return {i: (f, -math.log2(f / total)) for i, f in counts.items()}


def _occurrences(sequences, pattern) -> list[tuple[int, int]]:
    """(sequence, start) of every contiguous (overlapping) occurrence of pattern."""
    m = len(pattern)
    return [
        (u, t)
        for u, s in enumerate(sequences)
        for t in range(len(s) - m + 1)
        if list(s[t : t + m]) == list(pattern)
    ]


def mine_entropy_patterns(
    sequences: Sequence[Sequence[int]],
    theta: float,
    *,
    min_count: int = 2,
    max_len: int = 8,
    markov: MarkovModel | None = None,
    probs: Sequence[Sequence[float]] | None = None,
    scorer: Callable[[tuple, int], float] | None = None,
) -> list[tuple[tuple, float, int]]:
    """UniDS's conditional-entropy patterns, as (pattern, H(P), occurrences) sorted by (len, items).

    Exactly one model: ``markov`` (h(s|P) = -log2 P(s | P)), ``probs`` (one list
    of per-position probabilities per sequence; p(s|P) is their mean over the
    occurrences of P + [s], summed in data order) or ``scorer(P, s) -> p``.
    """
    sequences = [[int(x) for x in s] for s in sequences]
    seeds = item_entropies(sequences)
    frontier = []
    for i in sorted(seeds):
        f, h = seeds[i]
        if f >= min_count and h < theta:
            frontier.append(((i,), h))
    found = []
    while frontier:
        found.extend((p, h, len(_occurrences(sequences, p))) for p, h in frontier)
        if len(frontier[0][0]) >= max_len:
            break
        nxt = []
        for p, h in frontier:
            follow: dict[int, list[tuple[int, int]]] = {}
            for u, t in _occurrences(sequences, p):
                end = t + len(p)
                if end < len(sequences[u]):
                    follow.setdefault(sequences[u][end], []).append((u, end))
            for s in sorted(follow):
                occ = follow[s]
                if len(occ) < min_count:
                    continue
                if markov is not None:
                    q = markov.prob(p, s)
                elif probs is not None:
                    total = 0.0
                    for u, g in occ:
                        total += probs[u][g]
                    q = total / float(len(occ))
                else:
                    q = scorer(p, s)
                h2 = h + (-math.log2(q))
                if h2 < theta:
                    nxt.append((p + (s,), h2))
        frontier = nxt
    return found


def segment(sequences: Sequence[Sequence[int]], patterns: Sequence[Sequence[int]]) -> list[list[tuple[list[int], int]]]:
    """Each sequence cut into (segment items, pattern id or -1), longest pattern first."""
    index: dict[tuple, int] = {}
    for k, p in enumerate(patterns):
        index.setdefault(tuple(int(x) for x in p), k)
    longest = max((len(p) for p in index), default=0)
    out = []
    for s in sequences:
        s = [int(x) for x in s]
        segs, t = [], 0
        while t < len(s):
            for m in range(min(longest, len(s) - t), 0, -1):
                k = index.get(tuple(s[t : t + m]))
                if k is not None:
                    segs.append((s[t : t + m], k))
                    t += m
                    break
            else:
                segs.append(([s[t]], -1))
                t += 1
        out.append(segs)
    return out
