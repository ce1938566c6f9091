"""Training a target model end to end: `fit` (train + early stopping) and `fit_and_evaluate` (split, fit, test).

Both run on the one `fastregen.training.Trainer`; this module only wires the
pieces a target-model run needs: the model from the registry, its
`Examples`, the `NextItemLoss`, an `EarlyStopping` hook on the validation
split and the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from .._threads import apply_threads
from ..config import config_from_dict, config_to_dict, data_source, provenance, save_config
from ..data import SequenceDataset, as_dataset, leave_one_out
from ..evaluation import evaluate
from . import distributed
from .checkpoint import Checkpoint, array_sha256
from .config import RUNTIME_FIELDS, TrainConfig
from .examples import Examples
from .losses import DEFAULT_NUM_NEGATIVES, NegativeSampler, NextItemLoss, resolve_train_softmax
from .optim import LazyAdam
from .trainer import EarlyStopping, Trainer, adam

__all__ = ["fit", "fit_and_evaluate", "seed_everything", "resolve_loss", "negative_sampler", "build_target_model",
           "train_config", "fresh_model", "target_optimizer",
           "run_fingerprint", "CHECKPOINT"]

#: The epoch checkpoint in a `fit_and_evaluate` run folder.
CHECKPOINT = "checkpoint.pt"

# TrainConfig fields that change no result: a run resumes whatever they are.


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator for the caller's own draws."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_loss(cfg: TrainConfig) -> tuple[str, int]:
    """The loss and number of negatives a config means once "auto" values are filled in."""
    from ..models import model_class

    loss = model_class(cfg.model).default_loss if cfg.loss == "auto" else cfg.loss
    neg = cfg.num_negatives or (128 if loss == "sampled_softmax" else 1)
    return loss, neg


def target_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer `fit` trains ``model`` with: Adam(``cfg.lr``, ``cfg.weight_decay``), fused, or with
    ``cfg.item_updates="lazy"`` `LazyAdam` over ``model.item_embedding`` (fused Adam for the rest).

    A lazy run switches the model's item lookups to sparse gradients
    (``model.item_embedding.sparse = True``): the dense gradient of the
    lookup would be a zero-filled copy of the whole table every step, the
    cost the lazy update removes. The losses' lookups of the table are
    sparse already (`fastregen.training.losses`).
    """
    if cfg.item_updates == "lazy":
        model.item_embedding.sparse = True
        return LazyAdam(model.parameters(), [model.item_embedding.weight], lr=cfg.lr)
    return adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def negative_sampler(cfg: TrainConfig, num_items: int, train_data: SequenceDataset):
    """The `NegativeSampler` of ``cfg.train_softmax`` for the softmax loss, or None (the full softmax).

    Uniform negatives (``cfg.num_negatives``, 0: `DEFAULT_NUM_NEGATIVES`)
    over items 1..num_items plus the batch's targets, whose log-Q
    correction takes each item's frequency in ``train_data``.
    """
    loss, _ = resolve_loss(cfg)
    if cfg.train_softmax != "full" and loss != "softmax":
        raise ValueError(f"train_softmax = {cfg.train_softmax!r} samples the full softmax loss; "
                         f"{cfg.model}'s loss is {loss!r}")
    if loss != "softmax" or resolve_train_softmax(cfg.train_softmax, num_items) == "full":
        return None
    counts = np.bincount(train_data.items, minlength=num_items + 1)[: num_items + 1]
    return NegativeSampler(cfg.num_negatives or DEFAULT_NUM_NEGATIVES, 1, num_items + 1, counts)


def build_target_model(cfg: TrainConfig, num_items: int, train_data: SequenceDataset | None = None):
    """The configured model, with its item-transition graph when it has one (GNN)."""
    from ..models import build_model

    kwargs = dict(cfg.model_kwargs)
    kwargs.setdefault("embed_dim", cfg.embed_dim)
    kwargs.setdefault("max_len", cfg.max_len)
    if cfg.positions != "recent":
        kwargs.setdefault("positions", cfg.positions)
    model = build_model(cfg.model, num_items, **kwargs)
    if train_data is not None and hasattr(model, "set_graph"):
        model.set_graph(train_data.replace(num_items=num_items))
    return model


def train_config(model: str, seed: int, config: dict) -> TrainConfig:
    """The `TrainConfig` of `fit_and_evaluate`'s arguments, checked.

    ``config["config"]`` (a TrainConfig), when there, is the base; the other
    entries of ``config`` override its fields; ``model`` and ``seed`` win
    over both. ``config`` is not changed.
    """
    config = dict(config)
    base = config.pop("config", None)
    values = dataclasses.asdict(base) if base is not None else {}
    values.update(config)
    values.update(model=model, seed=seed)
    return config_from_dict(TrainConfig, values)


