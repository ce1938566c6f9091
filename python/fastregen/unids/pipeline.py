"""The UniDS pipeline: stage-wise mining -> pattern-token sequences -> uniform generator -> generated data.

>>> from fastregen import UniDS, UniDSConfig                            # doctest: +SKIP
>>> train_set = UniDS(UniDSConfig()).fit(ds).generate()               # doctest: +SKIP

Its stages run on the one stage runner, `fastregen.pipeline.Pipeline`: with
an ``out_dir`` every expensive stage writes its artifact atomically and
records a fingerprint of the options (and data) it depends on in
``stages.json``; a rerun reuses every stage whose fingerprint still
matches, so an interrupted run resumes and a run that changes, say, gamma
decodes again without retraining the generator. An interrupted generator
resumes from its epoch checkpoint; one of another generator config is
refused (the runner's policy).

=========================  =================================================
``config.yaml``            the `UniDSConfig` of the last run
``source.json``            path and content hash of the input data
``stages.json``            fingerprint of each finished stage
``patterns_STAGE.txt``     each stage's entropy patterns (`Patterns.save`)
``pm.pt``                  p_m when it is a trained model (``pm != "markov"``)
``generator.pt``           the uniform generator (+ loss history, vocabulary)
``generated.npz``          the generated sequences (items, timestamps, the
                           user and stage each came from)
``train.txt``              original training sequences + generated ones,
                           one per line (`fastregen.data.load`; the
                           timestamps are in ``generated.npz``)
``unids.json``             provenance, statistics, stage times
=========================  =================================================

Ablations (UniDS Table 3) are fields of the one config:
``threshold_control=False`` (w/o TC), ``uniform_format=False`` (w/o UF),
``uniform_generation=False`` (w/o UG).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..config import config_to_dict, provenance, save_config
from ..data import SequenceDataset, as_dataset, concat, leave_one_out
from ..generator.decode import table2
from ..pipeline import Pipeline, Stage, write_provenance
from ..patterns import Patterns, segment
from .config import DECODE_FIELDS, UniDSConfig
from .generator import build_pairs, build_sources, generate, load_generator, train_generator
from .stages import mine_stages, model_probs, stage_thetas
from .tokens import build_vocab, pattern_token_sequences, resolve_kind

__all__ = ["UniDS", "PIPELINE_STAGES"]

PIPELINE_STAGES = ("mine", "generator", "generate")
_MINE_FIELDS = ("stages", "theta_recall", "theta_coarse", "theta_fine", "threshold_control", "min_count",
                "max_pattern_len", "pm", "pm_order", "pm_epochs", "seed")
_FORMAT_FIELDS = ("uniform_format", "token_recall", "token_coarse", "token_fine", "time_buckets", "position_buckets",
                  "session_gap", "target", "max_len", "min_items", "max_pairs_per_sequence", "diversity_weight",
                  "uniform_generation")


class UniDS:
    """UniDS (uniform data synthesis for multi-stage recommenders), end to end.

    Parameters
    ----------
    config : UniDSConfig, optional
    log : callable, optional
        Called with one line per finished stage (the CLI prints them).
    **overrides
        Config fields to change (``UniDS(threshold_control=False)``).

    Attributes (after `fit`)
    ------------------------
    thetas : dict of stage to float
        Theta in bits of every stage.
    patterns : dict of stage to Patterns
    segmentations : dict of stage to fastregen.patterns.Segmentation
    vocab : fastregen.unids.tokens.TokenVocab
    pairs : fastregen.patterns.PretrainPairs or None
    generator : fastregen.generator.Regenerator or None
    history : list of dict
        The generator's pre-training losses per epoch.
    stage_seconds : dict
        Wall time of each stage run in this process (0.0 for a reused one).
    """

    def __init__(self, config: UniDSConfig | None = None, *, log=None, **overrides) -> None:
        config = UniDSConfig() if config is None else config
        if not isinstance(config, UniDSConfig):
            raise TypeError(f"config must be a UniDSConfig, got {type(config).__name__}")
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.config.validate()
        self.log = log
        self.data = self.train = None
        self.thetas: dict = {}
        self.patterns: dict = {}
        self.segmentations: dict = {}
        self.kinds: dict = {}
        self.vocab = None
        self.sources = self.source_info = self.pairs = None
        self.generator = None
        self.history: list = []
        self.generated_data: SequenceDataset | None = None
        self.generate_info: dict = {}
        self.stage_seconds: dict = {}
        self.out_dir: Path | None = None
        self._source: dict = {}

    # ------------------------------------------------------------- folder
    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def _options(self, stage: str) -> dict:
        """What ``stage`` reads: the mining options and the data, the token format and generator for
        the generator, the decoding for the generated data (the fingerprints stages.json held before
        the runner, so those folders resume)."""
        cfg = config_to_dict(self.config)
        gen = cfg.pop("generator")
        fields = {k: cfg[k] for k in _MINE_FIELDS}
        fields["data"] = self._source.get("sha256")
        if stage in ("generator", "generate"):
            fields.update({k: cfg[k] for k in _FORMAT_FIELDS})
            fields["generator"] = {k: v for k, v in sorted(gen.items()) if k not in DECODE_FIELDS}
        if stage == "generate":
            fields["decode"] = {k: v for k, v in sorted(gen.items()) if k in DECODE_FIELDS}
            fields["generated_ratio"] = cfg["generated_ratio"]
            fields["dedup"] = cfg["dedup"]
        return fields

    def _prepare_dir(self, out_dir, data, data_path) -> None:
        cfg = self.config
        stages = (
            Stage("pm", ("pm.pt",)),
            Stage("mine", tuple(f"patterns_{s}.txt" for s in cfg.stages)),
            Stage("generator", ("generator.pt",), ("mine",)),
            Stage("generate", ("generated.npz", "train.txt", "unids.json"), ("generator",)),
        )
        self._pipe = Pipeline(stages, out_dir)
        self._pipe.seconds = self.stage_seconds
        self._source = self._pipe.open(data, data_path, what="UniDS run",
                                       prepare=lambda out, legacy: save_config(cfg, out / "config.yaml"))
        self.out_dir = self._pipe.out

    # ------------------------------------------------------------- stages
    def _pm(self, pm):
        """p_m for the miner: the given one, an order-k Markov model (None) or a trained target model."""
        cfg, train = self.config, self.train
        if pm is not None:
            if hasattr(pm, "item_weight"):  # a trained target model
                return model_probs(pm, train)
            return pm
        if cfg.pm == "markov":
            return None
        from ..models import load_model, save_model
        from ..training import TrainConfig, fit

        path = self._pipe.path("pm.pt")
        tc = TrainConfig(model=cfg.pm, epochs=cfg.pm_epochs, seed=cfg.seed, device=cfg.device,
                         progress=cfg.progress, num_threads=0)
        # p_m reads what mining reads (its fingerprint is mining's)
        model = self._pipe.run("pm", self._options("mine"), lambda: fit(tc, train, leave_one_out(self.data).valid)["model"],
                               save=lambda m: save_model(m, path), load=lambda: load_model(path), every_rank=True)
        return model_probs(model, train)

    def fit(self, data, *, out_dir=None, pm=None) -> "UniDS":
        """Mine each stage's patterns, build pattern-token sequences, train the uniform generator.

        Parameters
        ----------
        data : SequenceDataset or path
            The original sequences. Only each sequence's training part (all
            but its last two items) is read, so validation and test targets
            never reach the generated data.
        out_dir : path, optional
            Folder for the stage artifacts; finished stages found there are
            reused (see the module docstring).
        pm : MarkovModel, trained target model, array or callable, optional
            p_m instead of ``config.pm``: a fitted `fastregen.entropy.MarkovModel`,
            a trained `fastregen.models.SequentialRecommender` (its softmax,
            `fastregen.unids.stages.model_probs`), or what
            `fastregen.patterns.mine_entropy_patterns` takes as ``model``.

        Returns
        -------
        self
        """
        cfg = self.config
        data_path = data if isinstance(data, (str, os.PathLike)) else None
        data = as_dataset(data)
        if len(data) == 0:
            raise ValueError("cannot synthesise data from an empty dataset (no sequences)")
        self.data, self.train = data, leave_one_out(data).train
        self.generator, self.history, self.generated_data, self.generate_info = None, [], None, {}
        self.out_dir, self._source = None, {}
        self._prepare_dir(out_dir, data, data_path)
        train = self.train
        self.kinds = {s: resolve_kind(getattr(cfg, f"token_{s}"), train, f"token_{s}") if cfg.uniform_format
                      else "none" for s in cfg.stages}
        self.thetas = stage_thetas(train, cfg.thetas(), cfg.stages, threshold_control=cfg.threshold_control,
                                   min_count=cfg.min_count)

        files = [f"patterns_{s}.txt" for s in cfg.stages]

        def mine():
            mined = mine_stages(train, self.thetas, self._pm(pm), order=cfg.pm_order, min_count=cfg.min_count,
                                max_len=cfg.max_pattern_len, threads=cfg.threads)
            return {s: p for s, (p, _) in mined.items()}, {s: g for s, (_, g) in mined.items()}

        def save_mined(result):
            for s, f in zip(cfg.stages, files):
                result[0][s].save(self.out_dir / f)

        def load_mined():
            patterns = {s: Patterns.load(self.out_dir / f) for s, f in zip(cfg.stages, files)}
            return patterns, {s: segment(train, p, threads=cfg.threads) for s, p in patterns.items()}

        self.patterns, self.segmentations = self._pipe.run("mine", self._options("mine"), mine, save=save_mined,
                                                           load=load_mined, every_rank=True)
        for s in cfg.stages:
            seg = self.segmentations[s]
            multi = int((np.diff(seg.bounds) >= cfg.min_items).sum())
            self._say(f"mine      {s:<7} theta {self.thetas[s]:7.3f} bits: {len(self.patterns[s]):,} patterns, "
                      f"{seg.num_segments:,} segments ({multi:,} of >= {cfg.min_items} items)")

        cats = int(np.max(train.meta["item_category"])) if "item_category" in train.meta else 0
        self.vocab = build_vocab(train.num_items, self.kinds.values(), cfg.stages if cfg.uniform_format else (),
                                 categories=cats, time_buckets=cfg.time_buckets,
                                 position_buckets=cfg.position_buckets, session_gap=cfg.session_gap)
        if not cfg.uniform_generation:
            return self
        tokens = {}
        for s in cfg.stages:
            pt, end = pattern_token_sequences(self.segmentations[s], self.kinds[s], self.vocab)
            tokens[s] = (pt, end, self.segmentations[s])
        self.sources, self.source_info = build_sources(tokens, self.vocab, cfg.max_len, cfg.uniform_format)
        self.pairs = build_pairs(self.sources, self.source_info, target=cfg.target, min_items=cfg.min_items,
                                 max_pairs=cfg.max_pairs_per_sequence, seed=cfg.seed)
        if len(self.pairs) == 0:
            raise ValueError(
                f"no segment of >= {cfg.min_items} items in any stage: nothing to train the generator on "
                f"(raise the theta scales, now {cfg.thetas()}, or lower min_items)")
        kinds = ", ".join(f"{s}: {k}" for s, k in self.kinds.items())
        self._say(f"tokens    T kinds {kinds}; vocabulary {self.vocab.size:,} tokens; {len(self.pairs):,} pairs "
                  f"from {len(self.sources):,} sources")

        path = self._pipe.path("generator.pt")
        arch, pre, _ = cfg.generator_configs()

        def load():
            model, record = load_generator(path, self.vocab, device=cfg.device, backend=pre.backend)
            return model, list(record.get("history", []))

        self.generator, self.history = self._pipe.run(
            "generator", self._options("generator"),
            lambda: train_generator(self.pairs, self.vocab, arch, pre, checkpoint=path), load=load, every_rank=True)
        last = self.history[-1] if self.history else {}
        self._say(f"generator K={arch.K}, {len(self.history)} epochs, train CE {last.get('train_loss', float('nan')):.4f}, "
                  f"held-out best-memory CE {last.get('valid_best_memory_loss') or float('nan'):.4f}")
        return self

    # ------------------------------------------------------------- output
    def _mined_segments(self) -> SequenceDataset:
        """w/o UG: every stage's distinct segments of >= min_items items, with their first occurrence's times."""
        cfg, train = self.config, self.train
        rows, users, stages, seen = [], [], [], set()
        for si, s in enumerate(cfg.stages):
            seg = self.segmentations[s]
            seq_of = np.repeat(np.arange(len(train)), np.diff(seg.offsets))
            lens = np.diff(seg.bounds)
            for k in np.flatnonzero(lens >= cfg.min_items):
                items = train.items[seg.bounds[k]:seg.bounds[k + 1]]
                key = items.tobytes()
                if key not in seen:
                    seen.add(key)
                    rows.append(k)
                    users.append(int(seq_of[k]))
                    stages.append(si)
        if not rows:
            raise ValueError(f"no segment of >= {cfg.min_items} items in any stage (raise the theta scales)")
        per_stage = [self.segmentations[s].bounds for s in cfg.stages]
        starts = np.asarray([per_stage[st][k] for st, k in zip(stages, rows)], dtype=np.int64)
        ends = np.asarray([per_stage[st][k + 1] for st, k in zip(stages, rows)], dtype=np.int64)
        lens = ends - starts
        offsets = np.r_[0, np.cumsum(lens)].astype(np.int64)
        gather = np.repeat(starts - offsets[:-1], lens) + np.arange(int(offsets[-1]))
        ts = None if train.timestamps is None else train.timestamps[gather]
        return SequenceDataset(offsets, train.items[gather], num_items=train.num_items, timestamps=ts,
                               item_ids=train.item_ids, name="generated",
                               meta={"user": np.asarray(users, np.int64), "stage": np.asarray(stages, np.int64)})

    def generated(self) -> SequenceDataset:
        """The generated sequences alone (decoded once, then reused), item ids of the input data.

        ``meta["user"]`` and ``meta["stage"]`` name the training sequence and
        the stage (index into ``config.stages``) each came from; timestamps
        as `fastregen.unids.generator.stamp` gives them when the data has them.
        """
        if self.train is None:
            raise RuntimeError("call fit(data) before generate()")
        if self.generated_data is not None:
            return self.generated_data
        cfg = self.config
        path = self._pipe.path("generated.npz")

        def load():
            with np.load(path) as z:
                ts = z["timestamps"] if z["timestamps"].size == z["items"].size and z["items"].size else None
                return (SequenceDataset(z["offsets"], z["items"], num_items=self.train.num_items, timestamps=ts,
                                        item_ids=self.train.item_ids, name="generated",
                                        meta={"user": z["user"], "stage": z["stage"]}),
                        json.loads(str(z["info"])))

        def compute():
            dec = cfg.generator_configs()[2]
            if not cfg.uniform_generation:
                return self._mined_segments(), {"source": "mined segments (uniform_generation=False)"}
            budget = int(cfg.generated_ratio * self.train.num_interactions) if cfg.generated_ratio > 0 else None
            return generate(
                self.generator, self.sources, self.source_info, self.vocab, self.train, min_items=cfg.min_items,
                budget=budget, dedup=cfg.dedup, gamma=dec.gamma, schedule=dec.schedule, restrict=dec.restrict,
                batch_size=dec.decode_batch_size, seed=cfg.seed, backend=dec.backend, progress=cfg.progress)

        def save_generated(result):
            from .._io import atomic_open
            from ..data import save

            g, info = result
            self.generated_data, self.generate_info = g, info
            with atomic_open(path, "wb") as f:
                np.savez(f, offsets=g.offsets, items=g.items,
                         timestamps=np.zeros(0, np.int64) if g.timestamps is None else g.timestamps,
                         user=g.meta["user"], stage=g.meta["stage"], info=np.asarray(json.dumps(info)))
            save(self.training_sets()["original+generated"], self.out_dir / "train.txt", drop_empty=True)
            self._write_provenance()

        reused = self._pipe.done("generate", self._options("generate"))
        self.generated_data, self.generate_info = self._pipe.run(
            "generate", self._options("generate"), compute, save=save_generated, load=load, every_rank=True)
        if not reused:
            g = self.generated_data
            self._say(f"generate  {len(g):,} sequences, {g.num_interactions:,} items "
                      f"(mean length {g.num_interactions / max(len(g), 1):.2f})")
        return self.generated_data

    def training_sets(self) -> dict[str, SequenceDataset]:
        """``original`` (the training split), ``generated`` and ``original+generated`` (`fastregen.data.concat`)."""
        gen = self.generated()
        original = self.train.replace(name="original")
        # Tagged "original"/"generated" (DR4SR+'s dev_source reads the tags); weights 1 as before, which
        # the training runs' fingerprints hash.
        both = concat(original, gen, sources=["original", "generated"], weights=[1.0, 1.0])
        return {"original": original, "generated": gen,
                "original+generated": both.replace(name="original+generated", item_ids=self.train.item_ids)}

    def generate(self) -> SequenceDataset:
        """The training set UniDS's backbones train on: the original training sequences + the generated ones.

        Pass it as ``train_data`` to `fastregen.training.fit_and_evaluate`;
        its ``meta["source"]`` says which part each sequence is from.
        """
        return self.training_sets()["original+generated"]

    def statistics(self) -> dict:
        """Users, items, interactions and mean length of every training set."""
        return {name: table2(ds) for name, ds in self.training_sets().items()}

    def _write_provenance(self) -> None:
        sets = self.training_sets()
        record = provenance(
            self.config, source=self._source, thetas=self.thetas, token_kinds=self.kinds,
            vocab=None if self.vocab is None else self.vocab.to_dict(),
            patterns={s: {"n": len(p), "by_length": p.counts_by_length()} for s, p in self.patterns.items()},
            pairs=None if self.pairs is None else len(self.pairs), generation=self.generate_info,
            pretraining=self.history, statistics={k: table2(v) for k, v in sets.items()},
            stage_seconds=self.stage_seconds)
        write_provenance(self.out_dir / "unids.json", record)
