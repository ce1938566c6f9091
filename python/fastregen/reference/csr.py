"""NumPy reference of the CSR helpers in ``csrc/csr.hpp``.

``gather_ranges`` is the kernel behind ``SequenceDataset.subset`` and
``SequenceDataset.slice_sequences``; this is the test oracle of the compiled
``fastregen._core.gather_ranges``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ranges", "gather_ranges"]


def ranges(starts, ends) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for every pair, as one int64 array.

    Parameters
    ----------
    starts, ends : array_like of int, shape (n,)
        ``starts[k] <= ends[k]``.

    Returns
    -------
    np.ndarray of int64, shape (sum(ends - starts),)
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    total = int(lengths.sum()) if lengths.size else 0
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    base = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return base + np.arange(total, dtype=np.int64)


def gather_ranges(values, starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """``values[starts[k]:ends[k]]`` for every k, concatenated.

    Parameters
    ----------
    values : np.ndarray, shape (m,)
    starts, ends : array_like of int, shape (n,)
        ``0 <= starts[k] <= ends[k] <= m``, else ValueError.

    Returns
    -------
    offsets : np.ndarray of int64, shape (n + 1,)
        Running sum of the range lengths (``offsets[0] == 0``).
    gathered : np.ndarray, shape (offsets[-1],), the dtype of ``values``
    """
    values = np.asarray(values)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise ValueError(f"starts and ends must be 1-D of equal length, got {starts.shape} and {ends.shape}")
    bad = (starts < 0) | (ends < starts) | (ends > values.size)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"range {k} = [{starts[k]}, {ends[k]}) is not inside [0, {values.size})")
    offsets = np.zeros(starts.size + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    return offsets, values[ranges(starts, ends)]
