"""UniDS's conditional-entropy pattern miner and the segmentation of sequences into its patterns.

UniDS (section 4.2, appendix A.5) mines *low-entropy* patterns: a pattern is
kept while its entropy H(P) = H(first item) + sum of the surprisals of the
items after it under a next-item model p_m stays below a threshold theta, and
every sequence is then cut into consecutive patterns [P1, ..., Pk], which the
uniform generator trains on (`fastregen.unids`).

>>> from fastregen import data, patterns
>>> ds = data.SequenceDataset.from_lists([[1, 2, 3, 1, 2, 3, 1, 2], [4, 5, 4, 5, 4]])
>>> pats = patterns.mine_entropy_patterns(ds, theta=4.0)
>>> seg = patterns.segment(ds, pats)

The estimators the miner builds on (real entropy, predictability, the Markov
model p_m) stay in `fastregen.entropy`; the pure-Python oracle is
`fastregen.reference.entropy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from .. import _core
from .._threads import check_threads
from ..data import SequenceDataset
from ..data.dataset import DataLike, check_dense_ids, ensure_dataset, lists_to_csr
from ..entropy import MarkovModel
from .base import Patterns

__all__ = [
    "EntropyMinerConfig",
    "STAGE_THETA_SCALES",
    "item_entropies",
    "default_theta",
    "mine_entropy_patterns",
    "Segmentation",
    "segment",
]


#: Multipliers of the mean seed entropy that give the default theta of each
#: UniDS stage. UniDS's Fig. 2 finds that a higher theta helps the
#: fine-ranking metric (AUC) and a lower one the recall and coarse-ranking
#: ones (MRR, NDCG), so theta rises from recall to fine. The values are ours
#: (UniDS publishes none): below 1.1 the order-2 Markov miner finds almost no
#: multi-item pattern on ml-100k (83 segments of two items at 1.0, 9,044 at
#: 1.3), and above 1.3 Beauty's patterns stop changing. Choose them on
#: validation for a new dataset (`benchmarks/unids.py theta`).
STAGE_THETA_SCALES: dict[str, float] = {"recall": 1.2, "coarse": 1.3, "fine": 1.4}


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


def item_entropies(data: DataLike) -> tuple[np.ndarray, np.ndarray]:
    """Occurrences f_i and seed entropy -log2(f_i / F) of every item id 0..num_items.

    Returns ``(counts int64, entropy float64)``, both of shape (num_items + 1,);
    entropy is +inf for items that never occur (and for the padding id 0).
    """
    ds = ensure_dataset(data)
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
) -> Patterns:
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
    Patterns
        ``kind="entropy"``: ``support`` (also ``count``) the contiguous
        occurrences of each pattern (overlapping ones counted), ``entropy``
        H(P) in bits, ``theta`` the threshold used. Identical (same patterns,
        counts and bit-identical entropies) to
        :func:`fastregen.reference.entropy.mine_entropy_patterns`.
    """
    ds = ensure_dataset(data)
    min_count = _check_min_count(min_count)
    if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool):
        raise TypeError(f"max_len must be an int, got {type(max_len).__name__}")
    if max_len < 1:
        raise ValueError(f"max_len (L_max) must be >= 1, got {max_len}")
    threads = check_threads(threads)
    if stage is not None:
        if stage not in STAGE_THETA_SCALES:
            raise ValueError(f"stage must be one of {', '.join(STAGE_THETA_SCALES)}, got {stage!r}")
        if theta is not None:
            raise ValueError(f"give theta ({theta}) or stage ({stage!r}), not both")
        theta_scale = STAGE_THETA_SCALES[stage]
    if theta is None:
        theta = default_theta(ds, theta_scale, min_count)
        if math.isnan(theta):  # no item is frequent enough to seed anything
            return Patterns.empty(kind="entropy", min_support=min_count, max_len=int(max_len),
                                  num_items=int(ds.num_items))
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
    return Patterns(offsets, items, count, min_support=min_count, min_len=1, max_len=int(max_len), kind="entropy",
                    num_items=int(ds.num_items), entropy=entropy, theta=theta)


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
    patterns : Patterns or list of lists of int
        Any kind (entropy-mined, span-mined, window counts).
        Duplicate patterns resolve to their first index; empty ones are an error.
    threads : int, default 0

    Returns
    -------
    Segmentation
    """
    ds = ensure_dataset(data)
    if isinstance(patterns, Patterns):
        p_off, p_items = patterns.offsets, patterns.items
    else:
        pats = [np.asarray(p).ravel() for p in patterns]
        for k, p in enumerate(pats):
            if p.size == 0:
                raise ValueError(f"pattern {k} is empty")
        p_off, p_items = lists_to_csr(pats)
    offsets, bounds, pid = _core.segment(ds.offsets, ds.items, p_off, p_items, check_threads(threads))
    return Segmentation(offsets, bounds, pid, ds)
