"""The ``"lines"`` and ``"pairs"`` readers of integer text files (see `fastregen.data.io` for the formats).

Both stream the file through `.chunks`; ``"lines"`` without remapping lets
the core write the int32 items straight into the result.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ... import _core
from ..dataset import SequenceDataset
from .chunks import _chunks, _Sink, _token_hint, iter_int_line_chunks
from .files import _show, _TextInput
from .ids import _INT32_MAX, _REMAP_HINT, _check_ids, _finish_items, _group_sorted


def _token_bound(src: _TextInput) -> int | None:
    """Upper bound on the tokens of a plain text file (None when its size is unknown: compressed, a pipe)."""
    return None if src.size is None else src.size // 2 + 1


_USER_LINE_ERRORS = {
    "no items": "user {v} has no items (each line must be 'user item [item ...]')",
    "negative user id": "negative user id {v}",
    "negative item id": "negative item id {v}",
    "item id 0": "item id 0 is reserved for padding (ids must be >= 1)" + _REMAP_HINT,
    "item id beyond int32": "item id {v} exceeds the int32 range of item ids" + _REMAP_HINT,
}


def _load_lines(src: _TextInput, remap: bool, chunk_bytes: int, progress: bool, threads: int) -> SequenceDataset:
    if remap:
        return _load_lines_remap(src, chunk_bytes, progress, threads)
    path = src.path
    users, lengths, lines = [], [], []
    items = _Sink(np.int32, _token_bound(src))

    def parse(view):
        # The core writes the items straight into the result array when it has room.
        out = items.room(len(view) // 2 + 1)
        uid, where, n_it, it, n_lines, err = _core.parse_user_lines(view, n_threads=threads, out=out)
        if out is not None and err is None:
            items.advance(it)
            it = None
        return (uid, where, n_it, it), n_lines, err

    for base, payload, err in _chunks(src, chunk_bytes, progress, parse):
        if err is not None:
            line_idx, token, reason = err
            where = f"{path}:{base + line_idx + 1}"
            if reason in _USER_LINE_ERRORS:
                raise ValueError(f"{where}: " + _USER_LINE_ERRORS[reason].format(v=int(token)))
            raise ValueError(f"{where}: {_show(token)} is {reason} {_token_hint(base + line_idx)}")
        uid, line_idx, n_it, it = payload
        if it is not None:
            items.append(it)
        users.append(uid)
        lengths.append(n_it)
        lines.append(line_idx + (base + 1))
        del payload, it
    return _finish_lines(path, users, lengths, lines, items, remap=False)


def _finish_lines(path, users, lengths, lines, items: "_Sink", remap: bool) -> SequenceDataset:
    # Concatenate one list at a time and drop it, so the per-user arrays
    # never exist twice at once.
    uid = np.concatenate(users) if users else np.zeros(0, np.int64)
    users.clear()
    if not uid.size:
        raise ValueError(f"{path}: empty file (no user lines)")
    line_no = np.concatenate(lines)
    lines.clear()
    _check_duplicate_users(path, uid, line_no)
    del line_no
    offsets = np.zeros(uid.size + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lengths), out=offsets[1:])
    lengths.clear()
    all_items, item_ids = _finish_items(items.finish(), remap)
    return SequenceDataset(offsets, all_items, user_ids=uid, item_ids=item_ids, name=os.fspath(path),
                           meta={"format": "lines"})


def _load_lines_remap(src: _TextInput, chunk_bytes: int, progress: bool, threads: int) -> SequenceDataset:
    """The lines reader for ``remap=True``: item ids are int64 until renumbered."""
    path = src.path
    users, lengths, lines = [], [], []
    items = _Sink(np.int64, _token_bound(src))
    for base, counts, tokens in iter_int_line_chunks(src, chunk_bytes, progress, threads):
        nonblank = np.flatnonzero(counts)
        if not nonblank.size:
            continue
        c = counts[nonblank]
        line_no = base + nonblank + 1
        starts = (np.cumsum(counts) - counts)[nonblank]
        uid = tokens[starts]
        if np.any(c == 1):
            k = int(np.argmax(c == 1))
            raise ValueError(f"{path}:{int(line_no[k])}: " + _USER_LINE_ERRORS["no items"].format(v=int(uid[k])))
        _check_ids(path, "user", uid, line_no, min_id=0, max_id=None)
        is_item = np.ones(tokens.size, dtype=bool)
        is_item[starts] = False
        it = tokens[is_item]
        del tokens, is_item
        n_it = c - 1
        if it.size and it.min() < 0:
            _check_ids(path, "item", it, np.repeat(line_no, n_it), min_id=0, max_id=None)
        items.append(it)
        del it
        users.append(uid)
        lengths.append(n_it)
        lines.append(line_no)
    return _finish_lines(path, users, lengths, lines, items, remap=True)


def _check_duplicate_users(path: Path, uid: np.ndarray, line_no: np.ndarray) -> None:
    if uid.size < 2 or bool(np.all(uid[1:] > uid[:-1])):
        return  # increasing ids (the usual 1..N files): no sort needed
    order = np.argsort(uid, kind="stable")
    s = uid[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if not dup.size:
        return
    # Report the duplicate whose second line comes first in the file.
    second = order[dup + 1]
    k = int(np.argmin(second))
    later = int(second[k])
    user = int(uid[later])
    earlier = int(order[np.searchsorted(s, user)])
    raise ValueError(
        f"{path}:{int(line_no[later])}: user {user} already has a line ({path}:{int(line_no[earlier])}); "
        "a 'lines' file holds one line per user (for 'user item' pair lines pass format='pairs')"
    )


def _load_pairs(src: _TextInput, remap: bool, chunk_bytes: int, progress: bool, threads: int) -> SequenceDataset:
    path = src.path
    users, items, times = [], [], []
    width = None
    width_line = 0
    item_min = 0 if remap else 1
    item_max = None if remap else _INT32_MAX
    for base, counts, tokens in iter_int_line_chunks(src, chunk_bytes, progress, threads):
        nonblank = np.flatnonzero(counts)
        if not nonblank.size:
            continue
        c = counts[nonblank]
        line_no = base + nonblank + 1
        if width is None:
            width, width_line = int(c[0]), int(line_no[0])
            if width not in (2, 3):
                raise ValueError(
                    f"{path}:{width_line}: expected 'user item' or 'user item timestamp', got {width} tokens"
                )
        if np.any(c != width):
            k = int(np.argmax(c != width))
            raise ValueError(
                f"{path}:{int(line_no[k])}: expected {width} tokens like line {width_line}, got {int(c[k])}"
            )
        rows = tokens.reshape(-1, width)
        _check_ids(path, "user", rows[:, 0], line_no, min_id=0, max_id=None)
        _check_ids(path, "item", rows[:, 1], line_no, min_id=item_min, max_id=item_max,
                   hint=_REMAP_HINT if not remap else "")
        users.append(rows[:, 0].copy())
        items.append(rows[:, 1].copy() if remap else rows[:, 1].astype(np.int32))
        if width == 3:
            times.append(rows[:, 2].copy())
        del tokens, rows
    if not users:
        raise ValueError(f"{path}: empty file (no interaction lines)")
    user = np.concatenate(users)
    del users
    ts = np.concatenate(times) if times else None
    del times
    item = items[0] if len(items) == 1 else np.concatenate(items)
    del items
    if not _is_sorted(user, ts):  # SASRec-style files usually are: skip the sort and its copies
        order = np.lexsort((ts, user)) if ts is not None else np.argsort(user, kind="stable")
        user = user[order]
        item = item[order]
        if ts is not None:
            ts = ts[order]
        del order
    return _group_sorted(path, user, item, ts, remap, "pairs")


def _is_sorted(user: np.ndarray, ts: np.ndarray | None) -> bool:
    """Whether rows are already ordered by (user, ts) (then a stable sort is the identity)."""
    du = user[1:] >= user[:-1]
    if not du.all():
        return False
    if ts is None:
        return True
    same = user[1:] == user[:-1]
    return bool(np.all(~same | (ts[1:] >= ts[:-1])))
