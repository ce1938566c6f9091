"""Compare training-data methods on one dataset: ``fastregen compare`` as a library.

>>> from fastregen.study import CompareConfig, compare               # doctest: +SKIP
>>> cfg = CompareConfig(methods=("original", "dr4sr"), seeds=3)      # doctest: +SKIP
>>> compare("beauty.txt", "cmp-beauty", cfg, workers=2)              # doctest: +SKIP

Modules: `runs` (the declaration and run ids), `methods` (how each method
trains, shared prerequisites), `store` (results.csv and ranks), `runner`
(pending runs, worker processes), `stats` (paired Wilcoxon p, bootstrap
intervals), `report` (report.md, compare.png).
"""

from __future__ import annotations

from .runner import compare
from .runs import METHODS, CompareConfig

__all__ = ["METHODS", "CompareConfig", "compare"]
