"""`Trainer`: the one optimisation loop of fastregen.

Target models, the DR4SR regenerator (and, building on them, the DR4SR+
bi-level loop and UniDS's generator) are all trained by `Trainer`: an
injectable model, objective and optimizer, a seeded epoch order, per-target
weights and hooks for everything else (evaluation, early stopping,
checkpoints, temperature schedules, an upper-level optimiser).

Loss normalisation
------------------
An objective returns the *sum* over a batch's targets of ``weight * loss``
(`LossTerms.total`). The Trainer divides it by one constant for the whole
run, the mean number of targets per batch (``total targets / batches per
epoch``), never by the batch's own count. With length bucketing, batches of
short sequences hold far fewer targets than batches of long ones; dividing
each by its own count would give a target in a short batch several times
the weight of one in a long batch (on Beauty's original + mined patterns,
the patterns' ~30% of the targets would get ~64% of the update). With the
constant, every target of an epoch has weight ``w / C`` whatever batch it
lands in, and the loss scale matches a per-batch mean on average.
``Trainer(normalisation="batch_mean")`` divides by the batch's own number
of targets instead, as the DR4SR authors' code does (their scheme,
`fastregen.training.AUTHORS_SCHEME`).

Several processes
-----------------
Started under torchrun (a torch.distributed group of N > 1 ranks), the
Trainer trains data-parallel (`fastregen.training.distributed`): global
batches of ``N x batch_size`` examples in one order shared by the ranks,
each rank's contiguous share of each, gradients averaged after the
backward pass (the tables a `LazyAdam` updates row by row: only the rows
some rank looked up), the normaliser ``C / N`` per rank so that the update
is the one of the whole global batch. Hooks run on every rank; `EarlyStopping`
evaluates on rank 0 only, whose ``stop`` is broadcast after each epoch and
whose weights are broadcast at the end of `fit`. Alone, nothing of this
runs and results are as before.

Resuming
--------
Given a ``checkpoint`` (`fastregen.training.checkpoint.Checkpoint`, or a
path), `Trainer.fit` writes the whole state of the run at the end of every
epoch, and a `fit` that finds the checkpoint of the same run there goes on
from it: a run killed at any point loses at most the epoch under way, and
ends (on the CPU) with the weights and metrics of an uninterrupted one.
Hooks take part through `Hook.state_dict` / `Hook.load_state_dict`.

Why one module of ~600 lines: it is the only place with ``backward()``
and ``step()`` (STYLE.md), and the loop, its normalisation, the hooks'
call points, checkpoint resume and the torchrun wrapping must be read
together to be trusted; the pieces that stand alone (batching, losses,
checkpoints, distributed helpers) are their own modules.
"""

from __future__ import annotations

import copy
import math
import os
import time
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np
import torch

from . import distributed
from .checkpoint import Checkpoint, rng_state, set_rng_state
from .config import LOSS_NORMALISATIONS

__all__ = ["Trainer", "Hook", "EarlyStopping", "CallbackHook", "TrainingData", "adam"]


def adam(params, **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused kernel where torch has one for the CPU (2.4+).

    Per-parameter Adam updates are a series of small kernels; on a 2-core
    CPU they were ~10% of a regenerator step, and the fused kernel does them
    in one pass (the same update up to float rounding).
    """
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    if version >= (2, 4):
        kwargs.setdefault("fused", True)
    return torch.optim.Adam(params, **kwargs)


class TrainingData(Protocol):
    """What `Trainer.fit` trains on (`fastregen.training.Examples` is one)."""

    total_targets: int

    def __len__(self) -> int: ...

    def batch(self, idx: np.ndarray): ...

    def batch_order(self, batch_size: int, generator: torch.Generator | None, bucketing: bool = True,
                    window: int = 32) -> list[np.ndarray]: ...


#: Trainer settings added to the fingerprint after checkpoints were first written, at the values
#: those checkpoints trained with (a checkpoint without one of them matches at this value).
_FINGERPRINT_DEFAULTS = {"bucket_window": 32, "normalisation": "constant"}


class Hook:
    """Override any of these to act at a point of the loop; ``trainer.stop = True`` ends it.

    A hook that keeps state across epochs (best weights, its own optimizer
    or generator) returns it from `state_dict` so that a resumed run
    (`Trainer` with a ``checkpoint``) restores it: `load_state_dict` is
    called after `on_fit_start`. A hook without state need not override
    them.
    """

    def state_dict(self) -> dict | None:
        """What the epoch checkpoint stores of this hook (None: nothing); tensors, NumPy arrays and plain data."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Restore what `state_dict` returned (called after `on_fit_start` on a resumed run)."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer", batch, loss: float) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", record: dict) -> None: ...

    def on_fit_end(self, trainer: "Trainer") -> None: ...


