"""Ids as the readers check and store them: ranges, renumbering (``remap``), CSR from sorted interactions.

Item 0 is padding and item ids are int32 (see `fastregen.data.io`); the text
and table readers share these checks and the final grouping of interactions
sorted by (user, time) into a `SequenceDataset`.
"""

from __future__ import annotations

import os

import numpy as np

from ..dataset import SequenceDataset

_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = np.iinfo(np.int64).max


def _check_ids(path, what: str, values: np.ndarray, lines: np.ndarray, *, min_id: int, max_id: int | None, hint: str = "") -> None:
    """ValueError naming the line of the first value outside [min_id, max_id]."""
    if not values.size:
        return
    lo, hi = values.min(), values.max()
    if lo >= min_id and (max_id is None or hi <= max_id):
        return
    bad = values < min_id if max_id is None else (values < min_id) | (values > max_id)
    pos = int(np.argmax(bad))
    v = int(values[pos])
    if v < 0:
        why = f"negative {what} id {v}"
    elif v < min_id:
        why = f"{what} id {v} is reserved for padding (ids must be >= {min_id})"
    else:
        why = f"{what} id {v} exceeds the int32 range of item ids"
    raise ValueError(f"{path}:{int(lines[pos])}: {why}{hint}")


_REMAP_HINT = "; pass remap=True to renumber the items 1..N and keep the originals in item_ids"


def _finish_items(items: np.ndarray, remap: bool):
    """int32 items (and the map) from validated item ids."""
    if not remap:
        return items.astype(np.int32, copy=False), None
    uniq, inverse = np.unique(items, return_inverse=True)
    item_ids = np.empty(uniq.size + 1, dtype=np.int64)
    item_ids[0] = -1  # padding has no original id
    item_ids[1:] = uniq
    return (inverse + 1).astype(np.int32), item_ids


def _group_sorted(path, user, item, ts, remap, fmt, user_labels=None, item_labels=None) -> SequenceDataset:
    """CSR dataset from interactions already sorted by (user, time)."""
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if user.size else np.zeros(0, np.int64)
    offsets = np.append(starts, user.size).astype(np.int64)
    uid = user[starts]
    if user_labels is not None:
        uid = user_labels[uid]
    if item_labels is not None:
        # Table ids: item codes index the sorted labels; item 0 is padding.
        items = (item + 1).astype(np.int32)
        item_ids = item_labels
    else:
        items, item_ids = _finish_items(item, remap)
    return SequenceDataset(offsets, items, timestamps=ts, user_ids=uid, item_ids=item_ids,
                           name=os.fspath(path), meta={"format": fmt})
