"""`RegenConfig`: every option of the DR4SR pipeline (mining, pairs, regenerator, inference)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..config import check_int_fields
from ..generator.config import DecodeConfig, GeneratorConfig, PretrainConfig, split_options

__all__ = ["RegenConfig", "TRAINING_SETS", "RUNTIME_FIELDS"]

#: RegenConfig fields that change how the pipeline executes, never what it computes (no stage is
#: redone when only these change).
RUNTIME_FIELDS = frozenset({"progress", "device", "backend", "decode_batch_size"})

TRAINING_SETS = ("combined", "combined_authors", "regenerated")


@dataclass
class RegenConfig:
    """Configuration of DR4SR dataset regeneration (defaults follow the paper / the authors' code).

    Mining and pre-training pairs
    -----------------------------
    max_span : int, default 5
        Longest mined pattern (`fastregen.patterns.mine_patterns`).
    min_support : int, default 2
        Minimum support of a mined pattern.
    max_pairs_per_sequence : int, default 10
        Pre-training pairs drawn per sequence (`fastregen.patterns.pretrain_pairs`).
    max_len : int, default 50
        Longest input sequence the regenerator reads (most recent items kept).

    Regenerator (a transformer encoder-decoder)
    -------------------------------------------
    d_model, n_heads, n_encoder_layers, n_decoder_layers, d_ff, dropout
        Defaults 64, 2, 2, 2, 256, 0.5 (the authors').
    K : int, default 5
        Number of memory spaces the encoder memory is projected into (the
        diversity factor); ``K = 1`` is the paper's "-diversity" ablation.
    diversity : {"soft", "gumbel", "hard"}, default "soft"
        How the K memories are weighed in training: ``"soft"`` is a plain
        softmax of the diversity promoter (every memory gets gradient; the
        paper's formulation); ``"gumbel"`` is a Gumbel-softmax with
        temperature annealed per step from ``tau_start`` by ``tau_decay``
        down to ``tau_min`` (the authors' released code: 1.0, 0.995, 0.1);
        ``"hard"`` trains each pattern only through the memory that decodes
        it best (hard EM over the memories, as in mixture models for diverse
        translation), so training sees what inference sees: one memory
        alone. The promoter is unused with ``"hard"``, and a step costs K
        decoder passes. Inference decodes every memory alone whatever this
        is; with ``"soft"`` the promoter's ``pi``, which is computed from
        the target pattern, can carry that pattern to the decoder, so a low
        training loss need not mean good single-memory decoding (compare
        ``valid_best_memory_loss`` in the pre-training history).
    entropy_weight : float, default 0.0
        Weight of the entropy of ``pi`` added to the loss. Positive values
        push each pattern to one memory (the authors' code uses 1.0);
        negative ones reward spreading it (UniDS's ``L_rec - H(pi)``,
        `fastregen.unids`). Alone
        it does not make the memories specialise: on Beauty the promoter
        then sent every pattern to the same memory (BENCHMARKS.md), so the
        other K - 1 were never trained. 0 disables the term.
    balance_weight : float, default 0.0
        Weight of ``log K - H(mean over the batch of pi)`` added to the
        loss: zero when the batch's patterns are spread evenly over the
        memories, ``log K`` when all go to one. With ``entropy_weight`` it
        asks for one memory per pattern and different memories for
        different patterns (the load-balancing term of mixture-of-experts
        models). Needs ``diversity`` "soft" or "gumbel" and K > 1; 0
        disables the term.
    train_softmax : {"source", "full", "sampled", "auto"}, default "source"
        Normalise the teacher-forced cross-entropy (paper eq. 2) over the
        items of the input sequence plus EOS (the authors' code), over the
        whole vocabulary, or over the target and ``num_negatives`` uniform
        plus the batch's own targets as negatives, with the log-Q correction
        (`fastregen.training.sampled_softmax_cross_entropy`; held-out losses
        are still scored with the full softmax). ``"auto"``: ``"sampled"``
        from `fastregen.training.SAMPLED_SOFTMAX_MIN_VOCAB` ids on, else
        ``"full"``.
    num_negatives : int, default `fastregen.training.DEFAULT_NUM_NEGATIVES`
        Uniform negatives per batch of the sampled softmax (at most the
        number of items + 1; unused by the other softmaxes).
    item_updates : {"dense", "lazy"}, default "dense"
        How pre-training updates the item table: Adam on every row every step
        (``"dense"``), or only the rows a step looked up, each with its own
        moments (``"lazy"``, `fastregen.training.LazyAdam`, TensorFlow's
        LazyAdam). At 700k items the dense update was more than half of a
        step (``benchmarks/sampled_softmax.py books --profile``); lazy updates
        are another optimiser for the rows a step does not see.
    init_item_embedding : bool, default True
        Initialise the item table from a trained target model's table when
        one is given to `DR4SR.fit` (the authors initialise from SASRec).
    pack_targets : bool, default False
        Pre-train the decoder and the promoter on the targets' real tokens
        alone (`fastregen.generator.PretrainConfig.pack_targets`): faster,
        the same loss up to rounding, other dropout masks.
    fused_attention : bool, default False
        Pre-train with the compiled ragged-attention kernel on CPU
        (`fastregen.generator.PretrainConfig.fused_attention`): faster, the
        same function up to rounding, other attention-dropout masks.

    Pre-training
    ------------
    epochs : int, default 20
    batch_size : int, default 256
    lr : float, default 1e-3
        Adam (betas 0.9, 0.98) with a cosine schedule over all steps.
    valid_fraction : float, default 0.05
        Share of pairs held out for the validation loss; the weights with the
        best validation loss are kept.

    Hybrid inference (paper §4.2.3)
    -------------------------------
    gamma : float, default 0.1
        Probability that a decoding step is generative (any item) rather
        than restrictive (only items of the input sequence).
    schedule : {"paper", "released"}, default "paper"
        ``"paper"``: each step of each row is generative with probability
        ``gamma`` (paper §4.2.3). ``"released"``: the first two steps
        restrictive, each later step generative with probability ``gamma``:
        the authors' ``3.Hybrid_inference.py`` line 197, ``if random.random()
        > 1 or i <= 1:`` (restrictive), where the maintainers' reply in their
        issue #5 says the ``1`` is gamma; with the released value
        ``gamma = 1`` every step after the second is generative. (Configs
        written before the rename say ``"random"``, read as ``"paper"``.)
    restrict : {"items", "ordered", "span"}, default "items"
        What a restrictive step may choose (besides EOS). ``"items"``: any
        item of the input sequence not yet in the pattern (the paper).
        ``"ordered"``: only an item that occurs in the input *after* the last
        input position the pattern has taken, so restrictive steps keep the
        sequence's order. ``"span"``: ``"ordered"``, and no further than
        ``max_span - 1`` positions after the first input position the
        pattern took -- the set the pre-training targets (span-constrained
        subsequences, `fastregen.patterns.mine_patterns`) come from.
        Generative steps are never restricted; a generated item that occurs
        in the allowed part of the input also advances the position.
    max_pattern_len : int, default 24
        Longest regenerated pattern (EOS not counted).
    min_pattern_len : int, default 2
        Shorter regenerated patterns are dropped.
    decode_batch_size : int, default 1024
        Sequences decoded together.
    training_set : {"combined", "combined_authors", "regenerated"}, default "combined"
        What `DR4SR.regenerate` returns and writes: original training
        sequences + mined patterns + regenerated patterns, each once
        (``"combined"``); the authors' training file (``"combined_authors"``,
        the original sequences twice, see `DR4SR.training_sets`); or the
        regenerated patterns only.

    Runtime
    -------
    seed : int, default 0
        Seeds pair sampling, initialisation, batching, dropout, Gumbel noise
        and the generative/restrictive draws.
    device : str, default "cpu"
    backend : {"auto", "torch", "triton"}, default "auto"
        Backend of the fused ops (`fastregen.ops`).
    progress : bool, default True
        Show progress bars.
    """

    # mining and pairs
    max_span: int = DecodeConfig.max_span
    min_support: int = 2
    max_pairs_per_sequence: int = 10
    max_len: int = GeneratorConfig.max_len
    # model
    d_model: int = GeneratorConfig.d_model
    n_heads: int = GeneratorConfig.n_heads
    n_encoder_layers: int = GeneratorConfig.n_encoder_layers
    n_decoder_layers: int = GeneratorConfig.n_decoder_layers
    d_ff: int = GeneratorConfig.d_ff
    dropout: float = GeneratorConfig.dropout
    K: int = GeneratorConfig.K
    diversity: str = GeneratorConfig.diversity
    tau_start: float = GeneratorConfig.tau_start
    tau_decay: float = GeneratorConfig.tau_decay
    tau_min: float = GeneratorConfig.tau_min
    entropy_weight: float = PretrainConfig.entropy_weight
    balance_weight: float = PretrainConfig.balance_weight
    train_softmax: str = GeneratorConfig.train_softmax
    num_negatives: int = GeneratorConfig.num_negatives
    item_updates: str = PretrainConfig.item_updates
    init_item_embedding: bool = PretrainConfig.init_item_embedding
    pack_targets: bool = PretrainConfig.pack_targets
    fused_attention: bool = PretrainConfig.fused_attention
    #: Fields added since stage records and run ids hashed every field, at the value that computes what
    #: was computed before them (`fastregen.config.config_identity`): finished stages stay finished after
    #: an upgrade. A new field goes here with its neutral value.
    ADDED_OPTIONS: ClassVar[dict] = {"num_negatives": GeneratorConfig.num_negatives, "item_updates": "dense",
                                     "pack_targets": False, "fused_attention": False}
    # pre-training
    epochs: int = PretrainConfig.epochs
    batch_size: int = PretrainConfig.batch_size
    lr: float = PretrainConfig.lr
    valid_fraction: float = PretrainConfig.valid_fraction
    # inference
    gamma: float = DecodeConfig.gamma
    schedule: str = DecodeConfig.schedule
    restrict: str = DecodeConfig.restrict
    max_pattern_len: int = GeneratorConfig.max_pattern_len
    min_pattern_len: int = DecodeConfig.min_pattern_len
    decode_batch_size: int = DecodeConfig.decode_batch_size
    training_set: str = "combined"
    # runtime
    seed: int = PretrainConfig.seed
    device: str = PretrainConfig.device
    backend: str = PretrainConfig.backend
    progress: bool = PretrainConfig.progress

    def __post_init__(self) -> None:
        if self.schedule == "random":  # the name before "paper"; old config.yaml files say it
            self.schedule = "paper"
        self.validate()

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first invalid option.

        The generator's options are checked by its own configs (`architecture`,
        `pretraining`, `decoding`); the rest here.
        """
        check_int_fields(self, dict(min_support=1, max_pairs_per_sequence=1))
        if self.training_set not in TRAINING_SETS:
            raise ValueError(f"training_set must be one of {', '.join(TRAINING_SETS)}; got {self.training_set!r}")
        self.generator_configs()

    def generator_configs(self) -> tuple[GeneratorConfig, PretrainConfig, DecodeConfig]:
        """The generator's three configs (`fastregen.generator.split_options`) of this config's fields."""
        return split_options(dataclasses.asdict(self), strict=False)

    def architecture(self) -> GeneratorConfig:
        """The regenerator's architecture (`fastregen.generator.GeneratorConfig`)."""
        return self.generator_configs()[0]

    def pretraining(self) -> PretrainConfig:
        """How the regenerator is pre-trained (`fastregen.generator.PretrainConfig`)."""
        return self.generator_configs()[1]

    def decoding(self) -> DecodeConfig:
        """How hybrid inference decodes (`fastregen.generator.DecodeConfig`)."""
        return self.generator_configs()[2]
