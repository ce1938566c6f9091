"""Patterns: one CSR `Patterns` type and the miners that produce it.

* `span` -- DR4SR's span-constrained sequential pattern miner
  (`mine_patterns`, what Seq2Pat computes), its pre-training pairs
  (`pretrain_pairs`) and contiguous-window counts (`window_counts`);
* `entropy` -- UniDS's conditional-entropy miner (`mine_entropy_patterns`)
  and the segmentation of sequences into its patterns (`segment`);
* `io` -- patterns as text (`Patterns.save` / `Patterns.load`).

>>> from fastregen import data, patterns                         # doctest: +SKIP
>>> ds = data.load("beauty.txt")                                   # doctest: +SKIP
>>> span = patterns.mine_patterns(patterns.dr4sr_input(ds), max_span=5, min_support=2)  # doctest: +SKIP
>>> low = patterns.mine_entropy_patterns(patterns.dr4sr_input(ds), stage="fine")         # doctest: +SKIP
>>> seg = patterns.segment(patterns.dr4sr_input(ds), low)                                # doctest: +SKIP

Every miner returns a `Patterns` (``kind`` says which); `segment` accepts
any of them.
"""

from .base import KINDS, Patterns
from .entropy import (
    STAGE_THETA_SCALES,
    EntropyMinerConfig,
    Segmentation,
    default_theta,
    item_entropies,
    mine_entropy_patterns,
    segment,
)
from .span import PretrainPairs, dr4sr_input, mine_patterns, pretrain_pairs, window_counts

__all__ = [
    "Patterns",
    "KINDS",
    "PretrainPairs",
    "mine_patterns",
    "window_counts",
    "pretrain_pairs",
    "dr4sr_input",
    "EntropyMinerConfig",
    "STAGE_THETA_SCALES",
    "item_entropies",
    "default_theta",
    "mine_entropy_patterns",
    "Segmentation",
    "segment",
]
