"""Patterns as text: one pattern per line, readable by hand and by `read`.

`Patterns.save` and `Patterns.load` are the way in; this module only knows
the format (it takes any object with the `Patterns` attributes and gives
back the constructor's fields), so it needs nothing from `.base`.

Format::

    # fastregen patterns kind=span max_span=5 min_support=2 min_len=2 max_len=5 num_items=12101
    3<TAB>12 7 9            support, then the items
    ...

Entropy patterns (``kind=entropy``) add ``theta=`` to the header and a third
column, H(P) in bits, written with Python's shortest round-trip ``repr`` so a
saved set loads back bit for bit::

    # fastregen patterns kind=entropy max_span=None ... num_items=1682 theta=9.8125
    4<TAB>12 7<TAB>7.906890595608519

Files written before entropy patterns existed (span and window kinds) read
unchanged; other ``#`` lines are comments.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._io import atomic_open

__all__ = ["write", "read", "HEADER_KEYS"]

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
#: Fields of the "# fastregen patterns ..." header line (``theta`` for entropy patterns only).
HEADER_KEYS = ("kind", "max_span", "min_support", "min_len", "max_len", "num_items", "theta")


def _header(p) -> str:
    fields = dict(kind=p.kind, max_span=p.max_span, min_support=p.min_support, min_len=p.min_len,
                  max_len=p.max_len, num_items=p.num_items)
    if p.kind == "entropy":
        fields["theta"] = repr(p.theta)
    return "# fastregen patterns " + " ".join(f"{k}={v}" for k, v in fields.items()) + "\n"


def write(patterns, path) -> None:
    """Write ``patterns`` one per line, ``support<TAB>item item ...`` (plus ``<TAB>entropy``), atomically.

    A first ``#`` line records the mining parameters; `read` reads it back.

    Parameters
    ----------
    patterns : Patterns
        (any object with its ``offsets``, ``items``, ``support``, ``kind``,
        ``entropy``, ``theta`` and mining-parameter attributes)
    path : str or os.PathLike
    """
    items = patterns.items.tolist()
    offs = patterns.offsets.tolist()
    ent = None if patterns.kind != "entropy" else patterns.entropy.tolist()
    with atomic_open(path, "w") as f:
        f.write(_header(patterns))
        for k, s in enumerate(patterns.support.tolist()):
            line = f"{s}\t{' '.join(map(str, items[offs[k] : offs[k + 1]]))}"
            if ent is not None:
                line += f"\t{ent[k]!r}"
            f.write(line + "\n")


def _header_value(path, lineno: int, key: str, value: str):
    if value == "None":
        return None
    if key == "kind":
        return value
    try:
        return float(value) if key == "theta" else int(value)
    except ValueError:
        kind = "a number" if key == "theta" else "an integer"
        raise ValueError(f"{path}:{lineno}: header field {key} = {value!r} is not {kind}") from None


def read(path) -> dict:
    """Read a file written by `write` (or by hand: ``support<TAB>items`` lines; ``#`` lines
    other than the header are comments).

    Returns
    -------
    dict
        The `Patterns` constructor's fields: ``offsets`` (int64, shape (n + 1,)),
        ``items`` (int32), ``support`` (int64, shape (n,)) and the header's
        fields (``entropy``, float64 shape (n,), and ``theta`` for entropy
        patterns). `Patterns.load` builds (and checks) the `Patterns`.

    Raises
    ------
    ValueError
        A malformed line or header field, naming the file and line.
    """
    path = Path(path)
    meta: dict = {}
    supports: list[int] = []
    lengths: list[int] = []
    items: list[int] = []
    entropy: list[float] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start:e.start + 1]!r}); "
                    "is this a patterns file written by `fastregen mine`?"
                ) from None
            if line.startswith("# fastregen patterns"):
                for tok in line.split()[3:]:
                    key, _, value = tok.partition("=")
                    if key not in HEADER_KEYS:
                        raise ValueError(
                            f"{path}:{lineno}: unknown header field {key!r} (known: {', '.join(HEADER_KEYS)})"
                        )
                    meta[key] = _header_value(path, lineno, key, value)
                    if isinstance(meta[key], int) and not 0 <= meta[key] <= _INT64_MAX:
                        raise ValueError(f"{path}:{lineno}: header field {key} = {value} is outside 0..{_INT64_MAX}")
                continue
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            want = 3 if meta.get("kind") == "entropy" else 2
            shape = "support<TAB>items<TAB>entropy" if want == 3 else "support<TAB>items"
            try:
                if len(fields) != want:
                    raise ValueError
                s = int(fields[0])
                pat = [int(t) for t in fields[1].split()]
                if want == 3:
                    h = float(fields[2])
                    if not math.isfinite(h):
                        raise ValueError
                    entropy.append(h)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected '{shape}', got {line.strip()!r}") from None
            if not pat:
                raise ValueError(f"{path}:{lineno}: expected '{shape}', got {line.strip()!r}")
            if min(pat) < 1:
                raise ValueError(f"{path}:{lineno}: item ids must be >= 1, got {min(pat)}")
            if max(pat) > _INT32_MAX:
                raise ValueError(f"{path}:{lineno}: item id {max(pat)} is beyond int32 ({_INT32_MAX})")
            if not 0 <= s <= _INT64_MAX:
                raise ValueError(f"{path}:{lineno}: support {s} is outside 0..{_INT64_MAX}")
            supports.append(s)
            lengths.append(len(pat))
            items.extend(pat)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if meta.get("kind") == "entropy":
        meta["entropy"] = np.asarray(entropy, dtype=np.float64)
        meta.setdefault("theta", math.nan)
    return dict(offsets=offsets, items=np.asarray(items, dtype=np.int32),
                support=np.asarray(supports, dtype=np.int64), **meta)
