"""`load`: one entry point that picks the reader by format, and `as_dataset`."""

from __future__ import annotations

import os
from pathlib import Path

from ..dataset import SequenceDataset, check_dense_ids
from .chunks import DEFAULT_CHUNK_BYTES
from .files import FORMATS, _format_from_suffix, _sniff_format, _TextInput
from .ids import _REMAP_HINT
from .recbole import load_recbole
from .table import _load_table
from .text import _load_lines, _load_pairs

__all__ = ["load", "as_dataset"]


def load(
    path,
    format: str = "auto",
    *,
    user: str | None = None,
    item: str | None = None,
    timestamp: str | None = None,
    sep: str | None = None,
    remap: bool | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
    threads: int = 1,
) -> SequenceDataset:
    """Read a sequence dataset.

    Parameters
    ----------
    path : str or Path
        The file; ``"-"`` reads a text format from standard input (gzip
        recognised by its first bytes). See the module docs for the formats
        and ``format="auto"``.
    format : {"auto", "lines", "pairs", "csv", "tsv", "parquet", "recbole"}, default "auto"
    user, item, timestamp : str, optional
        Column names of tables (csv/tsv/parquet/recbole; RecBole names
        without their ``:type``). Without ``timestamp`` and
        without a default-named time column the rows keep file order per user.
    sep : str, optional
        Field separator of csv/tsv (default ``,`` / tab).
    remap : bool, optional
        Renumber items ``1..N`` (sorted by original id) and keep the
        originals in ``item_ids``. Default: False for text, True for tables.
    chunk_bytes : int, default 8 MiB
        Read size of the streaming text reader.
    progress : bool, default False
        Show a progress bar while reading text files.
    threads : int, default 1
        Parser threads per chunk of a text file (0: all OpenMP threads,
        ``OMP_NUM_THREADS``). One is the default because it was the fastest
        on the 2-core machine the benchmarks ran on (other jobs on the
        cores; see ``benchmarks/results/data.md``); more can pay on an idle
        multi-core machine. The result never depends on it.

    Returns
    -------
    SequenceDataset
        ``offsets`` int64 (n_users + 1), ``items`` int32, ``user_ids`` (the
        original user of each row), ``item_ids`` when remapped and
        ``timestamps`` (int64) when the input has them.

    Raises
    ------
    ValueError
        Bad content, naming the file, line (or column and row) and value.
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    if format not in ("auto",) + FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {('auto',) + FORMATS}")
    if format == "auto":
        format = _format_from_suffix(path) or "text"
    if format in ("text", "lines", "pairs"):
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: all OpenMP threads), got {threads}")
        remap = bool(remap)
        # Opened once: the format sniffing reads the first bytes, and a pipe
        # cannot be opened again to read them a second time.
        with _TextInput(path) as src:
            if format == "text":
                format = _sniff_format(src.head)
            given = {k: v for k, v in dict(user=user, item=item, timestamp=timestamp, sep=sep).items() if v is not None}
            if given:
                raise ValueError(f"{', '.join(given)} only apply to csv/tsv/parquet, not to format={format!r}")
            load_text = _load_lines if format == "lines" else _load_pairs
            ds = load_text(src, remap, chunk_bytes, progress, threads)
    elif format == "recbole":
        if sep is not None or remap is False:
            raise ValueError("a RecBole atomic file is tab-separated with token ids (always renumbered): "
                             "sep and remap=False do not apply to format='recbole'")
        return load_recbole(path, user=user, item=item, timestamp=timestamp)
    else:
        remap = True if remap is None else bool(remap)
        ds = _load_table(path, format, user, item, timestamp, sep, remap)
    if not remap:
        check_dense_ids(ds, f"{path}: ", _REMAP_HINT.lstrip("; "))
    return ds


def as_dataset(data) -> SequenceDataset:
    """``data`` itself if it is a `SequenceDataset`, else ``load(data)`` for a path.

    The one coercion the pipeline entry points share (``fit_and_evaluate``,
    ``DR4SR.fit``), so that they accept a dataset or a file alike.
    """
    if isinstance(data, SequenceDataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load(data)
    raise TypeError(f"data must be a SequenceDataset or a path, got {type(data).__name__}")
