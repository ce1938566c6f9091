"""`personalize`: a target model trained with the DR4SR+ personalizer, end to end, resumable.

>>> from fastregen import DR4SR                                           # doctest: +SKIP
>>> from fastregen.dr4sr.plus import personalize                         # doctest: +SKIP
>>> dr = DR4SR(epochs=10).fit("beauty.txt")                                # doctest: +SKIP
>>> res = personalize(dr.data, dr.regenerate(), model="sasrec")           # doctest: +SKIP
>>> res["test"]["ndcg@20"], res["weights"]["sampled"]                    # doctest: +SKIP

Everything runs on the one `fastregen.training.Trainer` (through
`fastregen.training.fit_and_evaluate`): the lower level is the target model
with a `NextItemLoss` whose ``weight_fn`` is the personalizer, the upper
level a `PersonalizerHook`.

Run folder (``out_dir``)
------------------------
What `fit_and_evaluate` writes (``config.yaml``, ``metrics.jsonl`` with the
personalizer's per-epoch figures, ``result.json``, ``test_ranks.npy``,
``model.pt``, ``provenance.json``), and:

=====================  ========================================================
``plus.yaml``          the `PlusConfig`
``personalizer.pt``    phi at the best epoch (`load_personalizer`)
``weights.npz``        the weight of every target of the lower-level training
                       set (`sequence_weights`: ``sampled``, ``noise_free``,
                       NaN where no target) with its ``offsets``, ``items``,
                       ``source`` tags and ``model`` name (Fig. 4:
                       ``fastregen plot weights``)
``personalize.json``   written last: the run's figures and fingerprint; a
                       rerun with the same configs and data loads the
                       folder instead of training
``stages.json``        the stage runner's record (`fastregen.pipeline`)
``checkpoint.pt``      the epoch checkpoint (`fit_and_evaluate`), with phi,
                       its optimizer and the upper level's random state
=====================  ========================================================

The run is one stage of the stage runner (`fastregen.pipeline.Pipeline`)
whose training primitive is the epoch checkpoint: a run interrupted before
``personalize.json`` resumes from its last epoch (the lower and upper levels
both: the result is the one of an uninterrupted run); one with another
`PlusConfig`, config or data is refused by the checkpoint with a ValueError
naming the differing fields (finished or not). Folders written before the
runner are recognised by the fingerprint in their ``personalize.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..._io import atomic_open, atomic_write_text
from ...config import config_to_dict, data_source, file_sha256, load_config, provenance, save_config
from ...data import SequenceDataset, as_dataset
from ...training import Examples, NextItemLoss, TrainConfig, adam, fit_and_evaluate
from ...training.fit import fresh_model, negative_sampler, resolve_loss, train_config
from ...pipeline import Pipeline, Stage, dataset_sha256
from .bilevel import PersonalizerHook, joint_parameters
from .config import PlusConfig
from .personalizer import (
    PersonalizedWeights,
    Personalizer,
    check_hidden_states,
    load_personalizer,
    pinned_interactions,
    save_personalizer,
    sequence_weights,
)

__all__ = ["personalize", "split_dev", "load_weights", "load_training_set"]

# TrainConfig fields that change no result: a finished run is reused whatever they are.
_RUNTIME = {"progress", "num_threads", "device", "eval_batch_size"}
_DONE = "personalize.json"
_STAGES = (Stage("personalize", (_DONE,)),)


def split_dev(train: SequenceDataset, config: PlusConfig) -> tuple[SequenceDataset, SequenceDataset | None]:
    """The lower-level training set and the held-out dev set of ``dev="heldout"`` (else ``(train, None)``).

    A seeded ``dev_fraction`` of the sequences with at least two items (of
    source ``config.dev_source`` when ``train`` is tagged with it) moves to
    the dev set. Raises ValueError when that leaves the dev set empty.
    """
    if config.mode != "bilevel" or config.dev != "heldout":
        return train, None
    eligible = train.lengths >= 2
    names = list(train.meta.get("source_names", ()))
    if "source" in train.meta and config.dev_source in names:
        eligible &= np.asarray(train.meta["source"]) == names.index(config.dev_source)
    pool = np.flatnonzero(eligible)
    n_dev = int(round(config.dev_fraction * pool.size))
    if n_dev == 0:
        where = f"source {config.dev_source!r}" if config.dev_source in names else "the training set"
        raise ValueError(f"the dev set is empty: dev_fraction = {config.dev_fraction} of the {pool.size} sequences "
                         f"with two or more items in {where} rounds to 0")
    rng = np.random.default_rng(config.seed)
    dev_idx = np.sort(rng.choice(pool, n_dev, replace=False))
    keep = np.ones(len(train), dtype=bool)
    keep[dev_idx] = False
    return train.subset(np.flatnonzero(keep)), train.subset(dev_idx)


def _fingerprint(cfg: TrainConfig, plus: PlusConfig, data, train, init) -> dict:
    return {
        "train_config": {k: v for k, v in config_to_dict(cfg).items() if k not in _RUNTIME},
        "plus_config": config_to_dict(plus),
        "data_sha256": dataset_sha256(data),
        "train_data_sha256": dataset_sha256(train),
        "init_sha256": None if init is None else file_sha256(init),
    }


def load_training_set(data, regen_dir, training_set: str | None = None):
    """A training set of a finished ``fastregen regenerate`` folder, tagged with its rows' sources.

    The folder's stages are reused as they are (nothing is retrained).

    Parameters
    ----------
    data : path or SequenceDataset
        The data the folder was regenerated from (checked by content hash).
    regen_dir : path
    training_set : str, optional
        A key of `fastregen.dr4sr.DR4SR.training_sets` (default: the set the
        folder wrote, its ``training_set`` option).

    Returns
    -------
    (SequenceDataset, SequenceDataset, str)
        The original data, the training set and its name.
    """
    from ..config import RegenConfig
    from ..pipeline import DR4SR

    regen_dir = Path(regen_dir)
    if not (regen_dir / "regenerated.json").exists() or not (regen_dir / "config.yaml").exists():
        raise ValueError(f"{regen_dir} is not a finished `fastregen regenerate` folder (no regenerated.json); "
                         "run `fastregen regenerate DATA --out DIR` first")
    cfg = load_config(RegenConfig, regen_dir / "config.yaml")
    cfg.progress = False
    dr = DR4SR(cfg).fit(data, out_dir=regen_dir)
    sets = dr.training_sets()
    name = cfg.training_set if training_set is None else training_set
    if name not in sets:
        raise ValueError(f"training set must be one of {', '.join(map(repr, sets))}, got {name!r}")
    return dr.data, sets[name], name


def load_weights(path) -> dict:
    """The arrays of a ``weights.npz`` (see the module docstring) as a dict."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same_run(out: Path, fingerprint: dict) -> bool:
    """A folder written before the stage runner: whether its finished run has this fingerprint."""
    return json.loads((out / _DONE).read_text()).get("fingerprint") == json.loads(json.dumps(fingerprint, default=str))


