"""The whole DR4SR pipeline: mine -> pairs -> pre-train -> hybrid inference -> write.

`DR4SR` is the Python entry point; with an ``out_dir`` every stage writes its
artifact there atomically and a rerun skips the stages already finished, so
an interrupted run resumes where it stopped (a half-trained regenerator
goes on from its last epoch, ``regenerator.resume.pt``, see
`fastregen.generator.pretrain`; an epoch checkpoint of another config is
discarded, as changed stages are redone). `DR4SR.mine` runs
the first stage alone, for the training sets that need no regenerator.

Artifacts in ``out_dir``:

=============================  ==============================================
``config.yaml``                the `RegenConfig` that made the artifacts (a
                               rerun that changes a field redoes the stage
                               it affects and every later one)
``source.json``                path and content hash of the input data
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

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_open
from ..training import distributed
from ..config import config_to_dict, data_source, load_config, provenance, save_config
from ..data import SequenceDataset, as_dataset, concat
from .config import RUNTIME_FIELDS, TRAINING_SETS, RegenConfig
from ..generator.decode import dataset_sha256, hybrid_inference, table2, write_provenance
from ..generator.model import Regenerator, load_checkpoint
from ..generator.pretrain import pretrain

__all__ = ["DR4SR", "STAGES", "combine"]

STAGES = ("patterns", "pairs", "regenerator", "inference", "write")

# Fields that do not change any artifact: a resumed run may differ in these.
# Fields each stage's artifact depends on (a later stage depends on the earlier ones too).
_STAGE_FIELDS = {
    "patterns": {"max_span", "min_support"},
    "pairs": {"max_pairs_per_sequence", "max_len", "seed"},
    "inference": {"gamma", "schedule", "restrict", "max_pattern_len", "min_pattern_len"},
    "write": {"training_set"},
}


def _pretrain_identity(cfg: RegenConfig) -> dict:
    """The mining and pair options that shaped the pre-training pairs, in the regenerator's epoch
    checkpoint's fingerprint beside the generator's own options (as when the whole RegenConfig was)."""
    return {k: getattr(cfg, k) for k in ("max_span", "min_support", "max_pairs_per_sequence")}


def combine(*parts: SequenceDataset, num_items: int, item_ids=None, name: str = "", sources=None) -> SequenceDataset:
    """Concatenate datasets row-wise (empty sequences dropped), tagging every row with its source.

    The result's ``meta["source"]`` (int64 per sequence) indexes
    ``meta["source_names"]``. A part that is already tagged keeps its rows'
    tags; an untagged part is tagged ``sources[i]`` (default: its name), so
    DR4SR+ can tell the original, mined and regenerated rows of a training
    set apart.
    """
    if sources is not None and len(sources) != len(parts):
        raise ValueError(f"{len(sources)} source names for {len(parts)} parts")
    names: list[str] = []
    kept, tags = [], []
    for i, d in enumerate(parts):
        if "source" in d.meta and "source_names" in d.meta:
            part_names, part_tags = list(d.meta["source_names"]), np.asarray(d.meta["source"], dtype=np.int64)
        else:
            label = sources[i] if sources is not None else (d.name or f"part{i}")
            part_names, part_tags = [label], np.zeros(len(d), dtype=np.int64)
        for nm in part_names:
            if nm not in names:
                names.append(nm)
        remap = np.asarray([names.index(nm) for nm in part_names], dtype=np.int64)
        nonempty = d.lengths > 0
        kept.append(d if bool(nonempty.all()) else d.subset(np.flatnonzero(nonempty)))
        tags.append(remap[part_tags[nonempty]])
    return concat(*kept, num_items=num_items, item_ids=item_ids, name=name,
                  meta={"source": np.concatenate(tags), "source_names": names})


def _save_pairs(pairs, path) -> None:
    with atomic_open(path, "wb") as f:
        np.savez(f, seq_offsets=pairs.sequences.offsets, seq_items=pairs.sequences.items,
                 pat_offsets=pairs.patterns.offsets, pat_items=pairs.patterns.items, source=pairs.source,
                 pattern_index=np.asarray([] if pairs.pattern_index is None else pairs.pattern_index, np.int64),
                 num_items=np.int64(pairs.sequences.num_items))


def _load_pairs(path):
    from ..patterns import PretrainPairs

    with np.load(path) as z:
        n = int(z["num_items"])
        return PretrainPairs(
            sequences=SequenceDataset(z["seq_offsets"], z["seq_items"], num_items=n),
            patterns=SequenceDataset(z["pat_offsets"], z["pat_items"], num_items=n),
            source=z["source"],
            pattern_index=z["pattern_index"] if z["pattern_index"].size else None,
        )


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
        out = Path(out_dir)
        src = {**data_source(data, data_path), "sha256": dataset_sha256(data)}  # absolute path, size, file hash
        # rank 0 checks and rewrites the folder; the other ranks wait for it
        distributed.main_first(lambda: self._write_dir(out, src, whole_pipeline), lambda: None)
        self.out_dir, self._source = out, src

    def _write_dir(self, out: Path, src: dict, whole_pipeline: bool) -> None:
        out.mkdir(parents=True, exist_ok=True)
        cfg_path, src_path = out / "config.yaml", out / "source.json"
        if src_path.exists():
            old_src = json.loads(src_path.read_text())
            if old_src.get("sha256") != src["sha256"]:
                raise ValueError(
                    f"{out} holds a run on different data ({old_src.get('path')}); use another output folder"
                )
        # Mining alone reads only the mining fields: it must not throw away a
        # finished regenerator that differs in a field mining never reads.
        new = config_to_dict(self.config)
        relevant = set(new) - RUNTIME_FIELDS if whole_pipeline else _STAGE_FIELDS["patterns"]
        keep_config = False
        if cfg_path.exists():
            old = config_to_dict(load_config(RegenConfig, cfg_path))
            changed = sorted(k for k, v in new.items() if k in relevant and old[k] != v)
            if changed:
                self._invalidate(out, changed)
            keep_config = not whole_pipeline and not changed
        if not keep_config:  # config.yaml describes what made the artifacts in the folder
            save_config(self.config, cfg_path)
        write_provenance(src_path, src)

    def _invalidate(self, out: Path, changed: list[str]) -> None:
        """A rerun with a changed option: remove the artifacts of the first stage it affects and later."""
        order = ["patterns", "pairs", "regenerator", "inference", "write"]
        first = len(order)
        for i, stage in enumerate(order):
            fields = _STAGE_FIELDS.get(stage, set())
            if stage == "regenerator":
                fields = {f.name for f in dataclasses.fields(RegenConfig)} - RUNTIME_FIELDS - set().union(
                    *_STAGE_FIELDS.values())
            if set(changed) & fields:
                first = i
                break
        files = {
            "patterns": ["patterns.txt"], "pairs": ["pairs.npz"], "regenerator": ["regenerator.pt", "regenerator.resume.pt"],
            "inference": ["regenerated_patterns.npz"],
            "write": ["regenerated.txt", "regenerated_patterns.txt", "regenerated.json"],
        }
        for stage in order[first:]:
            for name in files[stage]:
                (out / name).unlink(missing_ok=True)

    def _artifact(self, name: str) -> Path | None:
        return None if self.out_dir is None else self.out_dir / name

    def _timed(self, stage: str, fn):
        self._log(f"{stage}: started")
        t0 = time.perf_counter()
        with self._measure(stage):
            result = fn()
        self.stage_seconds[stage] = time.perf_counter() - t0
        self._log(f"{stage}: done in {self.stage_seconds[stage]:.1f} s")
        return result

    def _reused(self, stage: str) -> None:
        self.stage_seconds[stage] = 0.0
        self._log(f"{stage}: reused")

    def _log(self, line: str) -> None:
        if self.log is not None and distributed.is_main():
            self.log(line)

    @contextlib.contextmanager
    def _measure(self, stage: str):
        """Record the block's peak RSS as ``stage_peak_rss[stage]`` when ``measure_memory``."""
        if not self.measure_memory:
            yield
            return
        from ..memory import PeakRSS

        with PeakRSS() as m:
            yield
        self.stage_peak_rss[stage] = m.peak

    @staticmethod
    def _exists(path: Path | None) -> bool:
        """Whether an artifact is there, as rank 0 sees it (every rank takes the same branch)."""
        return bool(distributed.broadcast_object(path is not None and path.exists()))

    def _stage(self, stage: str, path: Path | None, compute, save, load):
        """A stage computed once: reused from ``path`` if there, else computed (and saved).

        Under torch.distributed with an output folder rank 0 computes and
        saves, and the other ranks load what it saved; without a folder
        every rank computes (the stages are deterministic).
        """
        if self._exists(path):
            self._reused(stage)
            return load(path)

        def run():
            result = self._timed(stage, compute)
            if path is not None:
                save(result, path)
            return result

        if path is None:
            return run()
        return distributed.main_first(run, lambda: load(path))

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
        if out_dir is not None:
            self._prepare_dir(out_dir, data, data_path, whole_pipeline=whole_pipeline)
        train_input = dr4sr_input(data)
        self._train_input = train_input

        path = self._artifact("patterns.txt")
        if patterns is not None:
            self.patterns = patterns
        else:
            self.patterns = self._stage(
                "patterns", path,
                lambda: mine_patterns(train_input, max_span=cfg.max_span, min_support=cfg.min_support,
                                      progress=cfg.progress and distributed.is_main()),
                lambda result, p: result.save(p), Patterns.load)
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
        from ..patterns import pretrain_pairs

        self._mine(data, out_dir, patterns, whole_pipeline=True)
        cfg, data, train_input = self.config, self.data, self._train_input

        self.pairs = self._stage(
            "pairs", self._artifact("pairs.npz"),
            lambda: pretrain_pairs(train_input, self.patterns, max_per_sequence=cfg.max_pairs_per_sequence,
                                   seed=cfg.seed, max_len=cfg.max_len, progress=cfg.progress and distributed.is_main()),
            _save_pairs, _load_pairs)
        if len(self.pairs) == 0:
            raise ValueError("no training sequence contains a mined pattern: no pre-training pairs")

        path = self._artifact("regenerator.pt")
        done = False
        if self._exists(path):
            model, record = load_checkpoint(path, num_items=data.num_items, device=cfg.device, backend=cfg.backend)
            if record.get("complete"):
                self.regenerator, self.history, done = model, list(record.get("history", [])), True
                self._reused("regenerator")
        if not done:
            self.regenerator, self.history = self._timed("regenerator", lambda: pretrain(
                self.pairs, data.num_items, cfg, item_embedding=item_embedding, checkpoint=path,
                on_mismatch="restart", fingerprint=_pretrain_identity(cfg)))
        return self

    def _infer(self) -> SequenceDataset:
        if self.regenerator is None or self.data is None:
            raise RuntimeError("call fit(data) before regenerate(): mine(data) alone trains no regenerator")
        if self.regenerated is not None:
            return self.regenerated
        cfg = self.config
        path = self._artifact("regenerated_patterns.npz")
        if self._exists(path):
            with np.load(path) as z:
                self.regenerated = SequenceDataset(z["offsets"], z["items"], num_items=self.data.num_items,
                                                   item_ids=self.data.item_ids, name="regenerated")
                self.inference_info = json.loads(str(z["info"]))
            self._reused("inference")
            return self.regenerated
        self.regenerated, self.inference_info = self._timed(
            "inference", lambda: hybrid_inference(self.regenerator, self._train_input, config=cfg.decoding()))
        if path is not None and distributed.is_main():
            with atomic_open(path, "wb") as f:
                np.savez(f, offsets=self.regenerated.offsets, items=self.regenerated.items,
                         info=np.asarray(json.dumps(self.inference_info)))
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
        Every set is tagged with its rows' sources (`combine`:
        ``meta["source_names"]`` from "original", "patterns", "regenerated").

        Returns
        -------
        dict of str to SequenceDataset
        """
        if self.patterns is None or self.data is None:
            raise RuntimeError("call mine(data) or fit(data) before training_sets()")
        n, ids = self.data.num_items, self.data.item_ids
        original = combine(self._train_input, num_items=n, item_ids=ids, name="original", sources=["original"])
        mined = combine(self.patterns.as_dataset(num_items=n), num_items=n, item_ids=ids, name="patterns",
                        sources=["patterns"])
        sets = {
            "original": original,
            "patterns": mined,
            "original+patterns": combine(original, mined, num_items=n, item_ids=ids, name="original+patterns"),
        }
        if self.regenerator is not None:
            regen = self._infer()
            regen = regen.replace(meta={**regen.meta, "source": np.zeros(len(regen), np.int64),
                                        "source_names": ["regenerated"]})
            sets["regenerated"] = regen
            sets["combined"] = combine(sets["original+patterns"], regen, num_items=n, item_ids=ids, name="combined")
            sets["combined_authors"] = combine(original, mined, original, regen, num_items=n, item_ids=ids,
                                               name="combined_authors")
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
        with self._measure("write"):
            sets = self.training_sets()
            result = sets[which]
            if self.out_dir is not None and which == self.config.training_set and distributed.is_main():
                self._write(sets)
        return result

    def _write(self, sets: dict[str, SequenceDataset]) -> None:
        from ..data import save

        out = self.out_dir
        if (out / "regenerated.txt").exists() and (out / "regenerated.json").exists():
            self._reused("write")
            return
        self._log("write: started")
        t0 = time.perf_counter()
        chosen = sets[self.config.training_set]
        save(sets["regenerated"], out / "regenerated_patterns.txt", drop_empty=True)
        save(chosen, out / "regenerated.txt", drop_empty=True)
        self.stage_seconds["write"] = time.perf_counter() - t0
        self._log(f"write: done in {self.stage_seconds['write']:.1f} s")
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

    def personalize(self, model: str = "sasrec", *, training_set: str | None = None, plus=None, seed: int = 0,
                    out_dir=None, **config) -> dict:
        """Train ``model`` on a training set with the DR4SR+ personalizer (`fastregen.dr4sr.plus.personalize`).

        Parameters
        ----------
        model : str, default "sasrec"
        training_set : str, optional
            A key of `training_sets` (default ``config.training_set``).
        plus : fastregen.dr4sr.plus.PlusConfig, optional
        seed : int, default 0
            The target model's seed.
        out_dir : path, optional
            The run folder (resumable).
        **config
            `fastregen.training.TrainConfig` fields.

        Returns
        -------
        dict
            The trained ``model``, its ``personalizer`` and ``weights`` (per
            target of the training set), ``valid``/``test`` metrics, ...
        """
        from .plus import personalize

        if self.data is None:
            raise RuntimeError("call fit(data) (or mine(data)) before personalize()")
        sets = self.training_sets()
        which = self.config.training_set if training_set is None else training_set
        if which not in sets:
            raise ValueError(f"training_set must be one of {', '.join(map(repr, sets))}, got {which!r}")
        return personalize(self.data, sets[which], model, seed, plus=plus, out_dir=out_dir, **config)

    def statistics(self) -> dict[str, dict]:
        """Table-2 statistics (users, items, interactions, avg length) of every training set."""
        return {name: table2(ds) for name, ds in self.training_sets().items()}
