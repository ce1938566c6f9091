"""Readers and writers of sequence datasets.

Formats
-------
``"lines"``
    One user per line, ``user item item ...`` (the ICLRec / DR4SR files in
    ``../shared/data``). Users keep the order of the file; ``user_ids`` holds
    the first token of each line. Tokens are separated by any ASCII
    whitespace (tabs and CRLF line ends read fine); blank lines are skipped
    but still counted in line numbers; a user line without items, and a
    user on two lines, are errors.
``"pairs"``
    One interaction per line, ``user item`` or ``user item timestamp``
    (SASRec style). Every line has the same number of tokens. Sequences are
    ordered by user id; a user's items keep the file order, or are sorted by
    timestamp (stably: ties keep the file order) when there is a third column.
``"recbole"``
    A RecBole atomic ``.inter`` file (typed header ``user_id:token
    item_id:token rating:float timestamp:float``): ids renumbered, ordered by
    time, timestamps kept, item categories from a ``.item`` file beside it
    (`fastregen.data.recbole`), its typed header checked. ``format="auto"``
    reads every ``.inter`` file so (RecBole names its atomic files by their
    suffix); pass ``format="tsv"`` to read one as a plain table.
``"csv"``, ``"tsv"``, ``"parquet"``
    Tables with a header (an ``.inter`` file read with ``format="tsv"`` has
    its ``:token`` type suffixes ignored). The ``user``/``item``/``timestamp`` keyword
    arguments name the columns (defaults: the first present of
    ``user_id, user, userId, uid`` / ``item_id, item, itemId, iid`` /
    ``timestamp, ts, time``; no timestamp column means file order). Ids may
    be integers or strings. Timestamps may be integers (kept), floats
    (floored to int64, ordered by the exact values) or dates/times (seconds
    since the epoch). Parquet needs pyarrow (``pip install
    fastregen[parquet]``); CSV/TSV use it when installed (fast, multi-threaded)
    and otherwise fall back to Python's ``csv`` module (same results, slow,
    no date/time parsing).

``format="auto"`` picks by extension: ``.csv``, ``.tsv``, ``.inter`` (recbole),
``.parquet``/``.pq``; anything else (``.txt``, ...) is a text file of
integers, read as ``"pairs"`` when the first complete lines (up to 64 KiB)
all hold exactly two tokens *and* some user occurs on two of them (which a
``"lines"`` file forbids), else as ``"lines"``. A trailing ``.gz`` is read
(and written) through gzip; truncated or corrupt gzip data is a
``ValueError`` naming the file.

Text files are opened once and read front to back, so a pipe or
``/dev/stdin`` reads whole (the sniffed bytes are kept, not read again);
tables must be regular files (their readers seek). Lines end with ``\n``
or ``\r\n``; a file whose first 64 KiB hold a carriage return but no
newline has old-Mac ``\r`` line ends and is read as such; any other
carriage return followed by more content on its line is an error (it would
silently join two lines).

Ids
---
Item 0 is the padding index, so with ``remap=False`` item ids must be
``>= 1`` and fit in int32; the ids are kept as they are (so results on the
shared files are comparable with published ones). ``remap=True`` renumbers
the items ``1..N`` in increasing order of their original id and keeps the
originals in ``item_ids`` (``item_ids[0]``, the padding slot, is -1 for
integer ids and ``""`` for strings); this accepts item 0, ids beyond int32
and (for tables) strings. ``remap=None`` (the default) means ``False`` for the text
formats and ``True`` for tables. Without remapping, ids must also be dense
enough to size tables by (`fastregen.data.dataset.check_dense_ids`: the
largest id at most 2^20, or at least half of ``1..max`` occurring), since
every model and miner allocates per item id: ``1 2\n2 2147483647\n`` is
refused with a hint to remap rather than asking for 512 GiB later. Negative ids are an error in every format,
users included. Nothing is dropped silently: every bad value is a
``ValueError`` naming the file, the 1-based line (or the column and row)
and the value.

Streaming
---------
Text files are read with ``readinto`` in chunks of ``chunk_bytes`` (8 MiB)
into one reused buffer, cut at the last newline; each chunk is tokenized in
place by the compiled core with the GIL released (``_core.parse_user_lines``
for ``"lines"``, which validates and writes the int32 items straight into
the result; ``_core.tokenize_int_lines`` into int64 tokens for the other
text paths). The items array is sized by the file (half its bytes is an
upper bound on the tokens; never-written pages are never resident) and
shrinks in place at the end. Peak memory is therefore the final arrays plus one
chunk's worth of temporaries: loading a 10 M-interaction, 70 MiB file peaks
about 80 MiB above the interpreter (the final arrays are 50 MiB), see
``benchmarks/results/data.md``. Tables are read column-wise by pyarrow,
only the needed columns.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import stat
import zlib
from pathlib import Path

import numpy as np

from .. import _core
from .dataset import SequenceDataset, check_dense_ids

__all__ = ["load", "save", "detect_format", "iter_int_line_chunks", "FORMATS", "DEFAULT_CHUNK_BYTES"]

FORMATS = ("lines", "pairs", "csv", "tsv", "parquet", "recbole")
DEFAULT_CHUNK_BYTES = 8 << 20
_SNIFF_BYTES = 64 << 10
_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = np.iinfo(np.int64).max
_BOM = b"\xef\xbb\xbf"
_USER_COLUMNS = ("user_id", "user", "userId", "userid", "uid")
_ITEM_COLUMNS = ("item_id", "item", "itemId", "itemid", "iid")
_TIME_COLUMNS = ("timestamp", "ts", "time", "unix_time")


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


# A carriage return followed, on the same line, by more content: it would
# silently join what were meant to be two lines (trailing CRs, as in "\r\r\n",
# separate nothing and pass).
_CONTENT_AFTER_CR = re.compile(rb"\r[ \t\r\v\f]*[^\s]")


def _check_line_ends(path: Path, buf: bytearray, start: int, cut: int, line_base: int) -> None:
    """ValueError naming the line of the first CR inside a line of buf[start:cut]."""
    n_cr = buf.count(b"\r", start, cut)
    if not n_cr or n_cr == buf.count(b"\r\n", start, cut):  # none, or all CRLF: two C-speed scans
        return
    m = _CONTENT_AFTER_CR.search(buf, start, cut)
    if m is None:
        return
    line = line_base + buf.count(b"\n", start, m.start()) + 1
    raise ValueError(
        f"{path}:{line}: a carriage return (\\r) inside a line, which would join two lines; lines must "
        "end with \\n or \\r\\n (or all with \\r): convert the line endings, e.g. with tr '\\r' '\\n'"
    )


# ------------------------------------------------------------------- text core
def iter_int_line_chunks(path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False, threads: int = 1):
    """Stream a text file of integer lines in chunks of complete lines.

    Yields ``(first_line, counts, tokens)`` per chunk: ``first_line`` is the
    0-based number of the chunk's first line in the file, ``counts`` (int64)
    the number of tokens of each of its lines (blank lines 0) and ``tokens``
    (int64) the values. A bad token raises ``ValueError`` naming the file, the
    1-based line, the token and why. A UTF-8 byte-order mark at the start of
    the file is skipped.

    The file is read with ``readinto`` into one reused buffer and the
    tokenizer reads that buffer in place, so the text is never copied.

    Parameters
    ----------
    path : str or Path
        The file (``.gz`` is decompressed on the fly). A pipe or device
        (``/dev/stdin``) is read front to back once.
    chunk_bytes : int, default 8 MiB
        Bytes read at a time. A line longer than this is still read whole
        (the buffer grows to hold it).
    progress : bool, default False
        Show a progress bar (MiB read).
    threads : int, default 1
        Tokenizer threads per chunk (0: all OpenMP threads); see `load`.
    """

    def tokenize(view):
        counts, tokens, err = _core.tokenize_int_lines(view, n_threads=threads)
        return (counts, tokens), counts.size, err

    with _text_input(path) as src:
        for line_base, (counts, tokens), err in _chunks(src, chunk_bytes, progress, tokenize):
            if err is not None:
                line_idx, token, reason = err
                raise ValueError(
                    f"{src.path}:{line_base + line_idx + 1}: {_show(token)} is {reason} "
                    f"{_token_hint(line_base + line_idx)}"
                )
            yield line_base, counts, tokens


def _token_hint(line_index: int) -> str:
    hint = "(expected whitespace-separated integer ids"
    if line_index == 0:  # a header line, most likely
        hint += "; for a table with a header pass format='csv' or 'tsv'"
    return hint + ")"


def _chunks(src: _TextInput, chunk_bytes: int, progress: bool, parse):
    """Read ``src`` in chunks of whole lines and yield ``(first_line, payload, error)``.

    ``parse(view) -> (payload, n_lines, error)`` runs on each chunk in place
    (a memoryview into one reused buffer); ``first_line`` is the 0-based
    number of the chunk's first line in the file. The caller raises on the
    first error (its line is relative to the chunk). A carriage return
    inside a line is a ValueError (see `_TextInput` for CR-only files).
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    path, size = src.path, src.size
    total = None if size is None else round(size / 2**20, 1)
    with _bar(progress, f"reading {path.name}", total, "MiB") as bar:
        if size is not None:
            # A small file needs no full-size buffer (zero-filling it costs more than
            # parsing). Only a regular file's size is known: a pipe's is 0.
            chunk_bytes = max(1, min(chunk_bytes, size + 1))
        buf = bytearray(chunk_bytes)
        held = 0  # bytes of an unfinished line kept at the front of buf
        line_base = 0
        first = True
        while True:
            if len(buf) - held < chunk_bytes:  # a long line: make room for a full read
                buf.extend(bytes(chunk_bytes - (len(buf) - held)))
            with memoryview(buf) as view:
                got = src.readinto(view[held : held + chunk_bytes])
            eof = not got
            if not eof:
                bar.update(round(got / 2**20, 1))
            end = held + got
            if eof:
                cut = end
            else:
                cut = buf.rfind(b"\n", 0, end) + 1
                if cut == 0:  # no newline yet: keep reading
                    held = end
                    continue
            start = 0
            if first:  # the first complete line is in buf now
                first = False
                if buf.startswith(_BOM):
                    start = len(_BOM)
            if cut > start:
                with memoryview(buf) as view:
                    payload, n_lines, err = parse(view[start:cut])
                # After parsing, so that a file that is not text at all gets the
                # parser's "not an integer" rather than a line-ending complaint.
                if err is None and not src.cr_only:
                    _check_line_ends(path, buf, start, cut, line_base)
                yield line_base, payload, err
                if err is not None:
                    return
                line_base += n_lines
                del payload
            if eof:
                return
            held = end - cut
            buf[:held] = buf[cut:end]


