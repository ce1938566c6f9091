"""`save`: every format `load` reads, written atomically (``.gz`` compressed)."""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

import numpy as np

from ... import _core
from ..dataset import SequenceDataset
from .files import FORMATS, _bar, _format_from_suffix
from .table import _require_pyarrow

__all__ = ["save"]


def _user_labels(ds: SequenceDataset) -> np.ndarray:
    """Integer user labels to write: ``user_ids`` when they are integers, else 1..n."""
    if ds.user_ids is not None:
        u = np.asarray(ds.user_ids)
        if u.dtype.kind in "iu":
            return u.astype(np.int64, copy=False)
    return np.arange(1, len(ds) + 1, dtype=np.int64)


_ROWS_PER_WRITE = 1 << 22  # values formatted per call: bounds the text buffer (~40 MB)


@contextlib.contextmanager
def _open_write(path: Path):
    from ..._io import atomic_open

    with atomic_open(path, "wb") as f:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
                yield g
        else:
            yield f


def save(ds: SequenceDataset, path, format: str = "auto", *, drop_empty: bool = False, progress: bool = False) -> None:
    """Write ``ds`` atomically (a crash never leaves a partial file under ``path``).

    Items are written as their internal ids (1..num_items, what models read);
    users as ``user_ids`` when those are integers, else as 1..n_users.
    ``"pairs"``, csv and tsv write ``user item [timestamp]`` per interaction
    (csv/tsv with the header ``user_id,item_id[,timestamp]``, ``"recbole"``
    as tsv with RecBole's typed header ``user_id:token item_id:token
    [timestamp:float]``); parquet writes
    the same columns (``user_id`` int64, ``item_id`` int32, ``timestamp``
    int64). ``format="auto"`` picks by extension; anything that is not a
    table is ``"lines"``.

    Parameters
    ----------
    ds : SequenceDataset
    path : str or Path
        Output file; ``.gz`` compresses text formats.
    format : {"auto", "lines", "pairs", "csv", "tsv", "parquet", "recbole"}
    drop_empty : bool, default False
        ``"lines"`` cannot represent an empty sequence (it would read back as
        a malformed line): by default they are an error, with
        ``drop_empty=True`` they are left out.
    progress : bool, default False
    """
    path = Path(path)
    if format not in ("auto",) + FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {('auto',) + FORMATS}")
    if format == "auto":
        format = _format_from_suffix(path) or "lines"
    users = _user_labels(ds)
    lengths = ds.lengths
    if format == "parquet":
        pa = _require_pyarrow("parquet")
        import pyarrow.parquet as pq

        cols = {"user_id": np.repeat(users, lengths), "item_id": ds.items}
        if ds.timestamps is not None:
            cols["timestamp"] = ds.timestamps
        table = pa.table(cols)
        from ..._io import atomic_open

        with atomic_open(path, "wb") as f:
            pq.write_table(table, f)
        return
    if format == "lines":
        keep = lengths > 0
        if not keep.all():
            if not drop_empty:
                u = int(np.argmax(~keep))
                raise ValueError(
                    f"sequence {u} (user {int(users[u])}) is empty and the 'lines' format cannot hold it; "
                    "pass drop_empty=True to leave empty sequences out"
                )
            ds = ds.subset(keep)
            users, lengths = users[keep], lengths[keep]
    n = len(ds)
    with _open_write(path) as f, _bar(progress, f"writing {path.name}", n, "seq") as bar:
        if format in ("csv", "tsv", "recbole"):
            sep = "," if format == "csv" else "\t"
            names = ["user_id", "item_id"] + (["timestamp"] if ds.timestamps is not None else [])
            if format == "recbole":
                names = [f"{n}:{'float' if n == 'timestamp' else 'token'}" for n in names]
            f.write(sep.join(names).encode() + b"\n")
        else:
            sep = " "
        # Cut the users into runs of about _ROWS_PER_WRITE values each.
        bounds = np.searchsorted(ds.offsets, np.arange(0, ds.num_interactions + 1, _ROWS_PER_WRITE), side="left")
        bounds = np.unique(np.r_[0, bounds, n]).astype(np.int64)
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            lo, hi = int(ds.offsets[a]), int(ds.offsets[b])
            chunk_items = ds.items[lo:hi].astype(np.int64)
            if format == "lines":
                ln = lengths[a:b]
                offs = np.zeros(b - a + 1, dtype=np.int64)
                np.cumsum(ln + 1, out=offs[1:])
                vals = np.empty(int(offs[-1]), dtype=np.int64)
                is_user = np.zeros(vals.size, dtype=bool)
                is_user[offs[:-1]] = True
                vals[is_user] = users[a:b]
                vals[~is_user] = chunk_items
                f.write(_core.format_int_rows(offs, vals, 0, b - a, sep))
            else:
                cols = [np.repeat(users[a:b], lengths[a:b]), chunk_items]
                if ds.timestamps is not None:
                    cols.append(ds.timestamps[lo:hi])
                vals = np.column_stack(cols).ravel()
                k = len(cols)
                offs = np.arange(0, vals.size + 1, k, dtype=np.int64)
                f.write(_core.format_int_rows(offs, vals, 0, hi - lo, sep))
            bar.update(b - a)
