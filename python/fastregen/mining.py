"""Span-constrained sequential pattern mining (DR4SR): kept importable from here.

The code lives in `fastregen.patterns` (`fastregen.patterns.span` for the
miner and its pre-training pairs, `fastregen.patterns.Patterns` for the one
pattern type shared with UniDS's entropy miner); this module re-exports it
so ``fastregen.mining.mine_patterns`` and ``mining.Patterns.load`` keep
working.
"""

from __future__ import annotations

from .patterns.base import Patterns
from .patterns.span import PretrainPairs, dr4sr_input, mine_patterns, pretrain_pairs, window_counts

__all__ = [
    "Patterns",
    "PretrainPairs",
    "mine_patterns",
    "pretrain_pairs",
    "window_counts",
    "dr4sr_input",
]
