"""Training: one `Trainer` loop for every model fastregen trains.

* `TrainConfig` -- a target-model run (model, loss, protocol, budget);
  ``TrainConfig(**AUTHORS_SCHEME)`` trains as the DR4SR authors' code does.
* `Examples` / `Batch` -- the training examples of a dataset under a
  protocol (``"all"``, ``"last"``, ``"packed"``), gathered batch by batch,
  each target traceable to its source sequence.
* losses -- per-target next-item losses (BCE, sampled and full softmax, the log-Q-corrected
  sampled softmax of ``train_softmax``)
  and `NextItemLoss`, the objective with per-target weights.
* `Trainer` -- step, epoch, fit; a constant targets-per-batch normaliser so
  every target weighs the same whatever its batch; hooks (`EarlyStopping`,
  or your own) for evaluation, checkpoints and outer loops.
* `RepPad` -- repeated padding of short sequences (RecSys'24), the
  ``TrainConfig.reppad`` option.
* `Checkpoint` -- the epoch checkpoint a `Trainer` writes and resumes
  from (a run killed anywhere loses at most one epoch and ends as an
  uninterrupted one).
* `fit` / `fit_and_evaluate` -- a target model end to end on a
  leave-one-out split (a run folder resumes).

>>> from fastregen.training import fit_and_evaluate          # doctest: +SKIP
>>> res = fit_and_evaluate("beauty.txt", model="sasrec")       # doctest: +SKIP
"""

from .checkpoint import Checkpoint
from .config import AUTHORS_SCHEME, LOSSES, TRAIN_TARGETS, TrainConfig
from .examples import Batch, Examples, build_examples, gather_windows, pack_segments
from .fit import build_target_model, fit, fit_and_evaluate, resolve_loss, seed_everything
from .losses import (
    DEFAULT_NUM_NEGATIVES,
    SAMPLED_SOFTMAX_MIN_VOCAB,
    TRAIN_SOFTMAX,
    LossTerms,
    NegativeSampler,
    NextItemLoss,
    resolve_train_softmax,
    sampled_softmax_cross_entropy,
    bce_loss,
    bce_per_target,
    sampled_softmax_loss,
    sampled_softmax_per_target,
    softmax_loss,
    softmax_per_target,
)
from .optim import LazyAdam
from .reppad import RepPad
from .trainer import CallbackHook, EarlyStopping, Hook, Trainer, TrainingData, adam

__all__ = [
    "TrainConfig",
    "AUTHORS_SCHEME",
    "LOSSES",
    "TRAIN_TARGETS",
    "Batch",
    "Examples",
    "build_examples",
    "gather_windows",
    "pack_segments",
    "RepPad",
    "LossTerms",
    "NextItemLoss",
    "bce_per_target",
    "sampled_softmax_per_target",
    "softmax_per_target",
    "bce_loss",
    "sampled_softmax_loss",
    "softmax_loss",
    "TRAIN_SOFTMAX",
    "SAMPLED_SOFTMAX_MIN_VOCAB",
    "DEFAULT_NUM_NEGATIVES",
    "NegativeSampler",
    "sampled_softmax_cross_entropy",
    "resolve_train_softmax",
    "Trainer",
    "TrainingData",
    "adam",
    "LazyAdam",
    "Hook",
    "CallbackHook",
    "EarlyStopping",
    "Checkpoint",
    "fit",
    "fit_and_evaluate",
    "build_target_model",
    "seed_everything",
    "resolve_loss",
]
