"""`Patterns`: the one CSR pattern type of fastregen (span-mined, window-counted, entropy-mined)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..data import SequenceDataset
from ..data.dataset import _as_array
from .io import read, write

__all__ = ["Patterns", "KINDS"]

#: What mined a `Patterns`: DR4SR's span miner, contiguous-window counts, UniDS's entropy miner.
KINDS = ("span", "window", "entropy")


@dataclass(frozen=True, eq=False)
class Patterns:
    """A set of item patterns in CSR form, with their supports.

    Pattern ``k`` is ``items[offsets[k]:offsets[k + 1]]`` and occurs in
    ``support[k]`` sequences (span patterns) or ``support[k]`` times
    (window and entropy patterns, which count contiguous, possibly
    overlapping occurrences). Miners order them by length, then
    lexicographically.

    Attributes
    ----------
    offsets : np.ndarray of int64, shape (n_patterns + 1,)
    items : np.ndarray of int32, shape (offsets[-1],)
        Item ids (>= 1), in the ids of the dataset they were mined from.
    support : np.ndarray of int64, shape (n_patterns,)
    max_span : int or None
        The span ``alpha`` span patterns were mined with (None: unknown or contiguous).
    min_support, min_len, max_len : int or None
        The other mining parameters (provenance; None when unknown).
    kind : {"span", "window", "entropy"}
        `fastregen.patterns.mine_patterns`, `fastregen.patterns.window_counts`
        or `fastregen.patterns.mine_entropy_patterns`.
    num_items : int or None
        Item vocabulary size of the source dataset.
    entropy : np.ndarray of float64, shape (n_patterns,), optional
        H(P) in bits (entropy patterns only).
    theta : float or None
        The entropy threshold entropy patterns were mined with (NaN when no
        item was frequent enough to seed a pattern).
    """

    offsets: np.ndarray
    items: np.ndarray
    support: np.ndarray
    max_span: int | None = None
    min_support: int | None = None
    min_len: int | None = None
    max_len: int | None = None
    kind: str = "span"
    num_items: int | None = None
    entropy: np.ndarray | None = None
    theta: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked conversions: an int64 id beyond int32 or a float is an
        # error, never silently wrapped or truncated.
        offsets = _as_array("offsets", self.offsets, np.int64)
        items = _as_array("items", self.items, np.int32)
        support = _as_array("support", self.support, np.int64)
        if offsets.size < 1 or offsets[0] != 0 or offsets[-1] != items.size:
            raise ValueError("offsets must be 1-D, start at 0 and end at len(items)")
        if offsets.size > 1 and np.any(offsets[1:] < offsets[:-1]):
            raise ValueError("offsets must be non-decreasing")
        if items.size and items.min() < 1:
            raise ValueError(f"pattern item ids must be >= 1, got {int(items.min())}")
        if support.shape != (offsets.size - 1,):
            raise ValueError(f"support has shape {support.shape}, expected ({offsets.size - 1},)")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")
        entropy = None
        if self.entropy is not None:
            entropy = np.ascontiguousarray(self.entropy, dtype=np.float64)
            if entropy.shape != support.shape:
                raise ValueError(f"entropy has shape {entropy.shape}, expected {support.shape}")
            entropy.flags.writeable = False
        elif self.kind == "entropy":
            raise ValueError("entropy patterns need their entropy H(P) (one float per pattern)")
        for arr in (offsets, items, support):
            arr.flags.writeable = False
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "support", support)
        object.__setattr__(self, "entropy", entropy)
        if self.theta is not None:
            object.__setattr__(self, "theta", float(self.theta))

    # ------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __getitem__(self, k: int) -> np.ndarray:
        n = len(self)
        if not -n <= k < n:
            raise IndexError(f"pattern index {k} out of range for {n} patterns")
        k %= n
        return self.items[self.offsets[k] : self.offsets[k + 1]]

    def __repr__(self) -> str:
        by_len = ", ".join(f"{l}: {c}" for l, c in self.counts_by_length().items())
        extra = f"theta={self.theta:.4g}" if self.kind == "entropy" else f"max_span={self.max_span}"
        return f"Patterns(n={len(self)}, kind={self.kind!r}, {extra}, by length {{{by_len}}})"

    @property
    def lengths(self) -> np.ndarray:
        """Length of each pattern, int64 of shape (n_patterns,)."""
        return np.diff(self.offsets)

    @property
    def count(self) -> np.ndarray:
        """``support`` under the name the entropy miner uses (contiguous occurrences)."""
        return self.support

    def counts_by_length(self) -> dict[int, int]:
        """``{length: number of patterns}``, ascending length."""
        lengths, counts = np.unique(self.lengths, return_counts=True)
        return {int(l): int(c) for l, c in zip(lengths, counts)}

    def to_list(self) -> list[tuple[tuple[int, ...], int]]:
        """``[(pattern, support), ...]`` as Python tuples, in stored order."""
        items = self.items.tolist()
        offs = self.offsets.tolist()
        return [(tuple(items[offs[k] : offs[k + 1]]), int(s)) for k, s in enumerate(self.support.tolist())]

    def to_lists(self) -> list[list[int]]:
        """The patterns as Python lists of item ids, in stored order."""
        items = self.items.tolist()
        offs = self.offsets.tolist()
        return [items[offs[k] : offs[k + 1]] for k in range(len(self))]

    def top(self, n: int = 10) -> list[tuple[tuple[int, ...], int]]:
        """The ``n`` most supported patterns (ties: stored order)."""
        order = np.argsort(-self.support, kind="stable")[: max(0, n)]
        return [(tuple(self[int(k)].tolist()), int(self.support[k])) for k in order]

    def as_dataset(self, num_items: int | None = None) -> SequenceDataset:
        """One pattern per row, as a `SequenceDataset` (shares the arrays)."""
        if num_items is None:
            num_items = self.num_items
        if num_items is not None and self.items.size and int(self.items.max()) > num_items:
            num_items = None  # let the dataset take the largest id
        return SequenceDataset(self.offsets, self.items, num_items=num_items, name="patterns")

    # ------------------------------------------------------------ save/load
    def save(self, path) -> None:
        """Write the patterns as text, atomically (format: `fastregen.patterns.io`)."""
        write(self, path)

    @classmethod
    def load(cls, path) -> "Patterns":
        """Read a file written by `save` (format: `fastregen.patterns.io`).

        Raises
        ------
        ValueError
            A malformed line or header field, naming the file (and line).
        """
        fields = read(path)
        try:
            return cls(**fields)
        except (ValueError, TypeError) as e:  # a bad header value (kind=...)
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def empty(cls, **fields) -> "Patterns":
        """No pattern (the entropy miner's result when nothing seeds one)."""
        if fields.get("kind") == "entropy":
            fields.setdefault("entropy", np.zeros(0))
            fields.setdefault("theta", math.nan)
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64), **fields)
