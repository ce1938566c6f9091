"""Where a comparison keeps its results: ``results.csv`` (one row per finished run) and per-user ranks.

Layout of a comparison folder ``DIR``::

    DIR/study.json         the data it is about (name, content hash, items, users)
    DIR/results.csv        one row per finished run (`COLUMNS`)
    DIR/ranks/RUN_ID.npz   each test user's 0-based rank of the target (all users)
    DIR/runs/RUN_ID/       the run's folder (fit_and_evaluate's outputs, resumable)
    DIR/prereq/...         shared prerequisites (DR4SR regenerator, UniDS generator)
    DIR/locks/...          file locks of the workers
    DIR/report.md, DIR/compare.png

Rows are appended under an exclusive lock of the CSV itself, so several
worker processes (and several machines sharing the folder) can append; a
CSV with other columns is refused with one line, never rewritten.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "METRICS", "Store", "file_lock", "load_ranks", "save_ranks"]

#: Test/validation metrics every row holds.
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr")
COLUMNS = [
    "run_id", "method", "setting", "seed", "model", "dataset", "data_sha256",
    "epochs", "best_epoch", "seconds", "seconds_per_epoch", "train_sequences", "train_interactions",
    *[f"valid_{m}" for m in METRICS], *[f"test_{m}" for m in METRICS], "test_auc", "n_test_users",
    "device", "threads", "workers", "config", "fastregen_version", "commit", "date",
]


@contextlib.contextmanager
def file_lock(path, blocking: bool = True):
    """An exclusive lock on ``path`` (created with its folders) for the block.

    With ``blocking=False`` the block runs at once and receives False when
    another process holds the lock (True when this one took it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Store:
    """Result rows (one CSV) and per-user test ranks (one ``.npz`` per run) of a set of runs.

    Parameters
    ----------
    root : path
        A comparison folder (see the module docstring): rows in
        ``root/results.csv``, ranks in ``root/ranks/``, columns `COLUMNS`.
    results : path, optional
        Another CSV for the rows (the studies of ``benchmarks/`` keep theirs
        in ``benchmarks/results/*.csv``).
    ranks_dir : path, optional
        Another folder for the ranks.
    columns : list of str, default `COLUMNS`
        The CSV's columns, in order; a file with other columns is refused.
    ranks_cutoff : int, optional
        Keep only ranks below this (all that NDCG@K and Recall@K need for
        K <= cutoff; ~10 KB per run on Beauty instead of ~90 KB); ranks at or
        above it load back as ``cutoff``. None (default) keeps every rank.
    what : str, default "fastregen compare results file"
        How errors name the CSV.
    hint : str, default "choose another --out folder"
        What an error about the CSV's columns tells the user to do.
    """

    def __init__(self, root, *, results=None, ranks_dir=None, columns=None, ranks_cutoff: int | None = None,
                 what: str = "fastregen compare results file", hint: str = "choose another --out folder") -> None:
        self.root = Path(root)
        self.results = Path(results) if results is not None else self.root / "results.csv"
        self.ranks_dir = Path(ranks_dir) if ranks_dir is not None else self.root / "ranks"
        self.columns = list(COLUMNS if columns is None else columns)
        if ranks_cutoff is not None and not 1 <= ranks_cutoff <= 255:
            raise ValueError(f"ranks_cutoff must be in 1..255 (ranks are stored as uint8), got {ranks_cutoff!r}")
        self.ranks_cutoff = ranks_cutoff
        self.what, self.hint = what, hint

    # ------------------------------------------------------------- checks
    def check(self, data_info: dict) -> None:
        """Refuse (ValueError, one line) a folder whose CSV has other columns or whose study.json is about other data.

        Reads only: nothing in the folder is written or replaced.
        """
        self.read()  # raises on a CSV of another schema
        info_path = self.root / "study.json"
        if info_path.exists():
            try:
                old = json.loads(info_path.read_text())
            except ValueError:
                raise ValueError(f"{info_path}: not a JSON file written by fastregen compare; "
                                 "choose another --out folder") from None
            if old.get("data_sha256") != data_info["data_sha256"]:
                raise ValueError(f"{self.root} holds a comparison on other data ({old.get('dataset')!r}, "
                                 f"{old.get('items')} items, {old.get('users')} users); choose another --out folder")

    def init(self, data_info: dict) -> None:
        """Record what the folder is about (first run only)."""
        from .._io import atomic_write_text

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "study.json"
        if not path.exists():
            atomic_write_text(path, json.dumps(data_info, indent=2) + "\n")

    # ------------------------------------------------------------- rows
    def _check_header(self, found: list[str]) -> None:
        if found != self.columns:
            missing = sorted(set(self.columns) - set(found))
            extra = sorted(set(found) - set(self.columns))

            def names(cols):
                return ", ".join(cols[:4]) + (f" and {len(cols) - 4} more" if len(cols) > 4 else "") or "-"
            what = f"missing {names(missing)}; unexpected {names(extra)}" if missing or extra else "reordered"
            raise ValueError(f"{self.results}: not a {self.what} (its columns differ: {what}); {self.hint}")

    def read(self) -> list[dict]:
        """Every row as a dict of strings ([] without a CSV); ValueError naming the file for another schema."""
        if not self.results.exists():
            return []
        with open(self.results, newline="") as f:
            reader = csv.DictReader(f)
            self._check_header(list(reader.fieldnames or []))
            return list(reader)

    def done(self) -> dict[str, dict]:
        """Rows by ``run_id``."""
        return {row["run_id"]: row for row in self.read()}

    def append(self, row: dict) -> None:
        """Append ``row`` (keys exactly the columns) under the CSV's lock, writing the header first if new.

        The lock is the CSV's own (``flock``), so worker processes, and
        machines sharing the folder, append whole rows.
        """
        missing, extra = sorted(set(self.columns) - set(row)), sorted(set(row) - set(self.columns))
        if missing or extra:
            raise ValueError(f"row for {self.results.name} lacks {missing} / has unknown {extra}")
        self.results.parent.mkdir(parents=True, exist_ok=True)
        with open(self.results, "a+", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            header = f.readline().strip()
            if header:
                self._check_header(header.split(","))
            f.seek(0, os.SEEK_END)
            if not header:
                f.write(",".join(self.columns) + "\n")
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)
            f.flush()

    # ------------------------------------------------------------- ranks
    def ranks_path(self, run_id: str) -> Path:
        return self.ranks_dir / f"{run_id}.npz"

    def save_ranks(self, run_id: str, ranks: np.ndarray) -> None:
        """Each test user's 0-based rank (all users; atomically). Ranks are written before the
        row, so a row always has its ranks."""
        self.ranks_dir.mkdir(parents=True, exist_ok=True)
        save_ranks(self.ranks_path(run_id), ranks, self.ranks_cutoff)

    def load_ranks(self, run_id: str) -> np.ndarray:
        """The ranks `save_ranks` stored for ``run_id`` (np.int64, one per test user; those stored
        below a cutoff come back as the cutoff when they were at or above it)."""
        path = self.ranks_path(run_id)
        if not path.exists():
            raise ValueError(f"{path}: the ranks of a finished run are missing; copy them back beside {self.results.name} "
                             "or delete the run's row to rerun it")
        return load_ranks(path)[0]


def save_ranks(path, ranks: np.ndarray, cutoff: int | None = None) -> None:
    """Write each user's 0-based target rank to ``path`` (``.npz``, atomically).

    With ``cutoff`` only users whose rank is below it are kept (users as
    uint32, ranks as uint8), which is all NDCG@K and Recall@K need for
    K <= cutoff; without, every rank as int32.
    """
    from .._io import atomic_open

    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or (ranks.size and ranks.min() < 0):
        raise ValueError(f"ranks must be a 1-d array of ranks >= 0, got shape {ranks.shape}")
    ranks = ranks.astype(np.int64)
    with atomic_open(path, "wb") as f:
        if cutoff is None:
            np.savez_compressed(f, ranks=ranks.astype(np.int32))
        else:
            users = np.flatnonzero(ranks < cutoff)
            np.savez_compressed(f, users=users.astype(np.uint32), ranks=ranks[users].astype(np.uint8),
                                n_users=np.int64(ranks.size), cutoff=np.int64(cutoff))


def load_ranks(path) -> tuple[np.ndarray, int | None]:
    """``(ranks, cutoff)`` from `save_ranks` (ranks np.int64; cutoff None when every rank was kept,
    else ranks at or above it come back as ``cutoff``)."""
    with np.load(path) as z:
        if "cutoff" not in z:
            return z["ranks"].astype(np.int64), None
        cutoff = int(z["cutoff"])
        ranks = np.full(int(z["n_users"]), cutoff, dtype=np.int64)
        ranks[z["users"].astype(np.int64)] = z["ranks"]
    return ranks, cutoff
