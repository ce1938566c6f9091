"""Entropy of user sequences, and the next-item model of UniDS's pattern miner.

- :func:`real_entropy`: the Lempel-Ziv "real entropy" estimator of each
  sequence (Kontoyiannis et al. 1998; Song et al., Science 2010), computed in
  near-linear time by a suffix automaton in the C++ core.
- :func:`predictability`: the upper bound Pi_max on how well any model can
  predict a sequence, from Fano's inequality.
- :class:`MarkovModel`: an order-k next-item model with interpolated
  Witten-Bell backoff, estimated in C++.

UniDS's conditional-entropy pattern miner, built on `MarkovModel`, is
`fastregen.patterns.mine_entropy_patterns` (with `fastregen.patterns.segment`
and the one `fastregen.patterns.Patterns` type): patterns build on this
module, never the other way round.

Examples
--------
>>> from fastregen import data, entropy
>>> ds = data.SequenceDataset.from_lists([[1, 2, 3, 1, 2, 3, 1, 2], [4, 5, 4, 5, 4]])
>>> S = entropy.real_entropy(ds)
>>> pi = entropy.predictability(S, entropy.n_distinct(ds))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from ._threads import check_threads
from .data.dataset import DataLike, _as_array, _int_arg, check_dense_ids, ensure_dataset, lists_to_csr

__all__ = [
    "real_entropy",
    "lambda_sums",
    "n_distinct",
    "predictability",
    "EntropyReport",
    "entropy_report",
    "MarkovModel",
]

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
    ds = ensure_dataset(data)
    if method not in _LZ_METHODS:
        raise ValueError(f"method must be one of {', '.join(_LZ_METHODS)}, got {method!r}")
    return _core.lz_lambda_sums(ds.offsets, ds.items, check_threads(threads), _LZ_METHODS[method])


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
    ds = ensure_dataset(data)
    return _core.real_entropy(ds.offsets, ds.items, _check_base(base), check_threads(threads))


def n_distinct(data: DataLike, *, threads: int = 0) -> np.ndarray:
    """Number of distinct items of each sequence, int64 of shape (n_sequences,)."""
    ds = ensure_dataset(data)
    return _core.n_distinct(ds.offsets, ds.items, check_threads(threads))


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
    ds = ensure_dataset(data)
    S = real_entropy(ds, base, threads=threads)
    N = n_distinct(ds, threads=threads)
    return EntropyReport(ds.lengths, S, N, predictability(S, N, base), float(base))


# ------------------------------------------------------------------ Markov model


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

    @property
    def num_tokens(self) -> int:
        """Interactions (item tokens) the model was fitted on."""
        self._require()
        return self._core.num_tokens

    def _require(self) -> None:
        if self._core is None:
            raise ValueError("this MarkovModel is not fitted; call .fit(data) first")

    def fit(self, data: DataLike, num_items: int | None = None) -> "MarkovModel":
        """Count the n-grams of ``data``; V defaults to ``data.num_items`` (at least 1)."""
        ds = ensure_dataset(data)
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
        offsets, items = lists_to_csr(contexts)
        # Checked: an id beyond int32 or a float must not wrap into a valid id.
        nxt = _as_array("next_items", np.asarray(next_items).ravel(), np.int32)
        return self._core.prob(offsets, items, nxt, check_threads(threads))

    def sequence_probs(self, data: DataLike, *, threads: int = 0) -> np.ndarray:
        """P(item | the items before it in its sequence) for every position.

        Returns float64 of shape (len(data.items),), aligned with ``data.items``:
        the array form accepted by :func:`mine_entropy_patterns` as ``model``.
        """
        self._require()
        ds = ensure_dataset(data)
        k = self.order
        starts = np.repeat(ds.offsets[:-1], ds.lengths)
        pos = np.arange(ds.items.size, dtype=np.int64)
        ctx_start = np.maximum(pos - k, starts)
        offsets = np.zeros(pos.size + 1, dtype=np.int64)
        np.cumsum(pos - ctx_start, out=offsets[1:])
        lens = pos - ctx_start
        gather = np.repeat(ctx_start - offsets[:-1], lens) + np.arange(offsets[-1], dtype=np.int64)
        return self._core.prob(offsets, np.ascontiguousarray(ds.items[gather]), ds.items, check_threads(threads))

    def __repr__(self) -> str:
        if self._core is None:
            return f"MarkovModel(order={self.order}, unfitted)"
        return f"MarkovModel(order={self.order}, num_items={self._core.num_items}, tokens={self._core.num_tokens})"
