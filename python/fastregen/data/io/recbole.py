"""RecBole atomic files (``.inter``, ``.item``): the interaction table and item categories.

A RecBole atomic file is a tab-separated table whose header names every
column with its type, ``name:type``, type one of ``token``, ``token_seq``,
``float``, ``float_seq`` (RecBole's ``FeatureType``)::

    user_id:token   item_id:token   rating:float    timestamp:float
    196             242             3               881250949

`load_recbole` reads the ``.inter`` file: ids are tokens (renumbered
``1..N`` in sorted order of the original id, kept in ``item_ids``), each
user's interactions are ordered by time (ties keep the file order), and the
timestamps are kept (floored to int64 seconds). When a ``.item`` file with a
category column sits beside it (``ml-100k.item``'s ``class:token_seq``), the
first category of each item becomes ``meta["item_category"]``: int64 of
shape (num_items + 1,), categories numbered ``1..C`` in sorted order of
their names (``meta["categories"]``), 0 for padding and items the file does
not list.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..dataset import SequenceDataset
from .files import _open_binary
from .table import _load_table

__all__ = ["load_recbole", "item_categories", "header_types", "RECBOLE_TYPES", "CATEGORY_COLUMNS"]

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
#: Category columns looked for in a ``.item`` file, in this order.
CATEGORY_COLUMNS = ("class", "categories", "category", "genre", "genres")


def header_types(path) -> dict[str, str]:
    """``{column name: type}`` of a RecBole atomic file's header (in file order).

    Raises
    ------
    ValueError
        A column without a ``:type`` suffix or with an unknown type, naming it.
    """
    path = Path(path)
    with _open_binary(path) as f:
        head = f.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not head.strip():
        raise ValueError(f"{path}: empty file (no header line)")
    out: dict[str, str] = {}
    for col in head.split("\t"):
        name, sep, kind = col.partition(":")
        if not sep:
            raise ValueError(f"{path}: header column {col!r} has no ':type' suffix; a RecBole atomic file names "
                             f"every column as name:type with type one of {', '.join(RECBOLE_TYPES)}")
        if kind not in RECBOLE_TYPES:
            raise ValueError(f"{path}: header column {col!r} has type {kind!r}; RecBole types are "
                             f"{', '.join(RECBOLE_TYPES)}")
        out[name] = kind
    return out


def load_recbole(path, *, user: str | None = None, item: str | None = None, timestamp: str | None = None,
                 categories: bool | str = True) -> SequenceDataset:
    """Read a RecBole ``.inter`` file (see the module docstring).

    Parameters
    ----------
    path : str or Path
    user, item, timestamp : str, optional
        Column names (without the type); default ``user_id``, ``item_id`` and
        ``timestamp`` (RecBole's defaults), the timestamp optional.
    categories : bool or str, default True
        Read item categories from the ``.item`` file beside ``path`` when it
        exists (True), from this column of it (a str), or not at all (False).

    Returns
    -------
    SequenceDataset
        ``user_ids`` and ``item_ids`` the original tokens, ``timestamps`` when
        the file has them, ``meta["format"] = "recbole"`` and the categories
        described in the module docstring.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    types = header_types(path)
    user = user or "user_id"
    item = item or "item_id"
    for role, name in (("user", user), ("item", item)):
        if name not in types:
            raise ValueError(f"{path}: no {role} column {name!r}; the columns are {list(types)}; pass {role}='<column>'")
    if timestamp is None:
        timestamp = "timestamp" if "timestamp" in types else None
    elif timestamp not in types:
        raise ValueError(f"{path}: no timestamp column {timestamp!r}; the columns are {list(types)}")
    if timestamp is not None and types[timestamp] != "float":
        raise ValueError(f"{path}: timestamp column {timestamp!r} has type {types[timestamp]!r}, expected float")
    ds = _load_table(path, "tsv", user, item, timestamp, "\t", True)
    meta = dict(ds.meta, format="recbole")
    if categories:
        side = path.with_suffix(".item")
        column = categories if isinstance(categories, str) else None
        if isinstance(categories, str) and not side.exists():
            raise ValueError(f"categories={categories!r} asks for {side}, which does not exist")
        if side.exists():
            found = item_categories(side, ds, column=column, item=item)
            if found is not None:
                meta["item_category"], meta["categories"] = found
    return ds.replace(meta=meta)


def item_categories(path, ds: SequenceDataset, *, column: str | None = None, item: str = "item_id"):
    """The first category of each item of ``ds`` from a RecBole ``.item`` file.

    Parameters
    ----------
    path : str or Path
        The ``.item`` file.
    ds : SequenceDataset
        Read with `load_recbole` (its ``item_ids`` are the tokens the file uses).
    column : str, optional
        The category column; default the first of `CATEGORY_COLUMNS` present
        (None is returned when there is none).
    item : str, default "item_id"

    Returns
    -------
    (item_category, names) or None
        ``item_category`` int64 of shape (num_items + 1,), 0 for padding and
        unlisted items; ``names`` the category names, ``names[c - 1]`` for id c.
    """
    path = Path(path)
    types = header_types(path)
    if column is None:
        column = next((c for c in CATEGORY_COLUMNS if c in types), None)
        if column is None:
            return None
    elif column not in types:
        raise ValueError(f"{path}: no category column {column!r}; the columns are {list(types)}")
    if item not in types:
        raise ValueError(f"{path}: no item column {item!r}; the columns are {list(types)}")
    if ds.item_ids is None:
        raise ValueError("the dataset has no item_ids (original item tokens) to match the .item file against")
    index = {str(tok): i for i, tok in enumerate(ds.item_ids) if i > 0}
    first: dict[int, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        ci = header.index(f"{column}:{types[column]}")
        ii = header.index(f"{item}:{types[item]}")
        for lineno, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {lineno}: expected {len(header)} columns, got {len(row)}")
            k = index.get(row[ii])
            cats = row[ci].split()
            if k is not None and cats:
                first[k] = cats[0]
    names = sorted(set(first.values()))
    code = {n: c + 1 for c, n in enumerate(names)}
    out = np.zeros(ds.num_items + 1, dtype=np.int64)
    for k, name in first.items():
        out[k] = code[name]
    return out, names
