"""The chunked reader of text files of integers, shared by the ``"lines"`` and ``"pairs"`` readers.

Text files are read with ``readinto`` in chunks of ``chunk_bytes`` (8 MiB)
into one reused buffer, cut at the last newline; each chunk is tokenized in
place by the compiled core with the GIL released (``_core.parse_user_lines``
for ``"lines"``, which validates and writes the int32 items straight into
the result; ``_core.tokenize_int_lines`` into int64 tokens for the other
text paths). The items array is sized by the file (`_Sink`: half its bytes
is an upper bound on the tokens; never-written pages are never resident)
and shrinks in place at the end. A carriage return inside a line is an
error (it would join two lines).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ... import _core
from .files import _BOM, _bar, _show, _text_input, _TextInput

__all__ = ["iter_int_line_chunks", "DEFAULT_CHUNK_BYTES"]

DEFAULT_CHUNK_BYTES = 8 << 20


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