class CallbackHook(Hook):
    """A hook from plain functions: ``CallbackHook(step=f, epoch=g)``."""

    def __init__(self, *, step: Callable | None = None, epoch: Callable | None = None) -> None:
        self._step, self._epoch = step, epoch

    def on_step_end(self, trainer, batch, loss):
        if self._step is not None:
            self._step(trainer, batch, loss)

    def on_epoch_end(self, trainer, record):
        if self._epoch is not None:
            self._epoch(trainer, record)


class EarlyStopping(Hook):
    """Evaluate after epochs, keep the best weights, stop after ``patience`` evaluations without gain.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(model) -> dict`` of metrics (the model is in eval mode
        while it runs).
    metric : str
        Key of the dict to select on.
    mode : {"max", "min"}, default "max"
    patience : int or None, default None
        Evaluations without improvement before stopping; None never stops
        (the best weights are still restored at the end).
    every : int, default 1
        Epochs between evaluations (the last epoch is always evaluated).
    prefix : str, default "valid_"
        Prefix of the metric names written into the epoch record.

    Attributes
    ----------
    best : dict or None
        Metrics of the best evaluation; ``best_epoch`` its epoch.
    """

    def __init__(self, evaluate: Callable[[torch.nn.Module], dict], metric: str, *, mode: str = "max",
                 patience: int | None = None, every: int = 1, prefix: str = "valid_") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if patience is not None and patience < 0:
            raise ValueError(f"patience must be >= 0 or None, got {patience}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.evaluate, self.metric, self.mode = evaluate, metric, mode
        self.patience, self.every, self.prefix = patience, every, prefix
        self.best: dict | None = None
        self.best_epoch = -1
        self._best_score = -math.inf if mode == "max" else math.inf
        self._state = None
        self._since = 0

    def on_epoch_end(self, trainer, record):
        epoch = record["epoch"]
        if (epoch + 1) % self.every and epoch != trainer.last_epoch:
            return
        if not trainer.is_main:  # rank 0 evaluates and decides; Trainer.fit broadcasts its `stop`
            return
        model = trainer.model
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        try:
            metrics = self.evaluate(model)
        finally:
            model.train(was_training)
        record["eval_seconds"] = time.perf_counter() - t0
        record.update({f"{self.prefix}{k}": v for k, v in metrics.items() if np.isscalar(v)})
        score = metrics[self.metric]
        better = score > self._best_score if self.mode == "max" else score < self._best_score
        if better:
            self._best_score, self.best, self.best_epoch, self._since = score, metrics, epoch, 0
            self._state = copy.deepcopy(model.state_dict())
        else:
            self._since += 1
        if self.patience is not None and self._state is not None and self._since > self.patience:
            trainer.stop = True

    def state_dict(self) -> dict:
        """The best evaluation (metrics, epoch, score, weights) and the evaluations since it."""
        return {"best": self.best, "best_epoch": self.best_epoch, "best_score": self._best_score,
                "weights": self._state, "since": self._since}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self._best_score = state["best"], state["best_epoch"], state["best_score"]
        self._state, self._since = state["weights"], state["since"]

    def on_fit_end(self, trainer):
        if not trainer.history or not trainer.is_main:  # epochs=0; or not rank 0, which gets rank 0's weights
            return
        if self._state is None:
            raise FloatingPointError(f"{self.metric} was never an improvement on {self._best_score} "
                                     "(never finite?); training diverged")
        trainer.model.load_state_dict(self._state)


class Trainer:
    """Minimise an objective over batches of training data.

    Parameters
    ----------
    model : torch.nn.Module
    objective : callable
        ``objective(model, batch, generator) -> LossTerms`` (for example
        `fastregen.training.NextItemLoss`).
    optimizer : torch.optim.Optimizer, optional
        Defaults to Adam(``lr``, ``weight_decay``) over ``model.parameters()``
        (`adam`: fused where available).
    lr, weight_decay : float
        Of the default optimizer.
    scheduler : callable, optional
        ``scheduler(optimizer, total_steps) -> torch.optim.lr_scheduler.LRScheduler``,
        stepped after every optimizer step.
    hooks : sequence of Hook
    batch_size : int, default 256
    bucketing : bool, default True
        Length-bucketed batches (`TrainingData.batch_order`).
    bucket_window : int, default 32
        Batches per length-sorting window; 0 sorts the whole epoch (least
        padding; see `TrainConfig.bucket_window`).
    normalisation : {"constant", "batch_mean"}, default "constant"
        What a batch's summed loss is divided by: the run's targets-per-batch
        constant (module docstring) or the batch's own number of targets
        (the DR4SR authors' scheme; needs batches with ``num_targets``).
    seed : int, default 0
        Seeds the trainer's generator: batch order and the objective's draws
        (negatives, augmentations). Under torch.distributed the order
        generator is seeded by ``seed`` on every rank and the draws (and
        torch's global generator, for dropout) by a per-rank seed.
    device : str or torch.device, default "cpu"
    progress : bool, default True
        A progress bar per epoch.
    desc : str, default "train"
        Progress-bar label.
    log : callable, optional
        Called with each epoch's record (a dict) once the hooks have run.
    grad_clip : float, optional
        Clip the gradient norm to this value before each optimizer step.
    checkpoint : Checkpoint or path-like, optional
        Write the run's state there at the end of every epoch, and resume
        from it when it holds this run's (module docstring, "Resuming"). A
        checkpoint of another run (another fingerprint: the caller's
        `Checkpoint.fingerprint` and this Trainer's settings) is refused
        with a ValueError before anything is written.

    Attributes
    ----------
    step_count : int
        Optimizer steps taken.
    epoch : int
        The epoch running (0-based).
    history : list of dict
        One record per epoch: ``epoch``, ``loss`` (mean per batch of the
        normalised loss), ``train_seconds``, the objective's logs and
        whatever the hooks add.
    targets_per_batch : float
        The constant the batch sums are divided by.
    stop : bool
        Set by a hook to end `fit` after the current epoch.
    data : TrainingData or None
        What `fit` is training on (None before `fit`), so hooks can draw
        their own batches from it (a DR4SR+ upper level does).
    world : fastregen.training.distributed.World or None
        The torch.distributed group when there is one of more than one rank.
    resumed_epochs : int
        Epochs the last `fit` found done in its checkpoint (0: a fresh run).
    finished : bool
        Whether the last `fit` found a finished run in its checkpoint (it
        then trained nothing: the final model and hooks were restored).
    """

    def __init__(self, model: torch.nn.Module, objective, *, optimizer: torch.optim.Optimizer | None = None,
                 lr: float = 1e-3, weight_decay: float = 0.0, scheduler=None, hooks: Sequence[Hook] = (),
                 batch_size: int = 256, bucketing: bool = True, bucket_window: int = 32,
                 normalisation: str = "constant", seed: int = 0, device="cpu", progress: bool = True,
                 desc: str = "train", log: Callable[[dict], None] | None = None, grad_clip: float | None = None,
                 checkpoint: Checkpoint | str | os.PathLike | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {grad_clip}")
        self.model = model.to(device)
        self.objective = objective
        self.optimizer = optimizer or adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self._make_scheduler = scheduler
        self.scheduler = None
        self.hooks = list(hooks)
        if isinstance(bucket_window, bool) or not isinstance(bucket_window, int) or bucket_window < 0:
            raise ValueError(f"bucket_window must be an int >= 0 (0: the whole epoch), got {bucket_window!r}")
        self.batch_size, self.bucketing, self.device = batch_size, bucketing, torch.device(device)
        if normalisation not in LOSS_NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {', '.join(map(repr, LOSS_NORMALISATIONS))}, "
                             f"got {normalisation!r}")
        self.bucket_window, self.normalisation = bucket_window, normalisation
        self.progress, self.desc, self.log, self.grad_clip = progress, desc, log, grad_clip
        self.seed = int(seed)
        self.world = distributed.current()
        self.generator = torch.Generator().manual_seed(self.seed)
        # one order for every rank, own draws per rank; alone both are the one generator, as before
        self.order_generator = self.generator
        if self.world is not None:
            self.order_generator = torch.Generator().manual_seed(self.seed)
            self.generator = torch.Generator().manual_seed(distributed.rank_seed(self.seed, self.world.rank))
        self.step_count, self.epoch, self.last_epoch = 0, 0, 0
        self.history: list[dict] = []
        self.targets_per_batch = 1.0
        self.stop = False
        self.data: TrainingData | None = None
        self._grad_buffers: dict[torch.nn.Parameter, torch.Tensor] = {}
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint(checkpoint)
        self.checkpoint = checkpoint
        self.resumed_epochs, self.finished = 0, False

    @property
    def is_main(self) -> bool:
        """Whether this process writes, evaluates and decides (rank 0, or the only process)."""
        return self.world is None or self.world.is_main

    @property
    def global_batch_size(self) -> int:
        """Examples per optimizer step over all ranks (``batch_size`` alone)."""
        return self.batch_size * (1 if self.world is None else self.world.size)

    # ------------------------------------------------------------------ steps
    def loss(self, batch, generator: torch.Generator | None = None):
        """The normalised loss of a batch (a scalar tensor with its graph) and the objective's `LossTerms`.

        ``generator`` (default: the trainer's) feeds the objective's draws; a
        hook that evaluates extra losses passes its own, so the training
        steps see the same random stream with or without it.
        """
        terms = self.objective(self.model, batch, self.generator if generator is None else generator)
        if self.normalisation == "batch_mean":
            loss = terms.total / max(batch.num_targets, 1)
        else:
            loss = terms.total / self.targets_per_batch
        if terms.aux is not None:
            loss = loss + terms.aux
        return loss, terms

    def step(self, batch) -> float:
        """One optimisation step on ``batch`` (already on the device); returns the loss value.

        Under torch.distributed ``batch`` is this rank's share of the global
        batch (None for an empty share) and the value is the global batch's
        loss (the mean over ranks of their normalised losses).
        """
        if batch is None:
            if self.world is None:
                raise ValueError("step needs a batch (None is only an empty share of a distributed batch)")
            from .losses import LossTerms

            self.optimizer.zero_grad(set_to_none=True)
            loss, terms = torch.zeros(()), LossTerms(total=torch.zeros(()))
        else:
            loss, terms = self.loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        self._densify_gradients()
        if self.world is not None:
            value = distributed.sync_gradients(self.model.parameters(), self.world, loss, sparse=self._lazy_params())
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step_count += 1
        if self.world is None:
            value = float(loss.detach())
        self._last_logs = terms.logs
        for hook in self.hooks:
            hook.on_step_end(self, batch, value)
        return value

    def _densify_gradients(self) -> None:
        """Sum sparse gradients (from ``nn.Embedding(sparse=True)``, the regenerator's item table) into a
        dense buffer kept across steps, so the optimizer (fused Adam) sees the dense gradient it always saw.

        A dense embedding gradient costs a zero-filled (V, d) allocation per lookup (at 700k x 64,
        180 MB, freshly page-faulted every step) and an add per extra lookup; with sparse gradients a
        step zeroes one resident buffer and scatters the looked-up rows into it.
        """
        # an optimizer that updates some tables row by row (`fastregen.training.LazyAdam`) takes their
        # sparse gradients as they are (across processes after a row-sparse all-reduce, `sync_gradients`)
        lazy = {id(p) for p in self._lazy_params()}
        for p in self.model.parameters():
            g = p.grad
            if g is None or not g.is_sparse or id(p) in lazy:
                continue
            buf = self._grad_buffers.get(p)
            if buf is None:
                buf = self._grad_buffers[p] = torch.zeros_like(p)
            else:
                buf.zero_()
            if g.sparse_dim() == 1:
                buf.index_add_(0, g._indices()[0], g._values().to(buf.dtype))
            else:
                buf.add_(g.to_dense())
            p.grad = buf

    def _lazy_params(self) -> list[torch.nn.Parameter]:
        """The parameters whose sparse gradients the optimizer takes as they are (`LazyAdam.lazy_params`)."""
        return list(getattr(self.optimizer, "lazy_params", ()))

    def set_normaliser(self, data: TrainingData) -> float:
        """Fix the targets-per-batch constant for ``data`` (total targets / batches per epoch).

        Under torch.distributed: total targets / global batches / ranks, each
        rank's share of the constant.
        """
        n_batches = max(math.ceil(len(data) / self.global_batch_size), 1)
        ranks = 1 if self.world is None else self.world.size
        self.targets_per_batch = max(data.total_targets / n_batches / ranks, 1e-12)
        return self.targets_per_batch

    def run_epoch(self, data: TrainingData, order: Iterable[np.ndarray] | None = None) -> dict:
        """One pass over ``data`` in a seeded random order (or ``order``); returns the epoch's record."""
        from .._progress import progress_bar

        self.model.train()
        if order is None:
            order = data.batch_order(self.global_batch_size, self.order_generator, self.bucketing,
                                     window=self.bucket_window)
        t0 = time.perf_counter()
        total, batches, logs = 0.0, 0, {}
        show = self.progress and self.is_main
        bar = progress_bar(order, enabled=show, desc=f"{self.desc} epoch {self.epoch}", unit="batch")
        for idx in bar:
            idx = distributed.shard(idx, self.world)
            value = self.step(data.batch(idx).to(self.device) if len(idx) else None)
            total += value
            batches += 1
            for k, v in self._last_logs.items():
                logs.setdefault(k, []).append(float(v))
            if show:
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.close()
        record = {"epoch": self.epoch, "loss": total / max(batches, 1), "train_seconds": time.perf_counter() - t0}
        means = {k: float(np.mean(v)) for k, v in sorted(logs.items())}
        if self.world is not None and means:  # the objective's logs over every rank's batches
            means = dict(zip(means, distributed.all_reduce_mean(torch.tensor(list(means.values()),
                                                                            dtype=torch.float64)).tolist()))
        record.update(means)
        return record

    def fit(self, data: TrainingData, epochs: int) -> list[dict]:
        """Train for up to ``epochs`` epochs (hooks may stop earlier); returns the history.

        With a ``checkpoint`` holding this run's state, training goes on
        from the epoch after the one it holds (or, for a finished run, the
        final model and hooks are restored and nothing is trained).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if len(data) == 0 or data.total_targets == 0:
            raise ValueError("the training data holds no target: nothing to learn")
        if self.world is not None and len(data) < self.world.size:
            raise ValueError(f"{len(data)} training examples cannot be shared by {self.world.size} processes; "
                             "run fewer processes (--nproc-per-node)")
        # read (and check) the checkpoint before anything moves: a run of another config raises here
        resume = None if self.checkpoint is None else self.checkpoint.load(
            self.fingerprint(data, epochs), defaults={"trainer": self._fingerprint_defaults()})
        if self.world is not None:
            distributed.broadcast_module(self.model)  # every rank starts from rank 0's weights
            torch.manual_seed(distributed.rank_seed(self.seed + 1, self.world.rank))  # own dropout masks
        self.set_normaliser(data)
        self.data = data
        if self._make_scheduler is not None and self.scheduler is None:
            steps = max(math.ceil(len(data) / self.global_batch_size), 1) * max(epochs, 1)
            self.scheduler = self._make_scheduler(self.optimizer, steps)
        self.last_epoch = epochs - 1
        self.stop = False
        for hook in self.hooks:
            hook.on_fit_start(self)
        self.resumed_epochs, self.finished = 0, False
        if resume is not None:
            self._restore(resume)
            self.resumed_epochs, self.finished = len(self.history), bool(resume["finished"])
            self.checkpoint.forget()
            resume = None
        if not self.finished:
            for epoch in range(self.resumed_epochs, epochs):
                if self.stop:  # a resumed run whose last epoch stopped it
                    break
                self.epoch = epoch
                record = self.run_epoch(data)
                for hook in self.hooks:
                    hook.on_epoch_end(self, record)
                self.history.append(record)
                if self.log is not None and self.is_main:
                    self.log(record)
                if self.world is not None:
                    self.stop = bool(distributed.broadcast_object(self.stop))
                if self.checkpoint is not None:
                    self._save(data, epochs, finished=False)
            for hook in self.hooks:
                hook.on_fit_end(self)
            if self.world is not None:
                distributed.broadcast_module(self.model)  # rank 0's (best) weights everywhere
            if self.checkpoint is not None:
                self._save(data, epochs, finished=True)
        # the last step's gradients are of no further use; at 700k items they are 180 MB per table
        self.optimizer.zero_grad(set_to_none=True)
        self._grad_buffers.clear()
        self.model.eval()
        return self.history

    # ------------------------------------------------------------ checkpoints
    def _fingerprint_defaults(self) -> dict:
        """What a checkpoint that predates a recorded Trainer setting trained with. When the caller's
        fingerprint holds the run's TrainConfig (`fit_and_evaluate`), its ``loss_normalisation`` and
        ``bucket_window`` are what that Trainer was given (they are compared there, so they match the
        checkpoint's); otherwise the Trainer's defaults of the time."""
        config = {} if self.checkpoint is None else (self.checkpoint.fingerprint.get("config") or {})
        out = dict(_FINGERPRINT_DEFAULTS)
        if "loss_normalisation" in config:
            out["normalisation"] = config["loss_normalisation"]
        if "bucket_window" in config:
            out["bucket_window"] = config["bucket_window"]
        return out

    def fingerprint(self, data: TrainingData, epochs: int) -> dict:
        """This run's fingerprint: the checkpoint's (the caller's part) and, under ``"trainer"``, the
        settings and data sizes of this Trainer that a resumed run must share."""
        own = {
            "epochs": int(epochs), "batch_size": self.batch_size, "bucketing": self.bucketing, "seed": self.seed,
            "grad_clip": self.grad_clip, "examples": len(data), "total_targets": float(data.total_targets),
            "model": type(self.model).__name__, "parameters": [list(p.shape) for p in self.model.parameters()],
            "optimizer": type(self.optimizer).__name__, "hooks": [type(h).__name__ for h in self.hooks],
            "bucket_window": self.bucket_window, "normalisation": self.normalisation,
        }
        base = {} if self.checkpoint is None else self.checkpoint.fingerprint
        return {**base, "trainer": own}

    def _save(self, data: TrainingData, epochs: int, finished: bool) -> None:
        """Write the checkpoint (rank 0, with every rank's random states); see `fastregen.training.checkpoint`."""
        rng = None if finished else rng_state(self._generators())
        ranks = distributed.gather_object(rng) if self.world is not None else [rng]
        if self.is_main:
            self._write_checkpoint(data, epochs, finished, ranks)
        if self.world is not None:
            # no rank goes on (and may die) while rank 0 is still writing: a rank killed in the next epoch
            # must find the checkpoint of this one on disk
            distributed.barrier()

    def _write_checkpoint(self, data: TrainingData, epochs: int, finished: bool, ranks: list) -> None:
        """Rank 0's part of `_save`: the state, with every rank's random states ``ranks``, written atomically."""
        state = {
            "fingerprint": self.fingerprint(data, epochs),
            "finished": finished,
            "step_count": self.step_count,
            "stop": self.stop,
            "history": self.history,
            "model": self.model.state_dict(),
            "hooks": [h.state_dict() for h in self.hooks],
        }
        if not finished:  # what only the rest of the training needs
            state.update(optimizer=self.optimizer.state_dict(), rng=ranks,
                         scheduler=None if self.scheduler is None else self.scheduler.state_dict())
        self.checkpoint.save(state)

    def _generators(self) -> dict[str, torch.Generator]:
        gens = {"generator": self.generator}
        if self.order_generator is not self.generator:
            gens["order_generator"] = self.order_generator
        return gens

    def _restore(self, state: dict) -> None:
        """Put the model, optimizer, scheduler, hooks, counters and random states back as `_save` wrote them."""
        self.model.load_state_dict(state["model"])
        self.history = list(state["history"])
        self.step_count, self.stop = int(state["step_count"]), bool(state["stop"])
        self.epoch = max(len(self.history) - 1, 0)
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            if hook_state is not None:
                hook.load_state_dict(hook_state)
        if state["finished"]:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        ranks = state["rng"]
        rank = 0 if self.world is None else self.world.rank
        if len(ranks) == (1 if self.world is None else self.world.size):
            set_rng_state(ranks[rank], self._generators())
        else:
            # another number of processes: the shared batch order goes on; per-rank draws keep their fresh seeds
            self.order_generator.set_state(ranks[0]["generators"].get("order_generator",
                                                                       ranks[0]["generators"]["generator"]))
