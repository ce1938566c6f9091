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

With ``index`` the memories are those of distinct sources (S, L, K, D) and
pair b reads source ``index[b]`` (the regenerator encodes a source shared by
several target patterns once). The reference gathers ``memories[index]``
first; the torch path never materialises that (B, L, K, D) gather in the
memories' own layout, nor the transposed copy the reference's einsum makes of
it, nor its gradient (the reference's gather, transposed copy, rank-1 ``bmm``
for the gradient and ``index_put_``): a Beauty pre-training step (S ~ 65
sources, B = 256 pairs, L ~ 14) takes ~4% less CPU time. It runs the reference's own
``bmm`` on the same operands (so the output and ``grad_pi`` are the same bits)
and writes ``grad_memories`` with products and sums of the same floats in the
same order (tests/test_ops_memory_mix.py compares all three bit for bit).

`mix_memories_torch` is the reference; `mix_memories` dispatches between the
torch path and the triton kernel.
"""

from __future__ import annotations

import functools

import torch

from ._backend import resolve_backend

__all__ = ["mix_memories", "mix_memories_torch"]


def _check(memories: torch.Tensor, pi: torch.Tensor, index: torch.Tensor | None = None) -> None:
    if not isinstance(memories, torch.Tensor) or not isinstance(pi, torch.Tensor):
        raise TypeError("memories and pi must be torch tensors")
    if memories.dim() != 4:
        raise ValueError(f"memories must have shape ({'S' if index is not None else 'B'}, L, K, D), "
                         f"got {tuple(memories.shape)}")
    B, _, K, _ = memories.shape
    if index is not None:
        if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype != torch.int64:
            raise TypeError(f"index must be a 1-d int64 tensor, got "
                            f"{getattr(index, 'dtype', type(index).__name__)} of shape {tuple(getattr(index, 'shape', ()))}")
        if index.device != memories.device:
            raise ValueError(f"memories is on {memories.device} but index is on {index.device}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= B):
            raise ValueError(f"index holds rows outside [0, {B}): min {int(index.min())}, max {int(index.max())}")
        B = index.shape[0]
    if pi.shape != (B, K):
        raise ValueError(f"pi must have shape (B, K) = ({B}, {K}), got {tuple(pi.shape)}")
    if not memories.is_floating_point() or not pi.is_floating_point():
        raise TypeError(f"memories and pi must be floating point, got {memories.dtype} and {pi.dtype}")
    if memories.device != pi.device:
        raise ValueError(f"memories is on {memories.device} but pi is on {pi.device}")


def mix_memories_torch(memories: torch.Tensor, pi: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """Reference mixing: ``(memories[index] * pi[:, None, :, None]).sum(2)``; autograd does the backward."""
    _check(memories, pi, index)
    if index is not None:
        memories = memories[index]
    return torch.einsum("blkd,bk->bld", memories, pi.to(memories.dtype))


def mix_memories(memories: torch.Tensor, pi: torch.Tensor, index: torch.Tensor | None = None, *,
                 backend: str = "auto") -> torch.Tensor:
    """Weighted sum of K memories.

    Parameters
    ----------
    memories : torch.Tensor, shape (B, L, K, D), float
        The K projected encoder memories of each sequence; with ``index``,
        of each distinct source, (S, L, K, D).
    pi : torch.Tensor, shape (B, K), float
        Mixture weights (rows usually sum to 1; not required).
    index : torch.Tensor of int64, shape (B,), optional
        Row of ``memories`` that mixture b reads (values in ``[0, S)``,
        repeats allowed); default row b.
    backend : {"auto", "torch", "triton"}
        ``"auto"``: triton on CUDA tensors, torch otherwise.

    Returns
    -------
    torch.Tensor, shape (B, L, D), dtype of ``memories``
        ``out[b, l] = sum_k pi[b, k] * memories[index[b], l, k]``;
        differentiable in ``memories`` and ``pi`` on every backend. On the
        torch backend it equals `mix_memories_torch`'s output and gradients
        bit for bit.
    """
    _check(memories, pi, index)
    if resolve_backend(backend, memories, pi) == "torch":
        if index is None or memories.shape[2] == 1:
            # K = 1: einsum multiplies instead of calling bmm (another arithmetic); the gather is all there is
            return mix_memories_torch(memories, pi, index)
        return _GatheredMix.apply(memories, pi.to(memories.dtype), index)
    if index is not None:
        memories = memories[index]
    return _MixMemoriesTriton.apply(memories, pi)


class _GatheredMix(torch.autograd.Function):
    """`mix_memories_torch` with an ``index`` in the reference's arithmetic, without its (B, L, K, D) copies.

    The reference's einsum transposes the gathered memories to (B, L*D, K),
    copies them, and runs ``bmm`` with ``pi`` (B, K, 1); its backward is
    ``grad @ pi^T`` (a ``bmm`` whose inner size is 1: one product per
    element), ``memories_t^T @ grad`` for ``pi``, and an ``index_put_``
    accumulating the pairs' gradients into their sources in pair order. Here
    the transposed copy is made of the S sources and the pairs' rows are
    gathered from it (the reference's ``bmm`` operand, the same bits); the
    gradient products are taken in the memories' own layout (B, L, K, D) and
    summed into their sources by ``index_add_``, in pair order as
    ``index_put_`` sums them.
    """

    @staticmethod
    def forward(ctx, memories, pi, index):
        S, L, K, D = memories.shape
        B = index.shape[0]
        # (S, L, D, K): each pair's rows then come out as the reference's (L*D, K) bmm operand
        rows = memories.transpose(2, 3).contiguous().view(S, L * D * K).index_select(0, index).view(B, L * D, K)
        ctx.save_for_backward(rows, pi, index)
        ctx.sources = S
        return torch.bmm(rows, pi.reshape(B, K, 1)).view(B, L, D)

    @staticmethod
    def backward(ctx, grad):
        rows, pi, index = ctx.saved_tensors
        B, L, D = grad.shape
        K = pi.shape[1]
        grad_memories = grad_pi = None
        if ctx.needs_input_grad[1]:
            grad_pi = rows.transpose(1, 2).bmm(grad.reshape(B, L * D, 1)).view(B, K)
        if ctx.needs_input_grad[0]:
            pairs = grad[:, :, None, :] * pi[:, None, :, None]  # (B, L, K, D)
            grad_memories = pairs.new_zeros((ctx.sources, L, K, D)).index_add_(0, index, pairs)
        return grad_memories, grad_pi, None


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
