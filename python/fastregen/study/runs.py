"""What a comparison declares: its methods, their settings, the seeds, and one id per run.

A comparison (`CompareConfig`) trains one target model on a dataset once per
(method, setting, seed). A *setting* is a point of a method's grid (e.g.
DR4SR's ``gamma`` in {0.1, 0.3}); a method without a grid has one, empty,
setting. Every run is named by `Run.run_id`, a hash of everything that
defines it (the data's content hash, the method's resolved config, the
target model's training config, the seed) and nothing that does not (the
device, the number of threads or workers, progress bars): a rerun with the
same declaration finds its finished runs by id, and a changed option makes
new runs instead of mixing incomparable rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json

from ..dr4sr.config import RUNTIME_FIELDS as REGEN_RUNTIME_FIELDS
from ..training.config import RUNTIME_FIELDS as TRAIN_RUNTIME_FIELDS

__all__ = ["METHODS", "CompareConfig", "Run", "declare_runs", "method_config"]

#: The methods `fastregen compare` knows, in report order. ``original`` is the
#: baseline every other method is paired with.
METHODS = ("original", "dr4sr", "dr4sr+", "unids", "reppad")

# Fields that change how a run executes, not what it computes, stay out of the run id (a run
# done on 4 threads is the run on 1): TrainConfig's and RegenConfig's own lists, and the UniDS
# miner's threads.
_RUNTIME_REGEN_FIELDS = REGEN_RUNTIME_FIELDS | {"threads", "num_threads"}


@dataclasses.dataclass
class CompareConfig:
    """A comparison of training-data methods on one dataset and target model.

    Attributes
    ----------
    methods : tuple of str
        Names from `METHODS`; ``original`` is added first when absent (every
        gain is measured against it).
    model : str, default "sasrec"
        The target model (`fastregen.models.available_models`).
    seeds : int, default 3
        Target-model seeds 0 .. seeds - 1; the generators (DR4SR, UniDS) keep
        their own config's seed, so the seeds measure the target model's
        variance on one regenerated set.
    train : dict
        `fastregen.training.TrainConfig` fields of every run (``epochs``,
        ``patience``, ...). Its ``valid_metric`` (default ndcg@20) is the
        early-stopping and selection metric.
    regen : dict
        `fastregen.dr4sr.RegenConfig` fields of the DR4SR regenerator (used by
        dr4sr and dr4sr+); its ``training_set`` is what they train on.
    plus : dict
        `fastregen.dr4sr.plus.PlusConfig` fields of dr4sr+.
    unids : dict
        `fastregen.unids.UniDSConfig` fields of unids.
    reppad : int, default 2
        RepPad's mode (1: copies back to back, 2: with a delimiter).
    grid : dict of str to dict of str to list
        Settings to select among, per method: ``{"dr4sr": {"gamma": [0.1, 0.3]}}``.
        Fields are the method's config's (RegenConfig for dr4sr, PlusConfig
        for dr4sr+, UniDSConfig for unids, TrainConfig for original and
        reppad). The setting with the best mean **validation** metric over
        the seeds is the one reported; test metrics are never used to choose.
    gain_metrics : tuple of str, default ("ndcg@20", "recall@20")
        Test metrics whose gain vs original is tested (per user).
    bootstrap : int, default 2000
        Bootstrap resamples (of users) for the gains' 95% intervals.
    bootstrap_seed : int, default 0
    """

    methods: tuple = ("original", "dr4sr")
    model: str = "sasrec"
    seeds: int = 3
    train: dict = dataclasses.field(default_factory=dict)
    regen: dict = dataclasses.field(default_factory=dict)
    plus: dict = dataclasses.field(default_factory=dict)
    unids: dict = dataclasses.field(default_factory=dict)
    reppad: int = 2
    grid: dict = dataclasses.field(default_factory=dict)
    gain_metrics: tuple = ("ndcg@20", "recall@20")
    bootstrap: int = 2000
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        methods = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; valid: {', '.join(METHODS)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"a method is named twice in {methods}")
        if "original" not in methods:
            methods.insert(0, "original")
        self.methods = tuple(sorted(methods, key=METHODS.index))
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be an int >= 1, got {self.seeds!r}")
        if self.reppad not in (1, 2):
            raise ValueError(f"reppad must be 1 or 2, got {self.reppad!r}")
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 100:
            raise ValueError(f"bootstrap must be an int >= 100, got {self.bootstrap!r}")
        for m, fields in self.grid.items():
            if m not in self.methods:
                raise ValueError(f"grid names method {m!r}, which is not compared ({', '.join(self.methods)})")
            for key, values in fields.items():
                if not isinstance(values, (list, tuple)) or not values:
                    raise ValueError(f"grid {m}.{key}: give a non-empty list of values, got {values!r}")
        self.gain_metrics = tuple(self.gain_metrics)
        # Every config is built now, so a bad field fails before any work.
        self.train_config()
        for method in self.methods:
            for setting in self.settings(method):
                method_config(self, method, dict(setting))

    def settings(self, method: str) -> list[tuple]:
        """The settings of ``method``: the product of its grid, each a sorted tuple of (field, value)."""
        grid = self.grid.get(method, {})
        keys = sorted(grid)
        return [tuple(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    def train_config(self, **setting):
        """The resolved `TrainConfig` of a run (model included)."""
        from ..config import config_from_dict
        from ..training import TrainConfig

        return config_from_dict(TrainConfig, {**self.train, **setting, "model": self.model})

    @property
    def valid_metric(self) -> str:
        return self.train_config().valid_metric


def method_config(cfg: CompareConfig, method: str, setting: dict) -> dict:
    """The resolved config of ``method`` under ``setting``, as the plain dict the run id hashes.

    Keys: ``train`` (TrainConfig fields that define the result) and, per
    method, ``regen`` (RegenConfig), ``plus`` (PlusConfig), ``unids``
    (UniDSConfig).
    """
    # config_identity: options added by a later fastregen at their neutral value stay out of run ids
    from ..config import config_from_dict, config_identity, config_to_dict

    train_setting = setting if method in ("original", "reppad") else {}
    extra = {"reppad": cfg.reppad} if method == "reppad" else {}
    train = config_identity(cfg.train_config(**extra, **train_setting))
    for k in (*sorted(TRAIN_RUNTIME_FIELDS), "seed"):
        train.pop(k, None)
    out = {"train": train}
    if method in ("dr4sr", "dr4sr+"):
        from ..dr4sr import RegenConfig

        regen = config_identity(config_from_dict(RegenConfig, {**cfg.regen, **(setting if method == "dr4sr" else {})}))
        out["regen"] = {k: v for k, v in regen.items() if k not in _RUNTIME_REGEN_FIELDS}
    if method == "dr4sr+":
        from ..dr4sr.plus import PlusConfig

        plus = config_from_dict(PlusConfig, {**cfg.plus, **setting})
        plus.validate()
        out["plus"] = config_to_dict(plus)
    if method == "unids":
        from ..unids import UniDSConfig

        unids = config_to_dict(config_from_dict(UniDSConfig, {**cfg.unids, **setting}))
        out["unids"] = {k: v for k, v in unids.items() if k not in _RUNTIME_REGEN_FIELDS}
    return out


@dataclasses.dataclass(frozen=True)
class Run:
    """One target-model training run of a comparison.

    ``setting`` is a sorted tuple of (field, value) pairs (hashable); see
    `setting_dict`. ``key`` is everything that defines the run (JSON).
    """

    method: str
    setting: tuple
    seed: int
    key: str

    @property
    def setting_dict(self) -> dict:
        return dict(self.setting)

    @property
    def setting_label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.setting) or "-"

    @property
    def run_id(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def label(self) -> str:
        s = self.method + ("" if not self.setting else f"[{self.setting_label}]")
        return f"{s} seed {self.seed}"


def declare_runs(cfg: CompareConfig, data_sha256: str, regen_source: dict | None = None) -> list[Run]:
    """Every run of ``cfg``, in the order workers take them: seed by seed, methods in `METHODS` order.

    Seed-major order means that a comparison stopped early (a time budget)
    still holds complete pairs (original and every method at seed 0 first).
    ``regen_source`` (the ``--regen`` folder's config and data hash) replaces
    the declared regenerator in the ids of dr4sr and dr4sr+ runs.
    """
    runs = []
    for seed in range(cfg.seeds):
        for method in cfg.methods:
            for setting in cfg.settings(method):
                resolved = method_config(cfg, method, dict(setting))
                if regen_source is not None and method in ("dr4sr", "dr4sr+"):
                    resolved["regen"] = regen_source
                key = json.dumps({"data": data_sha256, "method": method, "model": cfg.model, "seed": seed,
                                  "setting": [list(p) for p in setting], "config": resolved},
                                 sort_keys=True, default=str)
                runs.append(Run(method, setting, seed, key))
    return runs
