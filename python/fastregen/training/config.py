"""`TrainConfig`: everything that defines a target-model training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..evaluation import DEFAULT_KS, REPEATED_TARGET
from .losses import TRAIN_SOFTMAX

__all__ = ["TrainConfig", "LOSSES", "TRAIN_TARGETS", "RUNTIME_FIELDS", "AUTHORS_SCHEME"]

#: TrainConfig fields that change how a run executes, never what it computes: left out of the
#: checkpoint's config check (a run may resume with other threads or without progress bars) and out
#: of run ids.
RUNTIME_FIELDS = frozenset({"progress", "num_threads", "device", "eval_batch_size"})

LOSSES = ("bce", "sampled_softmax", "softmax")
#: How a training sequence becomes examples (`fastregen.training.Examples`).
TRAIN_TARGETS = ("auto", "all", "last", "packed")
POSITIONS = ("recent", "oldest")
LOSS_NORMALISATIONS = ("constant", "batch_mean")
#: How Adam updates the item table (`TrainConfig.item_updates`).
ITEM_UPDATES = ("dense", "lazy")

#: The DR4SR authors' training scheme (their ``run.py`` with the released
#: configs), as `TrainConfig` fields: ``TrainConfig(**AUTHORS_SCHEME)``.
#: Their rows are post-padded, so position 0 is each row's oldest item
#: (``positions="oldest"``; with causal attention that hides padding keys,
#: post-padding itself changes nothing else); their batches are drawn at
#: random (``length_bucketing=False``) and each batch's loss is the mean
#: over its own targets (``loss_normalisation="batch_mean"``); their
#: preprocessing cuts every sequence to its last 50 items before the
#: leave-one-out split (``truncate_before_split=50``), so each user gives
#: one training row of at most 48 items. Not included, because they are
#: not the trainer: their evaluator masks a test target that repeats a
#: history item (fastregen ranks it), and their attention's q/k/v weights
#: keep PyTorch's xavier initialisation (SASRec's
#: ``model_kwargs={"qkv_init": "xavier"}``).
AUTHORS_SCHEME = dict(positions="oldest", length_bucketing=False, loss_normalisation="batch_mean",
                      truncate_before_split=50)


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
    train_softmax : {"full", "sampled", "auto"}, default "full"
        With ``loss="softmax"``: normalise over every item, or over the
        target, ``num_negatives`` uniform items (0 picks
        `fastregen.training.DEFAULT_NUM_NEGATIVES`) and the batch's own
        targets, with the log-Q correction
        (`fastregen.training.sampled_softmax_cross_entropy`); "auto" samples
        from `fastregen.training.SAMPLED_SOFTMAX_MIN_VOCAB` items on. Other
        losses take "full" only.
    train_targets : {"auto", "all", "last", "packed"}, default "auto"
        How training sequences become examples (`fastregen.training.Examples`):

        * ``"all"``: one row per sequence (windows of ``max_len + 1`` items
          for longer ones), every position a target. This is the DR4SR
          authors' protocol: every released dataset config
          (``configs/amazon-beauty.yaml`` etc.) sets
          ``dataset_class: 'general'``, which ``model/basemodel.py`` maps to
          ``SeparateDataset``.
        * ``"packed"``: the "all" windows packed greedily into full rows
          (the authors' ``CondenseDataset``, which no released config
          selects); causal models only.
        * ``"last"``: the last position of every prefix (for non-causal
          models such as FMLP-Rec).
        * ``"auto"``: "all" for causal models, "last" otherwise.
    epochs : int, default 200
        Upper bound; early stopping usually ends the run first.
    batch_size : int, default 256
        Examples per batch.
    lr : float, default 1e-3
    weight_decay : float, default 0.0
    item_updates : {"dense", "lazy"}, default "dense"
        How Adam updates the item table (``item_embedding``): every row every
        step (``"dense"``, fused Adam), or only the rows a step looked up,
        with their own moments (``"lazy"``, `fastregen.training.LazyAdam`,
        the regenerator's ``item_updates`` for target models; the model's
        item lookups then give sparse gradients). At Amazon-Books scale
        (700k items) the dense update of the table, its gradient and both
        moments was most of a SASRec step (BENCHMARKS.md, "Scale"). Not
        Adam for the rows a step leaves out (their moments do not decay);
        needs ``weight_decay=0`` and fastregen's own optimizer (no
        ``optimizer`` given to `fit`).
    patience : int, default 20
        Evaluations without improvement of ``valid_metric`` before stopping.
    valid_metric : str, default "ndcg@20"
    eval_every : int, default 1
        Epochs between validations.
    eval_batch_size : int, default 1024
    ks : tuple of int, default (10, 20, 50)
    valid_max_rank : int, optional
        Validation ranks each target only up to this rank
        (`fastregen.evaluation.evaluate`'s ``max_rank``): the same
        ``recall@K`` / ``ndcg@K`` for K <= ``valid_max_rank`` (the cut-offs
        of ``ks`` above it, ``mrr`` and ``auc`` are left out of the
        validation records), and on CPUs with AMX tiles most users stop
        after a small share of the items (Books' 700k: BENCHMARKS.md,
        "Scale"). ``valid_metric`` must be one of those metrics. Test
        evaluation always ranks fully. None (the default): full ranks.
    exclude_history : bool, default True
        Remove history items from the ranking (see `fastregen.evaluation`).
    repeated_target : {"keep", "mask"}, default "keep"
        A validation / test target that also occurs in the user's history:
        ranked (``keep``) or given the worst rank (``mask``, DR4SR's
        evaluator); see `fastregen.evaluation.REPEATED_TARGET`.
    num_threads : int or "auto", default "auto"
        torch intra-op threads; "auto" counts the cores no other process is
        busy on when the run starts (`fastregen._threads.free_cores`: one
        thread on a loaded machine, where a second one makes an epoch
        several times slower); 0 leaves torch's setting alone.
    bucket_window : int, default 32
        Batches per length-sorting window of the bucketing; 0 sorts the
        whole epoch. A window mixing long sequences with many short ones
        (original data plus mined or regenerated patterns) sorts the long
        ones coarsely: on Beauty's original + mined patterns, SASRec's
        attention cells fall from 5.7M (32) to 2.3M (0) per epoch
        (BENCHMARKS.md, "The study engine"). The default keeps the batches of
        the committed study rows.
    length_bucketing : bool, default True
        Group examples of similar length into batches and drop all-padding
        columns. Several times faster on short-sequence data (Amazon
        Beauty); the loss is normalised by a constant number of targets per
        batch (`fastregen.training.Trainer`), so every target keeps the same
        weight whatever batch it lands in.
    positions : {"recent", "oldest"}, default "recent"
        How models with absolute position embeddings (SASRec, CL4SRec, GNN,
        HSTU) number a row's items: "recent" gives the most recent item the
        last position whatever the row's length; "oldest" numbers from each
        row's oldest item (0), as post-padded rows do in the DR4SR authors'
        code. Stored with the model (`fastregen.models.build_model`).
    loss_normalisation : {"constant", "batch_mean"}, default "constant"
        "constant": every batch's loss sum is divided by one constant, the
        mean targets per batch (`fastregen.training.Trainer`), so each
        target weighs the same; "batch_mean": by the batch's own number of
        targets, as the DR4SR authors' code (a target in a small batch then
        weighs more).
    truncate_before_split : int, default 0
        When > 0, every sequence is cut to its last ``truncate_before_split``
        items before the leave-one-out split (the DR4SR authors'
        preprocessing, 50), and so is every sequence of a ``train_data``
        given to `fit_and_evaluate`. 0 keeps whole sequences.
    reppad : {0, 1, 2}, default 0
        RepPad (`fastregen.training.reppad`): pad each training sequence
        shorter than ``max_len`` with copies of itself, 1 back to back, 2
        with a delimiter 0 between the copies; 0 is off. Needs
        ``train_targets`` "all" (a causal model); validation and test are
        untouched.
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
    train_softmax: str = "full"
    train_targets: str = "auto"
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    item_updates: str = "dense"
    patience: int = 20
    valid_metric: str = "ndcg@20"
    eval_every: int = 1
    eval_batch_size: int = 1024
    ks: tuple = DEFAULT_KS
    valid_max_rank: int | None = None
    exclude_history: bool = True
    repeated_target: str = "keep"
    num_threads: int | str = "auto"
    length_bucketing: bool = True
    bucket_window: int = 32
    positions: str = "recent"
    loss_normalisation: str = "constant"
    truncate_before_split: int = 0
    reppad: int = 0
    seed: int = 0
    progress: bool = True

    #: Fields added since run ids of `fastregen compare` hashed every field, at the value that trains as
    #: before them (`fastregen.config.config_identity`): a comparison's finished runs stay finished after
    #: an upgrade. A new field goes here with its neutral value.
    ADDED_OPTIONS: ClassVar[dict] = {"train_softmax": "full", "item_updates": "dense", "valid_max_rank": None}
    device: str = "cpu"

    def valid_ks(self) -> tuple:
        """The cut-offs validation reports: ``ks``, less those above ``valid_max_rank``."""
        cap = self.valid_max_rank
        return tuple(k for k in self.ks if cap is None or k <= cap)

    def __post_init__(self) -> None:
        from ..models import model_class

        model_class(self.model)  # unknown names fail here, listing the valid ones
        if self.loss not in LOSSES + ("auto",):
            raise ValueError(f"unknown loss {self.loss!r}; valid: auto, {', '.join(LOSSES)}")
        if self.train_softmax not in TRAIN_SOFTMAX:
            raise ValueError(f"train_softmax must be one of {', '.join(TRAIN_SOFTMAX)}; got {self.train_softmax!r}")
        if self.train_softmax != "full" and self.loss not in ("auto", "softmax"):
            raise ValueError(f"train_softmax = {self.train_softmax!r} samples the full softmax loss; "
                             f"loss {self.loss!r} takes 'full' only")
        if self.repeated_target not in REPEATED_TARGET:
            raise ValueError(f"repeated_target must be one of {', '.join(REPEATED_TARGET)}, got {self.repeated_target!r}")
        if self.train_targets not in TRAIN_TARGETS:
            raise ValueError(f"train_targets must be one of {', '.join(map(repr, TRAIN_TARGETS))}, "
                             f"got {self.train_targets!r}")
        if not isinstance(self.num_negatives, int) or self.num_negatives < 0:
            raise ValueError(f"num_negatives must be an int >= 0, got {self.num_negatives!r}")
        for name in ("embed_dim", "max_len", "epochs", "batch_size", "eval_every", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if isinstance(self.bucket_window, bool) or not isinstance(self.bucket_window, int) or self.bucket_window < 0:
            raise ValueError(f"bucket_window must be an int >= 0 (0: the whole epoch), got {self.bucket_window!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.item_updates not in ITEM_UPDATES:
            raise ValueError(f"item_updates must be one of {', '.join(ITEM_UPDATES)}; got {self.item_updates!r}")
        if self.item_updates == "lazy" and self.weight_decay:
            raise ValueError(f"item_updates='lazy' takes no weight decay (LazyAdam has none); "
                             f"got weight_decay={self.weight_decay}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        self.ks = tuple(int(k) for k in self.ks)
        metric_names = {f"{m}@{k}" for m in ("recall", "ndcg") for k in self.ks} | {"mrr", "auc"}
        if self.valid_metric not in metric_names:
            raise ValueError(f"valid_metric {self.valid_metric!r} is not computed; choose one of {sorted(metric_names)}")
        if self.valid_max_rank is not None:
            if (isinstance(self.valid_max_rank, bool) or not isinstance(self.valid_max_rank, int)
                    or self.valid_max_rank < 1):
                raise ValueError(f"valid_max_rank must be an int >= 1 or None, got {self.valid_max_rank!r}")
            exact = {f"{m}@{k}" for m in ("recall", "ndcg") for k in self.valid_ks()}
            if self.valid_metric not in exact:
                raise ValueError(f"valid_metric {self.valid_metric!r} needs ranks beyond valid_max_rank = "
                                 f"{self.valid_max_rank}; with that cap choose one of {sorted(exact) or 'none'}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(map(repr, POSITIONS))}, got {self.positions!r}")
        if self.loss_normalisation not in LOSS_NORMALISATIONS:
            raise ValueError(f"loss_normalisation must be one of {', '.join(map(repr, LOSS_NORMALISATIONS))}, "
                             f"got {self.loss_normalisation!r}")
        if (isinstance(self.truncate_before_split, bool) or not isinstance(self.truncate_before_split, int)
                or self.truncate_before_split in (1, 2) or self.truncate_before_split < 0):
            raise ValueError("truncate_before_split must be 0 (off) or an int >= 3 (a split needs 3 items), "
                             f"got {self.truncate_before_split!r}")
        if isinstance(self.reppad, bool) or self.reppad not in (0, 1, 2):
            raise ValueError(f"reppad must be 0 (off), 1 (repeat) or 2 (repeat with delimiter 0), got {self.reppad!r}")
        if self.num_threads != "auto" and (isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int)
                                           or self.num_threads < 0):
            raise ValueError(f"num_threads must be 'auto' or an int >= 0 (0: torch's own setting), "
                             f"got {self.num_threads!r}")
        if not isinstance(self.model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(self.model_kwargs).__name__}")

    def resolved_targets(self, causal: bool) -> str:
        """The example protocol this config means for a model (``"auto"`` filled in)."""
        if self.train_targets != "auto":
            return self.train_targets
        return "all" if causal else "last"
