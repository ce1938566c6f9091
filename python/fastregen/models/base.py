"""The interface every target model shares, and its registry.

A model maps a batch of item-id sequences to one representation per position;
the score of item ``i`` at position ``t`` is the dot product of that
representation with row ``i`` of ``model.item_embedding``. Trainers, losses and
evaluators only rely on this, so a regenerated dataset can be scored by any
registered model without model-specific code.

Conventions
-----------
* Item ids are ``1..num_items``; ``0`` is padding and row 0 of
  ``item_embedding`` is kept at zero.
* Batches are **left-padded** (right-aligned): the most recent item of every
  sequence sits in the last column, so ``forward(seqs)[:, -1]`` is the
  representation used to rank the next item. (FMLP-Rec's FFT filter needs this;
  the other models accept it and so one data path serves them all.)
* Sequences wider than ``max_len`` are truncated **from the left**: only the
  ``max_len`` most recent items are kept, as in SASRec and DR4SR.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SequentialRecommender",
    "register",
    "build_model",
    "available_models",
    "model_class",
    "save_model",
    "load_model",
    "Dropout",
    "keep_mask",
    "masked_mean",
]

_REGISTRY: dict[str, type["SequentialRecommender"]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a model to the registry under ``name`` (lower case)."""

    def deco(cls):
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        cls.name = key
        _REGISTRY[key] = cls
        return cls

    return deco


