"""Post-LN transformer encoder and decoder layers for the regenerator, cheap to train on a CPU.

Same computation and the same parameter names as ``torch.nn.TransformerEncoderLayer``
/ ``TransformerDecoderLayer`` (batch-first, post-LN, GELU), so checkpoints
written with those modules load unchanged and the torch modules are the
test reference (`tests/test_dr4sr_model.py` loads one's weights into the
other and compares outputs). Two differences, both for speed on a CPU:

* dropout draws one random byte per element (`fastregen.models.base.Dropout`)
  instead of a Bernoulli sample, which took a third of a pre-training step;
* attention is computed directly (sequences here hold at most ~50 items),
  with that dropout on the attention weights. (``F.scaled_dot_product_attention``
  is no faster here: it runs its unfused path, with Bernoulli dropout, whenever
  dropout is on, ~2x slower forward + backward at B 256, L 50, 2 heads of 32.)
* masks are additive: 0 where a query may look, -inf where not, added in place
  to the scaled scores. Bit for bit what ``masked_fill`` gives (``x + 0 == x``,
  ``x + -inf == -inf``) but its backward passes the gradient through untouched
  instead of masking it again: attention forward + backward at B 256, L 50
  ~25% faster, a Beauty pre-training step ~1% (its batches are ~60 sources
  of ~10 items, where attention is a small part of the step).

Given a `Packing`, a layer takes its input as the batch's real tokens alone,
(N, D), and runs every position-wise part (projections, feed-forward, layer
norms, dropout, residuals) on those rows only; queries, keys and values are
scattered into the padded (B, H, T, dh) layout attention needs and the
attention output is gathered back (`Packing.heads`, `Packing.merge`). On
Beauty's pre-training batches ~37% of the decoder's positions are padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.base import Dropout
from ..ops.attention import ragged_attention

__all__ = ["MultiheadAttention", "EncoderLayer", "DecoderLayer", "DecoderCache", "Stack", "Packing"]


def _padding_bias(key_padding: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The additive attention mask of ``key_padding`` (B, S, bool, True at keys to ignore):
    shape (B, 1, 1, S), ``dtype``, -inf at those keys and 0 elsewhere."""
    return torch.zeros(key_padding.shape, dtype=dtype, device=key_padding.device).masked_fill_(
        key_padding, float("-inf"))[:, None, None, :]


class _ToHeads(torch.autograd.Function):
    """Rows (N, parts * D) of real tokens -> ``parts`` tensors (B, H, T, dh), zero at padding.

    The rows are written straight into the split-head layout, so no head
    split copy is made (and none of the gradient in the backward pass).
    """

    @staticmethod
    def forward(ctx, x, rows, cols, batch, length, parts, heads):
        N, width = x.shape
        dh = width // (parts * heads)
        out = x.new_zeros((parts, batch, heads, length, dh))
        out.permute(1, 3, 0, 2, 4)[rows, cols] = x.view(N, parts, heads, dh)
        ctx.save_for_backward(rows, cols)
        ctx.shape = (N, parts, heads, dh)
        return out.unbind(0)

    @staticmethod
    def backward(ctx, *grads):
        rows, cols = ctx.saved_tensors
        out = grads[0].new_zeros(ctx.shape) if any(g is None for g in grads) else grads[0].new_empty(ctx.shape)
        for p, g in enumerate(grads):
            if g is not None:
                out[:, p] = g.permute(0, 2, 1, 3)[rows, cols]
        return out.view(ctx.shape[0], -1), None, None, None, None, None, None


