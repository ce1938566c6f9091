"""The whole DR4SR pipeline: mine -> pairs -> pre-train -> hybrid inference -> write.

`DR4SR` is the Python entry point; its stages run on the one stage runner,
`fastregen.pipeline.Pipeline`: with an ``out_dir`` every stage writes its
artifact there atomically and records its fingerprint (the options it and
the stages before it read, and the data's hash) in ``stages.json``; a rerun
skips the stages already finished, so an interrupted run resumes where it
stopped (a half-trained regenerator goes on from its last epoch,
``regenerator.resume.pt``, see `fastregen.generator.pretrain`). A stage
whose options changed is redone and the artifacts of the later stages are
removed; an epoch checkpoint of other options is refused (the runner's
policy, `fastregen.pipeline`). A folder written before the runner (no
``stages.json``) keeps its artifacts when its ``config.yaml`` matches.
`DR4SR.mine` runs the first stage alone, for the training sets that need
no regenerator.

Artifacts in ``out_dir``:

=============================  ==============================================
``config.yaml``                the `RegenConfig` that made the artifacts (a
                               rerun that changes a field redoes the stage
                               it affects and every later one)
``source.json``                path and content hash of the input data
``stages.json``                the fingerprint of every finished stage
``patterns.txt``               mined patterns (`fastregen.patterns.Patterns`)
``pairs.npz``                  pre-training pairs
``regenerator.pt``             the pre-trained regenerator (+ loss history)
``regenerator.resume.pt``      while pre-training: its epoch checkpoint
``regenerated_patterns.npz``   decoded, deduplicated patterns
``regenerated.txt``            the training set (``config.training_set``),
                               one line per sequence, loadable by
                               `fastregen.data.load`
``regenerated_patterns.txt``   the regenerated patterns alone, same format
``regenerated.json``           provenance, Table-2 statistics, stage times
=============================  ==============================================

Under torch.distributed (``torchrun --nproc-per-node N -m fastregen
regenerate ...``) rank 0 mines, builds the pairs and writes every artifact;
the other ranks read them once written. Pre-training is data-parallel and
hybrid inference is sharded (`fastregen.training.distributed`); the
regenerated data are the same as one process's for the same regenerator.
If any rank dies, torchrun stops the others, the stage under way leaves no
artifact (the regenerator's checkpoint stays ``complete=False``), and a
rerun, with any number of processes, resumes there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_open
from ..training import distributed
from ..config import config_identity, config_to_dict, load_config, provenance, save_config
from ..data import SequenceDataset, as_dataset, concat
from ..generator.decode import hybrid_inference, table2
from ..generator.model import Regenerator, load_checkpoint
from ..generator.pretrain import pretrain
from ..pipeline import Pipeline, Stage, dataset_sha256, write_provenance
from .config import RUNTIME_FIELDS, TRAINING_SETS, RegenConfig

__all__ = ["DR4SR", "STAGES"]

STAGES = ("patterns", "pairs", "regenerator", "inference", "write")

# Fields each stage's artifact depends on (a later stage depends on the earlier ones too); the regenerator
# reads every field not listed here and not in RUNTIME_FIELDS.
_STAGE_FIELDS = {
    "patterns": {"max_span", "min_support"},
    "pairs": {"max_pairs_per_sequence", "max_len", "seed"},
    "inference": {"gamma", "schedule", "restrict", "max_pattern_len", "min_pattern_len"},
    "write": {"training_set"},
}
_WRITTEN = ("regenerated.txt", "regenerated_patterns.txt", "regenerated.json")
_PIPELINE = (
    Stage("patterns", ("patterns.txt",)),
    Stage("pairs", ("pairs.npz",), ("patterns",)),
    Stage("regenerator", ("regenerator.pt",), ("pairs",)),
    Stage("inference", ("regenerated_patterns.npz",), ("regenerator",)),
    Stage("write", _WRITTEN, ("inference",)),
)


def _stage_fields(stage: str) -> set:
    """The RegenConfig fields stage ``stage`` reads, with those of every stage before it."""
    out: set = set()
    for s in STAGES:
        if s == "regenerator":
            out |= ({f.name for f in dataclasses.fields(RegenConfig)} - set(RUNTIME_FIELDS)
                    - set().union(*_STAGE_FIELDS.values()))
        else:
            out |= _STAGE_FIELDS[s]
        if s == stage:
            return out
    raise ValueError(f"unknown stage {stage!r}")


def _pretrain_identity(cfg: RegenConfig) -> dict:
    """The mining and pair options that shaped the pre-training pairs, in the regenerator's epoch
    checkpoint's fingerprint beside the generator's own options (as when the whole RegenConfig was)."""
    return {k: getattr(cfg, k) for k in ("max_span", "min_support", "max_pairs_per_sequence")}


class DR4SR:
    """DR4SR dataset regeneration (Yin et al., KDD 2024), end to end.

    >>> model = DR4SR(RegenConfig(epochs=5)).fit(data)      # doctest: +SKIP
    >>> train_set = model.regenerate()                      # doctest: +SKIP

    Parameters
    ----------
    config : RegenConfig, optional
        Defaults to ``RegenConfig()``.
    **overrides
        Config fields to change (``DR4SR(epochs=5, K=1)``).

    Attributes (after `fit`)
    ------------------------
    patterns : fastregen.patterns.Patterns
    pairs : fastregen.patterns.PretrainPairs
    regenerator : Regenerator
    history : list of dict
        Pre-training loss per epoch.
    stage_seconds : dict
        Wall time of each stage run in this process (0 for a reused one).
    stage_peak_rss : dict
        With ``measure_memory = True`` (set on the instance; the CLI does),
        the peak RSS in bytes of each stage run in this process
        (`fastregen.memory.PeakRSS`, which resets the process's high-water
        mark at each stage's start; the write stage includes building the
        training sets). Compare with `fastregen.memory.pipeline_estimates`.
    """

    measure_memory = False
    #: Called with one line at each stage's start and end (and for a reused
    #: stage); the CLI prints them on stderr, so that a log shows where a run is.
    log = None

    def __init__(self, config: RegenConfig | None = None, **overrides) -> None:
        config = RegenConfig() if config is None else config
        if not isinstance(config, RegenConfig):
            raise TypeError(f"config must be a RegenConfig, got {type(config).__name__}")
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.config.validate()
        self.data: SequenceDataset | None = None
        self.patterns = None
        self.pairs = None
        self.regenerator: Regenerator | None = None
        self.history: list[dict] = []
        self.regenerated: SequenceDataset | None = None
        self.inference_info: dict = {}
        self.stage_seconds: dict[str, float] = {}
        self.stage_peak_rss: dict[str, int] = {}
        self.out_dir: Path | None = None
        self._source: dict = {}

    # ---------------------------------------------------------------- stages
    def _prepare_dir(self, out_dir, data, data_path, *, whole_pipeline: bool) -> None:
        self._pipe = Pipeline(_PIPELINE, out_dir, log=self.log, measure_memory=self.measure_memory)
        self._pipe.seconds, self._pipe.peak_rss = self.stage_seconds, self.stage_peak_rss
        self._source = self._pipe.open(data, data_path, what="run",
                                       prepare=lambda out, legacy: self._write_config(out, whole_pipeline))
        self.out_dir = self._pipe.out

    def _write_config(self, out: Path, whole_pipeline: bool) -> None:
        """Keep the folder's config.yaml (for a folder that predates stages.json, what `_legacy` compares
        with), then write this run's: `fit` always; `mine` alone only when the mining changed, as
        mining must not relabel a finished regenerator made with other fields mining never reads."""
        cfg_path = out / "config.yaml"
        self._old_config = config_to_dict(load_config(RegenConfig, cfg_path)) if cfg_path.exists() else None
        new = config_to_dict(self.config)
        mining_same = self._old_config is not None and all(
            self._old_config.get(k) == new[k] for k in _STAGE_FIELDS["patterns"])
        if whole_pipeline or not mining_same:
            save_config(self.config, cfg_path)

    def _options(self, stage: str) -> dict:
        """What stage ``stage`` reads: its options and those of the stages before it, and the data."""
        cfg = config_identity(self.config)  # an option added since at its neutral value stays out
        return {"data": self._source.get("sha256"), **{k: cfg[k] for k in sorted(_stage_fields(stage)) if k in cfg}}

    def _legacy(self, stage: str) -> bool:
        """A folder written before stages.json: its artifacts of ``stage`` were made with this run's
        options when the config.yaml beside them agrees on every field the stage and earlier ones read
        (the rule that folder's code invalidated by)."""
        old = getattr(self, "_old_config", None)
        if old is None:
            return False
        new = config_to_dict(self.config)
        if any(old.get(k) != new[k] for k in _stage_fields(stage)):
            return False
        if stage == "regenerator":  # written every epoch: only a complete one is a finished stage
            record = torch.load(os.fspath(self.out_dir / "regenerator.pt"), map_location="cpu", weights_only=True)
            return bool(record.get("complete"))
        return True

    def _artifact(self, name: str) -> Path | None:
        return None if self.out_dir is None else self.out_dir / name

    def _log(self, line: str) -> None:
        if self.log is not None and distributed.is_main():
            self.log(line)

    def _stage(self, stage: str, compute, save=None, load=None, every_rank: bool = False):
        """Run ``stage`` on the pipeline's runner (reused when done with this config)."""
        return self._pipe.run(stage, self._options(stage), compute, save=save, load=load,
                              legacy=lambda: self._legacy(stage), every_rank=every_rank)

    def mine(self, data, *, out_dir=None, patterns=None) -> DR4SR:
        """Mine the item-transition patterns: the first stage of `fit`, alone.

        Enough for the training sets that hold no regenerated pattern
        (``original``, ``patterns``, ``original+patterns``; see
        `training_sets`), which need no pre-training, so a study of them
        does not pay for a regenerator.

        Parameters
        ----------
        data : SequenceDataset or path
            The original sequences. Only each sequence's training part (all
            but the last two items, `fastregen.patterns.dr4sr_input`) is read,
            so validation and test targets never leak into the regenerated
            data.
        out_dir : path, optional
            Folder for the stage artifacts (``patterns.txt``); a finished
            mining stage found there is reused, and a later `fit` into the
            same folder reuses it too.
        patterns : fastregen.patterns.Patterns, optional
            Use these patterns instead of mining.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``data`` has no sequence, or no pattern reaches
            ``config.min_support`` within ``config.max_span``.
        """
        return self._mine(data, out_dir, patterns, whole_pipeline=False)

    def _mine(self, data, out_dir, patterns, *, whole_pipeline: bool) -> DR4SR:
        from ..patterns import Patterns, dr4sr_input, mine_patterns

        cfg = self.config
        data_path = data if isinstance(data, (str, os.PathLike)) else None
        data = as_dataset(data)
        if len(data) == 0:
            raise ValueError("cannot regenerate an empty dataset (no sequences)")
        world = distributed.current()
        if world is not None and world.size > len(data):
            raise ValueError(f"{world.size} processes for {len(data)} sequences: each process needs at least one "
                             "sequence to decode; run fewer processes (--nproc-per-node)")
        self.data = data
        # whatever was fitted on earlier data no longer applies
        self.pairs, self.regenerator, self.history, self.regenerated = None, None, [], None
        self.inference_info = {}
        self.out_dir = None
        self._prepare_dir(out_dir, data, data_path, whole_pipeline=whole_pipeline)
        train_input = dr4sr_input(data)
        self._train_input = train_input

        path = self._artifact("patterns.txt")
        if patterns is not None:
            self.patterns = patterns
        else:
            self.patterns = self._stage(
                "patterns",
                lambda: mine_patterns(train_input, max_span=cfg.max_span, min_support=cfg.min_support,
                                      progress=cfg.progress and distributed.is_main()),
                lambda result: result.save(path), lambda: Patterns.load(path))
        if len(self.patterns) == 0:
            raise ValueError(
                f"no pattern has support >= {cfg.min_support} within span {cfg.max_span}: the pattern set is "
                "empty, so there is nothing to pre-train on (lower min_support or raise max_span)"
            )
        return self

    def fit(self, data, *, item_embedding: torch.Tensor | None = None, out_dir=None,
            patterns=None) -> DR4SR:
        """Mine patterns, build pre-training pairs and pre-train the regenerator.

        Parameters
        ----------
        data : SequenceDataset or path
            The original sequences; see `mine`.
        item_embedding : torch.Tensor, shape (num_items + 1, d_model), optional
            A trained target model's item table to initialise the
            regenerator's (e.g. ``fit_and_evaluate(...)["model"].item_embedding.weight``).
        out_dir : path, optional
            Folder for the stage artifacts; finished stages found there are
            reused (see the module docstring).
        patterns : fastregen.patterns.Patterns, optional
            Use these patterns instead of mining.

        Returns
        -------
        self
        """
        from ..patterns import PretrainPairs, pretrain_pairs

        self._mine(data, out_dir, patterns, whole_pipeline=True)
        cfg, data, train_input = self.config, self.data, self._train_input

        path = self._artifact("pairs.npz")
        self.pairs = self._stage(
            "pairs",
            lambda: pretrain_pairs(train_input, self.patterns, max_per_sequence=cfg.max_pairs_per_sequence,
                                   seed=cfg.seed, max_len=cfg.max_len, progress=cfg.progress and distributed.is_main()),
            lambda result: result.save(path), lambda: PretrainPairs.load(path))
        if len(self.pairs) == 0:
            raise ValueError("no training sequence contains a mined pattern: no pre-training pairs")

        path = self._artifact("regenerator.pt")

        def load():
            model, record = load_checkpoint(path, num_items=data.num_items, device=cfg.device, backend=cfg.backend)
            return model, list(record.get("history", []))

        # every rank trains (data-parallel); an epoch checkpoint of other options is refused (the runner's policy)
        self.regenerator, self.history = self._stage("regenerator", lambda: pretrain(
            self.pairs, data.num_items, cfg, item_embedding=item_embedding, checkpoint=path,
            fingerprint=_pretrain_identity(cfg)), load=load, every_rank=True)
        return self

    def _infer(self) -> SequenceDataset:
        if self.regenerator is None or self.data is None:
            raise RuntimeError("call fit(data) before regenerate(): mine(data) alone trains no regenerator")
        if self.regenerated is not None:
            return self.regenerated
        cfg = self.config
        path = self._artifact("regenerated_patterns.npz")

        def load():
            with np.load(path) as z:
                return (SequenceDataset(z["offsets"], z["items"], num_items=self.data.num_items,
                                        item_ids=self.data.item_ids, name="regenerated"), json.loads(str(z["info"])))

        def save(result):
            regenerated, info = result
            with atomic_open(path, "wb") as f:
                np.savez(f, offsets=regenerated.offsets, items=regenerated.items, info=np.asarray(json.dumps(info)))

        # every rank decodes its share (hybrid_inference gathers on rank 0 and broadcasts the result)
        self.regenerated, self.inference_info = self._stage(
            "inference", lambda: hybrid_inference(self.regenerator, self._train_input, config=cfg.decoding()),
            save=save, load=load, every_rank=True)
        return self.regenerated

    def training_sets(self) -> dict[str, SequenceDataset]:
        """Every training set on offer, all with the input data's item ids.

        ``original``
            the training part of every sequence;
        ``patterns``
            the mined patterns (the paper's "pattern only" ablation, Table 4 row B);
        ``original+patterns``
            the two above: ``combined`` without the regenerator's patterns, so
            a comparison with ``combined`` shows what the regenerator adds;
        ``regenerated``
            the regenerator's patterns (hybrid inference runs once, then is reused);
        ``combined``
            original + mined + regenerated, each once;
        ``combined_authors``
            the authors' training file: original + mined + original +
            regenerated, i.e. the original sequences twice
            (``1.Build_pretraining_dataset.py`` line 68 saves ``patterns.pth``
            as ``train_list + original_train``, mined patterns *and* the
            original training sequences, and ``3.Hybrid_inference.py`` line
            293 writes ``original_data + ori_pattern + train_list``, so the
            originals come in again).

        After `mine` alone only the first three are there; after `fit`, all six.
        Every set is tagged with its rows' sources (`fastregen.data.concat`:
        ``meta["source_names"]`` from "original", "patterns", "regenerated").

        Returns
        -------
        dict of str to SequenceDataset
        """
        if self.patterns is None or self.data is None:
            raise RuntimeError("call mine(data) or fit(data) before training_sets()")
        n, ids = self.data.num_items, self.data.item_ids
        tagged = dict(num_items=n, item_ids=ids, drop_empty=True)
        original = concat(self._train_input, **tagged, name="original", sources=["original"])
        mined = concat(self.patterns.as_dataset(num_items=n), **tagged, name="patterns", sources=["patterns"])
        sets = {
            "original": original,
            "patterns": mined,
            "original+patterns": concat(original, mined, **tagged, name="original+patterns"),
        }
        if self.regenerator is not None:
            regen = self._infer()
            regen = regen.replace(meta={**regen.meta, "source": np.zeros(len(regen), np.int64),
                                        "source_names": ["regenerated"]})
            sets["regenerated"] = regen
            sets["combined"] = concat(sets["original+patterns"], regen, **tagged, name="combined")
            sets["combined_authors"] = concat(original, mined, original, regen, **tagged, name="combined_authors")
        return sets

    def regenerate(self, training_set: str | None = None) -> SequenceDataset:
        """The regenerated training set (runs hybrid inference once, then reuses it).

        Parameters
        ----------
        training_set : {"combined", "combined_authors", "regenerated"}, optional
            Defaults to ``config.training_set``.

        Returns
        -------
        SequenceDataset
            With the item ids of the input data; pass it as ``train_data`` to
            `fastregen.training.fit_and_evaluate`. With an ``out_dir`` it is also
            written there (``regenerated.txt``) with its provenance.
        """
        which = self.config.training_set if training_set is None else training_set
        if which not in TRAINING_SETS:
            raise ValueError(f"training_set must be one of {', '.join(map(repr, TRAINING_SETS))}, got {which!r}")
        self._infer()  # raises if no regenerator was fitted (after mine alone, say)
        sets = None
        if self.out_dir is not None and which == self.config.training_set:
            # the write stage's time and peak include building the training sets
            sets = self._stage("write", lambda: self._write(self.training_sets()))
        if sets is None:
            sets = self.training_sets()
        return sets[which]

    def _write(self, sets: dict[str, SequenceDataset]) -> dict[str, SequenceDataset]:
        from ..data import save

        out = self.out_dir
        chosen = sets[self.config.training_set]
        save(sets["regenerated"], out / "regenerated_patterns.txt", drop_empty=True)
        save(chosen, out / "regenerated.txt", drop_empty=True)
        record = provenance(
            self.config,
            seed=self.config.seed,
            source=self._source,
            output={"path": os.fspath(out / "regenerated.txt"), "training_set": self.config.training_set,
                    "sha256": dataset_sha256(chosen)},
            statistics={name: table2(ds) for name, ds in sets.items()},
            inference=self.inference_info,
            pretraining=self.history,
            stage_seconds=self.stage_seconds,
            stage_peak_rss_mib={k: round(v / 2**20, 1) for k, v in self.stage_peak_rss.items()},
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            processes=1 if distributed.current() is None else distributed.current().size,
        )
        write_provenance(out / "regenerated.json", record)
        return sets

    def statistics(self) -> dict[str, dict]:
        """Table-2 statistics (users, items, interactions, avg length) of every training set."""
        return {name: table2(ds) for name, ds in self.training_sets().items()}