def fresh_model(cfg: TrainConfig, num_items: int, train_data: SequenceDataset | None = None):
    """The model `fit` trains when given none: threads set (``cfg.num_threads``), Python, NumPy and
    torch seeded with ``cfg.seed``, then `build_target_model` -- so a caller that adds to the model
    (a DR4SR+ personalizer on its hidden states) starts from the same initialisation as a plain fit."""
    apply_threads(cfg.num_threads)
    seed_everything(cfg.seed)  # model initialisation and dropout
    return build_target_model(cfg, num_items, train_data)


def run_fingerprint(cfg: TrainConfig, data: SequenceDataset, train_data: SequenceDataset, sequence_weights=None) -> dict:
    """What a resumed `fit_and_evaluate` run must share with the run that wrote its checkpoint.

    The config (less the fields that change no result: ``progress``,
    ``num_threads``, ``device``, ``eval_batch_size``) and content hashes of
    the data (offsets and items) and of the training data (with its
    sequence weights).
    """
    return {
        "config": {k: v for k, v in config_to_dict(cfg).items() if k not in RUNTIME_FIELDS},
        "data_sha256": array_sha256(data.offsets, data.items),
        "train_data_sha256": array_sha256(train_data.offsets, train_data.items,
                                          None if sequence_weights is None else np.asarray(sequence_weights)),
    }


