"""`PlusConfig`: every option of DR4SR+ (the data personalizer and its bi-level training)."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import check_int_fields

__all__ = ["PlusConfig", "MODES", "DEVS", "DIVERGENCE"]

#: How the personalizer is trained (see `PlusConfig.mode`).
MODES = ("bilevel", "end_to_end", "off")
#: Where the upper level's unweighted loss is measured (see `PlusConfig.dev`).
DEVS = ("heldout", "train_batch")
#: What a diverging Neumann series does (see `PlusConfig.on_divergence`).
DIVERGENCE = ("skip", "raise", "apply")


@dataclass
class PlusConfig:
    """Configuration of DR4SR+ (Yin et al., KDD 2024, §4.3; the authors' ``model/metamodel.py``).

    The target model is configured by a `fastregen.training.TrainConfig`;
    this holds what DR4SR+ adds: the personalizer g_phi, which gives every
    training target a weight w in (0, 1), and how phi is learned.

    Mode
    ----
    mode : {"bilevel", "end_to_end", "off"}, default "bilevel"
        ``"bilevel"``: the paper's eq. 9. The target model (theta) trains on
        the weighted loss (eq. 8); phi is updated only by the hypergradient
        of the *unweighted* dev loss (eq. 6, 10), every ``interval`` steps.
        ``"end_to_end"``: ablation (C) of Table 4: phi trains jointly with
        theta on the weighted loss (same optimizer), which drives the
        weights to 0. ``"off"``: no personalizer (plain training on the
        same data: the DR4SR control).

    Upper level (bi-level mode)
    ---------------------------
    interval : int, default 30
        Lower (target-model) steps per upper step (the paper's T_lower = 30).
    K : int, default 3
        Neumann terms after the first: the series is
        ``sum_{n=0}^{K} (I - alpha H)^n`` (K = 0 is first order).
    alpha : float, default 1e-3
        Step of the Neumann series (the authors' ``hpo_learning_rate``).
        The hypergradient is ``-(d2 L_train / dphi dtheta)^T sum_n (I - alpha H)^n grad L_dev``
        as in the released code: ``alpha * sum_n (I - alpha H)^n`` tends to
        ``H^-1``, so this is the implicit gradient times ``1 / alpha``, a
        constant the upper learning rate absorbs. The released sweep
        (``sweep/metamodel7.yaml`` at 40c85f8) searches this value, not the
        SGD learning rate, over {1e-3, 1e-2, 1e-1}.
    upper_lr : float, default 1e-3
        SGD learning rate of phi (the authors' ``meta_learning_rate``).
    upper_momentum : float, default 0.9
    upper_weight_decay : float, default 1e-3
        The authors' ``meta_weight_decay`` (swept over {1e-3, 1e-2, 1e-1}).
    clip : float or None, default 10.0
        Clip the hypergradient's norm before the SGD step (``max_grad_norm``
        of the authors' ``MetaOptimizer``); None does not clip.
    warmup_epochs : int, default 10
        Epochs trained unweighted (every w = 1) before the personalizer
        starts. The released loop tests ``nepoch > warmup_epoch`` with
        ``warmup_epoch = 10``, i.e. 11 unweighted epochs; 0 weights from
        the start (the paper describes no warm-up).
    on_divergence : {"skip", "raise", "apply"}, default "skip"
        The Neumann series converges only where ``rho(I - alpha H) < 1``.
        When its terms grow faster than ``max_growth`` per term, or one is
        not finite, the upper step is skipped with a
        `NeumannDivergenceWarning` (``"skip"``), raises
        `NeumannDivergenceError` (``"raise"``), or is applied anyway with
        the warning (``"apply"``). Skipped steps are counted in the epoch
        record (``upper_skipped``).
    max_growth : float, default 1.1
        Largest allowed growth per term, ``(||term K|| / ||term 0||)^(1/K)``.
        A little above 1: a network's Hessian has small negative
        eigenvalues, along which the terms grow by ``1 + alpha |lambda|``
        (~1.0001-1.01 per term at alpha = 1e-3 on the smoke runs), which is
        harmless for K = 3; a step alpha beyond ``2 / lambda_max`` makes
        them grow by far more.

    Dev set
    -------
    dev : {"heldout", "train_batch"}, default "heldout"
        ``"heldout"``: a seeded ``dev_fraction`` of the training sequences
        (of source ``dev_source`` when the training set is tagged) is held
        out of the lower level and scored unweighted by the upper level; no
        validation or test target is ever read. ``"train_batch"``: the
        released code's choice, a fresh batch of the training set itself
        (nothing held out). Measured on Beauty SASRec (BENCHMARKS.md, "Why
        DR4SR+ trails DR4SR here", exploratory): holding out 10% of the
        original rows cost ~4% NDCG@20 against training on all of them.
    dev_fraction : float, default 0.1
    dev_source : str, default "original"
        Sequences of this source (``meta["source_names"]``) form the dev
        pool; all sequences when the training set has no such tag.
    dev_batch_size : int or None, default None
        Dev examples per upper step. None: with ``dev="heldout"``, as many
        rows as hold, on average, the number of targets of a lower-level
        batch (the released code's dev batch is a batch of the training file
        itself; 256 held-out original sequences hold ~2.6x the targets of a
        batch of original + mined + regenerated rows, and would make the dev
        pass ~2.6x dearer on Beauty); with ``"train_batch"``, the target model's batch
        size.

    Personalizer
    ------------
    tau : float, default 10.0
        Gumbel-softmax temperature. The paper gives none; the released code
        makes it a parameter initialised to 10 and clipped at ``tau_min``
        but leaves it out of the upper optimiser's parameters, so only
        weight decay moves it (~1e-5 per step): effectively a constant 10.
    tau_min : float, default 1.0
    learn_tau : bool, default False
        Make tau a parameter of phi (it then gets the hypergradient, or the
        joint gradient in end-to-end mode), clipped at ``tau_min``.
    pin : tuple of str, default ()
        Sources (``meta["source_names"]``, e.g. ``("patterns",)``) whose
        targets keep weight 1. The released code pins its uid-0 rows, the
        mined patterns (``model/metamodel.py`` line 180-183); the paper
        weights every target.
    detach_hidden : bool, default False
        Feed the personalizer ``h.detach()``. The released code does not
        detach, so the target model also gets gradient through w.
    seed : int, default 0
        Seeds the dev split, the upper level's batches and negatives, the
        personalizer's initialisation and the saved weights' Gumbel noise
        (the target model has its own seed).
    """

    mode: str = "bilevel"
    interval: int = 30
    K: int = 3
    alpha: float = 1e-3
    upper_lr: float = 1e-3
    upper_momentum: float = 0.9
    upper_weight_decay: float = 1e-3
    clip: float | None = 10.0
    warmup_epochs: int = 10
    on_divergence: str = "skip"
    max_growth: float = 1.1
    dev: str = "heldout"
    dev_fraction: float = 0.1
    dev_source: str = "original"
    dev_batch_size: int | None = None
    tau: float = 10.0
    tau_min: float = 1.0
    learn_tau: bool = False
    pin: tuple = ()
    detach_hidden: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self.pin = tuple(self.pin)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first invalid option."""
        for name, allowed in (("mode", MODES), ("dev", DEVS), ("on_divergence", DIVERGENCE)):
            v = getattr(self, name)
            if v not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {v!r}")
        check_int_fields(self, {"interval": 1, "K": 0, "warmup_epochs": 0, "seed": 0})
        if self.dev_batch_size is not None and (isinstance(self.dev_batch_size, bool)
                                                or not isinstance(self.dev_batch_size, int) or self.dev_batch_size < 1):
            raise ValueError(f"dev_batch_size must be a positive int or None, got {self.dev_batch_size!r}")
        for name in ("alpha", "upper_lr", "tau", "tau_min", "max_growth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) > 0:
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if self.tau < self.tau_min:
            raise ValueError(f"tau = {self.tau} is below tau_min = {self.tau_min}")
        for name in ("upper_momentum", "upper_weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if self.clip is not None and not float(self.clip) > 0:
            raise ValueError(f"clip must be > 0 or None, got {self.clip!r}")
        if not 0.0 < float(self.dev_fraction) < 1.0:
            raise ValueError(f"dev_fraction must be in (0, 1), got {self.dev_fraction!r}")
        if not all(isinstance(p, str) for p in self.pin):
            raise TypeError(f"pin must hold source names (str), got {self.pin!r}")
