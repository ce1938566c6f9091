"""`LazyAdam`: Adam that updates only the rows of an item table that a step looked up.

At Amazon-Books scale (700k items x 64) the regenerator's step spent more
than half its time on the item table alone: fused Adam reads and writes the
table, its gradient and both moments (4 x 180 MB) every step, and the
Trainer zero-fills the dense gradient buffer, although a batch looks up a
few thousand rows (`benchmarks/sampled_softmax.py books --profile`). Large
catalogue recommenders update such tables lazily (TensorFlow Addons'
``LazyAdam``, torch's ``SparseAdam``): a row's moments and weights change
only in steps where it has a gradient. This is *not* Adam for the other
rows, whose moments Adam would decay and whose weights it would keep moving
along the old momentum; it is the usual trade for tables of this size.
"""

from __future__ import annotations

import torch

__all__ = ["LazyAdam"]


class LazyAdam(torch.optim.Optimizer):
    """Adam with lazy (row-sparse) updates of ``lazy`` parameters, fused Adam for every other one.

    Parameters
    ----------
    params : iterable of torch.nn.Parameter
        Every parameter to optimise (``lazy`` ones included or not).
    lazy : iterable of torch.nn.Parameter
        Tables updated row by row: only rows with a gradient in a step
        (sparse gradients, ``nn.Embedding(sparse=True)``, or the non-zero
        rows of a dense one) take that step, with the Adam update of their
        own moments and the parameter's step count for bias correction
        (``torch.optim.SparseAdam``'s rule).
    lr, betas, eps
        As ``torch.optim.Adam`` (no weight decay).

    Notes
    -----
    The learning rate lives in this optimizer's ``param_groups`` (one
    group, the lazy tables), so an LR scheduler built on it schedules both
    parts. `fastregen.training.Trainer` leaves the gradients of ``lazy``
    parameters sparse (`lazy_params`); under torch.distributed it averages
    them over the ranks row by row (`fastregen.training.distributed.sync_gradients`),
    so every rank steps the same rows with the same gradient.
    """

    def __init__(self, params, lazy, *, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        from .trainer import adam

        lazy = list(lazy)
        if not lazy:
            raise ValueError("LazyAdam needs at least one lazily updated parameter")
        ids = {id(p) for p in lazy}
        dense = [p for p in params if id(p) not in ids]
        super().__init__([{"params": lazy}], dict(lr=lr, betas=tuple(betas), eps=eps))
        self.dense = adam(dense, lr=lr, betas=tuple(betas), eps=eps) if dense else None

    @property
    def lazy_params(self) -> list[torch.nn.Parameter]:
        """The parameters whose gradients may stay sparse."""
        return list(self.param_groups[0]["params"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        if self.dense is not None:
            self.dense.zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("LazyAdam takes no closure")
        group = self.param_groups[0]
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        if self.dense is not None:
            for g in self.dense.param_groups:
                g["lr"] = lr
            self.dense.step()
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            if grad.is_sparse:
                grad = grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
            else:
                rows = torch.nonzero(grad.reshape(grad.shape[0], -1).abs().sum(1)).flatten()
                values = grad[rows]
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            m = state["exp_avg"][rows].mul_(b1).add_(values, alpha=1 - b1)
            v = state["exp_avg_sq"][rows].mul_(b2).addcmul_(values, values, value=1 - b2)
            state["exp_avg"][rows] = m
            state["exp_avg_sq"][rows] = v
            bias1, bias2 = 1 - b1 ** state["step"], 1 - b2 ** state["step"]
            update = m.div_(v.sqrt_().div_(bias2 ** 0.5).add_(eps)).mul_(-lr / bias1)
            p.index_add_(0, rows, update.to(p.dtype))
        return None

    def state_dict(self) -> dict:
        return {"lazy": super().state_dict(), "dense": None if self.dense is None else self.dense.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict["lazy"])
        if self.dense is not None:
            self.dense.load_state_dict(state_dict["dense"])
