"""Next-item losses of the target models, per target, and the objective the Trainer minimises.

Every loss here returns one value **per target position** (shape (B, L), 0
where there is no target), so weighting (sequence weights, a DR4SR+
personalizer) and normalisation are left to the caller: `NextItemLoss` sums
``weight * loss`` and the `fastregen.training.Trainer` divides by a constant
number of targets per batch.

* ``"bce"``: ``softplus(-h.e_t) + mean_r softplus(h.e_r)`` with ``R`` uniform
  negatives per position (DR4SR eq. 7: one negative);
* ``"sampled_softmax"``: softmax over the target and ``R`` uniform negatives
  shared by the batch, logits / temperature (HSTU's setting); negatives
  equal to the target are masked;
* ``"softmax"``: full cross-entropy over items 1..num_items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "bce_per_target",
    "sampled_softmax_per_target",
    "softmax_per_target",
    "bce_loss",
    "sampled_softmax_loss",
    "softmax_loss",
    "LossTerms",
    "NextItemLoss",
]


def bce_per_target(hidden, item_weight, targets, negatives) -> torch.Tensor:
    """Binary cross-entropy with sampled negatives, per position.

    Parameters
    ----------
    hidden : torch.Tensor, shape (B, L, d)
    item_weight : torch.Tensor, shape (num_items + 1, d)
    targets : torch.Tensor of int64, shape (B, L)
        Next item per position, 0 where there is none.
    negatives : torch.Tensor of int64, shape (B, L, R)

    Returns
    -------
    torch.Tensor, shape (B, L)
        ``softplus(-h.e_t) + mean_r softplus(h.e_{n_r})``, 0 where ``targets == 0``.
    """
    pos = (hidden * F.embedding(targets, item_weight)).sum(-1)
    neg = torch.einsum("bld,blrd->blr", hidden, F.embedding(negatives, item_weight))
    per = F.softplus(-pos) + F.softplus(neg).mean(-1)
    return per * (targets > 0)


def sampled_softmax_per_target(hidden, item_weight, targets, negatives, temperature: float = 1.0) -> torch.Tensor:
    """Sampled softmax per position: the target against ``R`` negatives, logits / temperature.

    ``negatives`` has shape (R,) (shared by the batch) or (B, L, R). A
    negative equal to the position's target is masked. Returns (B, L), 0
    where ``targets == 0``.
    """
    pos = (hidden * F.embedding(targets, item_weight)).sum(-1, keepdim=True)
    if negatives.dim() == 1:
        neg = hidden @ item_weight[negatives].T  # (B, L, R)
        clash = targets[..., None] == negatives[None, None, :]
    else:
        neg = torch.einsum("bld,blrd->blr", hidden, F.embedding(negatives, item_weight))
        clash = targets[..., None] == negatives
    logits = torch.cat([pos, neg.masked_fill(clash, float("-inf"))], -1) / temperature
    per = torch.logsumexp(logits, -1) - logits[..., 0]
    return per * (targets > 0)


def softmax_per_target(hidden, item_weight, targets, temperature: float = 1.0) -> torch.Tensor:
    """Full softmax cross-entropy over items 1..num_items (padding excluded), per position.

    Only positions with a target are scored, so memory is (#targets, num_items).
    Returns (B, L), 0 where ``targets == 0``.
    """
    sel = targets > 0
    logits = (hidden[sel] @ item_weight.T) / temperature
    logits[:, 0] = float("-inf")
    out = hidden.new_zeros(targets.shape)
    out[sel] = F.cross_entropy(logits, targets[sel], reduction="none")
    return out


def _mean(per: torch.Tensor, targets: torch.Tensor, weights) -> torch.Tensor:
    if weights is None:
        weights = (targets > 0).to(per.dtype)
    return (per * weights).sum() / (targets > 0).sum().clamp_min(1).to(per.dtype)


def bce_loss(hidden, item_weight, targets, negatives, weights=None) -> torch.Tensor:
    """`bce_per_target` weighted by ``weights`` (B, L) (default: 1 per target), summed, / #targets."""
    return _mean(bce_per_target(hidden, item_weight, targets, negatives), targets, weights)


def sampled_softmax_loss(hidden, item_weight, targets, negatives, weights=None, temperature: float = 1.0):
    """`sampled_softmax_per_target` weighted, summed, / #targets (see `bce_loss`)."""
    return _mean(sampled_softmax_per_target(hidden, item_weight, targets, negatives, temperature), targets, weights)


def softmax_loss(hidden, item_weight, targets, weights=None, temperature: float = 1.0) -> torch.Tensor:
    """`softmax_per_target` weighted, summed, / #targets (see `bce_loss`)."""
    return _mean(softmax_per_target(hidden, item_weight, targets, temperature), targets, weights)


@dataclass
class LossTerms:
    """What an objective returns for one batch (see `fastregen.training.Trainer`).

    Attributes
    ----------
    total : torch.Tensor, scalar
        Sum over the batch's targets of ``weight * loss``; the Trainer
        divides it by its constant targets-per-batch.
    aux : torch.Tensor, scalar, optional
        Terms that are already normalised (a contrastive loss, a
        regulariser); added as they are.
    logs : dict of str to float
        Per-batch values to average over the epoch (shown in the history).
    """

    total: torch.Tensor
    aux: torch.Tensor | None = None
    logs: dict = field(default_factory=dict)


class NextItemLoss:
    """The target models' objective: weighted next-item loss plus the model's auxiliary loss.

    Parameters
    ----------
    loss : {"bce", "sampled_softmax", "softmax"}
    num_negatives : int
        Negatives per position (bce) or per batch (sampled_softmax).
    temperature : float, default 1.0
    weight_fn : callable, optional
        ``weight_fn(model, batch, hidden) -> (B, L) tensor`` multiplied into
        the batch's target weights (a DR4SR+ personalizer). Without it the
        weights are the batch's own (sequence weights, 0 at padding).

    Notes
    -----
    The auxiliary loss (CL4SRec's InfoNCE) gets each row's mean target
    weight of the *data* (the sequence weight), never ``weight_fn``'s
    weights: DR4SR+ leaves the contrastive term unweighted.
    """

    def __init__(self, loss: str, num_negatives: int, temperature: float = 1.0, weight_fn=None) -> None:
        if loss not in ("bce", "sampled_softmax", "softmax"):
            raise ValueError(f"unknown loss {loss!r}; valid: bce, sampled_softmax, softmax")
        self.loss, self.num_negatives, self.temperature, self.weight_fn = loss, int(num_negatives), temperature, weight_fn

    def per_target(self, model, hidden: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Loss of every target position (B, L) from hidden states (B, L, d)."""
        table = model.item_weight()
        N, R = model.num_items, self.num_negatives
        if self.loss == "bce":
            neg = torch.randint(1, N + 1, (*targets.shape, R), generator=generator).to(hidden.device)
            return bce_per_target(hidden, table, targets, neg)
        if self.loss == "sampled_softmax":
            neg = torch.randint(1, N + 1, (R,), generator=generator).to(hidden.device)
            return sampled_softmax_per_target(hidden, table, targets, neg, self.temperature)
        return softmax_per_target(hidden, table, targets, self.temperature)

    def __call__(self, model, batch, generator: torch.Generator) -> LossTerms:
        hidden = model(batch.inputs, timestamps=batch.timestamps)
        per = self.per_target(model, hidden, batch.targets, generator)
        weights = batch.weights
        if self.weight_fn is not None:
            weights = weights * self.weight_fn(model, batch, hidden)
        total = (per * weights).sum()
        row_w = batch.weights.sum(1) / (batch.targets > 0).sum(1).clamp_min(1)
        aux = model.auxiliary_loss(batch.inputs, row_w, generator)
        return LossTerms(total=total, aux=aux)