class Packing:
    """Where the real tokens of a right-padded batch are: (B, T, ...) <-> (N, ...) rows.

    Parameters
    ----------
    real : torch.Tensor of bool, shape (B, T)
        True at real tokens; each row's real tokens must come first (right
        padding), which lets causal self-attention ignore the padding: a
        padded key is always in a real query's future.

    Attributes
    ----------
    shape : (B, T)
    index : torch.Tensor of int64, shape (N,)
        Flat position ``b * T + t`` of each real token, in row-major order.
    rows, cols : torch.Tensor of int64, shape (N,)
        Its batch row ``b`` and position ``t``.
    lengths : torch.Tensor of int64, shape (B,)
        Real tokens per row.
    padding : torch.Tensor of bool, shape (B, T)
        ``~real`` (the key padding of attention among the tokens).
    """

    def __init__(self, real: torch.Tensor) -> None:
        if real.dim() != 2 or real.dtype != torch.bool:
            raise ValueError(f"real must be a (B, T) bool tensor, got {real.dtype} of shape {tuple(real.shape)}")
        if bool((real[:, 1:] & ~real[:, :-1]).any()):
            raise ValueError("packing needs right-padded rows (every real token before the padding)")
        B, T = real.shape
        self.shape = (B, T)
        self.index = real.reshape(-1).nonzero().squeeze(1)
        self.rows = torch.div(self.index, T, rounding_mode="floor") if T else self.index
        self.cols = self.index - self.rows * T
        self.lengths = real.sum(1)
        self.padding = ~real
        self._offsets: torch.Tensor | None = None
        self._longest: int | None = None

    def __len__(self) -> int:
        return int(self.index.numel())

    @property
    def offsets(self) -> torch.Tensor:
        """(B + 1,) int64: row b's real tokens are packed rows ``offsets[b]:offsets[b + 1]``."""
        if self._offsets is None:
            self._offsets = torch.cat([self.lengths.new_zeros(1), self.lengths.cumsum(0)])
        return self._offsets

    @property
    def longest(self) -> int:
        """Real tokens of the longest row."""
        if self._longest is None:
            self._longest = int(self.lengths.max()) if self.lengths.numel() else 0
        return self._longest

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, ...) -> its real tokens' rows (N, ...)."""
        B, T = self.shape
        return x.reshape(B * T, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """Rows (N, ...) -> (B, T, ...), zero at padding."""
        B, T = self.shape
        return x.new_zeros((B * T, *x.shape[1:])).index_copy(0, self.index, x).view(B, T, *x.shape[1:])

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of each batch row's rows of ``x`` (N, D) -> (B, D); zeros for a row without real tokens."""
        out = x.new_zeros((self.shape[0], x.shape[1])).index_add(0, self.rows, x)
        return out / self.lengths.clamp_min(1).unsqueeze(1).to(x.dtype)

    def heads(self, x: torch.Tensor, heads: int, parts: int = 1) -> tuple[torch.Tensor, ...]:
        """Rows (N, parts * D) -> ``parts`` split-head tensors (B, H, T, D / H), zero at padding."""
        return _ToHeads.apply(x, self.rows, self.cols, *self.shape, parts, heads)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """Split-head (B, H, T, dh) -> the real tokens' rows (N, H * dh)."""
        B, H, T, dh = x.shape
        return self.pack(x.transpose(1, 2).reshape(B, T, H * dh))


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with ``nn.MultiheadAttention``'s parameters.

    Parameters
    ----------
    dim, heads : int
    dropout : float
        On the attention weights.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_model = {dim} must be divisible by n_heads = {heads}")
        self.dim, self.heads = dim, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)
        # the compiled ragged-attention kernel (`fastregen.ops.ragged_attention`) in `forward`, on CPU:
        # set by `Regenerator.use_fused_attention`
        self.fused = False
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, causal: bool = False,
                key_padding: torch.Tensor | None = None, mix: torch.Tensor | None = None,
                packing: Packing | None = None) -> torch.Tensor:
        """Attend from ``x`` (B, T, D) to ``memory`` (B, S, D; ``x`` itself when None).

        With ``packing``, ``x`` is the real tokens' rows (N, D) and so is
        the output (`Packing`); the memory stays padded.

        ``key_padding`` (B, S) is True at keys to ignore; ``causal`` lets query
        t see keys <= t only.

        With ``memory`` of shape (B, S, K, D) and ``mix`` (B, T, K) (rows
        summing to 1), query t attends to its own mixture of the K memories,
        ``sum_k mix[b, t, k] memory[b, :, k]`` (UniDS: every token reads its
        segment's mixture). Keys and values are affine in the memory and the
        weights sum to 1, so this is computed exactly from the K memories'
        own keys and values: scores ``sum_k mix_k q.k_k``, output
        ``sum_k mix_k A v_k``, never materialising a (B, T, S, D) memory.
        """
        d, W, b = self.dim, self.in_proj_weight, self.in_proj_bias
        if self.fused and x.device.type == "cpu" and (memory is None or memory.dim() == 3):
            return self._fused(x, memory, causal, key_padding, packing)
        if packing is not None:
            return self._packed(x, memory, causal, key_padding, mix, packing)
        if memory is not None and memory.dim() == 4:
            return self._mixed(x, memory, mix, key_padding)
        if memory is None:
            q, k, v = F.linear(x, W, b).chunk(3, dim=-1)
        else:
            q = F.linear(x, W[:d], b[:d])
            k, v = F.linear(memory, W[d:], b[d:]).chunk(2, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        T, S = q.shape[2], k.shape[2]
        bias = None
        if key_padding is not None:
            bias = _padding_bias(key_padding, x.dtype)
        if causal:
            future = torch.full((T, S), float("-inf"), dtype=x.dtype, device=x.device).triu_(1)
            bias = future if bias is None else bias + future
        return self._attend(q, k, v, bias)

    def _packed(self, x: torch.Tensor, memory: torch.Tensor | None, causal: bool,
                key_padding: torch.Tensor | None, mix: torch.Tensor | None, packing: Packing) -> torch.Tensor:
        """`forward` on the real tokens' rows ``x`` (N, D) of ``packing``."""
        d, W, b = self.dim, self.in_proj_weight, self.in_proj_bias
        if memory is None:
            q, k, v = packing.heads(F.linear(x, W, b), self.heads, 3)
            # right padding: with ``causal`` every padded key is in a real query's future, masked already
            key_padding = packing.padding if not causal else None
        else:
            (q,) = packing.heads(F.linear(x, W[:d], b[:d]), self.heads)
            if memory.dim() == 4:
                return self.out_proj(packing.merge(self._mixed_heads(q, memory, mix, key_padding)))
            k, v = F.linear(memory, W[d:], b[d:]).chunk(2, dim=-1)
            k, v = self._split(k), self._split(v)
        T, S = q.shape[2], k.shape[2]
        bias = None if key_padding is None else _padding_bias(key_padding, x.dtype)
        if causal:
            bias = torch.full((T, S), float("-inf"), dtype=x.dtype, device=x.device).triu_(1)
        return self.out_proj(packing.merge(self._attend_heads(q, k, v, bias)))

    def _fused(self, x: torch.Tensor, memory: torch.Tensor | None, causal: bool, key_padding: torch.Tensor | None,
               packing: Packing | None) -> torch.Tensor:
        """`forward` by `fastregen.ops.ragged_attention`: each batch row is one group of queries and keys, read
        straight from the projections (packed rows need no padded layout). Dropout on the weights draws
        other masks than the torch path (fewer bytes, another order), so the same seed trains otherwise."""
        d, W, b = self.dim, self.in_proj_weight, self.in_proj_bias
        shape = None
        if packing is not None:
            q_offsets, width, R = packing.offsets, packing.longest, x.shape[0]
        else:
            shape = x.shape
            B, T, _ = shape
            q_offsets, width, R = torch.arange(0, B * T + 1, T, device=x.device), T, B * T
            x = x.reshape(R, d)
        if memory is None:
            qkv, kv, k_offsets = F.linear(x, W, b), None, q_offsets
            ignore = key_padding if packing is None else None  # packed: the padding is not there at all
        else:
            B, S, _ = memory.shape
            qkv, kv = F.linear(x, W[:d], b[:d]), F.linear(memory.reshape(B * S, d), W[d:], b[d:])
            k_offsets, width, ignore = torch.arange(0, B * S + 1, S, device=x.device), S, key_padding
        drop, threshold = None, 0
        if self.training and self.dropout.threshold:
            drop, threshold = self.dropout.draw(R * self.heads * width, x.device), self.dropout.threshold
        out = ragged_attention(qkv, kv, q_offsets, k_offsets, heads=self.heads, width=width, causal=causal,
                               key_ignore=None if ignore is None else ignore.reshape(-1), drop=drop,
                               drop_threshold=threshold)
        out = self.out_proj(out)
        return out if shape is None else out.view(shape)

    def _attend_heads(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        """`_attend` before the heads are merged and projected: (B, H, T, dh)."""
        # in place: the matmul's backward needs its inputs only, and so the scores are never copied
        scores = (q @ k.transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))
        if bias is not None:
            scores = scores.add_(bias)
        return self.dropout(torch.softmax(scores, dim=-1)) @ v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        """Split-head queries (B, H, T, dh) against keys and values (B, H, S, dh) -> (B, T, D).

        ``bias`` broadcasts to (B, H, T, S): 0 where a query may look, -inf
        where not (`_padding_bias`). The one place the attention arithmetic is
        written, so that the cached decoding steps (`step`, `attend_memory`)
        compute exactly what `forward` does.
        """
        out = self._attend_heads(q, k, v, bias).transpose(1, 2).reshape(q.shape[0], q.shape[2], self.dim)
        return self.out_proj(out)

    # ------------------------------------------------ cached greedy decoding (inference)
    # The memory's keys are cached transposed, (B, H, dh, S) contiguous: every decoding step reads
    # them all, and the score matmul reads them fastest so (~2x). The self-attention keys stay
    # (B, H, P, dh): one position is written per step, which the transposed layout makes slow.
    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys, transposed (B, H, dh, S), and values (B, H, S, dh) of ``memory`` (B, S, D).

        They depend on the memory only, so a decoder computes them once per
        decoding run instead of once per step. (Views: the caller copies them.)
        """
        d, W, b = self.dim, self.in_proj_weight, self.in_proj_bias
        k, v = F.linear(memory, W[d:], b[d:]).chunk(2, dim=-1)
        return self._split(k).transpose(-1, -2), self._split(v)

    def attend_memory(self, x: torch.Tensor, keys_t: torch.Tensor, values: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        """`forward` for queries ``x`` (B, 1, D) with a memory whose keys and values `project_memory` gave."""
        d, W, b = self.dim, self.in_proj_weight, self.in_proj_bias
        return self._attend(self._split(F.linear(x, W[:d], b[:d])), keys_t.transpose(-1, -2), values, bias)

    def step(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int) -> torch.Tensor:
        """Causal self-attention of position ``t`` alone, given positions ``< t`` cached.

        ``x`` (B, 1, D) is position ``t``'s input; its key and value are
        written into ``keys[:, :, t]`` and ``values[:, :, t]`` (buffers
        (B, H, >= t + 1, dh)), then it attends to positions ``0 .. t``: the
        last row of ``forward(x_0..t, causal=True)`` without recomputing the others.
        """
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        keys[:, :, t] = self._split(k)[:, :, 0]
        values[:, :, t] = self._split(v)[:, :, 0]
        return self._attend(self._split(q), keys[:, :, : t + 1], values[:, :, : t + 1], None)


    def _mixed(self, x: torch.Tensor, memory: torch.Tensor, mix: torch.Tensor | None,
               key_padding: torch.Tensor | None) -> torch.Tensor:
        """Cross-attention to a per-query mixture of K memories (see `forward`)."""
        B, T, _ = x.shape
        d, W, b = self.dim, self.in_proj_weight, self.in_proj_bias
        q = self._split(F.linear(x, W[:d], b[:d]))  # (B, H, T, dh)
        out = self._mixed_heads(q, memory, mix, key_padding)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, d))

    def _mixed_heads(self, q: torch.Tensor, memory: torch.Tensor, mix: torch.Tensor,
                     key_padding: torch.Tensor | None) -> torch.Tensor:
        """`_mixed` from split-head queries (B, H, T, dh), before the heads are merged: (B, H, T, dh)."""
        B, _, T, _ = q.shape
        _, S, K, D = memory.shape
        if mix is None or mix.shape != (B, T, K):
            raise ValueError(f"memories of shape (B, S, K, D) need mix of shape (B, T, K) = ({B}, {T}, {K}), "
                             f"got {None if mix is None else tuple(mix.shape)}")
        d, W, b, h = self.dim, self.in_proj_weight, self.in_proj_bias, self.heads
        k, v = F.linear(memory, W[d:], b[d:]).chunk(2, dim=-1)  # (B, S, K, D) each
        k = k.view(B, S, K, h, D // h).permute(0, 3, 1, 2, 4)  # (B, H, S, K, dh)
        v = v.view(B, S, K, h, D // h).permute(0, 3, 1, 2, 4)
        scores = torch.einsum("bhtd,bhskd,btk->bhts", q, k, mix).mul_(1.0 / math.sqrt(q.shape[-1]))
        if key_padding is not None:
            scores = scores.add_(_padding_bias(key_padding, scores.dtype))
        attn = self.dropout(torch.softmax(scores, dim=-1))
        return torch.einsum("bhts,bhskd,btk->bhtd", attn, v, mix)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.dropout = Dropout(dropout)

    def ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.gelu(self.linear1(x))))


class EncoderLayer(_FeedForward):
    """``x = LN(x + Drop(SelfAttn(x))); x = LN(x + Drop(FF(x)))`` (nn.TransformerEncoderLayer, post-LN)."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, eps: float = 1e-12) -> None:
        super().__init__(dim, hidden, dropout)
        self.self_attn = MultiheadAttention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None,
                packing: Packing | None = None) -> torch.Tensor:
        """``x`` (B, T, D), or with ``packing`` the real tokens' rows (N, D) (its padding is the key padding)."""
        x = self.norm1(x + self.dropout(self.self_attn(x, key_padding=key_padding, packing=packing)))
        return self.norm2(x + self.dropout(self.ff(x)))


