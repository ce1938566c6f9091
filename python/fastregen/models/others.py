"""GRU4Rec and FMLP-Rec, the non-attention DR4SR target models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Dropout, SequentialRecommender, register

__all__ = ["GRU4Rec", "FMLPRec"]


@register("gru4rec")
class GRU4Rec(SequentialRecommender):
    """GRU4Rec (Hidasi et al., ICLR 2016) as configured in DR4SR.

    ``embedding -> dropout -> GRU(num_layers, hidden_size) -> Linear(hidden_size, embed_dim)``.

    Parameters
    ----------
    hidden_size : int, default 256
    num_layers : int, default 2
    dropout : float, default 0.4
        Dropout on the input embeddings.
    Other parameters as `SequentialRecommender`.

    Notes
    -----
    With left padding the GRU first reads the padding (zero vectors): the
    state it reaches is the same for every sequence, so it acts as a learned
    initial state.
    """

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.4,
                 hidden_size: int = 256, num_layers: int = 2) -> None:
        super().__init__(num_items, embed_dim, max_len, dropout)
        self.init_kwargs.update(hidden_size=hidden_size, num_layers=num_layers)
        self.input_dropout = Dropout(dropout)
        self.gru = nn.GRU(embed_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.proj = nn.Linear(hidden_size, embed_dim)
        self.reset_parameters()
        for name, p in self.gru.named_parameters():
            if "weight" in name:
                nn.init.xavier_uniform_(p)
            else:
                nn.init.zeros_(p)

    def encode(self, seqs, timestamps=None):
        out, _ = self.gru(self.input_dropout(self.item_embedding(seqs)))
        return self.proj(out)


class FilterLayer(nn.Module):
    """Learnable frequency-domain filter: ``irfft(rfft(x) * W)`` over the sequence axis."""

    def __init__(self, length: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.length = length
        self.weight = nn.Parameter(torch.randn(length // 2 + 1, dim, 2) * 0.02)
        self.dropout = Dropout(dropout)
        self.ln = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x):
        spec = torch.fft.rfft(x, dim=1, norm="ortho")
        spec = spec * torch.view_as_complex(self.weight)
        y = torch.fft.irfft(spec, n=self.length, dim=1, norm="ortho")
        return self.ln(x + self.dropout(y))


@register("fmlp")
class FMLPRec(SequentialRecommender):
    """FMLP-Rec (Zhou et al., WWW 2022): filter-enhanced MLP.

    Each block applies a learnable filter in the frequency domain (FFT over
    the ``max_len`` positions) and a feed-forward layer, each with residual and
    LayerNorm. The filter mixes all positions, so the model is not causal:
    the trainer fits it on the last position of every training prefix.
    Inputs are left-padded to exactly ``max_len`` (the filter's length),
    which is why FMLP needs left padding.

    Parameters
    ----------
    num_layers : int, default 2
    dropout : float, default 0.5
    Other parameters as `SequentialRecommender`.
    """

    causal = False

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.5,
                 num_layers: int = 2) -> None:
        super().__init__(num_items, embed_dim, max_len, dropout)
        self.init_kwargs.update(num_layers=num_layers)
        self.position_embedding = nn.Embedding(max_len, embed_dim)
        self.ln = nn.LayerNorm(embed_dim, eps=1e-12)
        self.input_dropout = Dropout(dropout)
        self.filters = nn.ModuleList(FilterLayer(max_len, embed_dim, dropout) for _ in range(num_layers))
        self.ff1 = nn.ModuleList(nn.Linear(embed_dim, 4 * embed_dim) for _ in range(num_layers))
        self.ff2 = nn.ModuleList(nn.Linear(4 * embed_dim, embed_dim) for _ in range(num_layers))
        self.ff_ln = nn.ModuleList(nn.LayerNorm(embed_dim, eps=1e-12) for _ in range(num_layers))
        self.reset_parameters()

    def encode(self, seqs, timestamps=None):
        width = seqs.size(1)
        if width < self.max_len:
            seqs = F.pad(seqs, (self.max_len - width, 0))
        x = self.item_embedding(seqs) + self.position_embedding.weight[None]
        x = self.input_dropout(self.ln(x))
        for filt, f1, f2, ln in zip(self.filters, self.ff1, self.ff2, self.ff_ln):
            x = filt(x)
            x = ln(x + self.input_dropout(f2(self.input_dropout(F.gelu(f1(x))))))
        return x[:, -width:]
