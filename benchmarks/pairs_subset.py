"""pretrain_pairs with the compiled CSR gather vs the NumPy gather it replaced, side by side.

`SequenceDataset.subset` / `slice_sequences` (called by `pretrain_pairs` to
materialise one input sequence per pair) now use `_core.gather_ranges`; the
old path (NumPy fancy indexing with a materialised per-element int64 index,
then a fully re-validated constructor) is patched back in for the "old" runs.
Runs alternate old/new in one process; the results are checked identical.

    nice python benchmarks/pairs_subset.py [--preset books] [--repeats 3] [--threads 1]

Both medians and the ratio are appended as rows to ``benchmarks/results/mining.csv`` (``--results``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from fastregen import data, patterns
from fastregen.data.dataset import SequenceDataset
from fastregen.reference import csr as ref_csr


def _old_gather(self, starts, ends, **changes):
    offsets, items = ref_csr.gather_ranges(self.items, starts, ends)
    ts = None if self.timestamps is None else ref_csr.gather_ranges(self.timestamps, starts, ends)[1]
    return self.replace(offsets=offsets, items=items, timestamps=ts, **changes)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="books")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "results" / "mining.csv"),
                        help="append result rows to this CSV ('' for none)")
    args = parser.parse_args(argv)
    load = f"{os.getloadavg()[0]:.1f}"
    new_gather = SequenceDataset._gather
    train = patterns.dr4sr_input(data.synthetic(args.preset, seed=0))
    pats = patterns.mine_patterns(train, max_span=5, min_support=2, threads=args.threads)
    print(f"{train}, {len(pats):,} patterns", flush=True)
    times: dict[str, list[float]] = {"old": [], "new": []}
    res = {}
    try:
        for _ in range(args.repeats):
            for name, gather in (("old", _old_gather), ("new", new_gather)):
                SequenceDataset._gather = gather
                t = time.perf_counter()
                res[name] = patterns.pretrain_pairs(train, pats, max_per_sequence=10, seed=0, max_len=50,
                                                  threads=args.threads)
                times[name].append(time.perf_counter() - t)
    finally:
        SequenceDataset._gather = new_gather
    a, b = res["old"], res["new"]
    for part in ("sequences", "patterns"):
        assert np.array_equal(getattr(a, part).items, getattr(b, part).items)
        assert np.array_equal(getattr(a, part).offsets, getattr(b, part).offsets)
    for name, v in times.items():
        print(f"{name}: median {statistics.median(v):.3f} s, runs {[round(x, 3) for x in v]}, {len(res[name]):,} pairs")
    print(f"speed-up {statistics.median(times['old']) / statistics.median(times['new']):.2f}x")
    if args.results:
        from _results import append_result

        common = dict(benchmark="pretrain_pairs[subset gather]", dataset=f"synthetic {args.preset} (dr4sr_input)",
                      threads=args.threads, load=load, patterns=len(b))
        for name, v in times.items():
            append_result(args.results, **common, variant=name, metric="seconds_median",
                          value=f"{statistics.median(v):.3f}", unit="s", runs=" ".join(f"{x:.3f}" for x in v))
        append_result(args.results, **common, variant="old/new", metric="speedup", unit="x",
                      value=f"{statistics.median(times['old']) / statistics.median(times['new']):.2f}", runs="")


if __name__ == "__main__":
    main()