class DecoderLayer(_FeedForward):
    """Causal self-attention, cross-attention to a memory, feed-forward; post-LN (nn.TransformerDecoderLayer)."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, eps: float = 1e-12) -> None:
        super().__init__(dim, hidden, dropout)
        self.self_attn = MultiheadAttention(dim, heads, dropout)
        self.multihead_attn = MultiheadAttention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, tgt_padding: torch.Tensor | None = None,
                memory_padding: torch.Tensor | None = None, mix: torch.Tensor | None = None,
                packing: Packing | None = None) -> torch.Tensor:
        """``memory`` (B, S, D), or K memories (B, S, K, D) read through ``mix`` (B, T, K) per position.

        With ``packing``, ``x`` is the real tokens' rows (N, D) (`Packing`) and ``tgt_padding`` is not needed.
        """
        x = self.norm1(x + self.dropout(self.self_attn(x, causal=True, key_padding=tgt_padding, packing=packing)))
        x = self.norm2(x + self.dropout(self.multihead_attn(x, memory, key_padding=memory_padding, mix=mix,
                                                            packing=packing)))
        return self.norm3(x + self.dropout(self.ff(x)))

    def step(self, x: torch.Tensor, cache: "DecoderCache", layer: int, t: int) -> torch.Tensor:
        """`forward`'s output at position ``t`` alone (B, 1, D), reading and extending ``cache`` (eval mode)."""
        x = self.norm1(x + self.self_attn.step(x, cache.keys[layer], cache.values[layer], t))
        mk, mv = cache.memory[layer]
        x = self.norm2(x + self.multihead_attn.attend_memory(x, mk, mv, cache.bias))
        return self.norm3(x + self.ff(x))


