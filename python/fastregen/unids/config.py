"""`UniDSConfig`: every option of the UniDS pipeline (YAML via `fastregen.config`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..config import check_int_fields
from ..patterns import STAGE_THETA_SCALES

__all__ = ["UniDSConfig", "GENERATOR_SET", "DECODE_FIELDS"]

#: Generator options UniDS sets itself (the `generator` dict may not override them; some are
#: DR4SR's mining options a UniDS generator never reads).
GENERATOR_SET = ("max_len", "max_pattern_len", "min_pattern_len", "entropy_weight", "seed", "device", "progress",
                 "training_set", "max_span", "min_support", "max_pairs_per_sequence")
#: Generator options that only change decoding (a rerun changing them keeps the trained generator).
DECODE_FIELDS = ("gamma", "schedule", "restrict", "decode_batch_size", "backend")
_TOKEN_KINDS = ("time", "session", "position", "category", "none", "auto")


@dataclass
class UniDSConfig:
    """Configuration of UniDS (`fastregen.unids.UniDS`).

    Stage-wise mining
    -----------------
    stages : tuple of str, default ("recall", "coarse", "fine")
        The stages to generate data for.
    theta_recall, theta_coarse, theta_fine : float, defaults 1.2, 1.3, 1.4
        Theta of each stage as a scale of the mean seed entropy
        (`fastregen.patterns.STAGE_THETA_SCALES`); > 0.
    threshold_control : bool, default True
        False is the "w/o TC" ablation: every stage mines at the coarse
        stage's theta.
    min_count : int, default 2
        c, the least occurrences of a pattern.
    max_pattern_len : int, default 8
        L_max, the longest pattern.
    pm : str, default "markov"
        p_m: ``"markov"`` (order ``pm_order``) or a registered target model
        (``"sasrec"``, ``"hstu"``, ...) trained on the training split, early
        stopped on validation, for at most ``pm_epochs`` epochs.
    pm_order : int, default 2
    pm_epochs : int, default 100

    Uniform data formalisation (pattern-token sequences)
    ----------------------------------------------------
    uniform_format : bool, default True
        False is the "w/o UF" ablation: the generator reads and writes bare
        segments, no T or stage tokens.
    token_recall, token_coarse, token_fine : str, defaults "position", "auto", "auto"
        The T-token kind of each stage: ``"time"``, ``"session"``,
        ``"position"``, ``"category"``, ``"none"`` or ``"auto"`` (time when
        the data has timestamps, else position); `fastregen.unids.tokens`.
    time_buckets : int, default 32
    position_buckets : int, default 8
    session_gap : int, default 3600
        Seconds between two interactions that start a new session.

    Uniform generation
    ------------------
    uniform_generation : bool, default True
        False is the "w/o UG" ablation: no generator; the mined multi-item
        segments of every stage are the generated data.
    target : {"segment", "sequence"}, default "segment"
        What the generator reconstructs from a user's pattern-token window:
        one segment ``[P_i, T_i]`` per pair, its own promoter mixture
        (DR4SR's pairs with the segments as patterns), or the whole window
        with a promoter per segment (eq. 7-8 read literally);
        `fastregen.unids.generator.build_pairs`. "segment" is the default
        because it is what trains on a CPU budget: on ml-100k (2,829
        windows of 50 tokens, K = 5) whole-window targets cost 40-90 s per
        epoch and their held-out cross-entropy stalled at 2.25 nats per
        token after 3-10 epochs (dropout 0.5 or 0.1, batch 32), i.e. the
        decoder had not learnt to copy the window, so decoding produced
        mostly T tokens (BENCHMARKS.md, UniDS).
    max_len : int, default 100
        Tokens of a generator source (stage token included).
    dedup : {"user", "global"}, default "user"
        Drop generated sequences repeated for one user, or anywhere (DR4SR's
        rule; on ml-100k it left 820 sequences of 2 items, 1.7% of the
        original items, from decoding 2,829 sources with 5 memories).
    generated_ratio : float, default 1.0
        Generate about this many items per original training item (UniDS's
        Table 2: ~0.7 extra on ML-1M); 0 or less: decode every source.
    min_items : int, default 2
        Shortest segment trained on and shortest generated sequence kept.
    max_pairs_per_sequence : int, default 10
        Pre-training pairs per (stage, user).
    diversity_weight : float, default 0.1
        lambda of ``L_rec - lambda H(pi)`` (`fastregen.unids.generator`).
    generator : dict
        Other options of the generator (fields of `fastregen.generator`'s
        `GeneratorConfig`, `PretrainConfig`, `DecodeConfig`: ``K``,
        ``d_model``, ``epochs``, ``gamma``, ``schedule``, ...), their
        defaults otherwise (K 5, 20 epochs, gamma 0.1, the paper's schedule).

    Runtime
    -------
    seed : int, default 0
    device : str, default "cpu"
    threads : int, default 0
        OpenMP threads of the miner (0: default).
    progress : bool, default True
    """

    stages: tuple = ("recall", "coarse", "fine")
    theta_recall: float = STAGE_THETA_SCALES["recall"]
    theta_coarse: float = STAGE_THETA_SCALES["coarse"]
    theta_fine: float = STAGE_THETA_SCALES["fine"]
    threshold_control: bool = True
    min_count: int = 2
    max_pattern_len: int = 8
    pm: str = "markov"
    pm_order: int = 2
    pm_epochs: int = 100
    uniform_format: bool = True
    token_recall: str = "position"
    token_coarse: str = "auto"
    token_fine: str = "auto"
    time_buckets: int = 32
    position_buckets: int = 8
    session_gap: int = 3600
    uniform_generation: bool = True
    target: str = "segment"
    max_len: int = 100
    generated_ratio: float = 1.0
    dedup: str = "user"
    min_items: int = 2
    max_pairs_per_sequence: int = 10
    diversity_weight: float = 0.1
    generator: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.stages = tuple(self.stages)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first invalid option."""
        from .stages import check_stages

        check_stages(self.stages)
        for s in ("recall", "coarse", "fine"):
            v = getattr(self, f"theta_{s}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"theta_{s} must be a finite number > 0 (a scale of the mean entropy), got {v!r}")
            kind = getattr(self, f"token_{s}")
            if kind not in _TOKEN_KINDS:
                raise ValueError(f"token_{s} = {kind!r} is not a T-token kind; choose one of {', '.join(_TOKEN_KINDS)}")
        ints = dict(min_count=1, max_pattern_len=1, pm_order=0, pm_epochs=1, time_buckets=1, position_buckets=1,
                    session_gap=0, max_len=2, min_items=1, max_pairs_per_sequence=1, threads=0)
        check_int_fields(self, ints)
        if not isinstance(self.pm, str):
            raise TypeError(f"pm must be a string, got {self.pm!r}")
        if self.pm != "markov":
            from ..models import model_class

            model_class(self.pm)  # unknown names fail here, listing the valid ones
        if self.dedup not in ("user", "global"):
            raise ValueError(f"dedup must be 'user' or 'global', got {self.dedup!r}")
        if self.target not in ("sequence", "segment"):
            raise ValueError(f"target must be 'sequence' or 'segment', got {self.target!r}")
        if isinstance(self.generated_ratio, bool) or not math.isfinite(float(self.generated_ratio)):
            raise ValueError(f"generated_ratio must be a finite number, got {self.generated_ratio!r}")
        if not math.isfinite(float(self.diversity_weight)):
            raise ValueError(f"diversity_weight must be finite, got {self.diversity_weight}")
        if not isinstance(self.generator, dict):
            raise TypeError(f"generator must be a dict of generator options, got {type(self.generator).__name__}")
        clash = sorted(set(self.generator) & set(GENERATOR_SET))
        if clash:
            raise ValueError(f"generator may not set {', '.join(clash)}: UniDS sets them from its own options")
        self.generator_configs()  # unknown or invalid generator fields fail here

    def generator_configs(self):
        """The generator's architecture, pre-training and decoding configs
        (`fastregen.generator.split_options` of ``generator`` and the options UniDS sets)."""
        from ..generator import split_options

        values = dict(self.generator)
        longest = self.max_len if self.target == "sequence" else self.max_pattern_len + 1
        values.update(max_len=self.max_len, max_pattern_len=longest, min_pattern_len=1,
                      entropy_weight=-float(self.diversity_weight), seed=self.seed, device=self.device,
                      progress=self.progress)
        try:
            return split_options(values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"generator: {err}") from None

    def thetas(self) -> dict[str, float]:
        """The theta scale of every stage (``{"recall": theta_recall, ...}``)."""
        return {s: getattr(self, f"theta_{s}") for s in ("recall", "coarse", "fine")}

    def replace(self, **changes) -> "UniDSConfig":
        return dataclasses.replace(self, **changes)
