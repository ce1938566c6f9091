"""The CSR sequence dataset: the one in-memory representation of every stage.

`SequenceDataset` and the functions that build one from other inputs:
`concat` (the parts of a training set, each row tagged with its source),
`ensure_dataset` and `lists_to_csr` (item-id lists, as the estimators and
miners accept them). ~550 lines, over the house's ~500, because the type's
methods carry full docstrings; the builders are short and belong beside
the type (and its per-sequence ``meta`` conventions, `PER_SEQUENCE_META`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Iterable, Iterator, Sequence, Union

import numpy as np

__all__ = ["SequenceDataset", "check_dense_ids", "DENSE_IDS_UP_TO", "DataLike", "ensure_dataset", "lists_to_csr", "concat"]


def _as_array(name: str, value, dtype) -> np.ndarray:
    """Return `value` as a C-contiguous 1-D array of `dtype` without copying when possible.

    Integer inputs of another width are converted only when every value fits,
    so nothing is silently truncated; anything non-integer is a TypeError.
    """
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype != dtype:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ValueError(f"{name} has values outside the {np.dtype(dtype).name} range")
        arr = arr.astype(dtype)
    return np.ascontiguousarray(arr)


# Item ids index tables everywhere downstream (embeddings, the miners'
# per-item counters), so memory follows the largest id, not the number of
# items. Up to this id any table is small; above it, at least half of
# 1..max must occur.
DENSE_IDS_UP_TO = 1 << 20


def check_dense_ids(ds: "SequenceDataset", where: str = "", hint: str = "") -> None:
    """ValueError when ``ds``'s item ids are too sparse to size tables by.

    Ids up to `DENSE_IDS_UP_TO` (2^20) always pass; above that, at least
    half of the ids ``1..max`` must occur in the data. Called before anything
    allocates by the largest id: by `fastregen.data.load` without remapping
    and by the miners.

    Parameters
    ----------
    ds : SequenceDataset
    where : str
        Prefix of the message (``"FILE: "``).
    hint : str
        What to do, appended to the message (default: renumber with
        ``fastregen.data.remap``).
    """
    items = ds.items
    if not items.size:
        return
    hi = int(items.max())
    if hi <= DENSE_IDS_UP_TO:
        return
    distinct = ds.__dict__.get("_distinct_items")
    if distinct is None:
        # A sort, but only for ids above 2^20, and once per dataset.
        distinct = int(np.unique(items).size)
        object.__setattr__(ds, "_distinct_items", distinct)
    if 2 * distinct >= hi:
        return
    gib = hi * 64 * 4 / 2**30
    raise ValueError(
        f"{where}item ids are sparse: the largest is {hi:,} but only {distinct:,} distinct items occur, "
        f"and tables are sized by the largest id (a 64-wide float32 item embedding alone would take "
        f"{gib:,.1f} GiB); " + (hint or "renumber the items 1..N first with fastregen.data.remap(ds)")
    )


def _int_arg(name: str, value) -> int:
    """``value`` as a Python int; floats and bools are a TypeError (never truncated)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def _int_values(name: str, value) -> np.ndarray:
    """``value`` (a scalar or array of integers) as int64; floats are a TypeError."""
    arr = np.asarray(value)
    if arr.dtype == bool or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