def fit(cfg: TrainConfig, train_data: SequenceDataset, valid, num_items: int | None = None,
        sequence_weights=None, log=None, hooks=(), objective=None, model=None, optimizer=None,
        checkpoint=None) -> dict:
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
    hooks : sequence of `fastregen.training.Hook`, optional
        Run after the early-stopping hook (a DR4SR+ upper level, a logger).
    objective : callable, optional
        Replaces the configured `NextItemLoss` (same call signature).
    model : SequentialRecommender, optional
        Train this model instead of a fresh one from the registry. The
        random state is then the caller's: a model built by
        `build_target_model` right after ``seed_everything(cfg.seed)`` trains
        exactly as the one `fit` would build.
    optimizer : torch.optim.Optimizer, optional
        Replaces the default `target_optimizer` (e.g. one that also owns an
        objective's own parameters); needs ``cfg.item_updates="dense"``.
    checkpoint : Checkpoint or path-like, optional
        The epoch checkpoint of the run (`fastregen.training.Trainer`):
        written after every epoch, resumed from when it holds this run.

    Returns
    -------
    dict
        ``model`` (best state loaded, eval mode), ``valid`` (best validation
        metrics), ``best_epoch``, ``epochs``, ``seconds_per_epoch`` (median
        training time), ``history``, ``train_examples``, ``train_targets``,
        ``loss``, ``num_negatives``, ``train_softmax`` (resolved),
        ``trainer``, ``resumed_epochs`` (epochs
        found done in the checkpoint).
    """
    apply_threads(cfg.num_threads)  # "auto": the cores free now (fastregen._threads)
    num_items = int(num_items or train_data.num_items)
    if train_data.num_items > num_items:
        raise ValueError(f"training data holds item id {train_data.num_items} > num_items = {num_items}")
    if model is None:
        model = fresh_model(cfg, num_items, train_data)
    mode = cfg.resolved_targets(model.causal)
    if mode == "packed" and not model.causal:
        raise ValueError(f"train_targets='packed' needs a causal model; {cfg.model!r} is not causal "
                         "(its positions see later items), use 'last'")
    examples = Examples(train_data, model.max_len, mode, sequence_weights)
    if examples.total_targets == 0:
        raise ValueError("the training data holds no sequence with two or more items: nothing to learn")
    if cfg.reppad:
        if mode != "all":
            raise ValueError(f"reppad = {cfg.reppad} needs train_targets='all' (one row per sequence, a causal "
                             f"model); this run uses {mode!r} ({cfg.model})")
        from .reppad import RepPad

        examples = RepPad(examples, cfg.reppad, seed=cfg.seed)
    loss_name, negatives = resolve_loss(cfg)
    sampler = negative_sampler(cfg, num_items, train_data)
    if sampler is not None:
        negatives = sampler.num_negatives
    objective = objective or NextItemLoss(loss_name, negatives, cfg.temperature, sampler=sampler)
    if optimizer is None:  # on the model where it trains, as the Trainer builds its default one
        optimizer = target_optimizer(cfg, model.to(cfg.device))
    elif cfg.item_updates != "dense":
        raise ValueError(f"item_updates={cfg.item_updates!r} builds fastregen's own optimizer; "
                         f"got optimizer={type(optimizer).__name__} (use item_updates='dense')")
    stopper = EarlyStopping(
        lambda m: evaluate(m, valid, cfg.valid_ks(), cfg.exclude_history, cfg.eval_batch_size,
                           repeated_target=cfg.repeated_target, max_rank=cfg.valid_max_rank),
        cfg.valid_metric, mode="max", patience=cfg.patience, every=cfg.eval_every)
    trainer = Trainer(model, objective, optimizer=optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay, hooks=[stopper, *hooks],
                      batch_size=cfg.batch_size, bucketing=cfg.length_bucketing, bucket_window=cfg.bucket_window,
                      normalisation=cfg.loss_normalisation, seed=cfg.seed, device=cfg.device,
                      progress=cfg.progress, desc=cfg.model, log=log, checkpoint=checkpoint)
    history = trainer.fit(examples, cfg.epochs)
    return {
        "model": model,
        "valid": stopper.best,
        "best_epoch": stopper.best_epoch,
        "epochs": len(history),
        "seconds_per_epoch": float(np.median([r["train_seconds"] for r in history])),
        "history": history,
        "train_examples": len(examples),
        "train_targets": mode,
        "loss": loss_name,
        "num_negatives": negatives,
        "train_softmax": "full" if sampler is None else "sampled",
        "trainer": trainer,
        "resumed_epochs": trainer.resumed_epochs,
    }


def fit_and_evaluate(data, model="sasrec", seed: int = 0, train_data=None, out_dir=None, *,
                     hooks=(), log=None, objective=None, optimizer=None, fingerprint: dict | None = None,
                     **config) -> dict:
    """Split ``data`` leave-one-out, train, early-stop on validation, test.

    Parameters
    ----------
    data : SequenceDataset or path
        The original sequences. Validation targets are each user's
        second-to-last item, test targets the last (see
        `fastregen.data.leave_one_out`).
    model : str or SequentialRecommender, default "sasrec"
        A registered model name, or a model already built (for its name's
        config) that is trained in place.
    seed : int, default 0
    train_data : SequenceDataset or path, optional
        What to train on instead of the train split of ``data`` (e.g. a
        regenerated dataset, or its `fastregen.data.concat` with the train split). Its item ids
        must be ids of ``data``. ``train_data.meta["weights"]`` (one float per
        sequence), when present, weights each sequence's targets.
    out_dir : path, optional
        Writes ``config.yaml``, ``provenance.json``, ``metrics.jsonl`` (one
        line per epoch), ``result.json``, ``test_ranks.npy`` (each test
        user's 0-based rank of the target, for paired significance tests)
        and ``model.pt`` (reload with `fastregen.models.load_model`), and
        ``checkpoint.pt``, the epoch checkpoint (`fastregen.training.checkpoint`).
        A rerun into the same folder resumes: an interrupted run goes on
        from its last finished epoch (``metrics.jsonl`` is rewritten with
        the epochs the checkpoint holds; the result is the one of an
        uninterrupted run, bit for bit on the CPU), a finished one
        (``result.json`` written) trains and writes nothing and returns
        what is in the folder. A rerun with another config or other data
        raises a one-line ValueError naming the differing fields, and
        leaves the folder as it was.
    hooks : sequence of `fastregen.training.Hook`, optional
        Extra hooks for the Trainer.
    log : callable, optional
        Called with each epoch's record (after it is written to ``metrics.jsonl``).
    objective, optimizer : optional
        Passed to `fit` (a weighted objective, an optimizer that also owns
        the objective's parameters).
    fingerprint : dict, optional
        More of the run's identity for the resume check (e.g. the config of
        a hook's method), beside the config and data hashes
        (`run_fingerprint`).
    **config
        `TrainConfig` fields (``epochs``, ``loss``, ``lr``, ...), and/or
        ``config=TrainConfig(...)`` as the base they override. The ``model``
        and ``seed`` arguments always win over the base config's.

    Under torch.distributed (torchrun) the training is data-parallel and
    rank 0 alone evaluates and writes; on the other ranks ``valid``,
    ``test`` and ``test_ranks`` are None.

    Returns
    -------
    dict
        ``valid`` and ``test``: metric dicts (``recall@10``, ``ndcg@20``,
        ``mrr``, ``auc``, ...); ``test_ranks``: np.int64 (n_test_users,);
        ``model``: the trained model (best validation state); ``checkpoint``:
        path of ``model.pt`` or None; ``best_epoch``, ``epochs``,
        ``seconds_per_epoch``, ``seconds``, ``config`` (dict), ``history``
        and ``resumed_epochs`` (epochs found done in ``out_dir``).
    """
    net = None
    if not isinstance(model, str):
        net, model = model, getattr(model, "name", "")
    cfg = train_config(model, seed, config)
    data = as_dataset(data)
    if cfg.truncate_before_split:  # the DR4SR authors' preprocessing: cut, then split
        data = data.truncate(cfg.truncate_before_split)
    split = leave_one_out(data)
    train = split.train if train_data is None else as_dataset(train_data)
    if cfg.truncate_before_split and train_data is not None:
        train = train.truncate(cfg.truncate_before_split)
    num_items = max(data.num_items, train.num_items)
    weights = train.meta.get("weights") if train_data is not None else None

    main = distributed.is_main()  # under torch.distributed rank 0 alone writes and tests
    log_file = log_path = ckpt = None
    kept: list = []  # the epochs a resumed run keeps, written again to metrics.jsonl before its own
    finished = False
    if out_dir is not None:
        out_dir = Path(out_dir)
        ident = {**run_fingerprint(cfg, data, train, weights), **(fingerprint or {})}
        ckpt = Checkpoint(out_dir / CHECKPOINT, ident, defaults={"config": config_to_dict(TrainConfig())})
        # checked before anything is written: a run of another config leaves the folder untouched
        state = ckpt.load(only=ident)
        finished = state is not None and state["finished"] and (out_dir / "result.json").is_file()
        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            if state is None:
                save_config(cfg, out_dir / "config.yaml")
                log_file = open(out_dir / "metrics.jsonl", "w")
            elif not state["finished"]:
                # rewritten at the first new epoch, once the Trainer has checked the rest of the fingerprint
                log_path, kept = out_dir / "metrics.jsonl", list(state["history"])
        state = None  # the Trainer reads it from the checkpoint's cache

    def write_log(record):
        nonlocal log_file
        if log_file is None and log_path is not None:
            log_file = open(log_path, "w")
            log_file.writelines(json.dumps(old) + "\n" for old in kept)
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if log is not None:
            log(record)

    t0 = time.perf_counter()
    try:
        result = fit(cfg, train, split.valid, num_items=num_items, sequence_weights=weights, log=write_log,
                     hooks=hooks, objective=objective, model=net, optimizer=optimizer, checkpoint=ckpt)
    finally:
        if log_file is not None:
            log_file.close()
    net = result["model"]
    result["config"] = dataclasses.asdict(cfg)
    result["checkpoint"] = None
    if not main:
        result.update(test=None, test_ranks=None, seconds=time.perf_counter() - t0)
        return result
    if finished:  # the folder holds the finished run: what it wrote, nothing rewritten
        saved = json.loads((out_dir / "result.json").read_text())
        result.update(test=saved["test"], test_ranks=np.load(out_dir / "test_ranks.npy"),
                      seconds=saved.get("seconds"), checkpoint=os.fspath(out_dir / "model.pt"))
        return result
    test = evaluate(net, split.test, cfg.ks, cfg.exclude_history, cfg.eval_batch_size, return_ranks=True,
                    repeated_target=cfg.repeated_target)
    result["test_ranks"] = test.pop("ranks")
    result["test"] = test
    result["seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        from .._io import atomic_open, atomic_write_text
        from ..models import save_model

        ckpt = out_dir / "model.pt"
        save_model(net, ckpt, best_epoch=result["best_epoch"])
        result["checkpoint"] = os.fspath(ckpt)
        with atomic_open(out_dir / "test_ranks.npy", "wb") as f:
            np.save(f, result["test_ranks"])
        summary = {k: v for k, v in result.items() if k not in ("model", "history", "trainer", "test_ranks")}
        atomic_write_text(out_dir / "result.json", json.dumps(summary, indent=2, default=str) + "\n")
        prov = provenance(
            cfg,
            data=data_source(data),
            train_data=None if train_data is None else data_source(train),
            command="fastregen.training.fit_and_evaluate",
            processes=1 if result["trainer"].world is None else result["trainer"].world.size,
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
        )
        atomic_write_text(out_dir / "provenance.json", json.dumps(prov, indent=2, default=str) + "\n")
    return result