class _Sink:
    """Append-only 1-D array that does not need twice its final size.

    With an upper bound on the length (a plain text file cannot hold more
    tokens than half its bytes), it allocates that bound once (``np.empty``:
    untouched pages are never resident) and shrinks it in place at the end
    (``ndarray.resize`` is a ``realloc``); otherwise it keeps the pieces and
    concatenates them.
    """

    def __init__(self, dtype, upper: int | None):
        self.dtype = np.dtype(dtype)
        self.n = 0
        self.pieces: list[np.ndarray] = []
        self.buf = None
        if upper is not None:
            try:
                self.buf = np.empty(max(int(upper), 1), dtype=self.dtype)
            except MemoryError:  # pragma: no cover - fall back to pieces
                self.buf = None

    def room(self, k: int) -> np.ndarray | None:
        """A writeable view of the next ``k`` (or more) free slots, or None if there are not."""
        if self.buf is None or self.buf.size - self.n < k:
            return None
        return self.buf[self.n :]

    def advance(self, k: int) -> None:
        """Count ``k`` values written into `room`."""
        self.n += k

    def append(self, values: np.ndarray) -> None:
        if self.buf is not None and self.n + values.size > self.buf.size:
            # More than the bound (the file grew while being read): keep pieces.
            self.pieces, self.buf = [self.buf[: self.n]], None
        if self.buf is not None:
            self.buf[self.n : self.n + values.size] = values
        else:
            self.pieces.append(values.astype(self.dtype, copy=False))
        self.n += values.size

    def finish(self) -> np.ndarray:
        if self.buf is not None:
            out, self.buf = self.buf, None
            out.resize(self.n, refcheck=False)
            return out
        out = np.concatenate(self.pieces) if self.pieces else np.zeros(0, self.dtype)
        self.pieces = []
        return out


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
    from .._progress import progress_bar

    return progress_bar(enabled=True, desc=desc, total=total, unit=unit)


def _show(token: bytes, limit: int = 40) -> str:
    """A token for an error message: quoted, bytes that are not UTF-8 as \\xNN, control characters escaped."""
    text = token.decode("utf-8", errors="backslashreplace")
    if len(text) > limit:
        text = text[:limit] + f"... ({len(token)} bytes)"
    # repr escapes control characters; it would also double the backslash
    # of each \\xNN that backslashreplace wrote, so undo that.
    return repr(text).replace("\\\\x", "\\x")


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


# ---------------------------------------------------------------------- tables
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


# ------------------------------------------------------------------------ load
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
        from .recbole import load_recbole

        return load_recbole(path, user=user, item=item, timestamp=timestamp)
    else:
        remap = True if remap is None else bool(remap)
        ds = _load_table(path, format, user, item, timestamp, sep, remap)
    if not remap:
        check_dense_ids(ds, f"{path}: ", _REMAP_HINT.lstrip("; "))
    return ds


# ------------------------------------------------------------------------ save
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
    from .._io import atomic_open

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
        from .._io import atomic_open

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
