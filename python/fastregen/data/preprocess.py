"""Preprocessing: iterative k-core filtering and id remapping (vectorised NumPy).

Truncation to the last N items is `SequenceDataset.truncate`.
"""

from __future__ import annotations

import numpy as np

from .dataset import SequenceDataset, _int_arg

__all__ = ["kcore", "remap"]


def kcore(ds: SequenceDataset, k: int = 5, *, user_k: int | None = None, item_k: int | None = None) -> SequenceDataset:
    """Keep the largest part of ``ds`` where every user and item has enough interactions.

    Iterates until stable: drop the interactions of items with fewer than
    ``item_k`` interactions and of users with fewer than ``user_k``, recount,
    repeat. Removing everything that violates a bound in one round and
    repeating reaches the same fixed point as removing one node at a time (the
    k-core is unique: the largest subset satisfying both bounds), so the
    result does not depend on the order. Counts are interactions, repeats
    included (as in RecBole's ``user_inter_num_interval`` filter and the
    5-core files of the DR4SR line of work).

    Parameters
    ----------
    ds : SequenceDataset
    k : int, default 5
        Bound for both users and items unless given separately.
    user_k, item_k : int, optional
        Separate bounds (``>= 1``).

    Returns
    -------
    SequenceDataset
        Users with no interaction left are removed (``user_ids`` follows);
        item ids are unchanged (``num_items`` too): call `remap` for dense
        ids. ``meta["kcore_rounds"]`` records the number of rounds.
    """
    user_k = _int_arg("user_k", k if user_k is None else user_k)
    item_k = _int_arg("item_k", k if item_k is None else item_k)
    if user_k < 1 or item_k < 1:
        raise ValueError(f"k-core bounds must be >= 1, got user_k={user_k}, item_k={item_k}")
    n = len(ds)
    items = ds.items
    seq_of = np.repeat(np.arange(n, dtype=np.int64), ds.lengths)
    alive = np.ones(items.size, dtype=bool)
    rounds = 0
    while True:
        item_cnt = np.bincount(items[alive], minlength=ds.num_items + 1)
        user_cnt = np.bincount(seq_of[alive], minlength=n)
        bad = alive & ((item_cnt[items] < item_k) | (user_cnt[seq_of] < user_k))
        rounds += 1
        if not bad.any():
            break
        alive &= ~bad
    keep_users = np.bincount(seq_of[alive], minlength=n) > 0
    lengths = np.bincount(seq_of[alive], minlength=n)[keep_users]
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    meta = dict(ds.meta)
    meta["kcore_rounds"] = rounds
    return ds.replace(
        offsets=offsets,
        items=items[alive],
        timestamps=None if ds.timestamps is None else ds.timestamps[alive],
        user_ids=None if ds.user_ids is None else np.asarray(ds.user_ids)[keep_users],
        meta=meta,
    )


def remap(ds: SequenceDataset) -> SequenceDataset:
    """Renumber the items that occur to ``1..N`` in increasing order of their current id.

    ``item_ids`` maps each new id to the *original* one: composed with an
    existing map, so remapping twice still points to the file's ids.
    Sequences (and ``user_ids``) are unchanged; ``num_items`` becomes N.

    Returns
    -------
    SequenceDataset
        ``item_ids[0]`` is a placeholder for padding (-1, or "" for string ids).
    """
    uniq, inverse = np.unique(ds.items, return_inverse=True)
    if ds.item_ids is not None:
        old = np.asarray(ds.item_ids)
        item_ids = np.empty(uniq.size + 1, dtype=old.dtype)
        item_ids[0] = old[0]
        item_ids[1:] = old[uniq]
    else:
        item_ids = np.empty(uniq.size + 1, dtype=np.int64)
        item_ids[0] = -1
        item_ids[1:] = uniq
    return ds.replace(items=(inverse + 1).astype(np.int32), num_items=int(uniq.size), item_ids=item_ids)
