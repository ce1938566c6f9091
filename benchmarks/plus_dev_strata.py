"""Per-test-user strata of DR4SR+'s held-out dev slice, for `report.py breakdown` (exploratory).

    python benchmarks/plus_dev_strata.py                     # the study's Beauty regenerator, PlusConfig()

DR4SR+ holds a seeded ``dev_fraction`` of the original rows of its training set out of the lower level
(`fastregen.dr4sr.plus.split_dev`); the authors' dev batch comes from the training file itself, so a
user may ask whether the rows fastregen holds out are what DR4SR+ loses. ``combined_authors`` holds
each user's original training sequence twice; this writes, for each test user (in the order of
``split.test``, the order of every ranks file), how many of those copies the lower level kept (0, 1
or 2; several users with one same sequence share its copies evenly), to
``results/strata/dr4srplus-dev/DATASET.npz`` as ``copies_kept`` (int8). A statistic of the split, not data.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "strata" / "dr4srplus-dev"


def copies_kept(data, train, lower, source: str = "original") -> np.ndarray:
    """int8 (test users,): per user, how many rows of ``source`` holding the user's training sequence
    (all but the last two items) ``lower`` kept of ``train``'s, shared evenly by users of one sequence."""
    from fastregen.data import leave_one_out

    def rows(ds):
        names = list(ds.meta["source_names"])
        tag = np.asarray(ds.meta["source"])
        lists = ds.to_lists()
        return Counter(tuple(lists[i]) for i in np.flatnonzero(tag == names.index(source)))

    full, kept = rows(train), rows(lower)
    # a test user's training sequence: the test history without the validation target
    seqs = [tuple(h[:-1]) for h in leave_one_out(data).test.history.to_lists()]
    users = Counter(seqs)
    out = []
    for t in seqs:
        if full[t] == 0:
            raise ValueError(f"a test user's training sequence (length {len(t)}) is no {source!r} row of the set")
        out.append(round(kept[t] / users[t]))
    return np.asarray(out, dtype=np.int8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--regen", default=str(HERE.parent / "runs" / "dr4sr-study" / "decode" / "beauty-V1-K5-s0-g0.3"),
                    help="the regenerated folder DR4SR+ trained on")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from fastregen.data import load
    from fastregen.dr4sr.plus import PlusConfig, load_training_set, split_dev

    data = load(Path(args.data_dir) / f"{args.dataset}.txt")
    _, train, name = load_training_set(data, args.regen, "combined_authors")
    lower, dev = split_dev(train, PlusConfig())
    kept = copies_kept(data, train, lower)
    path = Path(args.out) / f"{args.dataset}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, copies_kept=kept)
    counts = {int(k): int(v) for k, v in zip(*np.unique(kept, return_counts=True))}
    print(f"{path}: {len(dev)} dev rows of {len(train)} ({name}); test users by copies kept: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
