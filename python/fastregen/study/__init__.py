"""Compare training-data methods on one dataset: ``fastregen compare`` as a library.

>>> from fastregen.study import CompareConfig, compare               # doctest: +SKIP
>>> cfg = CompareConfig(methods=("original", "dr4sr"), seeds=3)      # doctest: +SKIP
>>> compare("beauty.txt", "cmp-beauty", cfg, workers=2)              # doctest: +SKIP

The same engine runs the pre-declared studies of ``benchmarks/``
(``dr4sr_study.py``, ``dr4srplus.py``, ``unids.py``), which declare their
runs, run ids and row columns and leave the rest to it: `run_queue` (the
worker loop), `Store` (rows and per-user ranks), `regenerate_once` (a DR4SR
regenerator built once per folder, whatever the number of workers) and
`fastregen.training.fit_and_evaluate` (resumable training).

Modules: `runs` (the declaration and run ids), `methods` (how each method
trains, shared prerequisites), `store` (results.csv and ranks), `queue`
(the worker loop), `runner` (pending runs, worker processes), `stats`
(paired Wilcoxon p, bootstrap intervals), `report` (report.md, compare.png).
"""

from __future__ import annotations

from .methods import regenerate_once
from .queue import ALL_HELD, DONE_NONE_PENDING, RAN, run_queue
from .runner import compare
from .runs import METHODS, CompareConfig
from .store import Store, file_lock

__all__ = ["ALL_HELD", "DONE_NONE_PENDING", "METHODS", "RAN", "CompareConfig", "Store", "compare", "file_lock",
           "regenerate_once", "run_queue"]
