"""Multi-head attention over many short, ragged groups, with dropout on the weights.

The regenerator attends within groups of 2..50 tokens: a source sequence, a
target pattern, a pattern's decoder inputs against its source. torch runs
that as ~15 small ops each way (batched matmuls of 5 x 32 x 5, masks,
softmax, dropout, head split and merge copies, and with packed rows a
scatter into a padded layout and a gather back). The compiled kernel
(`fastregen._core.ragged_attention_forward` / ``_backward``,
csrc/attention.hpp) makes one pass per (group, head) and reads the
projections where they lie: the packed rows need no padded layout, and
``[q | k | v]`` column slices of one projection are never copied.

Layout: group g's queries are rows ``q_offsets[g]:q_offsets[g+1]`` and its
keys rows ``k_offsets[g]:k_offsets[g+1]``. A query at position i of its
group sees the group's keys j (``j <= i`` when ``causal``) that
``key_ignore`` does not mark. Dropout element ``e = (r * heads + h) * width + j``
(query row r, head h, key j) uses `fastregen.models.base.Dropout`'s mask
of the same random bytes, so both backends draw the same masks.

`ragged_attention_torch` is the reference (padded gathers, autograd);
`ragged_attention` dispatches: ``"core"`` (the compiled kernel, CPU
tensors) or ``"torch"``; ``"auto"`` picks core on CPU.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ragged_attention", "ragged_attention_torch", "ATTENTION_BACKENDS", "keep_factors"]

ATTENTION_BACKENDS = ("auto", "torch", "core")


def _split(q: torch.Tensor, kv: torch.Tensor | None):
    """``(q, k, v)`` column views: ``q`` is [q | k | v] (3D wide) when ``kv`` is None, else q (D) and kv [k | v] (2D)."""
    if kv is None:
        if q.shape[1] % 3:
            raise ValueError(f"self-attention takes q = [q | k | v] of width 3 * D, got width {q.shape[1]}")
        D = q.shape[1] // 3
        return q[:, :D], q[:, D: 2 * D], q[:, 2 * D:]
    D = q.shape[1]
    if kv.shape[1] != 2 * D:
        raise ValueError(f"kv must be [k | v] of width 2 * {D} (q's width), got {kv.shape[1]}")
    return q, kv[:, :D], kv[:, D:]


def keep_factors(drop: torch.Tensor | None, threshold: int, shape, dtype: torch.dtype) -> torch.Tensor | None:
    """Dropout's scaled keep mask (``shape``) from random bytes (`fastregen.models.base.keep_mask`); None
    without dropout."""
    if drop is None or threshold == 0:
        return None
    from ..models.base import keep_mask

    return keep_mask(drop, shape, dtype, threshold)


def _check(q, kv, q_offsets, k_offsets, heads, drop, threshold) -> None:
    for name, t in (("q", q), ("kv", kv)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.dim() != 2 or not t.is_floating_point()):
            raise TypeError(f"{name} must be a 2-D float tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)} of shape {tuple(getattr(t, 'shape', ()))}")
    if kv is not None and kv.dtype != q.dtype:
        raise TypeError(f"q and kv must share a dtype, got {q.dtype} and {kv.dtype}")
    for name, o in (("q_offsets", q_offsets), ("k_offsets", k_offsets)):
        if not isinstance(o, torch.Tensor) or o.dtype != torch.int64 or o.dim() != 1:
            raise TypeError(f"{name} must be a 1-D int64 tensor")
    if not isinstance(heads, int) or heads < 1:
        raise ValueError(f"heads must be a positive int, got {heads!r}")
    if not 0 <= threshold <= 255:
        raise ValueError(f"drop_threshold must be in 0..255, got {threshold}")
    if threshold and drop is None:
        raise ValueError("drop_threshold > 0 needs drop (Dropout.draw's random bytes)")


def ragged_attention_torch(q: torch.Tensor, kv: torch.Tensor | None, q_offsets: torch.Tensor,
                           k_offsets: torch.Tensor, *, heads: int, width: int, causal: bool = False,
                           key_ignore: torch.Tensor | None = None, scale: float | None = None,
                           drop: torch.Tensor | None = None, drop_threshold: int = 0) -> torch.Tensor:
    """The reference of `ragged_attention`: every query's group keys gathered into a padded
    (rows, width) block, masked, softmaxed, dropped out and summed, differentiable by autograd."""
    _check(q, kv, q_offsets, k_offsets, heads, drop, drop_threshold)
    qq, k, v = _split(q, kv)
    R, D = qq.shape
    dh = D // heads
    scale = 1.0 / math.sqrt(dh) if scale is None else scale
    group = torch.repeat_interleave(torch.arange(len(q_offsets) - 1, device=q.device), q_offsets.diff())
    position = torch.arange(R, device=q.device) - q_offsets[group]
    count = k_offsets.diff()[group]                                   # keys of each query's group
    j = torch.arange(width, device=q.device)
    visible = j[None, :] < count[:, None]                             # (R, W)
    if causal:
        visible &= j[None, :] <= position[:, None]
    rows = (k_offsets[group][:, None] + j[None, :]).clamp(max=max(k.shape[0] - 1, 0))
    if key_ignore is not None:
        visible &= ~key_ignore.reshape(-1).bool()[rows]
    kr = k[rows].view(R, width, heads, dh)                            # (R, W, H, dh)
    vr = v[rows].view(R, width, heads, dh)
    scores = torch.einsum("rhd,rwhd->rhw", qq.reshape(R, heads, dh), kr) * scale
    seen = visible.any(1)
    # a query without a visible key: NaN out (torch's softmax over nothing), and no gradient
    scores = scores.masked_fill(~visible[:, None, :] & seen[:, None, None], float("-inf"))
    p = torch.softmax(scores, dim=-1)
    keep = keep_factors(drop, drop_threshold, (R, heads, width), q.dtype)
    if keep is not None:
        p = p * keep
    out = torch.einsum("rhw,rwhd->rhd", p, vr).reshape(R, D)
    return torch.where(seen[:, None], out, torch.full_like(out, float("nan")))


class _Core(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, kv, q_offsets, k_offsets, heads, width, causal, key_ignore, scale, drop, threshold):
        from .. import _core

        self_attention = kv is None
        qd = q.detach()
        kvd = qd if self_attention else kv.detach()
        qq, k, v = (t.numpy() for t in _split(qd, None if self_attention else kvd))
        qo, ko = q_offsets.numpy(), k_offsets.numpy()
        ignore = None if key_ignore is None else key_ignore.reshape(-1).contiguous().numpy()
        dropn = None if drop is None else drop.numpy()
        threads = torch.get_num_threads()
        out, probs = _core.ragged_attention_forward(qq, k, v, qo, ko, heads, width, causal, scale, ignore, dropn,
                                                    threshold, threads)
        ctx.save_for_backward(q, kv if kv is not None else q)
        ctx.args = (qo, ko, heads, width, causal, scale, ignore, dropn, threshold, threads, self_attention)
        ctx.probs = probs
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        from .. import _core

        if torch.is_grad_enabled():
            raise RuntimeError("the compiled ragged attention has no second derivative (a backward pass with "
                               "create_graph=True): use backend='torch' (fused_attention=False)")
        q, kv = ctx.saved_tensors
        qo, ko, heads, width, causal, scale, ignore, dropn, threshold, threads, self_attention = ctx.args
        dq_src = torch.empty_like(q)  # the kernel writes every row of dq, dk and dv
        dkv_src = dq_src if self_attention else torch.empty_like(kv)
        qq, k, v = (t.numpy() for t in _split(q.detach(), None if self_attention else kv.detach()))
        dq, dk, dv = (t.numpy() for t in _split(dq_src, None if self_attention else dkv_src))
        _core.ragged_attention_backward(qq, k, v, qo, ko, heads, width, causal, scale, ignore, dropn, threshold,
                                        ctx.probs, grad.contiguous().numpy(), dq, dk, dv, threads)
        ctx.probs = None
        return dq_src, (None if self_attention else dkv_src), None, None, None, None, None, None, None, None, None


def ragged_attention(q: torch.Tensor, kv: torch.Tensor | None, q_offsets: torch.Tensor, k_offsets: torch.Tensor,
                     *, heads: int, width: int | None = None, causal: bool = False,
                     key_ignore: torch.Tensor | None = None, scale: float | None = None,
                     drop: torch.Tensor | None = None, drop_threshold: int = 0, backend: str = "auto") -> torch.Tensor:
    """Multi-head attention within ragged groups of rows.

    Parameters
    ----------
    q : torch.Tensor, float32 or float64, shape (R, 3 D) or (R, D)
        Self-attention (``kv`` None): each row's ``[q | k | v]`` projection,
        the keys being the query rows themselves. Otherwise the queries (R, D).
    kv : torch.Tensor, shape (N, 2 D), optional
        Key and value rows ``[k | v]`` (cross-attention).
    q_offsets, k_offsets : torch.Tensor of int64, shape (G + 1,)
        Group g's query rows ``q_offsets[g]:q_offsets[g+1]`` and key rows
        ``k_offsets[g]:k_offsets[g+1]``; both start at 0 and end at the row counts.
    heads : int
        Heads side by side in a row (D / heads values each).
    width : int, optional
        Room for the keys of a group (default: the largest group).
    causal : bool
        Query at position i of its group sees keys j <= i only.
    key_ignore : torch.Tensor of bool, shape (N,), optional
        True at key rows no query may see (padding).
    scale : float, optional
        Score scale; default ``1 / sqrt(D / heads)``.
    drop, drop_threshold : optional
        Dropout on the attention weights: `fastregen.models.base.Dropout`'s
        ``draw(R * heads * width)`` bytes and ``threshold``; 0 for none.
    backend : {"auto", "torch", "core"}
        ``"core"`` (the compiled kernel; CPU tensors) or the torch reference;
        ``"auto"``: core on CPU, torch elsewhere.

    Returns
    -------
    torch.Tensor, shape (R, D)
        Heads side by side. A query that sees no key gets NaN (torch's
        softmax over nothing) and passes no gradient.
    """
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(ATTENTION_BACKENDS)}; got {backend!r}")
    _check(q, kv, q_offsets, k_offsets, heads, drop, drop_threshold)
    if width is None:
        width = int(k_offsets.diff().max()) if len(k_offsets) > 1 else 0
    D = q.shape[1] // 3 if kv is None else q.shape[1]
    scale = 1.0 / math.sqrt(D // heads) if scale is None else float(scale)
    on_cpu = q.device.type == "cpu" and (kv is None or kv.device.type == "cpu")
    if backend == "core" and not on_cpu:
        raise RuntimeError(f"backend='core' runs on CPU tensors, got {q.device}")
    if backend == "torch" or not on_cpu:
        return ragged_attention_torch(q, kv, q_offsets, k_offsets, heads=heads, width=width, causal=causal,
                                      key_ignore=key_ignore, scale=scale, drop=drop, drop_threshold=drop_threshold)
    if key_ignore is not None and key_ignore.dtype != torch.bool:
        key_ignore = key_ignore.bool()
    return _Core.apply(q, kv, q_offsets.contiguous(), k_offsets.contiguous(), heads, width, bool(causal),
                       key_ignore, scale, drop, int(drop_threshold))
