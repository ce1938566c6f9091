"""Pure-Python reference of the text kernels in ``csrc/textio.cpp``.

The grammar both implement:

* lines are separated by ``b"\\n"``; a last line without a newline still
  counts, an empty input has no lines;
* tokens are separated by ASCII whitespace (space, ``\\t``, ``\\r``, ``\\v``,
  ``\\f``), so CRLF files and tab-separated files read the same;
* a token is ``[+-]?[0-9]+`` and its value must fit in int64. Anything else
  (``1.5``, ``1e3``, ``1_000``, non-ASCII digits, a byte-order mark) is an
  error, reported as ``(line_index, token, reason)`` for the first bad token.

These functions are the oracle of the tests and the slow path of the
benchmark; ``fastregen.data.load`` uses the compiled ones.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["tokenize_int_lines", "parse_user_lines", "format_int_rows", "read_lines", "INT64_MIN", "INT64_MAX"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_INT = re.compile(rb"[+-]?[0-9]+")


def tokenize_int_lines(data: bytes):
    """Split ``data`` into lines of int64 tokens.

    Parameters
    ----------
    data : bytes
        Complete lines of text (the last one may lack its newline).

    Returns
    -------
    counts : np.ndarray of int64, shape (n_lines,)
        Number of tokens on each line; blank lines count 0.
    tokens : np.ndarray of int64, shape (counts.sum(),)
        The tokens, line after line.
    error : tuple (int, bytes, str) or None
        ``(line_index, token, reason)`` of the first bad token, reason being
        ``"not an integer"`` or ``"out of int64 range"``. On error ``counts``
        and ``tokens`` cover the lines before the bad one.
    """
    # A final newline ends the last line, it does not start one.
    lines = _split_lines(data)
    counts: list[int] = []
    tokens: list[int] = []
    for index, line in enumerate(lines):
        values = []
        # bytes.split() with no argument splits on exactly the ASCII whitespace above.
        for tok in line.split():
            if _INT.fullmatch(tok) is None:
                return _arrays(counts, tokens) + ((index, tok, "not an integer"),)
            value = int(tok)
            if not INT64_MIN <= value <= INT64_MAX:
                return _arrays(counts, tokens) + ((index, tok, "out of int64 range"),)
            values.append(value)
        counts.append(len(values))
        tokens.extend(values)
    return _arrays(counts, tokens) + (None,)


def _arrays(counts, tokens):
    return np.array(counts, dtype=np.int64), np.array(tokens, dtype=np.int64)


def format_int_rows(offsets, values, row_begin: int, row_end: int, sep: str = " ") -> bytes:
    """Rows ``[row_begin, row_end)`` of a CSR int64 array as text, one line per row.

    Row ``r`` is ``values[offsets[r]:offsets[r + 1]]`` joined by ``sep`` and
    followed by a newline.
    """
    out = []
    for r in range(row_begin, row_end):
        row = values[offsets[r] : offsets[r + 1]]
        out.append(sep.join(str(int(v)) for v in row) + "\n")
    return "".join(out).encode()


INT32_MAX = 2**31 - 1


def _split_lines(data: bytes) -> list[bytes]:
    lines = bytes(data).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def parse_user_lines(data: bytes):
    """Parse and validate ``user item item ...`` lines (oracle of ``_core.parse_user_lines``).

    Blank lines are skipped. The first bad line is reported; within a line,
    in this order: a token that is not an int64 (as `tokenize_int_lines`), a
    user without items (``"no items"``, token = the user), a negative user
    (``"negative user id"``), the first bad item from the left
    (``"negative item id"``, ``"item id 0"``, ``"item id beyond int32"``).

    Returns
    -------
    tuple
        ``(users int64, lines int64, lengths int64, items int32, n_lines, None)``
        with ``lines`` the 0-based line of each user, or
        ``(None, None, None, None, 0, (line, token, reason))``.
    """
    lines = _split_lines(data)
    users, where, lengths, items = [], [], [], []
    for index, line in enumerate(lines):
        row = []
        for tok in line.split():
            if _INT.fullmatch(tok) is None:
                return _user_error(index, tok, "not an integer")
            value = int(tok)
            if not INT64_MIN <= value <= INT64_MAX:
                return _user_error(index, tok, "out of int64 range")
            row.append((tok, value))
        if not row:
            continue
        if len(row) == 1:
            return _user_error(index, row[0][0], "no items")
        if row[0][1] < 0:
            return _user_error(index, row[0][0], "negative user id")
        for tok, value in row[1:]:
            if value < 0:
                return _user_error(index, tok, "negative item id")
            if value == 0:
                return _user_error(index, tok, "item id 0")
            if value > INT32_MAX:
                return _user_error(index, tok, "item id beyond int32")
        users.append(row[0][1])
        where.append(index)
        lengths.append(len(row) - 1)
        items.extend(v for _, v in row[1:])
    return (
        np.array(users, dtype=np.int64),
        np.array(where, dtype=np.int64),
        np.array(lengths, dtype=np.int64),
        np.array(items, dtype=np.int32),
        len(lines),
        None,
    )


def _user_error(line, token, reason):
    return None, None, None, None, 0, (line, token, reason)


def read_lines(path):
    """Pure-Python reader of a ``user item item ...`` file (whole file at once).

    The slow oracle of ``fastregen.data.load(path, format="lines")``: a UTF-8
    byte-order mark is skipped, lines are validated by `parse_user_lines`,
    and a user may have one line only. Errors are ``ValueError`` with
    ``path:line``.

    Returns
    -------
    offsets : np.ndarray of int64, shape (n_users + 1,)
    items : np.ndarray of int32
    user_ids : np.ndarray of int64, shape (n_users,)
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    users, where, lengths, items, _, err = parse_user_lines(data)
    if err is not None:
        line, token, reason = err
        raise ValueError(f"{path}:{line + 1}: {token!r}: {reason}")
    seen = {}
    for user, line in zip(users.tolist(), where.tolist()):
        if user in seen:
            raise ValueError(f"{path}:{line + 1}: user {user} already has a line ({path}:{seen[user] + 1})")
        seen[user] = line
    if not len(users):
        raise ValueError(f"{path}: empty file (no user lines)")
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, items, users
