"""Reference of ``fastregen._core.apply_dropout`` (csrc/dropout.hpp): dropout's keep factors from random bytes."""

from __future__ import annotations

import numpy as np

__all__ = ["keep_mask", "apply_dropout"]


def keep_mask(raw, threshold: int, n: int, dtype=np.float64) -> np.ndarray:
    """Keep factor of elements 0..n-1: at threshold 128 ``2 * bit (e % 8) of raw[e // 8]``, else
    ``(raw[e] >= threshold) * (256 / (256 - threshold))`` rounded to ``dtype``; ones at threshold 0."""
    raw = np.asarray(raw, dtype=np.uint8)
    if threshold == 0:
        return np.ones(n, dtype=dtype)
    e = np.arange(n)
    if threshold == 128:
        return (((raw[e // 8] >> (e % 8)) & 1) * 2).astype(dtype)
    return (raw[:n] >= threshold).astype(dtype) * dtype(256 / (256 - threshold))


def apply_dropout(x, raw, threshold: int) -> np.ndarray:
    """``x * keep_mask(raw, threshold, x.size)`` in x's dtype and shape."""
    x = np.asarray(x)
    return x * keep_mask(raw, threshold, x.size, x.dtype.type).reshape(x.shape)