def available_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type["SequentialRecommender"]:
    """The class registered as ``name``; ValueError listing the valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(available_models())}")
    return _REGISTRY[key]


def build_model(name: str, num_items: int, **kwargs) -> "SequentialRecommender":
    """Instantiate a registered model.

    Parameters
    ----------
    name : str
        One of `available_models()` (case-insensitive).
    num_items : int
        Largest item id; the embedding table has ``num_items + 1`` rows.
    **kwargs
        Model hyper-parameters (``embed_dim``, ``max_len``, ``dropout``, ...).
        Unknown names raise TypeError naming them. ``positions`` ("recent",
        the default, or "oldest") sets `SequentialRecommender.position_origin`
        for any model and is kept in its ``init_kwargs`` (so checkpoints
        reload it); models without absolute positions ignore it.
    """
    positions = kwargs.pop("positions", "recent")
    if positions not in ("recent", "oldest"):
        raise ValueError(f"positions must be 'recent' or 'oldest', got {positions!r}")
    model = model_class(name)(num_items=num_items, **kwargs)
    if positions != "recent":  # default checkpoints keep their init_kwargs as before
        model.position_origin = positions
        model.init_kwargs["positions"] = positions
    return model


def _init_weights(module: nn.Module) -> None:
    # N(0, 0.02) for embeddings and linear maps, as in SASRec/DR4SR/BERT code.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class SequentialRecommender(nn.Module):
    """Base class of the target models.

    Parameters
    ----------
    num_items : int
        Largest item id (ids run 1..num_items, 0 is padding).
    embed_dim : int, default 64
        Width of item embeddings and of every output representation.
    max_len : int, default 50
        Longest history the model reads; longer inputs keep their last
        ``max_len`` items.
    dropout : float, default 0.5
        Dropout rate (its meaning per model is documented there).

    Attributes
    ----------
    item_embedding : nn.Embedding, shape (num_items + 1, embed_dim)
        Item table; row 0 is padding (zero, no gradient). Scores are
        ``h @ item_embedding.weight.T``.
    default_loss : str
        The loss `fastregen.training` uses when the config says ``loss="auto"``.
    causal : bool
        Whether the output at position t depends only on items at positions
        <= t. Non-causal models (FMLP-Rec) are trained on the last position of
        every prefix instead of on all positions at once.
    """

    name: ClassVar[str] = ""
    #: "recent" or "oldest": see `position_ids` (set through `build_model`'s ``positions``).
    position_origin: str = "recent"
    causal: ClassVar[bool] = True
    padding_side: ClassVar[str] = "left"
    default_loss: ClassVar[str] = "bce"

    def __init__(self, num_items: int, embed_dim: int = 64, max_len: int = 50, dropout: float = 0.5) -> None:
        super().__init__()
        if not isinstance(num_items, int) or isinstance(num_items, bool) or num_items < 1:
            raise ValueError(f"num_items must be a positive int, got {num_items!r}")
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_items = num_items
        self.embed_dim = embed_dim
        self.max_len = max_len
        self.dropout_rate = float(dropout)
        self.item_embedding = nn.Embedding(num_items + 1, embed_dim, padding_idx=0)
        self.init_kwargs: dict = dict(num_items=num_items, embed_dim=embed_dim, max_len=max_len, dropout=float(dropout))

    def reset_parameters(self) -> None:
        """N(0, 0.02) initialisation of all weights; padding row set to zero."""
        self.apply(_init_weights)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    # ------------------------------------------------------------- interface
    def check_input(self, seqs: torch.Tensor) -> torch.Tensor:
        """Validate ids and dtype, and keep the last ``max_len`` columns."""
        if not isinstance(seqs, torch.Tensor):
            raise TypeError(f"seqs must be a torch.Tensor, got {type(seqs).__name__}")
        if seqs.dim() != 2:
            raise ValueError(f"seqs must have shape (batch, length), got {tuple(seqs.shape)}")
        if seqs.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"seqs must hold int64/int32 item ids, got {seqs.dtype}")
        if seqs.numel():
            hi, lo = int(seqs.max()), int(seqs.min())
            if hi > self.num_items:
                raise ValueError(
                    f"item id {hi} is beyond the embedding table (num_items = {self.num_items}); "
                    "build the model with num_items >= the largest id in the data"
                )
            if lo < 0:
                raise ValueError(f"item ids must be >= 0 (0 is padding), got {lo}")
        if seqs.size(1) > self.max_len:
            seqs = seqs[:, -self.max_len :]
        return seqs.long()

    def forward(self, seqs: torch.Tensor, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """Representations of every position.

        Parameters
        ----------
        seqs : torch.Tensor of int64, shape (batch, length)
            Left-padded item ids (0 = padding). Columns beyond ``max_len`` are
            dropped from the left.
        timestamps : torch.Tensor of int64, shape (batch, length), optional
            Aligned with ``seqs``; used by models with a time bias (HSTU),
            ignored by the others.

        Returns
        -------
        torch.Tensor of float32, shape (batch, min(length, max_len), embed_dim)
        """
        seqs = self.check_input(seqs)
        if timestamps is not None and timestamps.size(1) > seqs.size(1):
            timestamps = timestamps[:, -seqs.size(1) :]
        return self.encode(seqs, timestamps=timestamps)

    def encode(self, seqs: torch.Tensor, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def item_weight(self) -> torch.Tensor:
        """The (num_items + 1, embed_dim) table scores are computed against."""
        return self.item_embedding.weight

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item: ``hidden @ item_weight().T``, shape (..., num_items + 1)."""
        return hidden @ self.item_weight().T

    def auxiliary_loss(self, seqs: torch.Tensor, row_weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """Extra training objective added to the recommendation loss (None for most models).

        ``row_weights`` (batch,) scales each sequence's term, so that zero
        weights silence it exactly like the main loss.
        """
        return None

    # --------------------------------------------------------------- helpers
    def positions(self, length: int, device) -> torch.Tensor:
        # Right-aligned absolute positions: the most recent item always gets
        # position max_len - 1, whatever the batch width.
        return torch.arange(self.max_len - length, self.max_len, device=device)

    def position_ids(self, seqs: torch.Tensor) -> torch.Tensor:
        """Absolute position of each column of a batch, per `position_origin`.

        "recent": `positions` (shape (L,)), the most recent item at
        ``max_len - 1``. "oldest": shape (B, L), 0 at each row's first
        non-padding column and counting up from there (padding columns
        before it get 0; they are masked as keys and carry no target). That
        is the numbering of post-padded rows, which the DR4SR authors'
        code uses; a post-padded row passed in gets exactly it.
        """
        L = seqs.size(1)
        if self.position_origin == "recent":
            return self.positions(L, seqs.device)
        first = (seqs > 0).to(torch.int8).argmax(1, keepdim=True)  # first real column (0 for empty rows)
        return (torch.arange(L, device=seqs.device)[None, :] - first).clamp(min=0)

    @staticmethod
    def attention_mask(seqs: torch.Tensor, causal: bool = True) -> torch.Tensor:
        """Boolean (batch, 1, L, L) mask, True where query i may attend to key j.

        Keys that are padding are hidden; every query sees itself so that
        fully padded rows never produce NaN.
        """
        B, L = seqs.shape
        valid = (seqs > 0)[:, None, None, :]
        eye = torch.eye(L, dtype=torch.bool, device=seqs.device)
        if causal:
            base = torch.tril(torch.ones(L, L, dtype=torch.bool, device=seqs.device))
            return (base & valid) | eye
        return valid | eye


@functools.lru_cache(maxsize=None)
def _bit_table(dtype: torch.dtype, device) -> torch.Tensor:
    """(256, 8): row b holds ``2 * ((b >> j) & 1)`` for j = 0..7 (`Dropout`'s p = 0.5 mask of byte b)."""
    bits = (torch.arange(256, dtype=torch.int64)[:, None] >> torch.arange(8)) & 1
    return (bits * 2).to(dtype=dtype, device=device)


def keep_mask(raw: torch.Tensor, shape, dtype: torch.dtype, threshold: int) -> torch.Tensor:
    """`Dropout.keep` for a drop threshold (1..255): the scaled keep mask of ``shape`` from random bytes."""
    n = math.prod(shape)
    if threshold == 128:
        # the bits of a uniform byte are independent fair coins: byte b becomes the 8 mask values
        # 2 * ((b >> j) & 1), j = 0..7, looked up in one pass (shifting, masking, converting and
        # scaling took four, and were most of the mask's cost)
        return F.embedding(raw.long(), _bit_table(dtype, raw.device)).view(-1)[:n].view(shape)
    return (raw[:n].view(shape) >= threshold).to(dtype).mul_(256.0 / (256 - threshold))


class _CoreDropout(torch.autograd.Function):
    """``x * Dropout.keep(raw, ...)`` by `fastregen._core.apply_dropout` (csrc/dropout.hpp): bit for bit the
    torch product, without building the float mask (a widening copy and a table lookup per call); the
    backward pass multiplies the gradient by the same factors, from the kept bytes."""

    @staticmethod
    def _apply(x: torch.Tensor, raw: torch.Tensor, threshold: int) -> torch.Tensor:
        from .. import _core

        x = x.detach().contiguous()
        out = torch.empty_like(x)
        _core.apply_dropout(x.numpy(), raw.numpy(), threshold, out.numpy(), torch.get_num_threads())
        return out

    @staticmethod
    def forward(ctx, x, raw, threshold):
        ctx.save_for_backward(raw)
        ctx.threshold = threshold
        return _CoreDropout._apply(x, raw, threshold)

    @staticmethod
    def backward(ctx, grad):
        (raw,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            # a backward that is itself differentiated (create_graph: DR4SR+'s Hessian-vector products) needs
            # grad_x = grad_y * mask as a torch op on grad_y; the compiled pass would cut that graph
            return grad * keep_mask(raw, grad.shape, grad.dtype, ctx.threshold), None, None
        return _CoreDropout._apply(grad, raw, ctx.threshold), None, None


class Dropout(nn.Module):
    """Inverted dropout drawing its mask from random bytes.

    ``nn.Dropout`` on CPU spends most of a SASRec step in ``bernoulli_``;
    one random byte per element is ~4x cheaper, and at ``p = 0.5`` (the
    default of SASRec and the DR4SR regenerator) one random *bit* per
    element, eight from each byte, ~10x. The drop probability is rounded to
    a multiple of 1/256 (0.5 is exact; 0.2 becomes 51/256), and the kept
    values are scaled by ``1 / (1 - p_effective)``. The bytes come from
    torch's default generator, so ``torch.manual_seed`` makes it reproducible.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.threshold = int(round(p * 256))

    def draw(self, n: int, device) -> torch.Tensor:
        """The random bytes of ``n`` elements' masks (uint8: one per element, or one bit each at p = 0.5):
        what `keep` turns into the mask, and what the fused attention kernel reads itself
        (`fastregen.ops.ragged_attention`)."""
        return torch.empty((n + 7) // 8 if self.threshold == 128 else n, dtype=torch.uint8, device=device).random_()

    def keep(self, raw: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
        """The scaled keep mask of shape ``shape`` from `draw`'s bytes: ``1 / (1 - p)`` where kept, 0 where dropped.
        Element ``e`` (row-major) keeps when bit ``e % 8`` of byte ``e // 8`` is set (p = 0.5), else when
        byte ``e`` is ``>= threshold``."""
        return keep_mask(raw, shape, dtype, self.threshold)

    def mask(self, shape, dtype: torch.dtype, device) -> torch.Tensor:
        """The scaled keep mask: ``1 / (1 - p)`` where kept, 0 where dropped."""
        return self.keep(self.draw(math.prod(shape), device), shape, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            # the same bytes and products in one compiled pass, forward and backward (`_CoreDropout`)
            return _CoreDropout.apply(x, self.draw(x.numel(), x.device), self.threshold)
        return x * self.mask(x.shape, x.dtype, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def save_model(model: SequentialRecommender, path, **extra) -> None:
    """Write a checkpoint that `load_model` rebuilds: name, constructor arguments, weights.

    The file is written atomically; ``extra`` values (plain Python types) are
    stored beside the weights.
    """
    from .._io import atomic_open

    payload = {
        "model": model.name,
        "kwargs": dict(model.init_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load_model(path, map_location="cpu") -> SequentialRecommender:
    """Rebuild a model saved by `save_model` (weights only; no pickled code is run)."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    for key in ("model", "kwargs", "state_dict"):
        if key not in payload:
            raise ValueError(f"{path} is not a fastregen model checkpoint (missing {key!r})")
    model = build_model(payload["model"], **payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model


def masked_mean(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``h`` (B, L, D) over the positions where ``valid`` (B, L) is true; (B, D).

    A row with no valid position gives zeros (the count is clamped to 1).
    """
    w = valid.unsqueeze(-1).to(h.dtype)
    return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def sinusoid_freqs(dim: int, length: int, base: float = 10000.0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (length, dim) of rotary position embeddings (Su et al. 2021)."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    t = torch.arange(length, device=device, dtype=torch.float32)
    ang = torch.outer(t, inv)
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos(), ang.sin()

