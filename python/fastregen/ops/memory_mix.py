"""K-memory mixing: ``out[b, l, :] = sum_k pi[b, k] * memories[b, l, k, :]``.

The DR4SR regenerator projects the encoder memory into K spaces and the
decoder reads their mixture weighted by the diversity promoter's ``pi``
(paper §4.2.2, eq. 4). Done naively this is a broadcast multiply that
materialises a (B, L, K, D) temporary and a second one in the backward pass;
the triton kernel reads each memory once and writes the (B, L, D) output
directly, and its backward pass writes ``grad_memories`` and per-block partial
sums of ``grad_pi`` in one sweep.

Gradients::

    grad_memories[b, l, k, d] = pi[b, k] * grad_out[b, l, d]
    grad_pi[b, k]             = sum_{l, d} grad_out[b, l, d] * memories[b, l, k, d]

`mix_memories_torch` is the reference (and the CPU path); `mix_memories`
dispatches between it and the triton kernel.
"""

from __future__ import annotations

import functools

import torch

from ._backend import resolve_backend

__all__ = ["mix_memories", "mix_memories_torch"]


def _check(memories: torch.Tensor, pi: torch.Tensor) -> None:
    if not isinstance(memories, torch.Tensor) or not isinstance(pi, torch.Tensor):
        raise TypeError("memories and pi must be torch tensors")
    if memories.dim() != 4:
        raise ValueError(f"memories must have shape (B, L, K, D), got {tuple(memories.shape)}")
    B, _, K, _ = memories.shape
    if pi.shape != (B, K):
        raise ValueError(f"pi must have shape (B, K) = ({B}, {K}), got {tuple(pi.shape)}")
    if not memories.is_floating_point() or not pi.is_floating_point():
        raise TypeError(f"memories and pi must be floating point, got {memories.dtype} and {pi.dtype}")
    if memories.device != pi.device:
        raise ValueError(f"memories is on {memories.device} but pi is on {pi.device}")


def mix_memories_torch(memories: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """Reference mixing: ``(memories * pi[:, None, :, None]).sum(2)``; autograd does the backward."""
    _check(memories, pi)
    return torch.einsum("blkd,bk->bld", memories, pi.to(memories.dtype))


def mix_memories(memories: torch.Tensor, pi: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Weighted sum of K memories.

    Parameters
    ----------
    memories : torch.Tensor, shape (B, L, K, D), float
        The K projected encoder memories of each sequence.
    pi : torch.Tensor, shape (B, K), float
        Mixture weights (rows usually sum to 1; not required).
    backend : {"auto", "torch", "triton"}
        ``"auto"``: triton on CUDA tensors, torch otherwise.

    Returns
    -------
    torch.Tensor, shape (B, L, D), dtype of ``memories``
        ``out[b, l] = sum_k pi[b, k] * memories[b, l, k]``; differentiable in
        both inputs on every backend.
    """
    _check(memories, pi)
    if resolve_backend(backend, memories, pi) == "torch":
        return mix_memories_torch(memories, pi)
    return _MixMemoriesTriton.apply(memories, pi)


# ---------------------------------------------------------------- triton side
_BLOCK = 1024  # elements of the flattened (L, D) plane per program


@functools.lru_cache(maxsize=1)
def _kernels():
    # Decorated on first use so that TRITON_INTERPRET set by a caller (the
    # tests) before that first call is honoured, and importing fastregen
    # never needs triton or CUDA.
    import triton
    import triton.language as tl

    @triton.jit
    def mix_fwd(m_ptr, pi_ptr, out_ptr, LD, D, K: tl.constexpr, BLOCK: tl.constexpr):
        b = tl.program_id(0)
        j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = j < LD
        l = j // D
        d = j - l * D
        base = b.to(tl.int64) * LD * K + l.to(tl.int64) * (K * D) + d
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k in tl.static_range(K):
            w = tl.load(pi_ptr + b * K + k).to(tl.float32)
            m = tl.load(m_ptr + base + k * D, mask=mask, other=0.0).to(tl.float32)
            acc += w * m
        tl.store(out_ptr + b.to(tl.int64) * LD + j, acc.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def mix_bwd(m_ptr, pi_ptr, g_ptr, gm_ptr, part_ptr, LD, D, NBLK, K: tl.constexpr, BLOCK: tl.constexpr):
        b = tl.program_id(0)
        blk = tl.program_id(1)
        j = blk * BLOCK + tl.arange(0, BLOCK)
        mask = j < LD
        l = j // D
        d = j - l * D
        base = b.to(tl.int64) * LD * K + l.to(tl.int64) * (K * D) + d
        g = tl.load(g_ptr + b.to(tl.int64) * LD + j, mask=mask, other=0.0).to(tl.float32)
        for k in tl.static_range(K):
            w = tl.load(pi_ptr + b * K + k).to(tl.float32)
            m = tl.load(m_ptr + base + k * D, mask=mask, other=0.0).to(tl.float32)
            tl.store(gm_ptr + base + k * D, (w * g).to(gm_ptr.dtype.element_ty), mask=mask)
            # partial sums per block, reduced in a fixed order afterwards:
            # deterministic, unlike atomics
            tl.store(part_ptr + (b * NBLK + blk) * K + k, tl.sum(g * m, axis=0))

    return mix_fwd, mix_bwd


class _MixMemoriesTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, memories, pi):
        import triton

        memories = memories.contiguous()
        pi = pi.contiguous()
        B, L, K, D = memories.shape
        out = torch.empty((B, L, D), dtype=memories.dtype, device=memories.device)
        LD = L * D
        if B and LD:
            fwd, _ = _kernels()
            fwd[(B, triton.cdiv(LD, _BLOCK))](memories, pi, out, LD, D, K=K, BLOCK=_BLOCK)
        ctx.save_for_backward(memories, pi)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        import triton

        memories, pi = ctx.saved_tensors
        B, L, K, D = memories.shape
        LD = L * D
        grad_out = grad_out.contiguous()
        nblk = max(triton.cdiv(LD, _BLOCK), 1)
        grad_m = torch.empty_like(memories)
        part = torch.zeros((B, nblk, K), dtype=torch.float32, device=memories.device)
        if B and LD:
            _, bwd = _kernels()
            bwd[(B, nblk)](memories, pi, grad_out, grad_m, part, LD, D, nblk, K=K, BLOCK=_BLOCK)
        grad_pi = part.sum(1).to(pi.dtype)
        return grad_m, grad_pi