def _load_finished(out: Path) -> dict:
    """The result of the finished run in ``out``."""
    from ...models import load_model

    record = json.loads((out / _DONE).read_text())
    result = json.loads((out / "result.json").read_text())
    model = load_model(out / "model.pt")
    result.update(model=model, test_ranks=np.load(out / "test_ranks.npy"), resumed=True)
    with open(out / "metrics.jsonl") as f:
        result["history"] = [json.loads(line) for line in f if line.strip()]
    result["personalizer"] = load_personalizer(out / "personalizer.pt", model=model) \
        if (out / "personalizer.pt").exists() else None
    result["weights"] = load_weights(out / "weights.npz") if (out / "weights.npz").exists() else None
    result.update({k: v for k, v in record.items() if k not in ("fingerprint", "provenance")})
    return result


def personalize(data, train_data, model: str = "sasrec", seed: int = 0, *, plus: PlusConfig | None = None,
                out_dir=None, init=None, log=None, hooks=(), **config) -> dict:
    """Train a target model on ``train_data`` with the DR4SR+ personalizer; validate and test on ``data``.

    Parameters
    ----------
    data : SequenceDataset or path
        The original sequences (leave-one-out: validation = second-to-last
        item, test = last; neither is ever read by the upper level).
    train_data : SequenceDataset or path
        What the target model trains on (e.g. ``DR4SR.training_sets()["combined"]``,
        tagged with ``meta["source"]`` / ``meta["source_names"]``).
    model : str, default "sasrec"
        sasrec, gru4rec, fmlp, gnn, cl4srec (or any registered model with a
        hidden state per position).
    seed : int, default 0
        The target model's seed (``plus.seed`` seeds the personalizer's side).
    plus : PlusConfig, optional
        DR4SR+ options (default ``PlusConfig()``: bi-level, the released
        hyper-parameters, a held-out dev slice).
    out_dir : path, optional
        Run folder (module docstring); a finished run there is reused.
    init : path, optional
        A personalizer checkpoint (``personalizer.pt``) to start from; it
        must belong to the same target model and vocabulary.
    log : callable, optional
        Called with each epoch's record.
    hooks : sequence of fastregen.training.Hook, default ()
        More hooks for the target model's Trainer, after the personalizer's
        (e.g. one that adds figures to each epoch's record). A hook that
        keeps state across epochs must return it from ``state_dict`` for a
        resumed run to match.
    **config
        `fastregen.training.TrainConfig` fields (``epochs``, ``patience``,
        ...), and/or ``config=TrainConfig(...)`` as their base.

    Returns
    -------
    dict
        What `fastregen.training.fit_and_evaluate` returns (``valid``,
        ``test``, ``test_ranks``, ``model``, ``history``, ...) and
        ``personalizer`` (None with ``mode="off"``), ``weights`` (dict of
        per-interaction arrays, see `load_weights`; None with ``mode="off"``),
        ``upper_steps``, ``upper_skipped``, ``train_sequences``,
        ``dev_sequences``, ``resumed``.
    """
    plus = PlusConfig() if plus is None else plus
    if not isinstance(plus, PlusConfig):
        raise TypeError(f"plus must be a PlusConfig, got {type(plus).__name__}")
    plus.validate()
    cfg = train_config(model, seed, config)
    data, train = as_dataset(data), as_dataset(train_data)
    out = None if out_dir is None else Path(out_dir)
    fingerprint = _fingerprint(cfg, plus, data, train, init)
    pipe = Pipeline(_STAGES, out)
    pipe.open()  # the fingerprint holds the data's hashes
    # one stage; fit_and_evaluate runs data-parallel under torchrun, so every rank runs it
    return pipe.run("personalize", fingerprint,
                    lambda: _personalize(data, train, cfg, plus, out, init, log, tuple(hooks), fingerprint),
                    load=lambda: _load_finished(out), legacy=lambda: _same_run(out, fingerprint), every_rank=True)


