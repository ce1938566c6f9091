"""Result rows and per-user ranks: what every benchmark run leaves in ``benchmarks/results/``.

A run appends one CSV row (its config, seeds, commit and every metric) with
`append_row`, and saves its test users' ranks with `save_ranks`, so that
`benchmarks/report.py` can rebuild every table and paired significance test
from committed files. Ranks are stored sparsely: only users whose target
ranked below ``cutoff`` (50) keep their rank, which is all NDCG@K and
Recall@K for K <= 50 need (~10 KB per run on Beauty).
"""

from __future__ import annotations

import csv
import fcntl
import os
from pathlib import Path

import numpy as np
from fastregen.study.stats import paired_p  # noqa: F401 (the one implementation; re-used by report.py)
from fastregen.study.stats import per_user as _per_user
from fastregen.study.store import file_lock  # noqa: F401 (the one run lock of the studies)
from fastregen.study.store import load_ranks  # noqa: F401 (the one ranks format; re-used by report.py)
from fastregen.study.store import save_ranks as _save_ranks

__all__ = ["file_lock", "append_row", "read_rows", "save_ranks", "load_ranks", "per_user", "paired_p"]


def append_row(path, row: dict, columns: list[str]) -> None:
    """Append ``row`` to the CSV at ``path`` (created with a header if absent), under a file lock.

    Raises ValueError naming the difference if the file's header or the row's
    keys are not exactly ``columns``.
    """
    path = Path(path)
    missing, extra = sorted(set(columns) - set(row)), sorted(set(row) - set(columns))
    if missing or extra:
        raise ValueError(f"row for {path.name} lacks {missing} / has unknown {extra}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        header = f.readline().strip()
        if header:
            _check_header(path, header.split(","), columns)
        else:
            f.write(",".join(columns) + "\n")
        f.seek(0, os.SEEK_END)
        csv.DictWriter(f, fieldnames=columns).writerow(row)


def _check_header(path: Path, found: list[str], columns: list[str]) -> None:
    if found != list(columns):
        missing, extra = sorted(set(columns) - set(found)), sorted(set(found) - set(columns))
        raise ValueError(f"{path}: its columns differ from what this script writes and reads "
                         f"(missing {missing}, unexpected {extra}{', or reordered' if not (missing or extra) else ''}); "
                         "start a new file or migrate it")


def read_rows(path, columns: list[str]) -> list[dict]:
    """Rows of a results CSV as dicts of strings ([] if the file does not exist); checks the header."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        _check_header(path, list(reader.fieldnames or []), columns)
        return list(reader)


def save_ranks(path, ranks: np.ndarray, cutoff: int = 50) -> None:
    """Store each user's 0-based target rank, keeping only ranks < ``cutoff`` (atomically): `fastregen.study.save_ranks`."""
    _save_ranks(path, ranks, cutoff)


def per_user(ranks: np.ndarray, metric: str, cutoff: int = 50) -> np.ndarray:
    """Each user's ``ndcg@K`` or ``recall@K`` (K <= cutoff) from ranks stored below ``cutoff``."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "recall"):
        raise ValueError(f"unknown metric {metric!r}; ndcg@K or recall@K")
    if int(k) > cutoff:
        raise ValueError(f"{metric}: ranks were stored below {cutoff} only")
    return _per_user(ranks, metric)