class DecoderCache:
    """What a decoder keeps between greedy steps: per layer, the cross-attention
    keys and values of the memory and the self-attention keys and values of
    the positions decoded so far.

    Parameters
    ----------
    layers : sequence of DecoderLayer
    memory : torch.Tensor, shape (B, S, D) or (B, S, K, D), float
        Encoder memory each row reads; with K memories there are K x B rows,
        row ``k B + b`` reading ``memory[b, :, k]``.
    memory_padding : torch.Tensor, shape (B, S), bool
        True at memory positions to ignore.
    steps : int
        Decoder positions to make room for.

    Notes
    -----
    Memory: ``layers x rows x (2 S + 2 steps) x D`` floats. `select` keeps
    some rows (the ones still decoding), so later steps work on those only.
    Each memory ``k`` is projected as the (B, S, D) view ``memory[:, :, k]``,
    the input `DecoderLayer.forward` is given when it decodes memory ``k``
    alone, so the cached keys and values are its own, bit for bit.
    """

    def __init__(self, layers, memory: torch.Tensor, memory_padding: torch.Tensor, steps: int) -> None:
        layers = list(layers)
        views = [memory] if memory.dim() == 3 else [memory[:, :, k] for k in range(memory.shape[2])]
        self.bias = _padding_bias(memory_padding.repeat(len(views), 1), memory.dtype)
        self.memory = [tuple(torch.cat(part) for part in zip(*(layer.multihead_attn.project_memory(v) for v in views)))
                       for layer in layers]
        B, D = memory.shape[0] * len(views), memory.shape[-1]
        heads = [layer.self_attn.heads for layer in layers]
        self.keys = [memory.new_empty((B, h, steps, D // h)) for h in heads]
        self.values = [memory.new_empty((B, h, steps, D // h)) for h in heads]

    def select(self, rows: torch.Tensor, positions: int) -> None:
        """Keep the given rows (int64 indices into the current rows), in that order, with the
        self-attention keys and values of their first ``positions`` positions (the ones decoded so far)."""
        self.bias = self.bias[rows]
        self.memory = [(k[rows], v[rows]) for k, v in self.memory]
        self.keys = [_keep(k, rows, positions) for k in self.keys]
        self.values = [_keep(v, rows, positions) for v in self.values]


def _keep(buffer: torch.Tensor, rows: torch.Tensor, positions: int) -> torch.Tensor:
    """A new (len(rows), H, P, dh) buffer holding ``buffer[rows, :, :positions]``; the rest is never read."""
    out = buffer.new_empty((rows.numel(), *buffer.shape[1:]))
    out[:, :, :positions] = buffer[:, :, :positions][rows]
    return out


class Stack(nn.Module):
    """``layers`` applied in turn (the parameter names of nn.TransformerEncoder/Decoder)."""

    def __init__(self, layers) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, *args, **kwargs)
        return x
