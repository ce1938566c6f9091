"""Move measurement CSVs written before the core schema into it (a one-off; running it again changes nothing).

    python benchmarks/migrate_results.py                  # the five files of _results.MIGRATED
    python benchmarks/migrate_results.py results/scale.csv  # or the files named

Each file is read through `_results.read_results` (an old row's columns map
to the core ones by `_results.to_core`; every other old column is kept as an
extra column) and rewritten atomically with the core columns first. It
refuses to write when the row count would change. The study CSVs (one row
per training run: dr4sr.csv, dr4srplus.csv, unids.csv, ...) are not
measurement files and are never touched.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from _results import CORE_COLUMNS, MIGRATED, read_results, write_results  # noqa: E402 (this folder is on sys.path)

HERE = Path(__file__).resolve().parent


def migrate(path) -> bool:
    """Rewrite ``path`` in the core schema; False when it already was (or does not exist)."""
    path = Path(path)
    if not path.exists():
        return False
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        n_old = sum(1 for _ in reader)
    if header[:len(CORE_COLUMNS)] == CORE_COLUMNS:
        return False
    rows = read_results(path)
    if len(rows) != n_old:
        raise SystemExit(f"error: {path}: {n_old} rows read as {len(rows)}; nothing written")
    write_results(path, rows)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="results CSVs (default: the files of _results.MIGRATED)")
    args = ap.parse_args(argv)
    files = args.files or [HERE / "results" / f"{name}.csv" for name in MIGRATED]
    for f in files:
        print(f"{f}: {'migrated' if migrate(f) else 'already in the core schema (or absent)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
