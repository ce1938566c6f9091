"""Bi-level optimisation of DR4SR+ (paper eq. 9-10, App. A.3): the implicit hypergradient and the upper level.

The problem (eq. 9)::

    phi* = argmin_phi L_dev(theta*(phi))   s.t.   theta*(phi) = argmin_theta L_train(theta, phi)

with L_train the personalizer-weighted loss (eq. 8) and L_dev the
unweighted loss (eq. 6) of a dev set. At a lower-level optimum the implicit
function theorem gives ``d theta*/d phi = -H^-1 d2L_train/(dtheta dphi)``,
H the Hessian of L_train in theta, so::

    dL_dev/dphi = -(d2 L_train / dphi dtheta) H^-1 grad_theta L_dev.

H^-1 v is approximated by the truncated Neumann series
``alpha * sum_{n=0}^{K} (I - alpha H)^n v`` (it converges to H^-1 v when the
spectral radius of ``I - alpha H`` is < 1). As in the released code
(``utils/utils.py``, ``Hypergrad._approx_inverse_hvp``: ``p = v = dL_dev;
K times {v -= alpha Hv; p += v}``, then ``-(d2L_train/dphi dtheta)^T p``),
the leading alpha is left out: `neumann_hypergradient` returns the implicit
gradient times 1/alpha (exactly the paper's eq. 10 for alpha = 1). Every
H-vector product is one double-backward pass (`torch.autograd.grad` with
``create_graph``); no Hessian is ever formed.

`PersonalizerHook` runs this inside the one `fastregen.training.Trainer`
loop: every ``interval`` lower steps (after the warm-up epochs) it draws a
dev batch and a fresh training batch, computes the hypergradient, clips it
and takes an SGD step on phi.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch

from ...training import EarlyStopping, Hook, NextItemLoss
from .config import PlusConfig
from .personalizer import PersonalizedWeights, Personalizer

__all__ = [
    "Hypergradient",
    "neumann_hypergradient",
    "NeumannDivergenceWarning",
    "NeumannDivergenceError",
    "PersonalizerHook",
    "double_backward_safe",
]


class NeumannDivergenceWarning(RuntimeWarning):
    """The Neumann series of an upper step grew instead of shrinking (rho(I - alpha H) >= 1)."""


class NeumannDivergenceError(FloatingPointError):
    """Raised instead of the warning with ``on_divergence="raise"``."""


@dataclass
class Hypergradient:
    """What `neumann_hypergradient` returns.

    Attributes
    ----------
    grads : list of torch.Tensor
        ``-(d2 L_train / dphi dtheta)^T sum_{n=0}^{K} (I - alpha H)^n grad_theta L_dev``,
        one tensor per hyper-parameter (zeros where L_train does not depend on it).
    term_norms : list of float
        Norm of each Neumann term ``(I - alpha H)^n grad L_dev``, n = 0..K.
    max_growth : float
        The largest allowed `rate`.
    """

    grads: list
    term_norms: list = field(default_factory=list)
    max_growth: float = 1.1

    @property
    def growth(self) -> float:
        """``||term K|| / ||term 0||`` (0 when the dev gradient is 0)."""
        first, last = self.term_norms[0], self.term_norms[-1]
        return float(last / first) if first > 0 else 0.0

    @property
    def rate(self) -> float:
        """Geometric-mean growth per term, ``growth ** (1 / K)`` (1 for K = 0)."""
        K = len(self.term_norms) - 1
        return self.growth ** (1.0 / K) if K > 0 else 1.0

    @property
    def diverging(self) -> bool:
        """A term is not finite, or the terms grew faster than ``max_growth`` per term."""
        if not all(np.isfinite(self.term_norms)):
            return True
        return self.rate > self.max_growth

    @property
    def norm(self) -> float:
        """Euclidean norm of `grads`."""
        return _norm(self.grads)


def _norm(tensors) -> float:
    """Euclidean norm of a list of tensors, accumulated in float64."""
    if not tensors:
        return 0.0
    norms = torch._foreach_norm([t.detach() for t in tensors])
    return float(torch.linalg.vector_norm(torch.stack(norms).double()))


def neumann_hypergradient(dev_loss: torch.Tensor, train_loss: torch.Tensor, params, hparams, *, K: int = 3,
                          alpha: float = 1e-3, max_growth: float = 1.1) -> Hypergradient:
    """Hypergradient of ``dev_loss`` in ``hparams`` through the lower problem ``min_params train_loss``.

    Parameters
    ----------
    dev_loss : torch.Tensor, scalar
        L_dev(theta), with its graph; it must not depend on ``hparams``
        directly (DR4SR+'s dev loss is unweighted).
    train_loss : torch.Tensor, scalar
        L_train(theta, phi), with its graph (twice differentiable in theta).
    params : sequence of torch.Tensor
        theta (the lower level's parameters).
    hparams : sequence of torch.Tensor
        phi.
    K : int, default 3
        Neumann terms after the first (K = 0: ``-(d2L/dphi dtheta)^T grad L_dev``).
    alpha : float, default 1e-3
        Step of the series.
    max_growth : float, default 1.1
        See `Hypergradient.diverging`.

    Returns
    -------
    Hypergradient
        ``grads`` approximate ``(1 / alpha) * dL_dev(theta*(phi)) / dphi``
        (see the module docstring); check ``diverging`` before using them.

    Raises
    ------
    ValueError
        If K < 0 or alpha <= 0.
    """
    if isinstance(K, bool) or not isinstance(K, int) or K < 0:
        raise ValueError(f"K must be an int >= 0, got {K!r}")
    if not float(alpha) > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    params, hparams = list(params), list(hparams)
    grad = dict(allow_unused=True, materialize_grads=True)
    dev_grad = torch.autograd.grad(dev_loss, params, **grad)
    train_grad = torch.autograd.grad(train_loss, params, create_graph=True, **grad)
    # a parameter whose gradient does not depend on theta or phi adds nothing below
    live = [i for i, g in enumerate(train_grad) if g.requires_grad]
    outputs = [train_grad[i] for i in live]
    v = [g.detach() for g in dev_grad]
    p = [t.clone() for t in v]
    norms = [_norm(v)]
    for _ in range(K):
        if outputs:
            hv = torch.autograd.grad(outputs, params, grad_outputs=[v[i] for i in live], retain_graph=True, **grad)
            v = torch._foreach_add([t.detach() for t in v], [h.detach() for h in hv], alpha=-alpha)  # v - alpha Hv
        torch._foreach_add_(p, v)
        norms.append(_norm(v))
    if outputs:
        mixed = torch.autograd.grad(outputs, hparams, grad_outputs=[p[i] for i in live], **grad)
    else:
        mixed = [torch.zeros_like(h) for h in hparams]
    return Hypergradient(grads=[-m.detach() for m in mixed], term_norms=norms, max_growth=float(max_growth))


@contextlib.contextmanager
def double_backward_safe(device):
    """Kernels that support double backward: dense gradients for the losses' lookups and, on CUDA,
    math attention and no cuDNN RNNs.

    Sparse embedding gradients, the fused attention kernels and cuDNN's GRU
    have no second derivative; the authors switch cuDNN off for GRU4Rec's
    upper step for the same reason.
    """
    from ...training.losses import dense_lookups

    with dense_lookups():
        if torch.device(device).type != "cuda":
            yield
            return
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.MATH]), torch.backends.cudnn.flags(enabled=False):
            yield


class _Cycle:
    """Endless seeded, length-bucketed batches of a `TrainingData` (a new order every pass)."""

    def __init__(self, data, batch_size: int, generator: torch.Generator) -> None:
        if len(data) == 0 or data.total_targets == 0:
            raise ValueError("the dev set holds no target (no sequence with two or more items): nothing to score")
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self._order: list = []

    def next(self, device):
        if not self._order:
            self._order = list(self.data.batch_order(self.batch_size, self.generator, True))[::-1]
        return self.data.batch(self._order.pop()).to(device)


class PersonalizerHook(Hook):
    """DR4SR+ inside the `fastregen.training.Trainer`: warm-up, the upper level, phi at the best epoch.

    * Warm-up: ``weights.active`` is False for the first ``warmup_epochs``
      epochs (every weight 1), True after.
    * Bi-level mode: every ``interval`` lower steps after the warm-up, an
      upper step: the unweighted loss of a dev batch, the weighted loss of a
      fresh training batch (phi live), `neumann_hypergradient`, norm
      clipping, SGD(lr, momentum, weight decay) on phi. The target model's
      optimizer must not own phi, and the lower steps compute w with phi
      detached, so phi moves only by the hypergradient.
    * End-to-end mode: the target model's optimizer must own phi (it trains
      on the weighted loss with theta).
    * With an `EarlyStopping` hook before it, phi is snapshotted at the best
      epoch and restored with the model at the end.

    Parameters
    ----------
    personalizer : Personalizer
    weights : PersonalizedWeights
        The ``weight_fn`` of the trainer's objective.
    config : PlusConfig
    dev : TrainingData, optional
        The dev examples (``dev="heldout"``); None draws dev batches from the
        training data itself (``dev="train_batch"``).
    batch_size : int, default 256
        Rows of the fresh training batches (the target model's batch size).
    loss, num_negatives, temperature
        The target model's loss (`fastregen.training.NextItemLoss`) for the dev loss.

    Attributes
    ----------
    upper_steps, upper_skipped : int
        Upper steps taken / skipped (diverging series) in the whole fit.
    """

    def __init__(self, personalizer: Personalizer, weights: PersonalizedWeights, config: PlusConfig, *, dev=None,
                 batch_size: int = 256, loss: str = "bce", num_negatives: int = 1, temperature: float = 1.0) -> None:
        if config.mode == "off":
            raise ValueError("mode='off' trains no personalizer: it needs no PersonalizerHook")
        self.personalizer, self.weights, self.config, self.dev = personalizer, weights, config, dev
        self.batch_size = int(batch_size)
        self.dev_batch_size = config.dev_batch_size
        self.dev_objective = NextItemLoss(loss, num_negatives, temperature)
        self.phi = personalizer.upper_parameters()
        self.optimizer = None
        if config.mode == "bilevel":
            self.optimizer = torch.optim.SGD(self.phi, lr=config.upper_lr, momentum=config.upper_momentum,
                                             weight_decay=config.upper_weight_decay)
        self.upper_steps = self.upper_skipped = 0
        self._stopper = None
        self._best_state = None

    # ------------------------------------------------------------ the loop
    def on_fit_start(self, trainer) -> None:
        # phi lives where the target model's hidden states do (in place: the optimizers keep their parameters)
        self.personalizer.to(trainer.device)
        owned = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
        mine = [id(p) for p in self.phi]
        if self.config.mode == "bilevel" and any(i in owned for i in mine):
            raise ValueError("bi-level mode: the target model's optimizer owns the personalizer's parameters, so "
                             "phi would also follow the weighted loss; give it the model's parameters only")
        if self.config.mode == "end_to_end" and not all(i in owned for i in mine):
            raise ValueError("end_to_end mode: the target model's optimizer must own the personalizer's parameters")
        if self.config.mode == "end_to_end":
            self.weights.differentiable = True
        self.generator = torch.Generator().manual_seed(self.config.seed + 1)
        if self.config.mode == "bilevel":
            dev = trainer.data if self.dev is None else self.dev
            rows = self.dev_batch_size
            if rows is None:
                # as many targets as a lower batch holds on average (the released code's dev batch is a batch
                # of the training file itself); held-out original sequences are longer than the mined and
                # regenerated patterns, so 256 of them would hold ~2.6x the targets (Beauty `combined`)
                per_row = dev.total_targets / max(len(dev), 1) if self.dev is not None else None
                rows = self.batch_size if not per_row else max(1, round(trainer.targets_per_batch / per_row))
            self.dev_rows = int(rows)
            self._train_batches = _Cycle(trainer.data, self.batch_size, self.generator)
            self._dev_batches = _Cycle(dev, self.dev_rows, self.generator)
        self._stopper = next((h for h in trainer.hooks if isinstance(h, EarlyStopping)), None)
        self.weights.active = self.config.warmup_epochs == 0
        self._epoch_reset()

    def _epoch_reset(self) -> None:
        self.weights.reset_stats()
        self._steps = self._skipped = 0
        self._seconds = 0.0
        self._hyper_norms, self._growths = [], []

    def on_step_end(self, trainer, batch, loss) -> None:
        if (self.config.mode == "bilevel" and trainer.epoch >= self.config.warmup_epochs
                and trainer.step_count % self.config.interval == 0):
            self.upper_step(trainer)

    def upper_step(self, trainer) -> None:
        """One SGD step of phi along the hypergradient (bi-level mode)."""
        t0 = time.perf_counter()
        model, cfg = trainer.model, self.config
        device = trainer.device
        dev_batch = self._dev_batches.next(device)
        train_batch = self._train_batches.next(device)
        theta = [p for p in model.parameters() if p.requires_grad]
        with double_backward_safe(device):
            terms = self.dev_objective(model, dev_batch, self.generator)
            dev_loss = terms.total / max(dev_batch.num_targets, 1)
            if terms.aux is not None:  # CL4SRec's contrastive term, never weighted (the released code keeps it)
                dev_loss = dev_loss + terms.aux
            with self.weights.live():
                train_loss, _ = trainer.loss(train_batch, generator=self.generator)
            hyper = neumann_hypergradient(dev_loss, train_loss, theta, self.phi, K=cfg.K, alpha=cfg.alpha,
                                          max_growth=cfg.max_growth)
        self._growths.append(hyper.rate)
        if hyper.diverging:
            msg = (f"the Neumann series of the upper step after lower step {trainer.step_count} diverges: its "
                   f"terms grew {hyper.rate:.4g}x per term (term norms {', '.join(f'{t:.3g}' for t in hyper.term_norms)}"
                   f"; max_growth = {cfg.max_growth}), so rho(I - alpha H) > 1 at alpha = {cfg.alpha}; use a smaller "
                   "alpha")
            if cfg.on_divergence == "raise":
                raise NeumannDivergenceError(msg)
            warnings.warn(msg + (", step skipped" if cfg.on_divergence == "skip" else ""),
                          NeumannDivergenceWarning, stacklevel=2)
            if cfg.on_divergence == "skip":
                self._skipped += 1
                self.upper_skipped += 1
                self._seconds += time.perf_counter() - t0
                return
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(self.phi, hyper.grads):
            p.grad = g.to(p.dtype)
        self._hyper_norms.append(hyper.norm)
        if cfg.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.phi, cfg.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._steps += 1
        self.upper_steps += 1
        self._seconds += time.perf_counter() - t0

    def on_epoch_end(self, trainer, record) -> None:
        record.update(self.weights.stats())
        record["tau"] = float(self.personalizer.temperature())
        if self.config.mode == "bilevel":
            record.update(upper_steps=self._steps, upper_skipped=self._skipped, upper_seconds=self._seconds)
            if self._hyper_norms:
                record["hypergrad_norm"] = float(np.mean(self._hyper_norms))
            if self._growths:
                record["neumann_rate"] = float(np.mean(self._growths))
        epoch = record["epoch"]
        if self._stopper is None or self._stopper.best_epoch == epoch:
            self._best_state = copy.deepcopy(self.personalizer.state_dict())
        self.weights.active = epoch + 1 >= self.config.warmup_epochs
        self._epoch_reset()

    def on_fit_end(self, trainer) -> None:
        if self._best_state is not None:
            self.personalizer.load_state_dict(self._best_state)

    # ------------------------------------------------------------ resuming
    def state_dict(self) -> dict:
        """phi (and tau), its optimizer, the generator of the upper level's draws, the dev and training
        batches still to come in their current passes, the step counts, phi at the best epoch and whether
        the warm-up is over: all a resumed run needs to take the upper steps an uninterrupted one takes."""
        state = {
            "personalizer": self.personalizer.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "upper_steps": self.upper_steps, "upper_skipped": self.upper_skipped,
            "best_state": self._best_state, "active": self.weights.active,
            "generator": self.generator.get_state() if hasattr(self, "generator") else None,
        }
        if hasattr(self, "_train_batches"):
            state["train_order"] = list(self._train_batches._order)
            state["dev_order"] = list(self._dev_batches._order)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict` (after `on_fit_start`, which made the generator and batch cycles)."""
        self.personalizer.load_state_dict(state["personalizer"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.upper_steps, self.upper_skipped = int(state["upper_steps"]), int(state["upper_skipped"])
        self._best_state, self.weights.active = state["best_state"], bool(state["active"])
        if state["generator"] is not None and hasattr(self, "generator"):
            self.generator.set_state(state["generator"])
        if "train_order" in state and hasattr(self, "_train_batches"):
            self._train_batches._order = list(state["train_order"])
            self._dev_batches._order = list(state["dev_order"])


def joint_parameters(model, personalizer: Personalizer):
    """theta and phi, for the end-to-end mode's single optimizer."""
    return chain(model.parameters(), personalizer.upper_parameters())
