"""SASRec (Kang & McAuley, ICDM 2018) and the two DR4SR target models built on it.

* `SASRec`: causal self-attention encoder over item + learned position
  embeddings; post-LN blocks as in DR4SR's implementation (GELU feed-forward of
  width ``hidden_size``, dropout on the input, attention and feed-forward).
* `CL4SRec` (Xie et al., ICDE 2022): SASRec plus an InfoNCE loss between two
  augmented views (crop / mask / reorder) of each training sequence.
* `GNN`: the DR4SR paper's GCE-GNN variant: LightGCN propagation over the
  item-transition graph of the training data gives the item representations
  that feed a SASRec encoder.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Dropout, SequentialRecommender, masked_mean, register

__all__ = ["SASRec", "CL4SRec", "GNN", "TransformerBlock", "transition_graph"]


class TransformerBlock(nn.Module):
    """Post-LN transformer block: ``x = LN(x + MHA(x)); x = LN(x + FFN(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, eps: float = 1e-12) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln1 = nn.LayerNorm(dim, eps=eps)
        self.ff1 = nn.Linear(dim, hidden)
        self.ff2 = nn.Linear(hidden, dim)
        self.ln2 = nn.LayerNorm(dim, eps=eps)
        self.dropout = Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        a = a.transpose(1, 2).reshape(B, L, D)
        x = self.ln1(x + self.dropout(self.out(a)))
        return self.ln2(x + self.dropout(self.ff2(self.dropout(F.gelu(self.ff1(x))))))


@register("sasrec")
class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation.

    Parameters
    ----------
    num_items, embed_dim, max_len, dropout
        See `SequentialRecommender`. Defaults follow DR4SR (§5.1.4, A.4):
        embed_dim 64, max_len 50, dropout 0.5.
    num_layers : int, default 2
    num_heads : int, default 2
    hidden_size : int, default 128
        Width of the feed-forward layer (DR4SR's ``hidden_size``).
    qkv_init : {"normal", "xavier"}, default "normal"
        Initial q/k/v projection: N(0, 0.02) as every other weight, or
        PyTorch's ``MultiheadAttention`` default (xavier-uniform over the
        stacked (3 d, d) matrix), which the DR4SR authors' SASRec keeps:
        their N(0, 0.02) initialiser visits ``nn.Linear`` and
        ``nn.Embedding`` modules, and ``MultiheadAttention`` holds q/k/v
        as one bare parameter.
    """

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.5,
                 num_layers: int = 2, num_heads: int = 2, hidden_size: int = 128, qkv_init: str = "normal") -> None:
        super().__init__(num_items, embed_dim, max_len, dropout)
        if qkv_init not in ("normal", "xavier"):
            raise ValueError(f"qkv_init must be 'normal' or 'xavier', got {qkv_init!r}")
        self.init_kwargs.update(num_layers=num_layers, num_heads=num_heads, hidden_size=hidden_size)
        if qkv_init != "normal":  # default checkpoints keep their init_kwargs as before
            self.init_kwargs["qkv_init"] = qkv_init
        self.qkv_init = qkv_init
        self.position_embedding = nn.Embedding(max_len, embed_dim)
        self.input_dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, num_heads, hidden_size, dropout) for _ in range(num_layers)
        )
        self.reset_parameters()
        if qkv_init == "xavier":
            for block in self.blocks:
                nn.init.xavier_uniform_(block.qkv.weight)

    def item_inputs(self, seqs: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(seqs)

    def encode(self, seqs, timestamps=None):
        x = self.item_inputs(seqs) + self.position_embedding(self.position_ids(seqs))
        x = self.input_dropout(x)
        mask = self.attention_mask(seqs, causal=True)
        for block in self.blocks:
            x = block(x, mask)
        return x


# --------------------------------------------------------------------- CL4SRec
def augment(seqs: torch.Tensor, mask_token: int, generator: torch.Generator,
            crop_rate: float = 0.2, mask_rate: float = 0.7, reorder_rate: float = 0.2) -> torch.Tensor:
    """One random CL4SRec augmentation per row of a left-padded batch (vectorised).

    * crop: keep a random contiguous run of ``max(1, floor(crop_rate * n))`` items;
    * mask: replace each item by ``mask_token`` with probability ``mask_rate``;
    * reorder: shuffle a random contiguous run of ``floor(reorder_rate * n)`` items.

    Each row draws one of the three uniformly (Xie et al. 2022, §4.1). The
    mask is Bernoulli per item rather than an exact count: same expectation,
    no per-row Python loop.
    """
    B, L = seqs.shape
    dev = seqs.device
    n = (seqs > 0).sum(1)  # (B,)
    col = torch.arange(L, device=dev)[None, :]
    first = (L - n)[:, None]  # first valid column

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=dev)

    # crop: output column j (right-aligned) takes input column first + s + j - (L - c)
    c = torch.clamp((crop_rate * n).floor().long(), min=1)
    c = torch.minimum(c, torch.clamp(n, min=1))
    s = (rand(B) * (n - c + 1).float()).floor().long()
    src = first + s[:, None] + col - (L - c)[:, None]
    cropped = torch.where(col >= (L - c)[:, None], seqs.gather(1, src.clamp(0, L - 1)), torch.zeros_like(seqs))

    masked = torch.where((rand(B, L) < mask_rate) & (seqs > 0), torch.full_like(seqs, mask_token), seqs)

    r = (reorder_rate * n).floor().long()
    rs = (rand(B) * (n - r + 1).float()).floor().long()
    lo = first + rs[:, None]
    inside = (col >= lo) & (col < lo + r[:, None])
    keys = torch.where(inside, lo.float() + rand(B, L) * r[:, None].float(), col.float())
    reordered = seqs.gather(1, keys.argsort(dim=1, stable=True))

    which = (rand(B) * 3).floor().long()[:, None]
    return torch.where(which == 0, cropped, torch.where(which == 1, masked, reordered))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """NT-Xent over a batch of positive pairs (a_i, b_i); other rows are negatives. Shape (B,)."""
    B = a.size(0)
    z = torch.cat([a, b], 0)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(a.device)
    loss = F.cross_entropy(sim, target, reduction="none")
    return 0.5 * (loss[:B] + loss[B:])


@register("cl4srec")
class CL4SRec(SASRec):
    """SASRec + contrastive learning over augmented views (CL4SRec).

    Each row gets two random augmentations; their encoder states, mean-pooled
    over the view's non-padding positions, form the positive pair of an
    inner-product InfoNCE with the other rows of the batch as negatives.

    Parameters
    ----------
    cl_weight : float, default 0.1
        Weight of the InfoNCE term (DR4SR's setting).
    crop_rate, mask_rate, reorder_rate : float, default 0.2, 0.7, 0.2
    cl_temperature : float, default 1.0
    Other parameters as `SASRec`.
    """

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.5,
                 num_layers: int = 2, num_heads: int = 2, hidden_size: int = 128, cl_weight: float = 0.1,
                 crop_rate: float = 0.2, mask_rate: float = 0.7, reorder_rate: float = 0.2,
                 cl_temperature: float = 1.0) -> None:
        super().__init__(num_items, embed_dim, max_len, dropout, num_layers, num_heads, hidden_size)
        for nm, v in (("crop_rate", crop_rate), ("mask_rate", mask_rate), ("reorder_rate", reorder_rate)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{nm} must be in [0, 1], got {v!r}")
        self.init_kwargs.update(cl_weight=cl_weight, crop_rate=crop_rate, mask_rate=mask_rate,
                                reorder_rate=reorder_rate, cl_temperature=cl_temperature)
        self.cl_weight = cl_weight
        self.rates = (crop_rate, mask_rate, reorder_rate)
        self.cl_temperature = cl_temperature
        # The [mask] token lives outside the item table so item_embedding keeps
        # its (num_items + 1, d) shape; id num_items + 1 selects it internally.
        self.mask_embedding = nn.Parameter(torch.randn(embed_dim) * 0.02)

    def item_inputs(self, seqs):
        is_mask = seqs == self.num_items + 1
        x = self.item_embedding(seqs.masked_fill(is_mask, 0))
        return torch.where(is_mask[..., None], self.mask_embedding.expand_as(x), x)

    def _view_state(self, view: torch.Tensor) -> torch.Tensor:
        # Mean over the view's non-padding positions: what the CL4SRec code
        # the DR4SR authors ran pools for its InfoNCE (our first version used
        # the last position, and learned far slower than SASRec on Beauty).
        return masked_mean(self.encode(view), view > 0)

    def auxiliary_loss(self, seqs, row_weights, generator):
        if self.cl_weight == 0:
            return None
        tok = self.num_items + 1
        v1 = augment(seqs, tok, generator, *self.rates)
        v2 = augment(seqs, tok, generator, *self.rates)
        loss = info_nce(self._view_state(v1), self._view_state(v2), self.cl_temperature)
        return self.cl_weight * (loss * row_weights).sum() / max(int(seqs.size(0)), 1)


# ------------------------------------------------------------------------- GNN
def transition_graph(offsets: np.ndarray, items: np.ndarray, num_items: int, window: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrically normalised item-transition graph with self loops (COO).

    Item ``a`` followed by ``b`` at distance ``k <= window`` in a sequence adds
    ``1 / k`` to edges a-b and b-a; self loops add 1. The matrix is normalised
    as ``D^-1/2 (A + I) D^-1/2`` (LightGCN), D the weighted degree. Row/column
    0 (padding) is isolated.

    Returns
    -------
    indices : np.ndarray of int64, shape (2, nnz)
    values : np.ndarray of float32, shape (nnz,)
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    seq_id = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    rows, cols, vals = [], [], []
    for k in range(1, window + 1):
        same = seq_id[:-k] == seq_id[k:] if items.size > k else np.zeros(0, bool)
        a, b = items[:-k][same], items[k:][same]
        rows += [a, b]
        cols += [b, a]
        vals += [np.full(a.size, 1.0 / k)] * 2
    diag = np.arange(1, num_items + 1)
    rows.append(diag)
    cols.append(diag)
    vals.append(np.ones(num_items))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    key = r * (num_items + 1) + c
    uniq, inv = np.unique(key, return_inverse=True)
    v = np.bincount(inv, weights=v)
    r, c = uniq // (num_items + 1), uniq % (num_items + 1)
    deg = np.bincount(r, weights=v, minlength=num_items + 1)
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    v = v * dinv[r] * dinv[c]
    return np.stack([r, c]).astype(np.int64), v.astype(np.float32)


@register("gnn")
class GNN(SASRec):
    """LightGCN-propagated item embeddings feeding a SASRec encoder (DR4SR's GNN target model).

    The graph is built from the training sequences (`set_graph` /
    ``graph=`` a `SequenceDataset`); without one the propagation is the
    identity and the model equals SASRec. The graph is stored in the
    state dict, so checkpoints reload it.

    Parameters
    ----------
    gnn_layers : int, default 2
        Propagation steps; the item representation is the mean of layers 0..K.
    graph : SequenceDataset, optional
        Training sequences defining the item-transition graph.
    Other parameters as `SASRec`.
    """

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.5,
                 num_layers: int = 2, num_heads: int = 2, hidden_size: int = 128, gnn_layers: int = 2,
                 graph=None) -> None:
        super().__init__(num_items, embed_dim, max_len, dropout, num_layers, num_heads, hidden_size)
        self.init_kwargs.update(gnn_layers=gnn_layers)
        self.gnn_layers = gnn_layers
        self.register_buffer("graph_indices", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("graph_values", torch.zeros(0))
        if graph is not None:
            self.set_graph(graph)

    def set_graph(self, data) -> None:
        """Build the transition graph from a `SequenceDataset` of training sequences."""
        if data.num_items > self.num_items:
            raise ValueError(f"graph data holds item id {data.num_items} > num_items = {self.num_items}")
        idx, val = transition_graph(data.offsets, data.items, self.num_items)
        self.graph_indices = torch.from_numpy(idx).to(self.item_embedding.weight.device)
        self.graph_values = torch.from_numpy(val).to(self.item_embedding.weight.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The graph's size depends on the data: adopt the stored shape.
        for name in ("graph_indices", "graph_values"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def item_weight(self):
        emb = self.item_embedding.weight
        if self.graph_values.numel() == 0 or self.gnn_layers == 0:
            return emb
        n = self.num_items + 1
        adj = torch.sparse_coo_tensor(self.graph_indices, self.graph_values, (n, n), is_coalesced=True, check_invariants=False)
        out, cur = emb, emb
        for _ in range(self.gnn_layers):
            cur = torch.sparse.mm(adj, cur)
            out = out + cur
        return out / (self.gnn_layers + 1)

    def item_inputs(self, seqs):
        return F.embedding(seqs, self.item_weight())

    def encode(self, seqs, timestamps=None):
        table = self.item_weight()
        x = F.embedding(seqs, table) + self.position_embedding(self.position_ids(seqs))
        x = self.input_dropout(x)
        mask = self.attention_mask(seqs, causal=True)
        for block in self.blocks:
            x = block(x, mask)
        return x
