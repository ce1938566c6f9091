"""Per-test-user strata of the study datasets, for `report.py breakdown` (which reads only results/).

    python benchmarks/user_strata.py                         # beauty, toys, sports (../shared/data), ml-100k
    python benchmarks/user_strata.py --datasets beauty

Writes ``benchmarks/results/strata/DATASET.npz``: for each test user of the
leave-one-out split (`fastregen.data.leave_one_out`, in the order of
``split.test``, the order every study's ranks file keeps) ``target_count``,
how often the user's test target occurs in the training split (its
popularity where the models learn), and ``history_length``. Statistics of
the data, not the data: a few hundred kilobytes for the four datasets. A
dataset whose file is missing is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "strata"
SHARED = HERE.parent.parent / "shared" / "data"
DATASETS = ("beauty", "toys", "sports", "ml-100k")


def strata(data) -> dict[str, np.ndarray]:
    """``target_count`` and ``history_length`` (int64) of each test user of ``data``'s leave-one-out split."""
    from fastregen.data import leave_one_out

    split = leave_one_out(data)
    counts = np.bincount(split.train.items, minlength=data.num_items + 1)
    return {"target_count": counts[split.test.target].astype(np.int64),
            "history_length": split.test.history.lengths.astype(np.int64)}


def load_dataset(name: str, data_dir: Path):
    """The study's copy of dataset ``name``, or None with a line saying why it is skipped."""
    from fastregen.data import datasets, load

    if name == "ml-100k":
        try:
            return datasets.load("ml-100k")
        except Exception as err:  # noqa: BLE001 (no cache and no network: skipped, said)
            print(f"ml-100k skipped: {type(err).__name__}: {err}")
            return None
    path = data_dir / f"{name}.txt"
    if not path.exists():
        print(f"{name} skipped: {path} is missing")
        return None
    return load(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--data-dir", default=str(SHARED))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from fastregen._io import atomic_open

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        data = load_dataset(name, Path(args.data_dir))
        if data is None:
            continue
        s = strata(data)
        with atomic_open(out / f"{name}.npz", "wb") as f:
            np.savez_compressed(f, **s)
        print(f"{name}: {s['target_count'].size} test users -> {out / name}.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