def _personalize(data, train, cfg: TrainConfig, plus: PlusConfig, out: Path | None, init, log, hooks: tuple,
                 fingerprint: dict) -> dict:
    t0 = time.perf_counter()
    lower, dev = split_dev(train, plus)
    num_items = max(data.num_items, train.num_items)
    net = fresh_model(cfg, num_items, lower)  # the same initialisation as a plain fit_and_evaluate of this config
    personalizer = hook = objective = optimizer = None
    pinned = None
    if plus.mode != "off":
        width = check_hidden_states(net)
        if init is not None:
            personalizer = load_personalizer(init, model=net)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(plus.seed)
                personalizer = Personalizer(width, tau=plus.tau, tau_min=plus.tau_min, learn_tau=plus.learn_tau)
        personalizer.to(cfg.device)
        pinned = pinned_interactions(lower, plus.pin)
        weights = PersonalizedWeights(personalizer, pinned, differentiable=plus.mode == "end_to_end",
                                      detach_hidden=plus.detach_hidden)
        loss_name, negatives = resolve_loss(cfg)
        objective = NextItemLoss(loss_name, negatives, cfg.temperature, weight_fn=weights,
                                 sampler=negative_sampler(cfg, num_items, lower))  # train_softmax="sampled"
        protocol = cfg.resolved_targets(net.causal)
        dev_examples = None if dev is None else Examples(dev, net.max_len, protocol)
        hook = PersonalizerHook(personalizer, weights, plus, dev=dev_examples, batch_size=cfg.batch_size,
                                loss=loss_name, num_negatives=negatives, temperature=cfg.temperature)
        if plus.mode == "end_to_end":
            optimizer = adam(joint_parameters(net, personalizer), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = fit_and_evaluate(data, model=net, seed=cfg.seed, train_data=lower, out_dir=out,
                              hooks=hooks if hook is None else (hook, *hooks), log=log, objective=objective,
                              optimizer=optimizer, config=cfg,
                              fingerprint={k: fingerprint[k] for k in ("plus_config", "init_sha256")})
    net = result["model"]
    extra = {
        "train_sequences": len(lower),
        "dev_sequences": 0 if dev is None else len(dev),
        "upper_steps": 0 if hook is None else hook.upper_steps,
        "upper_skipped": 0 if hook is None else hook.upper_skipped,
    }
    result.update(extra, personalizer=personalizer, weights=None, resumed=False)
    if personalizer is not None:
        examples = Examples(lower, net.max_len, cfg.resolved_targets(net.causal))
        result["weights"] = sequence_weights(net, personalizer, examples, pinned=pinned, seed=plus.seed,
                                             batch_size=cfg.eval_batch_size)
    result["seconds"] = time.perf_counter() - t0
    if out is not None:
        _write(out, result, net, personalizer, lower, plus, cfg, fingerprint, extra, data, train)
    return result


def _write(out: Path, result, net, personalizer, lower, plus, cfg, fingerprint, extra, data, train) -> None:
    save_config(plus, out / "plus.yaml")
    if personalizer is not None:
        save_personalizer(personalizer, out / "personalizer.pt", model=net, best_epoch=result["best_epoch"])
        w = result["weights"]
        with atomic_open(out / "weights.npz", "wb") as f:
            np.savez_compressed(
                f, sampled=w["sampled"], noise_free=w["noise_free"], offsets=lower.offsets, items=lower.items,
                source=np.asarray(lower.meta.get("source", np.zeros(len(lower), np.int64))),
                source_names=np.asarray(list(lower.meta.get("source_names", ())), dtype=str),
                model=np.asarray(net.name), mode=np.asarray(plus.mode))
    record = {
        **extra,
        "seconds": result["seconds"],
        "fingerprint": fingerprint,
        "provenance": provenance(plus, train_config=config_to_dict(cfg), data=data_source(data),
                                 train_data=data_source(train), command="fastregen.dr4sr.plus.personalize",
                                 torch=torch.__version__, torch_threads=torch.get_num_threads()),
    }
    # the summary fit_and_evaluate wrote, with DR4SR+'s figures added
    summary = json.loads((out / "result.json").read_text())
    summary.update(extra, seconds=result["seconds"])
    atomic_write_text(out / "result.json", json.dumps(summary, indent=2, default=str) + "\n")
    atomic_write_text(out / _DONE, json.dumps(record, indent=2, default=str) + "\n")


def load_plus_config(path) -> PlusConfig:
    """A `PlusConfig` from YAML (`fastregen.config.load_config`)."""
    return load_config(PlusConfig, path)
