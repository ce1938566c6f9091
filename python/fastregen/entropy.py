"""Entropy of user sequences and low-entropy patterns (UniDS).

- :func:`real_entropy`: the Lempel-Ziv "real entropy" estimator of each
  sequence (Kontoyiannis et al. 1998; Song et al., Science 2010), computed in
  near-linear time by a suffix automaton in the C++ core.
- :func:`predictability`: the upper bound Pi_max on how well any model can
  predict a sequence, from Fano's inequality.
- :class:`MarkovModel`: an order-k next-item model with interpolated
  Witten-Bell backoff, estimated in C++.
- :func:`mine_entropy_patterns` and :func:`segment`: the conditional-entropy
  pattern miner of UniDS (section 4.2, appendix A.5) and the segmentation of
  each sequence into consecutive patterns that UniDS's generator trains on.

Examples
--------
>>> from fastregen import data, entropy
>>> ds = data.SequenceDataset.from_lists([[1, 2, 3, 1, 2, 3, 1, 2], [4, 5, 4, 5, 4]])
>>> S = entropy.real_entropy(ds)
>>> pi = entropy.predictability(S, entropy.n_distinct(ds))
>>> pats = entropy.mine_entropy_patterns(ds, theta=4.0)
>>> seg = entropy.segment(ds, pats)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import numpy as np

from . import _core
from .data import SequenceDataset
from .data.dataset import _as_array, _int_arg, check_dense_ids

__all__ = [
    "real_entropy",
    "lambda_sums",
    "n_distinct",
    "predictability",
    "EntropyReport",
    "entropy_report",
    "MarkovModel",
    "EntropyPatterns",
    "EntropyMinerConfig",
    "STAGE_THETA_SCALES",
    "item_entropies",
    "default_theta",
    "mine_entropy_patterns",
    "Segmentation",
    "segment",
]

DataLike = Union[SequenceDataset, Sequence[Sequence[int]]]


def _dataset(data: DataLike) -> SequenceDataset:
    if isinstance(data, SequenceDataset):
        return data
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(f"data must be a SequenceDataset or a list of item-id lists, got {type(data).__name__}")
    return SequenceDataset.from_lists(data)


def _check_threads(threads: int) -> int:
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = OpenMP default), got {threads}")
    return int(threads)


def _check_base(base: float) -> float:
    try:
        b = float(base)
    except (TypeError, ValueError):
        raise TypeError(f"base must be a number, got {base!r}") from None
    # A base in (0, 1) has a negative logarithm, so every entropy would come
    # out negative (and predictability would invert): not a unit of information.
    if not (b > 1.0 and math.isfinite(b)):
        raise ValueError(f"base must be a finite number > 1 (2: bits, e: nats), got {base!r}")
    return b


# ------------------------------------------------------------------ real entropy


_LZ_METHODS = {"auto": 0, "automaton": 1, "quadratic": 2}


def lambda_sums(data: DataLike, *, threads: int = 0, method: str = "auto") -> np.ndarray:
    """sum_i Lambda_i of every sequence (the integer behind :func:`real_entropy`).

    Parameters
    ----------
    data : SequenceDataset or list of lists of int
    threads : int, default 0
    method : {"auto", "automaton", "quadratic"}, default "auto"
        ``"automaton"``: suffix automaton, amortised O(n); ``"quadratic"``: the
        O(n^2) LCP recurrence ``L_i = max_{j<i} min(lcp(i, j), i - j)``, faster
        on short sequences; ``"auto"`` takes the quadratic one up to 32 items.
        All give the same integers.

    Returns
    -------
    np.ndarray of int64, shape (n_sequences,)
        0 for an empty sequence.
    """
    ds = _dataset(data)
    if method not in _LZ_METHODS:
        raise ValueError(f"method must be one of {', '.join(_LZ_METHODS)}, got {method!r}")
    return _core.lz_lambda_sums(ds.offsets, ds.items, _check_threads(threads), _LZ_METHODS[method])


def real_entropy(data: DataLike, base: float = 2, *, threads: int = 0) -> np.ndarray:
    """Lempel-Ziv estimate of the entropy rate ("real entropy") of each sequence.

    For a sequence s of length n let Lambda_i be the length of the shortest
    substring starting at i that does not occur as a contiguous substring lying
    entirely inside ``s[0:i]`` (``n - i + 1`` if there is none before the end).
    The estimate is ``S = n log2(n) / sum_i Lambda_i`` bits (Kontoyiannis et al.
    1998; Song et al., Science 2010), divided by ``log2(base)`` for another
    base. Items are whole symbols: ``[12]`` and ``[1, 2]`` never match.

    Computed in amortised O(n) per sequence (suffix automaton with first-end
    positions and a matching-statistics sweep; sequences of at most 32 items
    use the quadratic LCP recurrence, which is faster there), OpenMP across
    sequences.

    Parameters
    ----------
    data : SequenceDataset or list of lists of int
    base : float, default 2
        Logarithm base of the result (2: bits, e: nats).
    threads : int, default 0
        OpenMP threads (0: the runtime default).

    Returns
    -------
    np.ndarray of float64, shape (n_sequences,)
        NaN for an empty sequence (the estimator is undefined: 0 log 0 / 0);
        0.0 for a sequence of length 1 (log2(1) = 0). Identical, bit for bit,
        to :func:`fastregen.reference.entropy.real_entropy`.
    """
    ds = _dataset(data)
    return _core.real_entropy(ds.offsets, ds.items, _check_base(base), _check_threads(threads))


def n_distinct(data: DataLike, *, threads: int = 0) -> np.ndarray:
    """Number of distinct items of each sequence, int64 of shape (n_sequences,)."""
    ds = _dataset(data)
    return _core.n_distinct(ds.offsets, ds.items, _check_threads(threads))


# ------------------------------------------------------------------ predictability


def predictability(S, n_distinct, base: float = 2, *, iterations: int = 100) -> np.ndarray:
    """Maximum predictability Pi_max from Fano's inequality (Song et al. 2010).

    Solves ``S = H(Pi) + (1 - Pi) log2(N - 1)`` for Pi in ``[1/N, 1]``, with
    ``H(p) = -p log2 p - (1 - p) log2(1 - p)``. The right side falls
    monotonically on that interval, so a vectorised bisection (at most
    ``iterations`` halvings; it stops once every interval is down to adjacent
    floats, ~55 steps) finds the root.

    Parameters
    ----------
    S : array_like of float
        Entropy of each sequence in units of ``base`` (e.g. from
        :func:`real_entropy` with the same base). Must be >= 0 or NaN.
    n_distinct : array_like of int
        N, the number of distinct items of each sequence (>= 0); broadcast
        against ``S``.
    base : float, default 2
        Base in which ``S`` is expressed.
    iterations : int, default 100

    Returns
    -------
    np.ndarray of float64, shape ``broadcast(S, n_distinct).shape``
        Edge cases: N = 1 gives 1.0; S = 0 gives 1.0; S >= log2 N gives 1/N
        (the sequence is no more predictable than a uniform guess); NaN S or
        N = 0 (an empty sequence) gives NaN. Agrees with the scalar reference
        to within 1e-12.
    """
    base = _check_base(base)
    s = np.asarray(S, dtype=np.float64)
    n_raw = np.asarray(n_distinct)
    if n_raw.size and not np.issubdtype(n_raw.dtype, np.integer):
        if not np.all(np.equal(np.mod(n_raw, 1), 0)):
            raise TypeError(f"n_distinct must hold integers, got dtype {n_raw.dtype}")
    n = n_raw.astype(np.int64)
    s, n = np.broadcast_arrays(s, n)
    if np.any(s < 0):
        bad = s[s < 0].flat[0]
        raise ValueError(f"entropy S must be >= 0, got {bad}")
    if np.any(n < 0):
        raise ValueError(f"n_distinct must be >= 0, got {n[n < 0].flat[0]}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    bits = s if base == 2.0 else s * math.log2(base)
    out = np.full(s.shape, np.nan)
    valid = ~np.isnan(bits) & (n >= 1)
    nf = n.astype(np.float64)
    with np.errstate(divide="ignore"):
        log_n = np.where(n >= 1, np.log2(np.maximum(nf, 1.0)), 0.0)
    certain = valid & ((n == 1) | (bits == 0.0))
    out[certain] = 1.0
    uniform = valid & ~certain & (bits >= log_n)
    out[uniform] = 1.0 / nf[uniform]
    todo = valid & ~certain & ~uniform
    if np.any(todo):
        target = bits[todo]
        nn = nf[todo]
        log_rest = np.log2(nn - 1.0)
        lo = 1.0 / nn
        hi = np.ones_like(lo)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if np.all((mid <= lo) | (mid >= hi)):  # every interval is down to adjacent floats
                break
            # mid >= 1/N > 0; 1 - mid can round to 0 only at convergence, where
            # q log2 q -> 0 is what the clipped value gives.
            q = np.maximum(1.0 - mid, 1e-300)
            rhs = -mid * np.log2(mid) - q * np.log2(q) + q * log_rest
            above = rhs > target
            np.copyto(lo, mid, where=above)
            np.copyto(hi, mid, where=~above)
        out[todo] = 0.5 * (lo + hi)
    return out


@dataclass(frozen=True)
class EntropyReport:
    """Per-sequence entropy, distinct items and predictability (shape (n_sequences,) each)."""

    lengths: np.ndarray
    entropy: np.ndarray
    n_distinct: np.ndarray
    predictability: np.ndarray
    base: float = 2.0

    def summary(self) -> dict:
        """Mean / median / quartiles over the non-empty sequences."""
        keep = self.lengths > 0
        out = {"sequences": int(self.lengths.size), "empty": int((~keep).sum()), "base": self.base}
        for name in ("entropy", "predictability"):
            v = getattr(self, name)[keep]
            if v.size:
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                out[name] = {"mean": float(v.mean()), "q1": float(q1), "median": float(med), "q3": float(q3)}
            else:
                out[name] = None
        return out

    def __str__(self) -> str:
        s = self.summary()
        lines = [f"sequences     {s['sequences']:,} ({s['empty']} empty)"]
        unit = "bits" if self.base == 2.0 else f"log base {self.base:g}"
        for name, label in (("entropy", f"entropy ({unit})"), ("predictability", "predictability")):
            d = s[name]
            if d is None:
                lines.append(f"{label:<22}n/a")
            else:
                lines.append(
                    f"{label:<22}mean {d['mean']:.4f}  median {d['median']:.4f}  "
                    f"IQR [{d['q1']:.4f}, {d['q3']:.4f}]"
                )
        return "\n".join(lines)


def entropy_report(data: DataLike, base: float = 2, *, threads: int = 0) -> EntropyReport:
    """:func:`real_entropy`, :func:`n_distinct` and :func:`predictability` of every sequence."""
    ds = _dataset(data)
    S = real_entropy(ds, base, threads=threads)
    N = n_distinct(ds, threads=threads)
    return EntropyReport(ds.lengths, S, N, predictability(S, N, base), float(base))


# ------------------------------------------------------------------ Markov model


def _csr_contexts(contexts) -> tuple[np.ndarray, np.ndarray]:
    """Contexts as CSR (offsets int64, items int32) from a list of lists or a 2-D array."""
    if isinstance(contexts, np.ndarray) and contexts.ndim == 2:
        m, L = contexts.shape
        offsets = np.arange(m + 1, dtype=np.int64) * L
        arr = contexts
    else:
        seqs = [np.asarray(c).ravel() for c in contexts]
        # An empty list reads as float64: give it an integer dtype.
        seqs = [s.astype(np.int64) if s.size == 0 else s for s in seqs]
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum([s.size for s in seqs], out=offsets[1:])
        arr = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    arr = np.asarray(arr)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"contexts must hold integer item ids, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 1 or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"context item ids must be in 1..2**31-1, got {arr.min()}..{arr.max()}")
    return offsets, np.ascontiguousarray(arr, dtype=np.int32).ravel()


class MarkovModel:
    """Order-k Markov model of the next item, with interpolated Witten-Bell backoff.

    ``P_{-1}(s) = 1 / V`` (V = ``num_items``) and, for the last j context items
    ``h`` (j = 0..k, ``h'`` the last j - 1)::

        P_j(s | h) = (c(h, s) + T(h) P_{j-1}(s | h')) / (c(h) + T(h))

    where ``c(h)`` counts the times h is followed by an item in the training
    data, ``c(h, s)`` the times it is followed by s and ``T(h)`` the number of
    distinct items that follow it; a context never seen backs off unchanged
    (Witten & Bell 1991; Chen & Goodman 1998). Contexts do not cross sequence
    boundaries. Every probability is in (0, 1] and they sum to 1 over 1..V.

    Parameters
    ----------
    order : int, default 2
        k, the longest context used (0: a smoothed unigram model).
    """

    def __init__(self, order: int = 2):
        if not isinstance(order, (int, np.integer)) or isinstance(order, bool):
            raise TypeError(f"order must be an int, got {type(order).__name__}")
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        self.order = int(order)
        self._core: _core.MarkovModel | None = None

    @property
    def fitted(self) -> bool:
        return self._core is not None

    @property
    def num_items(self) -> int:
        self._require()
        return self._core.num_items

    def _require(self) -> None:
        if self._core is None:
            raise ValueError("this MarkovModel is not fitted; call .fit(data) first")

    def fit(self, data: DataLike, num_items: int | None = None) -> "MarkovModel":
        """Count the n-grams of ``data``; V defaults to ``data.num_items`` (at least 1)."""
        ds = _dataset(data)
        check_dense_ids(ds)  # the unigram table has num_items + 1 slots
        v = _int_arg("num_items", ds.num_items if num_items is None else num_items)
        if v < max(1, ds.num_items):
            raise ValueError(f"num_items = {num_items} is smaller than the largest item id {ds.num_items}")
        model = _core.MarkovModel(self.order, v)
        model.fit(ds.offsets, ds.items)
        self._core = model
        return self

    def prob(self, contexts, next_items, *, threads: int = 0) -> np.ndarray:
        """P(next_items[c] | contexts[c]) for every c.

        Parameters
        ----------
        contexts : list of lists of int, or int array of shape (m, L)
            Each context oldest item first; only its last ``order`` items are used.
        next_items : array_like of int, shape (m,)

        Returns
        -------
        np.ndarray of float64, shape (m,)
        """
        self._require()
        offsets, items = _csr_contexts(contexts)
        # Checked: an id beyond int32 or a float must not wrap into a valid id.
        nxt = _as_array("next_items", np.asarray(next_items).ravel(), np.int32)
        return self._core.prob(offsets, items, nxt, _check_threads(threads))

    def sequence_probs(self, data: DataLike, *, threads: int = 0) -> np.ndarray:
        """P(item | the items before it in its sequence) for every position.

        Returns float64 of shape (len(data.items),), aligned with ``data.items``:
        the array form accepted by :func:`mine_entropy_patterns` as ``model``.
        """
        self._require()
        ds = _dataset(data)
        k = self.order
        starts = np.repeat(ds.offsets[:-1], ds.lengths)
        pos = np.arange(ds.items.size, dtype=np.int64)
        ctx_start = np.maximum(pos - k, starts)
        offsets = np.zeros(pos.size + 1, dtype=np.int64)
        np.cumsum(pos - ctx_start, out=offsets[1:])
        lens = pos - ctx_start
        gather = np.repeat(ctx_start - offsets[:-1], lens) + np.arange(offsets[-1], dtype=np.int64)
        return self._core.prob(offsets, np.ascontiguousarray(ds.items[gather]), ds.items, _check_threads(threads))

    def __repr__(self) -> str:
        if self._core is None:
            return f"MarkovModel(order={self.order}, unfitted)"
        return f"MarkovModel(order={self.order}, num_items={self._core.num_items}, tokens={self._core.num_tokens})"


# ------------------------------------------------------------------ pattern miner

#: Multipliers of the mean seed entropy that give the default theta of each
#: UniDS stage. They differ only in theta: the recall stage keeps more and
#: longer patterns, the fine-ranking stage only the most predictable ones.
#: (Our defaults; UniDS does not publish its per-stage values.)
STAGE_THETA_SCALES: dict[str, float] = {"recall": 1.2, "coarse": 1.0, "fine": 0.9}


@dataclass
class EntropyMinerConfig:
    """Options of :func:`mine_entropy_patterns` (YAML via ``fastregen.config``).

    ``theta`` wins when set; otherwise theta = scale * mean seed entropy, with
    scale = ``STAGE_THETA_SCALES[stage]`` when ``stage`` is set, else
    ``theta_scale``.
    """

    theta: float | None = None
    theta_scale: float = 1.0
    stage: str | None = None
    min_count: int = 2
    max_len: int = 8
    order: int = 2


@dataclass(frozen=True)
class EntropyPatterns:
    """Mined patterns in CSR form, ordered by length, then by item ids.

    Attributes
    ----------
    offsets : np.ndarray of int64, shape (n_patterns + 1,)
    items : np.ndarray of int32
        Pattern p is ``items[offsets[p]:offsets[p + 1]]``.
    entropy : np.ndarray of float64, shape (n_patterns,)
        H(P), in bits.
    count : np.ndarray of int64, shape (n_patterns,)
        Contiguous occurrences of P in the data (overlapping ones counted).
    theta : float
        The threshold that was used.
    """

    offsets: np.ndarray
    items: np.ndarray
    entropy: np.ndarray
    count: np.ndarray
    theta: float
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __getitem__(self, p: int) -> np.ndarray:
        n = len(self)
        if not -n <= p < n:
            raise IndexError(f"pattern index {p} out of range for {n} patterns")
        p %= n
        return self.items[self.offsets[p] : self.offsets[p + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """Length of each pattern, int64 of shape (n_patterns,)."""
        return np.diff(self.offsets)

    def to_lists(self) -> list[list[int]]:
        """The patterns as Python lists of item ids, in stored order."""
        return [self[p].tolist() for p in range(len(self))]

    def __repr__(self) -> str:
        lens = self.lengths
        longest = int(lens.max()) if lens.size else 0
        return f"EntropyPatterns({len(self)} patterns, longest {longest}, theta={self.theta:.4g})"


def item_entropies(data: DataLike) -> tuple[np.ndarray, np.ndarray]:
    """Occurrences f_i and seed entropy -log2(f_i / F) of every item id 0..num_items.

    Returns ``(counts int64, entropy float64)``, both of shape (num_items + 1,);
    entropy is +inf for items that never occur (and for the padding id 0).
    """
    ds = _dataset(data)
    check_dense_ids(ds)
    return _core.item_entropies(ds.offsets, ds.items, max(1, int(ds.num_items)))


def _check_min_count(min_count) -> int:
    if not isinstance(min_count, (int, np.integer)) or isinstance(min_count, bool):
        raise TypeError(f"min_count must be an int, got {type(min_count).__name__}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    return int(min_count)


def default_theta(data: DataLike, scale: float = 1.0, min_count: int = 2) -> float:
    """``scale`` times the mean seed entropy -log2(f_i / F) over items with f_i >= min_count.

    NaN when no item occurs ``min_count`` times. The mean is ``math.fsum`` (exact
    rounding), so the reference computes the same theta bit for bit.
    """
    if not (isinstance(scale, (int, float, np.floating)) and scale > 0 and math.isfinite(scale)):
        raise ValueError(f"theta_scale must be a finite number > 0, got {scale!r}")
    counts, h = item_entropies(data)
    keep = counts >= _check_min_count(min_count)
    keep[0] = False
    if not keep.any():
        return math.nan
    return float(scale) * (math.fsum(h[keep].tolist()) / int(keep.sum()))


ModelLike = Union[None, MarkovModel, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]


def _scorer(fn: Callable) -> Callable:
    """Adapt a user callable (contexts (m, L), next (m,)) -> probs (m,) to the core's CSR batches."""

    def call(ctx_offsets: np.ndarray, ctx_items: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        m = nxt.size
        L = int(ctx_offsets[1] - ctx_offsets[0]) if m else 0
        contexts = ctx_items.reshape(m, L)
        contexts.flags.writeable = False
        out = np.asarray(fn(contexts, nxt), dtype=np.float64)
        if out.shape != (m,):
            raise ValueError(f"the model callable must return shape ({m},), got {out.shape}")
        bad = ~((out > 0.0) & (out <= 1.0))
        if bad.any():
            c = int(np.argmax(bad))
            raise ValueError(
                f"the model callable returned probability {float(out[c])!r} for context {contexts[c].tolist()} "
                f"-> item {int(nxt[c])}; probabilities must be in (0, 1]"
            )
        return np.ascontiguousarray(out)

    return call


def mine_entropy_patterns(
    data: DataLike,
    model: ModelLike = None,
    theta: float | None = None,
    *,
    theta_scale: float = 1.0,
    stage: str | None = None,
    min_count: int = 2,
    max_len: int = 8,
    order: int = 2,
    threads: int = 0,
) -> EntropyPatterns:
    """Low-entropy patterns of UniDS (section 4.2, appendix A.5).

    Seeds are single items i with ``H([i]) = -log2(f_i / F) < theta`` and
    ``f_i >= min_count`` (f_i occurrences of i, F all interactions). A pattern P
    is extended by every item s seen right after one of its occurrences:
    ``H(P + [s]) = H(P) + h(s | P)``, ``h(s | P) = -log2 p_m(s | P)``, keeping
    P + [s] while ``H < theta``, it occurs at least ``min_count`` times and
    ``len <= max_len``; levels repeat until nothing extends. H of each prefix is
    kept, so every extension costs one model query (the DP over prefixes).
    Occurrences are contiguous and may overlap.

    Parameters
    ----------
    data : SequenceDataset or list of lists of int
    model : None, MarkovModel, np.ndarray or callable
        p_m, the next-item model:

        - ``None``: a :class:`MarkovModel` of order ``order`` fitted on ``data``;
        - a fitted :class:`MarkovModel`: ``p_m(s | P) = P(s | last k items of P)``;
        - float array of shape ``(len(data.items),)`` aligned with
          ``data.items``: ``probs[g]`` is the probability a model (e.g. a trained
          SASRec) gave to the observed item at position g given the items before
          it in its sequence (the first item of a sequence: given nothing).
          ``p_m(s | P)`` is the arithmetic mean of ``probs[g]`` over the
          occurrences of P + [s] (g the position of s), summed in data order;
        - a callable ``model(contexts, next_items) -> probs``: ``contexts`` int32
          of shape (m, L) holds m patterns of length L (oldest item first),
          ``next_items`` int32 of shape (m,) the candidate extensions, and it
          returns float of shape (m,) with ``p_m(next_items[c] | contexts[c])``.
          It is called once per pattern length with all candidates of that level.

        Probabilities must lie in (0, 1].
    theta : float, optional
        Entropy threshold in bits (> 0). Default: ``scale`` times the mean seed
        entropy (:func:`default_theta`), scale from ``stage`` or ``theta_scale``.
    theta_scale : float, default 1.0
    stage : {"recall", "coarse", "fine"}, optional
        Preset scale from :data:`STAGE_THETA_SCALES`; excludes ``theta``.
    min_count : int, default 2
        c, the least number of occurrences of a kept pattern.
    max_len : int, default 8
        L_max, the longest pattern (>= 1).
    order : int, default 2
        Order of the Markov model fitted when ``model`` is None.
    threads : int, default 0

    Returns
    -------
    EntropyPatterns
        Identical (same patterns, counts and bit-identical entropies) to
        :func:`fastregen.reference.entropy.mine_entropy_patterns`.
    """
    ds = _dataset(data)
    min_count = _check_min_count(min_count)
    if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool):
        raise TypeError(f"max_len must be an int, got {type(max_len).__name__}")
    if max_len < 1:
        raise ValueError(f"max_len (L_max) must be >= 1, got {max_len}")
    threads = _check_threads(threads)
    if stage is not None:
        if stage not in STAGE_THETA_SCALES:
            raise ValueError(f"stage must be one of {', '.join(STAGE_THETA_SCALES)}, got {stage!r}")
        if theta is not None:
            raise ValueError(f"give theta ({theta}) or stage ({stage!r}), not both")
        theta_scale = STAGE_THETA_SCALES[stage]
    if theta is None:
        theta = default_theta(ds, theta_scale, min_count)
        if math.isnan(theta):  # no item is frequent enough to seed anything
            return EntropyPatterns(
                np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.int64), math.nan
            )
    else:
        try:
            theta = float(theta)
        except (TypeError, ValueError):
            raise TypeError(f"theta must be a number, got {theta!r}") from None
        if not (theta > 0 and math.isfinite(theta)):
            raise ValueError(f"theta must be a finite number > 0, got {theta!r}")

    check_dense_ids(ds)  # per-item tables
    num_items = max(1, int(ds.num_items))
    markov = probs = scorer = None
    if model is None:
        markov = MarkovModel(order).fit(ds)._core
    elif isinstance(model, MarkovModel):
        model._require()
        if model.num_items < ds.num_items:
            raise ValueError(
                f"the MarkovModel knows items 1..{model.num_items} but the data holds item {ds.num_items}"
            )
        markov = model._core
    elif isinstance(model, np.ndarray) or isinstance(model, (list, tuple)):
        probs = np.asarray(model)
        if probs.dtype.kind not in "fiu":
            raise TypeError(f"model probabilities must be numeric, got dtype {probs.dtype}")
        probs = np.ascontiguousarray(probs, dtype=np.float64)
        if probs.shape != ds.items.shape:
            raise ValueError(
                f"model probabilities must have shape (len(data.items),) = {ds.items.shape}, got {probs.shape}"
            )
        bad = ~((probs > 0.0) & (probs <= 1.0))
        if bad.any():
            g = int(np.argmax(bad))
            raise ValueError(f"model probabilities must be in (0, 1]; probs[{g}] = {float(probs[g])!r}")
    elif callable(model):
        scorer = _scorer(model)
    else:
        raise TypeError(
            f"model must be None, a MarkovModel, an array of probabilities or a callable, got {type(model).__name__}"
        )
    offsets, items, entropy, count = _core.mine_entropy_patterns(
        ds.offsets, ds.items, num_items, theta, min_count, int(max_len), markov, probs, scorer, threads
    )
    return EntropyPatterns(offsets, items, entropy, count, theta)


# ------------------------------------------------------------------ segmentation


@dataclass(frozen=True)
class Segmentation:
    """Every sequence cut into consecutive segments.

    Attributes
    ----------
    offsets : np.ndarray of int64, shape (n_sequences + 1,)
        Sequence u owns segments ``offsets[u]:offsets[u + 1]``.
    bounds : np.ndarray of int64, shape (n_segments + 1,)
        Segment k is ``data.items[bounds[k]:bounds[k + 1]]``.
    pattern_id : np.ndarray of int64, shape (n_segments,)
        Index of the segment's pattern, -1 for a fallback single item.
    data : SequenceDataset
        The segmented data.
    """

    offsets: np.ndarray
    bounds: np.ndarray
    pattern_id: np.ndarray
    data: SequenceDataset

    @property
    def num_segments(self) -> int:
        return int(self.pattern_id.size)

    def segments(self, u: int) -> list[np.ndarray]:
        """The segments of sequence u, as item arrays."""
        it = self.data.items
        return [it[self.bounds[k] : self.bounds[k + 1]] for k in range(self.offsets[u], self.offsets[u + 1])]

    def to_lists(self) -> list[list[list[int]]]:
        return [[s.tolist() for s in self.segments(u)] for u in range(len(self.data))]

    def as_dataset(self) -> SequenceDataset:
        """Each segment as its own sequence (what a pattern generator is trained on)."""
        return SequenceDataset(self.bounds - self.bounds[0], self.data.items, num_items=self.data.num_items)

    def __repr__(self) -> str:
        covered = int((self.pattern_id >= 0).sum())
        return f"Segmentation({len(self.data)} sequences, {self.num_segments} segments, {covered} from patterns)"


def segment(data: DataLike, patterns, *, threads: int = 0) -> Segmentation:
    """Cut each sequence into consecutive patterns [P1, ..., Pk], longest match first.

    At each position the longest pattern that matches there is taken; an item
    that starts no pattern becomes a single-item segment (pattern id -1).

    Parameters
    ----------
    data : SequenceDataset or list of lists of int
    patterns : EntropyPatterns or list of lists of int
        Duplicate patterns resolve to their first index; empty ones are an error.
    threads : int, default 0

    Returns
    -------
    Segmentation
    """
    ds = _dataset(data)
    if isinstance(patterns, EntropyPatterns):
        p_off, p_items = patterns.offsets, patterns.items
    else:
        pats = [np.asarray(p).ravel() for p in patterns]
        for k, p in enumerate(pats):
            if p.size == 0:
                raise ValueError(f"pattern {k} is empty")
        p_off, p_items = _csr_contexts(pats)
    offsets, bounds, pid = _core.segment(ds.offsets, ds.items, p_off, p_items, _check_threads(threads))
    return Segmentation(offsets, bounds, pid, ds)
