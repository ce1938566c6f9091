"""Tables with a header: csv, tsv (pyarrow when installed, else Python's ``csv``) and parquet (pyarrow).

Ids may be integers or strings, timestamps integers, floats or dates (see
`fastregen.data.io`); every bad cell is a ``ValueError`` naming the column
and the line (or row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dataset import SequenceDataset
from .files import _open_binary
from .ids import _INT32_MAX, _INT64_MAX, _REMAP_HINT, _group_sorted

_USER_COLUMNS = ("user_id", "user", "userId", "userid", "uid")
_ITEM_COLUMNS = ("item_id", "item", "itemId", "itemid", "iid")
_TIME_COLUMNS = ("timestamp", "ts", "time", "unix_time")


def _have_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _read_csv_python(path: Path, columns: list[str], sep: str, roles: list[str]) -> dict:
    """The slow CSV/TSV reader used without pyarrow: the named columns as numpy arrays.

    A column becomes int64 if every cell is an integer, float64 if every cell
    is a number, else an array of str. Blank lines are skipped; an empty
    cell or a row with the wrong number of fields is a ValueError naming the
    line.
    """
    import csv
    import io

    with _open_binary(path) as fb, io.TextIOWrapper(fb, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, delimiter=sep)
        try:
            header = next(reader, [])
            index = [header.index(c) for c in columns]
            cells: list[list[str]] = [[] for _ in columns]
            for lineno, row in enumerate(reader, 2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}: line {lineno}: expected {len(header)} columns, got {len(row)}")
                for out, i, role in zip(cells, index, roles):
                    if row[i] == "":
                        raise ValueError(f"{path}: column {header[i]!r} ({role}) is empty at line {lineno}")
                    out.append(row[i])
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
    arrays = {}
    for name, col in zip(columns, cells):
        # uint64 before float64: ids beyond int64 are integers, not floats
        for dtype in (np.int64, np.uint64, np.float64):
            try:
                arrays[name] = np.array(col, dtype=dtype)
                break
            except (ValueError, OverflowError):
                continue
        else:
            arrays[name] = np.array(col, dtype=object)
    return arrays


def _not_utf8(path: Path) -> ValueError:
    """The error for a table that is not UTF-8, naming its first bad line.

    The text decoders report a position in a read-ahead block, not a line:
    the raw lines are decoded one by one to find it (only on this error path).
    """
    with _open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1]
                return ValueError(
                    f"{path}: line {lineno}: not UTF-8 text (byte {bad!r} at column {e.start + 1}); "
                    "save the table as UTF-8"
                )
    return ValueError(f"{path}: not UTF-8 text; save the table as UTF-8")


def _require_pyarrow(what: str):
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - pyarrow is in the test extra
        raise ImportError(
            f"reading or writing {what} files needs pyarrow: pip install 'fastregen[parquet]'"
        ) from None
    import pyarrow

    return pyarrow


def _resolve_column(path, names: list[str], requested, defaults, role: str, required: bool):
    base = {n.split(":", 1)[0]: n for n in names}  # RecBole headers: 'user_id:token'
    if requested is not None:
        if requested in names:
            return requested
        if requested in base:
            return base[requested]
        raise ValueError(f"{path}: no {role} column {requested!r}; the columns are {names}")
    for cand in defaults:
        if cand in base:
            return base[cand]
    if required:
        raise ValueError(
            f"{path}: cannot find the {role} column (looked for {list(defaults)}); "
            f"the columns are {names}; pass {role}='<column>'"
        )
    return None


def _table_names(path: Path, fmt: str, sep: str) -> list[str]:
    if fmt == "parquet":
        pa = _require_pyarrow(fmt)
        import pyarrow.parquet as pq

        with _open_binary(path):  # the same checks (exists, a regular file) as csv
            pass
        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{path}: not a readable parquet file ({e}); check the file or its format") from None
    import csv
    import io

    with _open_binary(path) as f:
        head = f.readline()
    text = head.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise ValueError(f"{path}: empty file (no header line)")
    return next(csv.reader(io.StringIO(text), delimiter=sep))


def _read_table(path: Path, fmt: str, columns: list[str], sep: str, roles: list[str]):
    if fmt != "parquet" and not _have_pyarrow():
        return _read_csv_python(path, columns, sep, roles)
    pa = _require_pyarrow(fmt)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=columns)
        import pyarrow.csv as pacsv

        def read(types):
            return pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=sep),
                convert_options=pacsv.ConvertOptions(include_columns=columns, strings_can_be_null=True,
                                                     column_types=types),
            )

        table = read({})
        # pyarrow infers float64 for integers beyond int64 (rounding them):
        # read those id columns again as text, to parse them exactly.
        inexact = {c: pa.string() for c, role in zip(columns, roles)
                   if role != "timestamp" and pa.types.is_floating(table.column(c).type)}
        return read(inexact) if inexact else table
    except (pa.ArrowInvalid, OSError) as e:
        if "UTF8" in str(e):
            raise _not_utf8(path) from None
        if fmt != "parquet" and "columns, got" in str(e):
            # pyarrow names the row's text but not its line: the Python reader
            # stops at that line and says which (an error path, read twice).
            _read_csv_python(path, columns, sep, roles)
        raise ValueError(f"{path}: {e}") from None


def _table_rows_desc(fmt: str, row: int) -> str:
    # CSV rows are reported as file lines (the header is line 1).
    return f"line {row + 2}" if fmt != "parquet" else f"row {row}"


def _int_ids(path, fmt, values: np.ndarray, name, role, remap):
    if values.dtype.kind == "u" and values.size and values.max() > _INT64_MAX:
        # uint64 ids beyond int64: astype(int64) would wrap them to negative numbers.
        if not remap:
            row = int(np.argmax(values > _INT64_MAX))
            raise ValueError(
                f"{path}: column {name!r} ({role}) holds {int(values[row])} at {_table_rows_desc(fmt, row)}; "
                f"item ids must be in 1..{_INT32_MAX} (0 is padding){_REMAP_HINT}"
            )
        labels, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), labels
    values = values.astype(np.int64, copy=False)
    if values.size and values.min() < 0:
        row = int(np.argmax(values < 0))
        raise ValueError(
            f"{path}: column {name!r} ({role}) holds the negative id {int(values[row])} "
            f"at {_table_rows_desc(fmt, row)}"
        )
    if not remap:
        return values, None
    labels, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), labels


def _column_ids(path, fmt, table, name, role, remap):
    """Codes (int64, 0-based, in sorted label order) and labels of an id column."""
    if isinstance(table, dict):  # the pure-Python CSV reader: numpy columns
        values = table[name]
        if values.dtype.kind in "iu":
            return _int_ids(path, fmt, values, name, role, remap)
        if values.dtype.kind == "f":
            raise ValueError(f"{path}: column {name!r} ({role}) holds floats; ids must be integers or strings")
        if not remap:
            raise ValueError(f"{path}: column {name!r} ({role}) holds string ids; pass remap=True to number them")
        labels, codes = np.unique(values.astype(str), return_inverse=True)
        return codes.astype(np.int64), labels.astype(object)
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: column {name!r} ({role}) is empty at {_table_rows_desc(fmt, row)}")
    if pa.types.is_integer(col.type):
        return _int_ids(path, fmt, col.to_numpy(), name, role, remap)
    if fmt != "parquet" and (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        raise _not_utf8(path)  # pyarrow reads cells that are not UTF-8 as binary
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        # Integers too large for pyarrow's int64 inference come back as text (see _read_table).
        for int_type in (pa.int64(), pa.uint64()):
            try:
                return _int_ids(path, fmt, pc.cast(col, int_type).to_numpy(), name, role, remap)
            except pa.ArrowInvalid:
                continue
        try:
            pc.cast(col, pa.float64())
            col_type = "float64"
        except pa.ArrowInvalid:
            col_type = None
        if col_type is not None:
            raise ValueError(f"{path}: column {name!r} ({role}) holds floats; ids must be integers or strings")
    if pa.types.is_floating(col.type):
        raise ValueError(f"{path}: column {name!r} ({role}) holds floats ({col.type}); ids must be integers or strings")
    if not remap:
        raise ValueError(f"{path}: column {name!r} ({role}) holds {col.type} ids; pass remap=True to number them")
    col = col.cast(pa.string()) if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type) else col
    enc = pc.dictionary_encode(col).combine_chunks()
    dictionary = enc.dictionary
    order = pc.array_sort_indices(dictionary).to_numpy()
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    codes = rank[enc.indices.to_numpy(zero_copy_only=False)].astype(np.int64)
    labels = dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False)
    return codes, labels


def _column_time(path, fmt, table, name):
    """(int64 timestamps, sort key) of a time column.

    Integers are kept as they are; floats are floored (the order uses the
    original values); date/time columns become seconds since the epoch.
    """
    if isinstance(table, dict):  # the pure-Python CSV reader
        values = table[name]
        if values.dtype.kind == "i":
            return values, values
        if values.dtype.kind != "f":
            raise ValueError(f"{path}: column {name!r} (timestamp) must be numeric, got text like {values[0]!r}")
        return _float_time(path, fmt, values, name)
    import pyarrow as pa

    col = table.column(name)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: column {name!r} (timestamp) is empty at {_table_rows_desc(fmt, row)}")
    if pa.types.is_timestamp(col.type):
        # Stored as whole seconds since the epoch (floored); sorted at full precision.
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[col.type.unit]
        key = col.cast(pa.int64()).to_numpy().astype(np.int64, copy=False)
        return np.floor_divide(key, per_second), key
    if pa.types.is_date(col.type):
        days = col.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64)
        return days * 86400, days
    if pa.types.is_integer(col.type):
        values = col.to_numpy().astype(np.int64, copy=False)
        return values, values
    if pa.types.is_floating(col.type):
        return _float_time(path, fmt, col.to_numpy(), name)
    raise ValueError(f"{path}: column {name!r} (timestamp) must be numeric or a date/time, got {col.type}")


def _float_time(path, fmt, key: np.ndarray, name):
    if not np.all(np.isfinite(key)):
        row = int(np.argmax(~np.isfinite(key)))
        raise ValueError(f"{path}: column {name!r} (timestamp) holds {key[row]} at {_table_rows_desc(fmt, row)}")
    return np.floor(key).astype(np.int64), key


def _load_table(path: Path, fmt: str, user, item, timestamp, sep, remap: bool) -> SequenceDataset:
    if fmt == "parquet":
        _require_pyarrow(fmt)
    if sep is None:
        sep = "," if fmt == "csv" else "\t"
    names = _table_names(path, fmt, sep)
    ucol = _resolve_column(path, names, user, _USER_COLUMNS, "user", True)
    icol = _resolve_column(path, names, item, _ITEM_COLUMNS, "item", True)
    tcol = _resolve_column(path, names, timestamp, _TIME_COLUMNS, "timestamp", False)
    if ucol == icol:
        raise ValueError(f"{path}: user and item are the same column {ucol!r}")
    for col, role in ((ucol, "user"), (icol, "item"), (tcol, "timestamp")):
        base = None if col is None else col.split(":", 1)[0]
        same = [k + 1 for k, n in enumerate(names) if base is not None and n.split(":", 1)[0] == base]
        if len(same) > 1:
            raise ValueError(
                f"{path}: the header has {len(same)} columns named {base!r} (columns {', '.join(map(str, same))}), "
                f"so the {role} column is ambiguous; rename all but one"
            )
    wanted = [ucol, icol] + ([tcol] if tcol else [])
    table = _read_table(path, fmt, wanted, sep, ["user", "item", "timestamp"][: len(wanted)])
    n_rows = len(table[ucol]) if isinstance(table, dict) else table.num_rows
    if n_rows == 0:
        raise ValueError(f"{path}: empty file (a header but no rows)")
    ucodes, ulabels = _column_ids(path, fmt, table, ucol, "user", True)
    icodes, ilabels = _column_ids(path, fmt, table, icol, "item", remap)
    if not remap:
        if icodes.min() < 1 or icodes.max() > _INT32_MAX:
            bad = (icodes < 1) | (icodes > _INT32_MAX)
            row = int(np.argmax(bad))
            raise ValueError(
                f"{path}: column {icol!r} (item) holds {int(icodes[row])} at {_table_rows_desc(fmt, row)}; "
                f"item ids must be in 1..{_INT32_MAX} (0 is padding){_REMAP_HINT}"
            )
    ts = key = None
    if tcol:
        ts, key = _column_time(path, fmt, table, tcol)
    del table
    order = np.lexsort((key, ucodes)) if key is not None else np.argsort(ucodes, kind="stable")
    ucodes = ucodes[order]
    icodes = icodes[order]
    if ts is not None:
        ts = ts[order]
    if remap:
        # uint64 labels cannot hold the -1 of the padding slot: keep them as Python ints.
        dtype = object if ilabels.dtype.kind in "uO" else ilabels.dtype
        item_ids = np.empty(ilabels.size + 1, dtype=dtype)
        item_ids[0] = -1 if ilabels.dtype.kind in "iu" else ""
        item_ids[1:] = ilabels
        return _group_sorted(path, ucodes, icodes, ts, remap, fmt, user_labels=ulabels, item_labels=item_ids)
    return _group_sorted(path, ucodes, icodes, ts, False, fmt, user_labels=ulabels)
