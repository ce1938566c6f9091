"""The generator's own options: its architecture, its pre-training, its decoding.

Each option of the regenerator has its home here, with its default and its
check. The methods' configs (`fastregen.dr4sr.RegenConfig`,
`fastregen.unids.UniDSConfig`) hold them as flat fields for their YAML files
and run fingerprints, and build these three from them (`split_options`), so
``gamma`` and friends are defined and checked once.

* `GeneratorConfig` -- what the model *is* (the only part a checkpoint stores).
* `PretrainConfig` -- how `fastregen.generator.pretrain` trains it.
* `DecodeConfig` -- how `fastregen.generator.hybrid_inference` decodes with it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..config import check_int_fields
from ..training.losses import DEFAULT_NUM_NEGATIVES

__all__ = ["GeneratorConfig", "PretrainConfig", "DecodeConfig", "split_options", "check_pretraining",
           "as_architecture", "as_pretraining",
           "SCHEDULES", "RESTRICT", "DIVERSITY", "TRAIN_SOFTMAX", "ITEM_UPDATES", "BACKENDS"]

SCHEDULES = ("paper", "released")
RESTRICT = ("items", "ordered", "span")
DIVERSITY = ("soft", "gumbel", "hard")
TRAIN_SOFTMAX = ("source", "full", "sampled", "auto")
ITEM_UPDATES = ("dense", "lazy")
BACKENDS = ("auto", "torch", "triton")


def _check_choice(obj, name: str, allowed: tuple) -> None:
    if getattr(obj, name) not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(obj, name)!r}")


@dataclass
class GeneratorConfig:
    """The regenerator's architecture (`fastregen.generator.Regenerator`); what its checkpoint stores.

    Parameters
    ----------
    max_len : int, default 50
        Longest input sequence read (most recent items kept).
    max_pattern_len : int, default 24
        Longest pattern (EOS not counted): pre-training targets are cut to
        it and the position table holds ``max(max_len, max_pattern_len + 1)``
        positions.
    d_model, n_heads, n_encoder_layers, n_decoder_layers, d_ff, dropout
        Defaults 64, 2, 2, 2, 256, 0.5 (the authors').
    K : int, default 5
        Memory spaces the encoder memory is projected into (the diversity
        factor); ``K = 1`` is the paper's "-diversity" ablation.
    diversity : {"soft", "gumbel", "hard"}, default "soft"
        How the K memories are weighed in training (see
        `fastregen.dr4sr.RegenConfig` for the trade-offs).
    tau_start, tau_decay, tau_min : float, defaults 1.0, 0.995, 0.1
        The Gumbel temperature schedule (``diversity="gumbel"``).
    train_softmax : {"source", "full", "sampled", "auto"}, default "source"
        Normalise the teacher-forced cross-entropy over the input's items
        plus EOS (the authors'), over the whole vocabulary, or over the
        target, ``num_negatives`` uniform negatives and the batch's targets
        with the log-Q correction (`fastregen.training.sampled_softmax_cross_entropy`);
        "auto" samples above `fastregen.training.resolve_train_softmax`'s
        measured vocabulary size, else "full".
    num_negatives : int, default 512
        Uniform negatives per batch of ``train_softmax="sampled"``.
    """

    max_len: int = 50
    max_pattern_len: int = 24
    d_model: int = 64
    n_heads: int = 2
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.5
    K: int = 5
    diversity: str = "soft"
    tau_start: float = 1.0
    tau_decay: float = 0.995
    tau_min: float = 0.1
    train_softmax: str = "source"
    num_negatives: int = DEFAULT_NUM_NEGATIVES

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first invalid option."""
        check_int_fields(self, dict(max_len=1, max_pattern_len=1, d_model=1, n_heads=1, n_encoder_layers=1,
                               n_decoder_layers=1, d_ff=1, K=1, num_negatives=1))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model = {self.d_model} must be divisible by n_heads = {self.n_heads}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (0 < float(self.tau_min) <= float(self.tau_start)) or not 0 < float(self.tau_decay) <= 1:
            raise ValueError(
                f"need 0 < tau_min <= tau_start and 0 < tau_decay <= 1; got tau_start={self.tau_start}, "
                f"tau_decay={self.tau_decay}, tau_min={self.tau_min}"
            )
        _check_choice(self, "diversity", DIVERSITY)
        _check_choice(self, "train_softmax", TRAIN_SOFTMAX)


@dataclass
class PretrainConfig:
    """How `fastregen.generator.pretrain` trains the regenerator.

    Parameters
    ----------
    epochs : int, default 20
    batch_size : int, default 256
    lr : float, default 1e-3
        Adam (betas 0.9, 0.98) with a cosine schedule over all steps.
    valid_fraction : float, default 0.05
        Share of pairs held out; the weights with the best held-out
        best-memory loss are kept.
    entropy_weight : float, default 0.0
        Weight of the entropy of the promoter's ``pi`` added to the loss
        (positive: one memory per pattern; negative: UniDS's ``-H(pi)``).
    balance_weight : float, default 0.0
        Weight of ``log K - H(mean over the batch of pi)`` (needs diversity
        "soft" or "gumbel" and K > 1, `check_pretraining`).
    init_item_embedding : bool, default True
        Start the item table from a trained target model's when one is given.
    item_updates : {"dense", "lazy"}, default "dense"
        "lazy": Adam updates only the item-table rows a step looked up
        (`fastregen.training.LazyAdam`; at Amazon-Books scale the dense
        update of the 700k x d table is about half of a step). A different
        optimiser from Adam for the rows a step does not see.
    pack_targets : bool, default False
        Run the decoder and the promoter on the targets' real tokens alone
        (`fastregen.generator.layers.Packing`): on Beauty ~37% of the decoder's
        positions are padding. The same loss up to float rounding, but other
        dropout masks (drawn for real tokens only), so not the bits of the
        padded run.
    fused_attention : bool, default False
        Train with the compiled ragged-attention kernel
        (`fastregen.ops.ragged_attention`) on CPU: one pass per sequence and
        head instead of ~15 small torch ops, no padded copies of packed rows.
        The same function up to float rounding, but dropout on the attention
        weights draws other masks, so not the bits of the torch path.
        Inference is unchanged (the option is off once pre-training ends).
    seed : int, default 0
        Seeds the held-out split, initialisation, batching, dropout, Gumbel noise.
    device : str, default "cpu"
    backend : {"auto", "torch", "triton"}, default "auto"
        Backend of the fused ops (`fastregen.ops`).
    progress : bool, default True
    """

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    valid_fraction: float = 0.05
    entropy_weight: float = 0.0
    balance_weight: float = 0.0
    init_item_embedding: bool = True
    item_updates: str = "dense"
    pack_targets: bool = False
    fused_attention: bool = False
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"
    progress: bool = True

    #: Fields that change how pre-training runs, never what it computes.
    RUNTIME = ("device", "backend", "progress")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first invalid option."""
        check_int_fields(self, dict(epochs=0, batch_size=1))
        if not 0.0 <= float(self.valid_fraction) < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if float(self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not math.isfinite(float(self.entropy_weight)):
            raise ValueError(f"entropy_weight must be a finite number, got {self.entropy_weight}")
        if float(self.balance_weight) < 0:
            raise ValueError(f"balance_weight must be >= 0, got {self.balance_weight}")
        _check_choice(self, "backend", BACKENDS)
        _check_choice(self, "item_updates", ITEM_UPDATES)
        for name in ("pack_targets", "fused_attention"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")


@dataclass
class DecodeConfig:
    """How `fastregen.generator.hybrid_inference` decodes (DR4SR §4.2.3).

    Parameters
    ----------
    gamma : float, default 0.1
        Probability that a decoding step is generative (any item) rather
        than restrictive (only items of the input sequence).
    schedule : {"paper", "released"}, default "paper"
        ``"paper"``: every step draws; ``"released"``: the first two steps
        restrictive (the authors' ``3.Hybrid_inference.py``).
    restrict : {"items", "ordered", "span"}, default "items"
        What a restrictive step may choose (see `fastregen.dr4sr.RegenConfig`).
    max_span : int, default 5
        How far a ``"span"`` step may reach past the first input position taken.
    max_pattern_len : int, optional
        Longest decoded pattern; default the model's.
    min_pattern_len : int, default 2
        Shorter decoded patterns are dropped.
    decode_batch_size : int, default 1024
        Sequences decoded together.
    seed : int, default 0
        Seeds the generative/restrictive draws.
    backend : {"auto", "torch", "triton"}, default "auto"
    progress : bool, default True
    """

    gamma: float = 0.1
    schedule: str = "paper"
    restrict: str = "items"
    max_span: int = 5
    max_pattern_len: int | None = None
    min_pattern_len: int = 2
    decode_batch_size: int = 1024
    seed: int = 0
    backend: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.schedule == "random":  # the name before "paper"; old config files say it
            self.schedule = "paper"
        self.validate()

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first invalid option."""
        check_int_fields(self, dict(max_span=1, min_pattern_len=1, decode_batch_size=1))
        if self.max_pattern_len is not None:
            check_int_fields(self, dict(max_pattern_len=1))
            if self.min_pattern_len > self.max_pattern_len:
                raise ValueError(
                    f"min_pattern_len = {self.min_pattern_len} exceeds max_pattern_len = {self.max_pattern_len}"
                )
        if not 0.0 <= float(self.gamma) <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        _check_choice(self, "schedule", SCHEDULES)
        _check_choice(self, "restrict", RESTRICT)
        _check_choice(self, "backend", BACKENDS)


def check_pretraining(architecture: GeneratorConfig, pretraining: PretrainConfig) -> None:
    """The one check that spans two configs: the balance term needs memories to balance."""
    if float(pretraining.balance_weight) > 0 and (architecture.diversity == "hard" or architecture.K == 1):
        raise ValueError(
            f"balance_weight = {pretraining.balance_weight} spreads the promoter's pi over the memories; it needs "
            f"diversity 'soft' or 'gumbel' and K > 1 (got diversity={architecture.diversity!r}, K={architecture.K})"
        )


def _as(config, cls, builder: str):
    """``config`` as a ``cls``: itself, what a method's config builds with its ``builder()`` method
    (`fastregen.dr4sr.RegenConfig.architecture`, say), or the defaults for None."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if callable(getattr(config, builder, None)):
        return getattr(config, builder)()
    raise TypeError(f"config must be a {cls.__name__} (or a config with a {builder}() method), "
                    f"got {type(config).__name__}")


def as_architecture(config) -> GeneratorConfig:
    """The `GeneratorConfig` of ``config`` (itself, or a method config's ``architecture()``; None: defaults)."""
    return _as(config, GeneratorConfig, "architecture")


def as_pretraining(config) -> PretrainConfig:
    """The `PretrainConfig` of ``config`` (itself, or a method config's ``pretraining()``; None: defaults)."""
    return _as(config, PretrainConfig, "pretraining")


def _fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def split_options(values: dict, *, strict: bool = True) -> tuple[GeneratorConfig, PretrainConfig, DecodeConfig]:
    """The three generator configs of flat ``values`` (each field goes to every config that has it).

    ``strict``: a name no config has is a ValueError (else ignored). Raises
    what the configs' checks raise, and `check_pretraining`'s.
    """
    values = dict(values)
    known = set(_fields(GeneratorConfig)) | set(_fields(PretrainConfig)) | set(_fields(DecodeConfig))
    unknown = sorted(set(values) - known)
    if strict and unknown:
        raise ValueError(f"unknown generator option(s): {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    arch = GeneratorConfig(**{k: v for k, v in values.items() if k in _fields(GeneratorConfig)})
    pre = PretrainConfig(**{k: v for k, v in values.items() if k in _fields(PretrainConfig)})
    dec = DecodeConfig(**{k: v for k, v in values.items() if k in _fields(DecodeConfig)})
    check_pretraining(arch, pre)
    return arch, pre, dec
