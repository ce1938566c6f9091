"""Opening dataset files, and telling their format from the suffix or the first bytes.

`detect_format` and the readers open inputs here: a missing file or a
directory is a clear error, ``.gz`` (or gzip magic bytes, for a pipe) is
decompressed with truncated or corrupt data reported as a ``ValueError``
naming the file, and a text input keeps the bytes it sniffed so that a pipe
loses nothing. The progress bar and the quoting of bad tokens in error
messages, which every reader and the writer share, live here too.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from ... import _core

__all__ = ["FORMATS", "detect_format"]

FORMATS = ("lines", "pairs", "csv", "tsv", "parquet", "recbole")
_SNIFF_BYTES = 64 << 10
_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------- format logic
def _strip_gz(path: Path) -> tuple[Path, bool]:
    if path.suffix == ".gz":
        return path.with_suffix(""), True
    return path, False


def _format_from_suffix(path: Path) -> str | None:
    suffix = _strip_gz(path)[0].suffix.lower()
    return {
        ".csv": "csv",
        ".tsv": "tsv",
        ".inter": "recbole",  # RecBole's atomic files: the typed header is checked
        ".parquet": "parquet",
        ".pq": "parquet",
    }.get(suffix)


def detect_format(path) -> str:
    """The format ``load(path, format="auto")`` would use (see the module docs)."""
    path = Path(path)
    fmt = _format_from_suffix(path)
    if fmt is not None:
        return fmt
    with _TextInput(path) as src:
        return _sniff_format(src.head)


def _sniff_format(head: bytes) -> str:
    """"pairs" or "lines" from the first bytes of a text file (see the module docs)."""
    cut = head.rfind(b"\n")
    if cut >= 0 and len(head) == _SNIFF_BYTES:
        head = head[: cut + 1]  # complete lines only
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    counts, tokens, err = _core.tokenize_int_lines(head)
    if err is not None and not counts.size:
        # Not even the first line is integers: let the lines reader report it.
        return "lines"
    nonblank = counts[counts > 0]
    if nonblank.size and np.all(nonblank == 2):
        first = (np.cumsum(counts) - counts)[counts > 0]
        users = tokens[first]
        if np.unique(users).size < users.size:
            return "pairs"
    return "lines"


def _check_input(path: Path) -> os.stat_result:
    """The stat of an input file; a clear error when it is missing or a directory."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file (check the path)", os.fspath(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a dataset file", os.fspath(path))
    return st


@contextlib.contextmanager
def _open_binary(path: Path):
    """A regular file (tables: their readers seek), opened for reading; .gz decompressed."""
    st = _check_input(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(
            f"{path}: csv, tsv and parquet input must be a regular file, not a pipe or device "
            "(their readers need to seek); save it to a file first"
        )
    f = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    try:
        with _decompression_errors(path):
            yield f
    finally:
        f.close()


@contextlib.contextmanager
def _decompression_errors(path: Path):
    """Truncated or corrupt gzip data as a ValueError naming the file (not EOFError / zlib.error)."""
    try:
        yield
    except EOFError as e:
        raise ValueError(f"{path}: the gzip data ends early ({e}); the file is truncated: "
                         "download or compress it again") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: not valid gzip data ({e}); check the file, or drop the .gz "
                         "suffix if it is not compressed") from None


_GZIP_MAGIC = b"\x1f\x8b"


class _TextInput:
    """A text input opened once and read once, front to back (``"-"``: standard input).

    The first `_SNIFF_BYTES` are read at open time (format and line-ending
    detection) and kept, and `readinto` serves them before reading on, so a
    pipe or ``/dev/stdin`` loses nothing (opening the path again would start
    after them). Files with CR-only line endings (old Mac: a carriage return
    but no newline in the first 64 KiB) are read with every CR turned into a
    newline; any other lone CR is reported by `_chunks`.

    Attributes
    ----------
    path : Path
    head : bytes
        The first bytes (CRs already translated).
    size : int or None
        Size in bytes of an uncompressed regular file, else None (unknown).
    cr_only : bool
    """

    def __init__(self, path):
        self.path = Path("/dev/stdin") if os.fspath(path) == "-" else Path(path)
        st = _check_input(self.path)
        self._raw = open(self.path, "rb")
        try:
            # gzip by its magic bytes too: a pipe (`zcat`-less `cat x.gz |`) has no suffix.
            # peek() does not consume, so a pipe loses nothing.
            gz = self.path.suffix == ".gz" or self._raw.peek(2)[:2] == _GZIP_MAGIC
            self.size = st.st_size if stat.S_ISREG(st.st_mode) and not gz else None
            self._f = gzip.GzipFile(fileobj=self._raw, mode="rb") if gz else self._raw
            with _decompression_errors(self.path):
                head = self._f.read(_SNIFF_BYTES)
        except BaseException:
            self._raw.close()
            raise
        self.cr_only = b"\r" in head and b"\n" not in head
        self.head = head.replace(b"\r", b"\n") if self.cr_only else head
        self._served = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        self._raw.close()
        return False

    def readinto(self, view) -> int:
        """Fill (part of) the writable memoryview ``view``; 0 at the end of the input."""
        n = 0
        if self._served < len(self.head):
            n = min(len(view), len(self.head) - self._served)
            view[:n] = self.head[self._served : self._served + n]
            self._served += n
        if n < len(view):
            with _decompression_errors(self.path):
                got = self._f.readinto(view[n:]) or 0
            if self.cr_only and got:
                view[n : n + got] = bytes(view[n : n + got]).replace(b"\r", b"\n")
            n += got
        return n


def _text_input(source):
    """A context manager giving a `_TextInput` for a path (or the one given)."""
    if isinstance(source, _TextInput):
        return contextlib.nullcontext(source)
    return _TextInput(source)


# ---------------------------------------------------------------- shared by the readers and the writer
class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass


def _bar(enabled: bool, desc: str, total, unit: str):
    """A progress bar, or a no-op one without importing tqdm (it costs ~50 ms)."""
    if not enabled:
        return _NoBar()
    from ..._progress import progress_bar

    return progress_bar(enabled=True, desc=desc, total=total, unit=unit)


def _show(token: bytes, limit: int = 40) -> str:
    """A token for an error message: quoted, bytes that are not UTF-8 as \\xNN, control characters escaped."""
    text = token.decode("utf-8", errors="backslashreplace")
    if len(text) > limit:
        text = text[:limit] + f"... ({len(token)} bytes)"
    # repr escapes control characters; it would also double the backslash
    # of each \\xNN that backslashreplace wrote, so undo that.
    return repr(text).replace("\\\\x", "\\x")
