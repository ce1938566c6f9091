"""One trainer for every target model: losses, the epoch loop, early stopping.

The entry point is `fit_and_evaluate`. Training data is any CSR
`SequenceDataset` (the leave-one-out train split, a regenerated dataset, or
a union of both with per-sequence weights); validation and test always come
from the leave-one-out split of the original data.

Training examples
-----------------
Causal models (SASRec, GRU4Rec, GNN, CL4SRec, HSTU, LLaMA) are trained on
**every position** of each training sequence at once: the input is
``seq[:-1]`` and the target at each position is the next item, so one
forward pass covers all prefixes. Sequences longer than ``max_len + 1`` are
cut into windows of ``max_len + 1`` items, stepping back ``max_len`` from
the end, so every target is used exactly once per epoch.
Non-causal models (FMLP-Rec) would see their targets this way, so they are
trained on the **last position of every prefix** (``train_targets="last"``):
the DR4SR code's prefix augmentation. All examples are built with NumPy
(no per-sample Python loop) and batched by fancy indexing.

``train_targets="packed"`` reproduces how the DR4SR code feeds its causal
target models (its ``CondenseDataset``): the "all" windows are sorted by
length and packed greedily, longest first, then the shortest that still
fit, into rows of ``max_len`` columns; every position keeps its own
sequence's next item as target, and attention is plain causal over the row,
so a segment also attends to the segments packed before it (as in that
code). Packing changes the training signal, not only the speed: short
sequences (mined or regenerated patterns) get the context of other
sequences, and an epoch has far fewer, fuller rows.

Losses
------
All three take per-position ``weights`` (B, L), 0 at padding, and normalise
by the number of target positions, so a personalizer can rescale examples
without touching the models (all-zero weights give a zero loss and zero
gradient):

* ``"bce"``: binary cross-entropy with ``num_negatives`` uniform negatives per
  position (DR4SR: 1);
* ``"sampled_softmax"``: softmax over the target and ``num_negatives``
  uniform negatives shared by the batch, scaled by ``1 / temperature``
  (HSTU's setting); negatives equal to the target are masked;
* ``"softmax"``: full cross-entropy over the item table.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ._batching import length_bucketed_batches
from .config import config_from_dict, provenance, save_config
from .data import SequenceDataset, as_dataset, concat, leave_one_out
from .evaluation import DEFAULT_KS, evaluate

__all__ = [
    "TrainConfig",
    "fit",
    "fit_and_evaluate",
    "bce_loss",
    "sampled_softmax_loss",
    "softmax_loss",
    "build_examples",
    "gather_windows",
    "seed_everything",
    "resolve_loss",
    "training_loss",
    "train_epoch",
    "union",
    "pack_segments",
    "LOSSES",
]

LOSSES = ("bce", "sampled_softmax", "softmax")
TRAIN_TARGETS = ("auto", "all", "last", "packed")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as YAML beside its outputs).

    Attributes
    ----------
    model : str, default "sasrec"
        A name from `fastregen.models.available_models()`.
    model_kwargs : dict
        Extra model hyper-parameters (``dropout``, ``num_layers``, ...).
    embed_dim : int, default 64
    max_len : int, default 50
    loss : {"auto", "bce", "sampled_softmax", "softmax"}, default "auto"
        "auto" uses the model's own setting (``model_class.default_loss``):
        BCE for the DR4SR models, sampled softmax for HSTU and LLaMA.
    num_negatives : int, default 0
        Negatives per position (bce) or per batch (sampled_softmax); 0 picks
        1 for bce and 128 for sampled_softmax.
    temperature : float, default 1.0
        Logit scale of the softmax losses.
    train_targets : {"auto", "all", "last", "packed"}, default "auto"
        "all": every position is a target; "last": last position of each
        prefix; "packed": "all" windows packed into full rows (the DR4SR
        code's protocol, causal models only; see the module docstring).
        "auto" picks "all" for causal models and "last" otherwise.
    epochs : int, default 200
        Upper bound; early stopping usually ends the run first.
    batch_size : int, default 256
    lr : float, default 1e-3
    weight_decay : float, default 0.0
    patience : int, default 20
        Evaluations without improvement of ``valid_metric`` before stopping.
    valid_metric : str, default "ndcg@20"
    eval_every : int, default 1
        Epochs between validations.
    eval_batch_size : int, default 1024
    ks : tuple of int, default (10, 20, 50)
    exclude_history : bool, default True
        Remove history items from the ranking (see `fastregen.evaluation`).
    num_threads : int, default 2
        torch intra-op threads (0 leaves torch's setting alone).
    length_bucketing : bool, default True
        Group examples of similar length into batches and drop all-padding
        columns (same gradients in expectation, several times faster on
        short-sequence data such as Amazon Beauty).
    seed : int, default 0
    progress : bool, default True
        tqdm bar per epoch.
    device : str, default "cpu"
    """

    model: str = "sasrec"
    model_kwargs: dict = field(default_factory=dict)
    embed_dim: int = 64
    max_len: int = 50
    loss: str = "auto"
    num_negatives: int = 0
    temperature: float = 1.0
    train_targets: str = "auto"
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 20
    valid_metric: str = "ndcg@20"
    eval_every: int = 1
    eval_batch_size: int = 1024
    ks: tuple = DEFAULT_KS
    exclude_history: bool = True
    num_threads: int = 2
    length_bucketing: bool = True
    seed: int = 0
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        from .models import model_class

        model_class(self.model)  # unknown names fail here, listing the valid ones
        if self.loss not in LOSSES + ("auto",):
            raise ValueError(f"unknown loss {self.loss!r}; valid: auto, {', '.join(LOSSES)}")
        if self.train_targets not in TRAIN_TARGETS:
            raise ValueError(f"train_targets must be one of {', '.join(map(repr, TRAIN_TARGETS))}, "
                             f"got {self.train_targets!r}")
        if not isinstance(self.num_negatives, int) or self.num_negatives < 0:
            raise ValueError(f"num_negatives must be an int >= 0, got {self.num_negatives!r}")
        for name in ("embed_dim", "max_len", "epochs", "batch_size", "eval_every", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        self.ks = tuple(int(k) for k in self.ks)
        metric_names = {f"{m}@{k}" for m in ("recall", "ndcg") for k in self.ks} | {"mrr", "auc"}
        if self.valid_metric not in metric_names:
            raise ValueError(f"valid_metric {self.valid_metric!r} is not computed; choose one of {sorted(metric_names)}")
        if not isinstance(self.model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(self.model_kwargs).__name__}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator for the trainer's own draws."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# --------------------------------------------------------------------- losses
def _denominator(targets: torch.Tensor) -> torch.Tensor:
    return (targets > 0).sum().clamp_min(1).to(torch.float32)


def bce_loss(hidden, item_weight, targets, negatives, weights=None) -> torch.Tensor:
    """Binary cross-entropy with sampled negatives.

    ``sum_p w_p [softplus(-h_p.e_t) + mean_r softplus(h_p.e_nr)] / #targets``.

    Parameters
    ----------
    hidden : torch.Tensor, shape (B, L, d)
    item_weight : torch.Tensor, shape (num_items + 1, d)
    targets : torch.Tensor of int64, shape (B, L)
        Next item per position, 0 where there is none.
    negatives : torch.Tensor of int64, shape (B, L, R)
    weights : torch.Tensor, shape (B, L), optional
        Per-position weights; defaults to ``targets > 0``.
    """
    if weights is None:
        weights = (targets > 0).float()
    pos = (hidden * F.embedding(targets, item_weight)).sum(-1)
    neg = torch.einsum("bld,blrd->blr", hidden, F.embedding(negatives, item_weight))
    per = F.softplus(-pos) + F.softplus(neg).mean(-1)
    return (per * weights).sum() / _denominator(targets)


def sampled_softmax_loss(hidden, item_weight, targets, negatives, weights=None, temperature: float = 1.0) -> torch.Tensor:
    """Sampled softmax: the target against ``R`` shared negatives, logits / temperature.

    Parameters as `bce_loss`, but ``negatives`` has shape (R,) (shared by the
    batch) or (B, L, R). A negative equal to the position's target is masked.
    """
    if weights is None:
        weights = (targets > 0).float()
    pos = (hidden * F.embedding(targets, item_weight)).sum(-1, keepdim=True)
    if negatives.dim() == 1:
        neg = hidden @ item_weight[negatives].T  # (B, L, R)
        clash = targets[..., None] == negatives[None, None, :]
    else:
        neg = torch.einsum("bld,blrd->blr", hidden, F.embedding(negatives, item_weight))
        clash = targets[..., None] == negatives
    logits = torch.cat([pos, neg.masked_fill(clash, float("-inf"))], -1) / temperature
    per = torch.logsumexp(logits, -1) - logits[..., 0]
    return (per * weights).sum() / _denominator(targets)


def softmax_loss(hidden, item_weight, targets, weights=None, temperature: float = 1.0) -> torch.Tensor:
    """Full softmax cross-entropy over items 1..num_items (padding excluded).

    Only positions with a target are scored, so memory is (#targets, num_items).
    """
    if weights is None:
        weights = (targets > 0).float()
    sel = targets > 0
    h = hidden[sel]
    logits = (h @ item_weight.T) / temperature
    logits[:, 0] = float("-inf")
    per = F.cross_entropy(logits, targets[sel], reduction="none")
    return (per * weights[sel]).sum() / _denominator(targets)


# ------------------------------------------------------------------ examples
def gather_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Rows ``items[max(start, end - width):end]`` left-padded with 0 to ``width`` (vectorised).

    Returns np.ndarray of int64, shape (len(ends), width).
    """
    ends = np.asarray(ends, dtype=np.int64)
    idx = ends[:, None] - width + np.arange(width, dtype=np.int64)[None, :]
    valid = idx >= np.asarray(starts, dtype=np.int64)[:, None]
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        return np.zeros(idx.shape, dtype=np.int64)
    return np.where(valid, items[np.clip(idx, 0, items.size - 1)], 0)


def build_examples(data: SequenceDataset, max_len: int, mode: str = "all", sequence_weights=None):
    """Training examples of a dataset, built once with NumPy.

    Parameters
    ----------
    data : SequenceDataset
    max_len : int
    mode : {"all", "last", "packed"}
        "all": windows of ``max_len + 1`` items, every position a target;
        "last": one example per (sequence, position >= 1): the ``max_len``
        items before it, target at the last column only; "packed": the
        "all" windows packed into rows of ``max_len`` columns
        (`pack_segments`).
    sequence_weights : array of float, shape (n_sequences,), optional
        Weight of every target of each sequence (default 1).

    Returns
    -------
    inputs, targets : np.ndarray of int64, shape (n_examples, max_len)
    weights : np.ndarray of float32, shape (n_examples, max_len)
        ``sequence_weight`` where ``targets > 0``, else 0.
    """
    offsets = data.offsets
    lengths = data.lengths
    n = len(data)
    sw = np.ones(n, dtype=np.float32) if sequence_weights is None else np.asarray(sequence_weights, dtype=np.float32)
    if sw.shape != (n,):
        raise ValueError(f"sequence_weights must have shape ({n},), got {sw.shape}")
    if mode in ("all", "packed"):
        # windows end at n, n - L, n - 2L, ... while they hold >= 2 items
        n_windows = np.where(lengths >= 2, np.ceil(np.maximum(lengths - 1, 0) / max_len), 0).astype(np.int64)
        seq = np.repeat(np.arange(n), n_windows)
        k = np.arange(seq.size) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
        ends = offsets[seq + 1] - k * max_len
        starts = offsets[seq]
        win = gather_windows(data.items, starts, ends, max_len + 1)
        inputs, targets = win[:, :-1], win[:, 1:].copy()
        targets[inputs == 0] = 0  # the first item of a sequence has no history to predict it from
    elif mode == "last":
        # one example per interaction that has at least one item before it
        pos = np.arange(data.num_interactions, dtype=np.int64)
        seq_of = np.repeat(np.arange(n), lengths)
        keep = pos > offsets[seq_of]
        pos, seq = pos[keep], seq_of[keep]
        inputs = gather_windows(data.items, offsets[seq], pos, max_len)
        targets = np.zeros_like(inputs)
        targets[:, -1] = data.items[pos]
    else:
        raise ValueError(f"mode must be 'all', 'last' or 'packed', got {mode!r}")
    weights = (targets > 0).astype(np.float32) * sw[seq][:, None]
    if mode == "packed":
        # every "all" window holds >= 2 items, so each segment has a target
        inputs, targets, weights = pack_segments(inputs, targets, weights)
    return inputs, targets, weights


def _greedy_rows(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The order segments are laid out in, and the row of each laid-out segment.

    Longest remaining segment first, then the shortest ones while they fit
    (the DR4SR code's ``CondenseDataset`` rule). A sequential two-pointer
    walk, run once per training run, not per epoch. Rows come out in
    order, so the returned rows are non-decreasing.
    """
    order = np.argsort(-lengths, kind="stable")
    lens = lengths[order].tolist()
    layout = np.empty(lengths.size, dtype=np.int64)
    seg_row = np.empty(lengths.size, dtype=np.int64)
    lo, hi, row, k = 0, lengths.size - 1, 0, 0
    while lo <= hi:
        used = lens[lo]
        layout[k], seg_row[k] = order[lo], row
        lo, k = lo + 1, k + 1
        while lo <= hi and used + lens[hi] <= width:
            used += lens[hi]
            layout[k], seg_row[k] = order[hi], row
            hi, k = hi - 1, k + 1
        row += 1
    return layout, seg_row


def pack_segments(inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray):
    """Pack left-padded training segments into as few full rows as possible.

    Parameters
    ----------
    inputs, targets : np.ndarray of int64, shape (n, L)
        Left-padded segments (``build_examples(..., "all")``); a segment's
        length is its number of non-zero inputs.
    weights : np.ndarray of float32, shape (n, L)

    Returns
    -------
    inputs, targets, weights : np.ndarray, shape (n_rows, L)
        Rows left-padded, segments in layout order (`_greedy_rows`), each
        position with its own target and weight. Every input item and target
        is kept exactly once.
    """
    n, L = inputs.shape
    if n == 0:
        return inputs, targets, weights
    lengths = (inputs > 0).sum(1).astype(np.int64)
    layout, seg_row = _greedy_rows(lengths, L)
    n_rows = int(seg_row[-1]) + 1
    seg_len = lengths[layout]
    row_len = np.bincount(seg_row, weights=seg_len, minlength=n_rows).astype(np.int64)
    # column where each segment starts: rows are right-aligned, segments in layout order
    before = np.cumsum(seg_len) - seg_len
    row_first = np.searchsorted(seg_row, np.arange(n_rows))
    start = (L - row_len[seg_row]) + before - before[row_first[seg_row]]
    seg = np.repeat(layout, seg_len)
    j = np.arange(seg.size) - np.repeat(before, seg_len)
    src_col = L - lengths[seg] + j
    dst_row = np.repeat(seg_row, seg_len)
    dst_col = np.repeat(start, seg_len) + j
    out = []
    for a in (inputs, targets, weights):
        b = np.zeros((n_rows, L), dtype=a.dtype)
        b[dst_row, dst_col] = a[seg, src_col]
        out.append(b)
    return tuple(out)


# -------------------------------------------------------------------- trainer
def resolve_loss(cfg: TrainConfig) -> tuple[str, int]:
    """The loss and number of negatives a config means once "auto" values are filled in."""
    from .models import model_class

    loss = model_class(cfg.model).default_loss if cfg.loss == "auto" else cfg.loss
    neg = cfg.num_negatives or (128 if loss == "sampled_softmax" else 1)
    return loss, neg


def training_loss(cfg: TrainConfig, model, hidden, targets, weights, generator) -> torch.Tensor:
    """The configured loss of one batch: ``hidden`` (B, L, d) from ``model``, ``targets`` and
    ``weights`` (B, L); negatives are drawn from ``generator``. Model auxiliary losses
    (CL4SRec) are not included: see `SequentialRecommender.auxiliary_loss`."""
    table = model.item_weight()
    N = model.num_items
    loss, R = resolve_loss(cfg)
    if loss == "bce":
        neg = torch.randint(1, N + 1, (*targets.shape, R), generator=generator).to(hidden.device)
        return bce_loss(hidden, table, targets, neg, weights)
    if loss == "sampled_softmax":
        neg = torch.randint(1, N + 1, (R,), generator=generator).to(hidden.device)
        return sampled_softmax_loss(hidden, table, targets, neg, weights, cfg.temperature)
    return softmax_loss(hidden, table, targets, weights, cfg.temperature)


def _batches(inputs: torch.Tensor, batch_size: int, bucketing: bool, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one epoch in a seeded random order (`length_bucketed_batches`)."""
    lengths = (inputs > 0).sum(1).numpy() if bucketing else None
    batches = length_bucketed_batches(
        inputs.size(0), batch_size, lambda m: torch.randperm(m, generator=generator).numpy(), lengths)
    return [torch.from_numpy(b) for b in batches]


def train_epoch(model, optimizer, cfg: TrainConfig, inputs, targets, weights, generator, desc: str = "") -> float:
    """One pass over the examples in a seeded random order; returns the mean loss."""
    from ._progress import progress_bar

    model.train()
    device = next(model.parameters()).device
    batches_idx = _batches(inputs, cfg.batch_size, cfg.length_bucketing, generator)
    total, batches = 0.0, 0
    bar = progress_bar(batches_idx, enabled=cfg.progress, desc=desc, unit="batch")
    for idx in bar:
        x = inputs[idx]
        # Left padding: columns before the longest row of the batch are all
        # padding and (for causal models) change nothing; drop them.
        width = int((x > 0).sum(1).max())
        width = max(width, 1)
        x = x[:, -width:].to(device)
        y = targets[idx][:, -width:].to(device)
        w = weights[idx][:, -width:].to(device)
        hidden = model(x)
        loss = training_loss(cfg, model, hidden, y, w, generator)
        row_w = w.sum(1) / (y > 0).sum(1).clamp_min(1)
        aux = model.auxiliary_loss(x, row_w, generator)
        if aux is not None:
            loss = loss + aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        batches += 1
    bar.close()
    return total / max(batches, 1)


def fit(cfg: TrainConfig, train_data: SequenceDataset, valid, num_items: int | None = None,
        sequence_weights=None, log=None) -> dict:
    """Train ``cfg.model`` on ``train_data``, early-stopping on ``valid`` (an `EvalSplit`).

    Parameters
    ----------
    cfg : TrainConfig
    train_data : SequenceDataset
        Training sequences (ids within ``num_items``).
    valid : fastregen.data.EvalSplit
        Validation histories and targets (early stopping on ``cfg.valid_metric``).
    num_items : int, optional
        Size of the item table; defaults to ``train_data.num_items``.
    sequence_weights : array of float, shape (len(train_data),), optional
        Weight of every target of each training sequence.
    log : callable, optional
        Called with each epoch's record (dict).

    Returns
    -------
    dict
        ``model`` (best state loaded, eval mode), ``valid`` (best validation
        metrics), ``best_epoch``, ``epochs``, ``seconds_per_epoch`` (median
        training time), ``history``, ``train_examples``, ``train_targets``,
        ``loss``, ``num_negatives``.
    """
    from .models import build_model

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    generator = seed_everything(cfg.seed)
    num_items = int(num_items or train_data.num_items)
    if train_data.num_items > num_items:
        raise ValueError(f"training data holds item id {train_data.num_items} > num_items = {num_items}")
    kwargs = dict(cfg.model_kwargs)
    kwargs.setdefault("embed_dim", cfg.embed_dim)
    kwargs.setdefault("max_len", cfg.max_len)
    model = build_model(cfg.model, num_items, **kwargs)
    if hasattr(model, "set_graph"):
        model.set_graph(train_data.replace(num_items=num_items))
    model.to(cfg.device)
    mode = cfg.train_targets if cfg.train_targets != "auto" else ("all" if model.causal else "last")
    if mode == "packed" and not model.causal:
        raise ValueError(f"train_targets='packed' needs a causal model; {cfg.model!r} is not causal "
                         "(its positions see later items), use 'last'")
    x, y, w = build_examples(train_data, model.max_len, mode, sequence_weights)
    keep = (y > 0).any(1)
    if not keep.any():
        raise ValueError("the training data holds no sequence with two or more items: nothing to learn")
    x, y, w = (torch.from_numpy(a[keep]) for a in (x, y, w))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    best, best_epoch, best_state, since = -math.inf, -1, None, 0
    history, train_seconds = [], []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        loss = train_epoch(model, optimizer, cfg, x, y, w, generator, desc=f"{cfg.model} epoch {epoch}")
        train_seconds.append(time.perf_counter() - t0)
        record = {"epoch": epoch, "loss": loss, "train_seconds": train_seconds[-1]}
        if (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            t1 = time.perf_counter()
            metrics = evaluate(model, valid, cfg.ks, cfg.exclude_history, cfg.eval_batch_size)
            record["eval_seconds"] = time.perf_counter() - t1
            record.update({f"valid_{k}": v for k, v in metrics.items()})
            score = metrics[cfg.valid_metric]
            if score > best:
                best, best_epoch, since = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
                best_metrics = metrics
            else:
                since += 1
        history.append(record)
        if log is not None:
            log(record)
        if best_state is not None and since > cfg.patience:
            break
    if best_state is None:
        raise FloatingPointError(f"validation {cfg.valid_metric} was never finite; training diverged")
    model.load_state_dict(best_state)
    model.eval()
    return {
        "model": model,
        "valid": best_metrics,
        "best_epoch": best_epoch,
        "epochs": len(history),
        "seconds_per_epoch": float(np.median(train_seconds)),
        "history": history,
        "train_examples": int(x.size(0)),
        "train_targets": mode,
        "loss": resolve_loss(cfg)[0],
        "num_negatives": resolve_loss(cfg)[1],
    }


def union(*datasets: SequenceDataset, weights=None) -> SequenceDataset:
    """Concatenate training datasets, tagging each sequence with its source.

    Parameters
    ----------
    *datasets : SequenceDataset
        E.g. the original train split and a regenerated dataset.
    weights : sequence of float, optional
        One weight per dataset, applied to all its sequences' targets.

    Returns
    -------
    SequenceDataset
        ``meta["source"]`` (int64, index of the dataset each sequence came
        from) and ``meta["weights"]`` (float32 per sequence, read by
        `fit_and_evaluate`).
    """
    if not datasets:
        raise ValueError("union needs at least one dataset")
    if weights is None:
        weights = [1.0] * len(datasets)
    if len(weights) != len(datasets):
        raise ValueError(f"{len(weights)} weights for {len(datasets)} datasets")
    source = np.repeat(np.arange(len(datasets)), [len(d) for d in datasets]).astype(np.int64)
    seq_w = np.asarray(weights, dtype=np.float32)[source]
    return concat(
        *datasets,
        name="+".join(d.name or "?" for d in datasets),
        meta={"source": source, "weights": seq_w},
    )


def fit_and_evaluate(data, model: str = "sasrec", seed: int = 0, train_data=None, out_dir=None, **config) -> dict:
    """Split ``data`` leave-one-out, train, early-stop on validation, test.

    Parameters
    ----------
    data : SequenceDataset or path
        The original sequences. Validation targets are each user's
        second-to-last item, test targets the last (see
        `fastregen.data.leave_one_out`).
    model : str, default "sasrec"
        A registered model name.
    seed : int, default 0
    train_data : SequenceDataset or path, optional
        What to train on instead of the train split of ``data`` (e.g. a
        regenerated dataset, or its union with the train split). Its item ids
        must be ids of ``data``. ``train_data.meta["weights"]`` (one float per
        sequence), when present, weights each sequence's targets.
    out_dir : path, optional
        Writes ``config.yaml``, ``provenance.json``, ``metrics.jsonl`` (one
        line per epoch), ``result.json`` and ``model.pt`` (reload with
        `fastregen.models.load_model`).
    **config
        `TrainConfig` fields (``epochs``, ``loss``, ``lr``, ...), and/or
        ``config=TrainConfig(...)`` as the base they override. The ``model``
        and ``seed`` arguments always win over the base config's.

    Returns
    -------
    dict
        ``valid`` and ``test``: metric dicts (``recall@10``, ``ndcg@20``,
        ``mrr``, ``auc``, ...); ``model``: the trained model (best
        validation state); ``checkpoint``: path of ``model.pt`` or None;
        ``best_epoch``, ``epochs``, ``seconds_per_epoch``, ``seconds``,
        ``config`` (dict) and ``history``.
    """
    base = config.pop("config", None)
    if base is not None:
        values = dataclasses.asdict(base)
        values.update(config)
    else:
        values = dict(config)
    values["model"] = model
    values["seed"] = seed
    cfg = config_from_dict(TrainConfig, values)
    data = as_dataset(data)
    split = leave_one_out(data)
    train = split.train if train_data is None else as_dataset(train_data)
    num_items = max(data.num_items, train.num_items)
    weights = train.meta.get("weights") if train_data is not None else None

    log_file = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        log_file = open(out_dir / "metrics.jsonl", "w")

    def log(record):
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    t0 = time.perf_counter()
    try:
        result = fit(cfg, train, split.valid, num_items=num_items, sequence_weights=weights, log=log)
    finally:
        if log_file is not None:
            log_file.close()
    net = result["model"]
    result["test"] = evaluate(net, split.test, cfg.ks, cfg.exclude_history, cfg.eval_batch_size)
    result["seconds"] = time.perf_counter() - t0
    result["config"] = dataclasses.asdict(cfg)
    result["checkpoint"] = None
    if out_dir is not None:
        from ._io import atomic_write_text
        from .models import save_model

        ckpt = out_dir / "model.pt"
        save_model(net, ckpt, best_epoch=result["best_epoch"])
        result["checkpoint"] = os.fspath(ckpt)
        summary = {k: v for k, v in result.items() if k not in ("model", "history")}
        atomic_write_text(out_dir / "result.json", json.dumps(summary, indent=2, default=str) + "\n")
        prov = provenance(
            cfg,
            data=getattr(data, "name", ""),
            train_data=None if train_data is None else getattr(train, "name", "<in-memory>"),
            command="fastregen.train.fit_and_evaluate",
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
        )
        atomic_write_text(out_dir / "provenance.json", json.dumps(prov, indent=2, default=str) + "\n")
    return result
