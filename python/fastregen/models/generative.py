"""The UniDS target models: HSTU and a LLaMA-style decoder recommender."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Dropout, SequentialRecommender, register, rotate_half, sinusoid_freqs

__all__ = ["HSTU", "LlamaRec", "RMSNorm"]


class HSTULayer(nn.Module):
    """One HSTU layer (Zhai et al., ICML 2024, eq. 1-3).

    ``U, V, Q, K = split(SiLU(f1(LN(x))))``;
    ``A = SiLU(Q K^T / sqrt(d_h) + rab) / n`` masked causally (pointwise, no softmax);
    ``x = x + f2(LN(A V) * U)``.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {heads}")
        self.heads = heads
        self.ln_in = nn.LayerNorm(dim)
        self.f1 = nn.Linear(dim, 4 * dim)
        self.ln_attn = nn.LayerNorm(dim)
        self.f2 = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)

    def forward(self, x, mask, bias):
        B, L, D = x.shape
        h = self.heads
        u, v, q, k = F.silu(self.f1(self.ln_in(x))).split(D, dim=-1)
        q = q.view(B, L, h, -1).transpose(1, 2)
        k = k.view(B, L, h, -1).transpose(1, 2)
        v = v.view(B, L, h, -1).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1)) + bias
        # Pointwise attention normalised by the number of real items (n), not softmax.
        n = mask.sum(-1, keepdim=True).clamp_min(1)
        attn = F.silu(logits) * mask / n
        a = (self.dropout(attn) @ v).transpose(1, 2).reshape(B, L, D)
        return x + self.dropout(self.f2(self.ln_attn(a) * u))


@register("hstu")
class HSTU(SequentialRecommender):
    """Hierarchical Sequential Transduction Units (HSTU).

    Pointwise SiLU attention without softmax, a learned relative-position bias
    (and a relative-time bias over log-bucketed gaps when ``timestamps`` are
    passed), U-gating. Trained by default with sampled softmax over uniform
    negatives (see `fastregen.training`).

    Parameters
    ----------
    num_layers : int, default 2
    num_heads : int, default 2
    dropout : float, default 0.2
    time_buckets : int, default 64
        Buckets of ``floor(log2(1 + |t_i - t_j|))`` for the time bias.
    Other parameters as `SequentialRecommender`.
    """

    default_loss = "sampled_softmax"

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.2,
                 num_layers: int = 2, num_heads: int = 2, time_buckets: int = 64) -> None:
        super().__init__(num_items, embed_dim, max_len, dropout)
        self.init_kwargs.update(num_layers=num_layers, num_heads=num_heads, time_buckets=time_buckets)
        self.position_embedding = nn.Embedding(max_len, embed_dim)
        self.input_dropout = Dropout(dropout)
        self.layers = nn.ModuleList(HSTULayer(embed_dim, num_heads, dropout) for _ in range(num_layers))
        self.rel_pos = nn.Parameter(torch.zeros(2 * max_len - 1))
        self.rel_time = nn.Parameter(torch.zeros(time_buckets))
        self.time_buckets = time_buckets
        self.out_ln = nn.LayerNorm(embed_dim)
        self.reset_parameters()

    def encode(self, seqs, timestamps=None):
        B, L = seqs.shape
        dev = seqs.device
        x = self.item_embedding(seqs) * math.sqrt(self.embed_dim)
        x = self.input_dropout(x + self.position_embedding(self.position_ids(seqs)))
        idx = torch.arange(L, device=dev)
        bias = self.rel_pos[(idx[None, :] - idx[:, None]) + self.max_len - 1][None, None]
        if timestamps is not None:
            gap = (timestamps[:, :, None] - timestamps[:, None, :]).abs().float()
            bucket = torch.log2(1 + gap).floor().long().clamp(0, self.time_buckets - 1)
            bias = bias + self.rel_time[bucket][:, None]
        mask = self.attention_mask(seqs, causal=True).float()
        for layer in self.layers:
            x = layer(x, mask, bias)
        return self.out_ln(x)


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019): ``x / rms(x) * g``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LlamaBlock(nn.Module):
    """Pre-norm decoder block: RMSNorm, rotary causal attention, SwiGLU feed-forward."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"embed_dim {dim} / num_heads {heads} must give an even head width")
        self.heads = heads
        self.norm1 = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.norm2 = RMSNorm(dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.p = dropout
        self.dropout = Dropout(dropout)

    def forward(self, x, mask, cos, sin):
        B, L, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        x = x + self.dropout(self.o(a.transpose(1, 2).reshape(B, L, D)))
        h = self.norm2(x)
        return x + self.dropout(self.w2(F.silu(self.w1(h)) * self.w3(h)))


@register("llama")
class LlamaRec(SequentialRecommender):
    """LLaMA-style decoder over item ids (the UniDS LLM-style recommender).

    RMSNorm pre-normalisation, rotary position embeddings (no absolute
    positions), SwiGLU feed-forward, causal softmax attention, a final RMSNorm.

    Parameters
    ----------
    num_layers : int, default 2
    num_heads : int, default 2
    hidden_size : int, default 4 * embed_dim * 2 / 3 rounded to 8 (LLaMA's rule)
    dropout : float, default 0.2
    Other parameters as `SequentialRecommender`.
    """

    default_loss = "sampled_softmax"

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.2,
                 num_layers: int = 2, num_heads: int = 2, hidden_size: int | None = None) -> None:
        super().__init__(num_items, embed_dim, max_len, dropout)
        if hidden_size is None:
            hidden_size = int(8 * math.ceil(8 * embed_dim / 3 / 8))
        self.init_kwargs.update(num_layers=num_layers, num_heads=num_heads, hidden_size=hidden_size)
        self.input_dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(LlamaBlock(embed_dim, num_heads, hidden_size, dropout) for _ in range(num_layers))
        self.norm = RMSNorm(embed_dim)
        self.head_dim = embed_dim // num_heads
        self.reset_parameters()

    def encode(self, seqs, timestamps=None):
        L = seqs.size(1)
        # Rotary angles follow right-aligned positions, like the other models.
        cos, sin = sinusoid_freqs(self.head_dim, self.max_len, device=seqs.device)
        cos, sin = cos[-L:], sin[-L:]
        x = self.input_dropout(self.item_embedding(seqs))
        mask = self.attention_mask(seqs, causal=True)
        for block in self.blocks:
            x = block(x, mask, cos, sin)
        return self.norm(x)
