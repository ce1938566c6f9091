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

__all__ = ["COLUMNS", "METRICS", "Store", "file_lock"]

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
    """The results of one comparison folder (see the module docstring)."""

    def __init__(self, root) -> None:
        self.root = Path(root)
        self.results = self.root / "results.csv"
        self.ranks_dir = self.root / "ranks"

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
    def read(self) -> list[dict]:
        """Every row as a dict of strings ([] without a CSV); ValueError naming the file for another schema."""
        if not self.results.exists():
            return []
        with open(self.results, newline="") as f:
            reader = csv.DictReader(f)
            found = list(reader.fieldnames or [])
            if found != COLUMNS:
                missing, extra = sorted(set(COLUMNS) - set(found)), sorted(set(found) - set(COLUMNS))

                def names(cols):
                    return ", ".join(cols[:4]) + (f" and {len(cols) - 4} more" if len(cols) > 4 else "") or "-"
                what = f"missing {names(missing)}; unexpected {names(extra)}" if missing or extra else "reordered"
                raise ValueError(f"{self.results}: not a fastregen compare results file (its columns differ: {what}); "
                                 "choose another --out folder")
            return list(reader)

    def done(self) -> dict[str, dict]:
        return {row["run_id"]: row for row in self.read()}

    def append(self, row: dict) -> None:
        """Append ``row`` (keys exactly `COLUMNS`) under the CSV's lock, writing the header first if new."""
        missing, extra = sorted(set(COLUMNS) - set(row)), sorted(set(row) - set(COLUMNS))
        if missing or extra:
            raise ValueError(f"row lacks {missing} / has unknown {extra}")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.results, "a+", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            header = f.readline().strip()
            if header and header.split(",") != COLUMNS:
                raise ValueError(f"{self.results}: its columns changed while this comparison ran")
            f.seek(0, os.SEEK_END)
            if not header:
                f.write(",".join(COLUMNS) + "\n")
            csv.DictWriter(f, fieldnames=COLUMNS).writerow(row)
            f.flush()

    # ------------------------------------------------------------- ranks
    def save_ranks(self, run_id: str, ranks: np.ndarray) -> None:
        """Each test user's 0-based rank (all users, int32; atomically). Ranks are written before the
        row, so a row always has its ranks."""
        from .._io import atomic_open

        ranks = np.asarray(ranks)
        if ranks.ndim != 1 or (ranks.size and ranks.min() < 0):
            raise ValueError(f"ranks must be a 1-d array of ranks >= 0, got shape {ranks.shape}")
        self.ranks_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.ranks_dir / f"{run_id}.npz", "wb") as f:
            np.savez_compressed(f, ranks=ranks.astype(np.int32))

    def load_ranks(self, run_id: str) -> np.ndarray:
        """The ranks `save_ranks` stored for ``run_id`` (np.int64, one per test user)."""
        path = self.ranks_dir / f"{run_id}.npz"
        if not path.exists():
            raise ValueError(f"{path}: the ranks of a finished run are missing; copy them back beside results.csv "
                             "or delete the run's row to rerun it")
        with np.load(path) as z:
            return z["ranks"].astype(np.int64)