#: ``meta`` keys holding one value per sequence (a training set's row sources,
#: per-sequence loss weights): `SequenceDataset.subset` selects them with the rows.
PER_SEQUENCE_META = ("source", "weights")


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Sequences of item ids in CSR form.

    Sequence ``u`` is ``items[offsets[u]:offsets[u + 1]]``, oldest item first.
    Item ids run from 1 to ``num_items``; 0 is reserved for padding and never
    appears in ``items``.

    Parameters
    ----------
    offsets : np.ndarray of int64, shape (n_sequences + 1,)
        Start of each sequence in ``items``; ``offsets[0] == 0`` and
        ``offsets[-1] == len(items)``, non-decreasing.
    items : np.ndarray of int32, shape (n_interactions,)
        Item ids, 1..num_items.
    num_items : int, optional
        Size of the item vocabulary (excluding padding). Defaults to
        ``items.max()``.
    timestamps : np.ndarray of int64, shape (n_interactions,), optional
        One timestamp per interaction, aligned with ``items``.
    user_ids : np.ndarray, shape (n_sequences,), optional
        Original id of each sequence's user (as read from the file).
    item_ids : np.ndarray, shape (num_items + 1,), optional
        ``item_ids[i]`` is the original id of internal item ``i``
        (``item_ids[0]`` is a placeholder for padding).
    name : str, optional
        Free-form label (the file it came from, ...), used in logs.

    Notes
    -----
    Arrays are stored as given when they already have the right dtype and
    layout (zero copy) and are made read-only; the C++ core reads them in
    place.
    """

    offsets: np.ndarray
    items: np.ndarray
    num_items: int | None = None
    timestamps: np.ndarray | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        offsets = _as_array("offsets", self.offsets, np.int64)
        items = _as_array("items", self.items, np.int32)
        if offsets.size == 0:
            raise ValueError("offsets must have n_sequences + 1 entries, got an empty array")
        if offsets[0] != 0:
            raise ValueError(f"offsets[0] must be 0, got {offsets[0]}")
        if offsets[-1] != items.size:
            raise ValueError(f"offsets[-1] = {offsets[-1]} does not match len(items) = {items.size}")
        steps = np.diff(offsets)
        if steps.size and steps.min() < 0:
            bad = int(np.argmax(steps < 0))
            raise ValueError(f"offsets must be non-decreasing (offsets[{bad + 1}] < offsets[{bad}])")
        if items.size:
            lo, hi = int(items.min()), int(items.max())
            if lo < 1:
                pos = int(np.argmax(items < 1))
                raise ValueError(
                    f"item ids must be >= 1 (0 is padding); found {lo} at position {pos}"
                )
        else:
            hi = 0
        num_items = hi if self.num_items is None else int(self.num_items)
        if num_items < hi:
            raise ValueError(f"num_items = {num_items} but the data holds item id {hi}")
        ts = None
        if self.timestamps is not None:
            ts = _as_array("timestamps", self.timestamps, np.int64)
            if ts.size != items.size:
                raise ValueError(f"timestamps has {ts.size} entries, items has {items.size}")
        if self.user_ids is not None and len(self.user_ids) != offsets.size - 1:
            raise ValueError(
                f"user_ids has {len(self.user_ids)} entries for {offsets.size - 1} sequences"
            )
        if self.item_ids is not None and len(self.item_ids) != num_items + 1:
            raise ValueError(
                f"item_ids must have num_items + 1 = {num_items + 1} entries, got {len(self.item_ids)}"
            )
        for arr in (offsets, items, ts):
            if arr is not None:
                arr.flags.writeable = False
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "num_items", num_items)
        object.__setattr__(self, "timestamps", ts)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __getitem__(self, u: int) -> np.ndarray:
        n = len(self)
        if not -n <= u < n:
            raise IndexError(f"sequence index {u} out of range for {n} sequences")
        u %= n
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for u in range(len(self)):
            yield self.items[self.offsets[u] : self.offsets[u + 1]]

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (
            f"SequenceDataset{label}(sequences={len(self)}, items={self.num_items}, "
            f"interactions={self.num_interactions})"
        )

    @property
    def lengths(self) -> np.ndarray:
        """Length of each sequence, int64 of shape (n_sequences,)."""
        return np.diff(self.offsets)

    @property
    def num_interactions(self) -> int:
        """Total number of items over all sequences (``len(items)``)."""
        return int(self.items.size)

    @property
    def num_sequences(self) -> int:
        return len(self)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_lists(
        cls,
        sequences: Iterable[Sequence[int]],
        num_items: int | None = None,
        **kwargs,
    ) -> "SequenceDataset":
        """Build a dataset from a list of item-id lists (ids already 1..num_items).

        Parameters
        ----------
        sequences : iterable of sequences of int
            One list (or 1-D array) of item ids per sequence, oldest first;
            empty sequences are allowed.
        num_items : int, optional
            Vocabulary size; default the largest id.
        **kwargs
            Other `SequenceDataset` fields (``timestamps``, ``user_ids``, ``name``, ...).

        Returns
        -------
        SequenceDataset
            ``offsets`` int64 of shape (len(sequences) + 1,), ``items`` int32.
        """
        seqs = []
        for k, s in enumerate(sequences):
            arr = np.asarray(s)
            # Checked, not cast: np.asarray(..., dtype=int64) would truncate
            # 1.5 to 1 and parse the string "3".
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"sequence {k} must hold integer item ids, got dtype {arr.dtype}")
            seqs.append(arr.astype(np.int64, copy=False).ravel())
        lengths = np.fromiter((s.size for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        return cls(offsets, items, num_items=num_items, **kwargs)

    def to_lists(self) -> list[list[int]]:
        """The sequences as Python lists (for small data and tests)."""
        return [s.tolist() for s in self]

    def replace(self, **changes) -> "SequenceDataset":
        """A copy with some fields replaced (arrays are shared, not copied)."""
        fields = dict(
            offsets=self.offsets,
            items=self.items,
            num_items=self.num_items,
            timestamps=self.timestamps,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            name=self.name,
            meta=dict(self.meta),
        )
        fields.update(changes)
        return SequenceDataset(**fields)

    def _derived(self, **changes) -> "SequenceDataset":
        """Like `replace`, without re-validating: for results built from this
        (already validated) dataset's own arrays, whose ids and offsets are
        valid by construction. Arrays are made read-only as in the constructor."""
        out = object.__new__(SequenceDataset)
        for f in dataclass_fields(self):
            value = changes[f.name] if f.name in changes else getattr(self, f.name)
            if f.name == "meta":
                value = dict(value)
            elif isinstance(value, np.ndarray) and f.name in ("offsets", "items", "timestamps"):
                value.flags.writeable = False
            object.__setattr__(out, f.name, value)
        return out

    def _gather(self, starts: np.ndarray, ends: np.ndarray, **changes) -> "SequenceDataset":
        """The dataset whose sequence k is ``items[starts[k]:ends[k]]`` (compiled gather)."""
        from .. import _core

        offsets, items = _core.gather_ranges(self.items, starts, ends)
        ts = None if self.timestamps is None else _core.gather_ranges(self.timestamps, starts, ends)[1]
        return self._derived(offsets=offsets, items=items, timestamps=ts, **changes)

    def subset(self, index) -> "SequenceDataset":
        """The sequences at ``index``, in that order (repeats allowed).

        Parameters
        ----------
        index : array_like of int, shape (k,), or of bool, shape (n_sequences,)
            Sequence indices (negative ones are an IndexError, not counted from
            the end) or a boolean mask.

        Returns
        -------
        SequenceDataset
            ``k`` sequences; timestamps, ``user_ids`` and the per-sequence
            ``meta`` arrays (`PER_SEQUENCE_META`: ``source``, ``weights``)
            follow, ``num_items``, ``item_ids`` and the rest of ``meta`` are kept.
        """
        index = np.asarray(index)
        if index.dtype == bool:
            if index.size != len(self):
                raise ValueError(f"boolean mask has {index.size} entries for {len(self)} sequences")
            index = np.flatnonzero(index)
        if index.ndim != 1:
            raise ValueError(f"index must be 1-D, got shape {index.shape}")
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"index must hold integers or booleans, got dtype {index.dtype}")
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            bad = index[(index < 0) | (index >= len(self))][0]
            raise IndexError(f"subset index {bad} out of range for {len(self)} sequences")
        index = index.astype(np.int64, copy=False)
        meta = dict(self.meta)
        for key in PER_SEQUENCE_META:
            if key in meta:
                meta[key] = np.asarray(meta[key])[index]
        return self._gather(
            self.offsets[index],
            self.offsets[index + 1],
            user_ids=None if self.user_ids is None else np.asarray(self.user_ids)[index],
            meta=meta,
        )

    def slice_sequences(self, start: int | np.ndarray = 0, stop: int | np.ndarray | None = None) -> "SequenceDataset":
        """Cut every sequence to ``seq[start:stop]`` (Python slice semantics per sequence).

        Parameters
        ----------
        start : int or array_like of int, shape (n_sequences,), default 0
        stop : int or array_like of int, shape (n_sequences,), optional
            Default: each sequence's end. Negative values count from each
            sequence's end. Sequences may become empty.

        Returns
        -------
        SequenceDataset
            Same number of sequences, user ids and maps kept.
        """
        lengths = self.lengths
        s = np.broadcast_to(_int_values("start", start), lengths.shape)
        e = lengths if stop is None else np.broadcast_to(_int_values("stop", stop), lengths.shape)
        s = np.where(s < 0, np.maximum(lengths + s, 0), np.minimum(s, lengths))
        e = np.where(e < 0, np.maximum(lengths + e, 0), np.minimum(e, lengths))
        e = np.maximum(e, s)
        return self._gather(self.offsets[:-1] + s, self.offsets[:-1] + e)

    def truncate(self, max_len: int) -> "SequenceDataset":
        """Keep the last ``max_len`` (int >= 1) items of each sequence (the most recent ones)."""
        max_len = _int_arg("max_len", max_len)
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        return self.slice_sequences(start=-max_len)

    def padded(self, max_len: int, side: str = "left", values: np.ndarray | None = None) -> np.ndarray:
        """Dense (n_sequences, max_len) int64 array, 0-padded, most recent items kept.

        ``side="left"`` right-aligns the sequences (the last item in the last
        column); ``side="right"`` left-aligns them. ``values`` (one per
        interaction, e.g. ``self.timestamps``) are laid out instead of the
        items, in the same cells.
        """
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        max_len = _int_arg("max_len", max_len)
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        lengths = np.minimum(self.lengths, max_len)
        n = len(self)
        out = np.zeros((n, max_len), dtype=np.int64)
        if n == 0:
            return out
        rows = np.repeat(np.arange(n), lengths)
        within = np.arange(rows.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        src = np.repeat(self.offsets[1:] - lengths, lengths) + within
        cols = within + (max_len - np.repeat(lengths, lengths) if side == "left" else 0)
        if values is not None and np.shape(values) != self.items.shape:
            raise ValueError(f"values must have one entry per interaction ({self.items.size}), got {np.shape(values)}")
        out[rows, cols] = (self.items if values is None else values)[src]
        return out



def concat(*datasets: SequenceDataset, num_items: int | None = None, sources=None, weights=None,
           drop_empty: bool = False, **fields) -> SequenceDataset:
    """Stack datasets row-wise (the sequences of the first, then of the second, ...), tagging each row's source.

    The one way fastregen builds a training set from parts (DR4SR's
    original + patterns + regenerated, UniDS's original + generated): the
    result's ``meta["source"]`` (int64, one per sequence) indexes
    ``meta["source_names"]`` (list of str), so DR4SR+ can tell the parts
    apart (``PlusConfig.dev_source``, ``frozen_sources``) whichever method
    built the set.

    Parameters
    ----------
    *datasets : SequenceDataset
        At least one. Their item ids must share one id space. A dataset that
        is already tagged (``meta["source"]`` and ``meta["source_names"]``,
        e.g. an earlier `concat`) keeps its rows' tags.
    num_items : int, optional
        Vocabulary size of the result; defaults to the largest ``num_items``.
    sources : sequence of str, optional
        The source name of each untagged dataset (default: its ``name``, or
        ``"part{i}"`` without one). Datasets with the same name share a tag.
    weights : sequence of float, optional
        One loss weight per dataset, given to all its sequences as
        ``meta["weights"]`` (float32 per sequence, read by
        `fastregen.training.fit_and_evaluate`). Default: no weights.
    drop_empty : bool, default False
        Leave out empty sequences (a "lines" file cannot hold them).
    **fields
        Other `SequenceDataset` fields of the result (``name``, ``item_ids``,
        ``meta``; the tags are added to a given ``meta``). User ids are not
        carried over; timestamps are when every dataset has them (a model
        with a time bias then reads them for all sequences), else the
        result has none.

    Raises
    ------
    ValueError
        No dataset, or ``sources``/``weights`` not one per dataset.
    """
    if not datasets:
        raise ValueError("concat needs at least one dataset")
    for what, values in (("source names", sources), ("weights", weights)):
        if values is not None and len(values) != len(datasets):
            raise ValueError(f"{len(values)} {what} for {len(datasets)} datasets")
    names: list[str] = []
    parts, tags, seq_w = [], [], []
    for i, d in enumerate(datasets):
        if "source" in d.meta and "source_names" in d.meta:
            part_names, part_tags = list(d.meta["source_names"]), np.asarray(d.meta["source"], dtype=np.int64)
        else:
            label = sources[i] if sources is not None else (d.name or f"part{i}")
            part_names, part_tags = [label], np.zeros(len(d), dtype=np.int64)
        for nm in part_names:
            if nm not in names:
                names.append(nm)
        to_result = np.asarray([names.index(nm) for nm in part_names], dtype=np.int64)
        if drop_empty and not bool((d.lengths > 0).all()):
            keep = np.flatnonzero(d.lengths > 0)
            d, part_tags = d.subset(keep), part_tags[keep]
        parts.append(d)
        tags.append(to_result[part_tags])
        if weights is not None:
            seq_w.append(np.full(len(d), weights[i], dtype=np.float32))
    offsets, base = [np.zeros(1, dtype=np.int64)], 0
    for d in parts:
        offsets.append(d.offsets[1:] + base)
        base += d.num_interactions
    if "timestamps" not in fields and all(d.timestamps is not None for d in parts):
        fields["timestamps"] = np.concatenate([d.timestamps for d in parts])
    meta = dict(fields.pop("meta", None) or {})
    meta.update(source=np.concatenate(tags), source_names=names)
    if weights is not None:
        meta["weights"] = np.concatenate(seq_w)
    return SequenceDataset(
        np.concatenate(offsets),
        np.concatenate([d.items for d in parts]),
        num_items=max(d.num_items for d in parts) if num_items is None else num_items,
        meta=meta,
        **fields,
    )


#: What the estimators and miners accept as sequences: a dataset or a list of item-id lists.
DataLike = Union[SequenceDataset, Sequence[Sequence[int]]]


def ensure_dataset(data: DataLike) -> SequenceDataset:
    """``data`` itself if it is a `SequenceDataset`, else ``SequenceDataset.from_lists(data)``.

    Raises
    ------
    TypeError
        ``data`` is neither (a string, or not iterable).
    """
    if isinstance(data, SequenceDataset):
        return data
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(f"data must be a SequenceDataset or a list of item-id lists, got {type(data).__name__}")
    return SequenceDataset.from_lists(data)


def lists_to_csr(contexts) -> tuple[np.ndarray, np.ndarray]:
    """Item-id lists (contexts, patterns) as CSR, for the core's kernels.

    Parameters
    ----------
    contexts : list of lists of int, or np.ndarray of shape (m, L)
        Item ids in 1..2**31-1; a 2-D array is m rows of length L.

    Returns
    -------
    offsets : np.ndarray of int64, shape (m + 1,)
    items : np.ndarray of int32, shape (offsets[-1],)

    Raises
    ------
    TypeError
        Non-integer ids.
    ValueError
        An id outside 1..2**31-1.
    """
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
