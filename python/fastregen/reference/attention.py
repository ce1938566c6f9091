"""Reference of ``fastregen._core.ragged_attention_forward`` / ``_backward`` (csrc/attention.hpp).

Plain NumPy loops over groups, queries and heads, written as the formulas
read; float64 throughout. ``q``, ``k``, ``v`` are (rows, heads * head_dim);
``keep`` is dropout's (query rows, heads, width) scaled keep mask, or None.
"""

from __future__ import annotations

import numpy as np

from . import dropout

__all__ = ["visible_keys", "forward", "backward", "keep_mask"]


def keep_mask(drop, threshold: int, rows: int, heads: int, width: int) -> np.ndarray | None:
    """Dropout's scaled keep factors of element ``e = (r * heads + h) * width + j`` from random bytes
    (`fastregen.reference.dropout.keep_mask`), shape (rows, heads, width); None when threshold is 0."""
    if threshold == 0:
        return None
    return dropout.keep_mask(drop, threshold, rows * heads * width).reshape(rows, heads, width)


def visible_keys(g: int, i: int, k_offsets, causal: bool, key_ignore) -> list[int]:
    """Keys (0-based within group g) that query position i of group g sees."""
    n = int(k_offsets[g + 1] - k_offsets[g])
    limit = min(n, i + 1) if causal else n
    return [j for j in range(limit) if key_ignore is None or not key_ignore[k_offsets[g] + j]]


def _queries(q_offsets, k_offsets, heads: int, dh: int, causal: bool, key_ignore):
    """Every (query row r, its group's first key row k0, the keys it sees, head h, head h's columns)."""
    for g in range(len(q_offsets) - 1):
        for r in range(int(q_offsets[g]), int(q_offsets[g + 1])):
            seen = visible_keys(g, r - int(q_offsets[g]), k_offsets, causal, key_ignore)
            for h in range(heads):
                yield r, int(k_offsets[g]), seen, h, slice(h * dh, (h + 1) * dh)


def forward(q, k, v, q_offsets, k_offsets, heads: int, width: int, causal: bool = False, scale: float = 1.0,
            key_ignore=None, keep=None):
    """-> (out (rows, heads * head_dim), probs (rows, heads, width)); NaN out for a query with no visible key."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    R, D = q.shape
    out = np.zeros((R, D))
    probs = np.zeros((R, heads, width))
    for r, k0, seen, h, cols in _queries(q_offsets, k_offsets, heads, D // heads, causal, key_ignore):
        if not seen:
            out[r, cols] = np.nan
            continue
        s = np.array([scale * q[r, cols] @ k[k0 + j, cols] for j in seen])
        p = np.exp(s - s.max())
        p /= p.sum()
        for j, pj in zip(seen, p):
            probs[r, h, j] = pj
            d = 1.0 if keep is None else keep[r, h, j]
            out[r, cols] += d * pj * v[k0 + j, cols]
    return out, probs


def backward(q, k, v, q_offsets, k_offsets, heads: int, width: int, causal: bool, scale: float, key_ignore,
             keep, probs, dout):
    """-> (dq, dk, dv), the gradients of ``sum(forward(...)[0] * dout)`` (a query with no visible key: none)."""
    q, k, v, dout = (np.asarray(x, dtype=np.float64) for x in (q, k, v, dout))
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for r, k0, seen, h, cols in _queries(q_offsets, k_offsets, heads, q.shape[1] // heads, causal, key_ignore):
        p = {j: probs[r, h, j] for j in seen}
        d = {j: 1.0 if keep is None else keep[r, h, j] for j in seen}
        dp = {j: d[j] * (dout[r, cols] @ v[k0 + j, cols]) for j in seen}
        for j in seen:
            dv[k0 + j, cols] += d[j] * p[j] * dout[r, cols]
        inner = sum(p[j] * dp[j] for j in seen)
        for j in seen:
            ds = scale * p[j] * (dp[j] - inner)
            dq[r, cols] += ds * k[k0 + j, cols]
            dk[k0 + j, cols] += ds * q[r, cols]
    return dq, dk, dv
