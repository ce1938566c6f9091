"""Benchmark of span-constrained pattern mining: fastregen vs Seq2Pat vs the pure-Python reference.

Usage::

    python benchmarks/mining.py beauty    [--data ../shared/data/beauty.txt] [--max-span 5]
                                          [--min-support 2] [--threads 1,2] [--repeats 5]
                                          [--seq2pat-repeats 3] [--no-seq2pat] [--no-reference]
    python benchmarks/mining.py synthetic [--preset books] [--threads 1,2] [--repeats 3] [--pairs]

``beauty`` mines DR4SR's input (each sequence without its last two items) with
each provider side by side in one run, checks that the pattern sets and
supports are identical, and prints a markdown table (median wall time of
``--repeats`` runs). ``synthetic`` mines the seeded ~10 M-interaction,
700k-item synthetic dataset (``fastregen.data.synthetic("books")``), each run
in a fresh subprocess so that its peak resident memory can be reported.
Every measurement is appended as a row to ``benchmarks/results/mining.csv``
(``--results``; the core schema of ``_results.append_result``: benchmark = the
call timed, variant = the provider, value = the median seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "mining.csv"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "beauty.txt"


def machine() -> str:
    model = cpu_model()
    return f"{os.cpu_count()} x {model} ({platform.machine()})"


def commit() -> str:
    return git_commit(HERE)


def timed(fn, repeats: int):
    """(median seconds, all seconds, last result) of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def write_rows(path, rows, dataset: str, args) -> None:
    """Append each measurement of ``rows`` to the results CSV ``path`` ("" writes nothing)."""
    if not path:
        return
    load = f"{os.getloadavg()[0]:.1f}"
    for row in rows:
        append_result(path, benchmark=row["op"], dataset=dataset, variant=row["provider"], metric="seconds_median",
                      value=round(row["median_s"], 5), unit="s", threads=row.get("threads", 1),
                      runs=" ".join(f"{t:.5f}" for t in row["runs"]), patterns=row.get("patterns", ""),
                      identical=row.get("identical", ""), peak_rss_mib=round(row.get("peak_rss_mib", 0)) or "",
                      load=load, params=f"max_span={args.max_span}, min_support={args.min_support}; {row['size']}")


# ---------------------------------------------------------------- beauty
def bench_beauty(args) -> None:
    from fastregen import patterns
    from fastregen.data import load
    from fastregen.reference import mining as ref

    ds = load(args.data)
    train = patterns.dr4sr_input(ds)
    alpha, beta = args.max_span, args.min_support
    size = f"{Path(args.data).name} ({len(train):,} seqs, {train.num_interactions:,} interactions)"
    print(f"# mining benchmark: {size}, max_span={alpha}, min_support={beta}")
    print(f"# machine: {machine()}; commit {commit()}")
    rows = []
    results = {}
    ours = None
    for t in args.threads:
        med, times, pats = timed(lambda: patterns.mine_patterns(train, alpha, beta, threads=t), args.repeats)
        results[f"fastregen, {t} thread{'s' if t > 1 else ''}"] = (med, times, len(pats), None)
        if ours is None:
            ours = pats
        else:  # every thread count gives the same arrays
            assert np.array_equal(ours.items, pats.items) and np.array_equal(ours.support, pats.support)
    ours_set = set(ours.to_list())
    print(f"fastregen: {len(ours):,} patterns, by length {ours.counts_by_length()}")

    if not args.no_seq2pat:
        try:
            from sequential.seq2pat import Seq2Pat
        except ImportError as exc:
            print(f"Seq2Pat not available ({exc}); install the [bench] extra")
        else:
            seqs = [s for s in train.to_lists() if s]  # Seq2Pat rejects empty sequences
            med, times, theirs = timed(
                lambda: Seq2Pat(seqs, max_span=alpha).get_patterns(min_frequency=beta), args.seq2pat_repeats
            )
            theirs_set = {(tuple(p[:-1]), int(p[-1])) for p in theirs}
            same = theirs_set == ours_set
            results["Seq2Pat 2.0 (1 thread)"] = (med, times, len(theirs), same)
            if not same:
                print(f"DIFFERENT from Seq2Pat: {len(ours_set - theirs_set)} only ours, "
                      f"{len(theirs_set - ours_set)} only Seq2Pat")

    if not args.no_reference:
        seqs = train.to_lists()
        med, times, refp = timed(lambda: ref.mine_patterns(seqs, alpha, beta), 1)
        results["reference (pure Python)"] = (med, times, len(refp), refp == ours.to_list())

    base = results.get("Seq2Pat 2.0 (1 thread)", (None,))[0]
    one = results[f"fastregen, {args.threads[0]} thread{'s' if args.threads[0] > 1 else ''}"][0]
    print()
    print("| provider | median s | runs | patterns | identical to fastregen | vs Seq2Pat | vs fastregen 1st row |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for name, (med, times, n, same) in results.items():
        speed = f"{base / med:,.1f}x faster" if base and not name.startswith("Seq2Pat") else "-"
        rel = f"{med / one:,.1f}x time" if name != list(results)[0] else "1.0"
        ident = "-" if same is None else ("yes (exact)" if same else "NO")
        print(f"| {name} | {med:.4f} | {len(times)} | {n:,} | {ident} | {speed} | {rel} |")
        threads = int(name.split(", ")[1].split()[0]) if name.startswith("fastregen, ") else 1
        rows.append(dict(op="mine_patterns", provider=name, size=size, median_s=med, runs=times, threads=threads,
                         patterns=n, identical="" if same is None else same))

    # The other kernels of the topic, fastregen only.
    pats = ours
    for span in ("alpha", None):
        med, times, pairs = timed(
            lambda: patterns.pretrain_pairs(train, pats, max_per_sequence=10, seed=0, span=span), args.repeats
        )
        print(f"pretrain_pairs span={span!s:5}: {len(pairs):,} pairs, median {med:.4f} s")
        rows.append(dict(op=f"pretrain_pairs[span={span}]", provider="fastregen", size=size, median_s=med,
                         runs=times, threads=1, patterns=len(pairs)))
    med, times, win = timed(lambda: patterns.window_counts(train, 3, 2), args.repeats)
    print(f"window_counts window=3 min_count=2: {len(win):,} windows, median {med:.4f} s")
    rows.append(dict(op="window_counts[3,2]", provider="fastregen", size=size, median_s=med, runs=times,
                     threads=1, patterns=len(win)))
    write_rows(args.results, rows, Path(args.data).name, args)


# ---------------------------------------------------------------- synthetic
def _vm_hwm() -> int:
    """Peak resident memory of this process, bytes. VmHWM belongs to the address
    space created by exec; ru_maxrss would include the parent's RSS at fork."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(args) -> None:
    """Mine the saved synthetic dataset once and print time and memory as JSON."""
    from fastregen import patterns
    from fastregen.data import SequenceDataset

    with np.load(args.input) as z:
        ds = SequenceDataset(z["offsets"], z["items"])
    rss_before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    t0, c0 = time.perf_counter(), time.process_time()
    pats = patterns.mine_patterns(ds, args.max_span, args.min_support, threads=args.threads[0])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _vm_hwm()
    row = dict(seconds=seconds, cpu_seconds=cpu, rss_before=rss_before, peak=peak, patterns=len(pats),
               by_length=pats.counts_by_length())
    t0, c0 = time.perf_counter(), time.process_time()
    windows = patterns.window_counts(ds, 3, 2, threads=args.threads[0])
    row.update(windows=len(windows), windows_seconds=time.perf_counter() - t0,
               windows_cpu_seconds=time.process_time() - c0)
    if args.pairs:
        t0, c0 = time.perf_counter(), time.process_time()
        pairs = patterns.pretrain_pairs(ds, pats, max_per_sequence=10, seed=0, threads=args.threads[0])
        row.update(pairs=len(pairs), pairs_seconds=time.perf_counter() - t0,
                   pairs_cpu_seconds=time.process_time() - c0, pairs_peak=_vm_hwm())
    print(json.dumps(row))


def bench_synthetic(args) -> None:
    from fastregen import patterns
    from fastregen.data.synthetic import synthetic

    t0 = time.perf_counter()
    ds = synthetic(args.preset)
    if args.dr4sr_input:
        ds = patterns.dr4sr_input(ds)
    gen = time.perf_counter() - t0
    size = f"synthetic {args.preset!r} ({len(ds):,} seqs, {ds.num_interactions:,} interactions, {ds.num_items:,} items)"
    print(f"# mining benchmark: {size} (generated in {gen:.1f} s), max_span={args.max_span}, "
          f"min_support={args.min_support}")
    print(f"# machine: {machine()}; commit {commit()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, offsets=ds.offsets, items=ds.items)
        del ds
        print("\n| threads | median wall s | median CPU s | runs | peak RSS MiB | RSS before mining MiB | patterns |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        pair_lines: list[str] = []
        window_lines: list[str] = []
        for t in args.threads:
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, __file__, "_child", "--input", str(path), "--threads", str(t),
                     *(["--pairs"] if args.pairs else []),
                     "--max-span", str(args.max_span), "--min-support", str(args.min_support)],
                    capture_output=True, text=True, check=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            med = statistics.median(r["seconds"] for r in runs)
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            peak = max(r["peak"] for r in runs) / 2**20
            before = max(r["rss_before"] for r in runs) / 2**20
            print(f"| {t} | {med:.3f} | {cpu:.3f} | {len(runs)} | {peak:,.0f} | {before:,.0f} | {runs[0]['patterns']:,} |")
            wmed = statistics.median(r["windows_seconds"] for r in runs)
            wcpu = statistics.median(r["windows_cpu_seconds"] for r in runs)
            window_lines.append(f"| {t} | {wmed:.3f} | {wcpu:.3f} | {len(runs)} | {runs[0]['windows']:,} |")
            if args.pairs:
                pmed = statistics.median(r["pairs_seconds"] for r in runs)
                pcpu = statistics.median(r["pairs_cpu_seconds"] for r in runs)
                ppeak = max(r["pairs_peak"] for r in runs) / 2**20
                pair_lines.append(f"| {t} | {pmed:.3f} | {pcpu:.3f} | {len(runs)} | {ppeak:,.0f} | {runs[0]['pairs']:,} |")
            rows.append(dict(op="mine_patterns", provider="fastregen", size=size, median_s=med, threads=t,
                             runs=[r["seconds"] for r in runs], peak_rss_mib=peak, patterns=runs[0]["patterns"]))
        print(f"\npatterns by length: {runs[0]['by_length']}")
        print("\nwindow_counts(window=3, min_count=2):\n")
        print("| threads | median wall s | median CPU s | runs | windows |")
        print("|---:|---:|---:|---:|---:|")
        print("\n".join(window_lines))
        if pair_lines:
            print("\npretrain_pairs(max_per_sequence=10, max_len=50, span='alpha'), after mining in the same process:\n")
            print("| threads | median wall s | median CPU s | runs | peak RSS MiB (whole process) | pairs |")
            print("|---:|---:|---:|---:|---:|---:|")
            print("\n".join(pair_lines))
    write_rows(args.results, rows, f"synthetic {args.preset}", args)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--max-span", type=int, default=5)
        p.add_argument("--min-support", type=int, default=2)
        p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
        p.add_argument("--results", default=str(RESULTS), help="append result rows to this CSV ('' for none)")

    b = sub.add_parser("beauty", help="fastregen vs Seq2Pat vs reference on a real dataset")
    common(b)
    b.add_argument("--data", default=str(DEFAULT_DATA))
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--seq2pat-repeats", type=int, default=3)
    b.add_argument("--no-seq2pat", action="store_true")
    b.add_argument("--no-reference", action="store_true")
    s = sub.add_parser("synthetic", help="scale: the ~10 M-interaction synthetic dataset, time and peak memory")
    common(s)
    s.add_argument("--preset", default="books")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--dr4sr-input", action="store_true", help="Drop the last two items of each sequence first.")
    s.add_argument("--pairs", action="store_true", help="Also time pretrain_pairs on the mined patterns.")
    c = sub.add_parser("_child")
    common(c)
    c.add_argument("--input", required=True)
    c.add_argument("--pairs", action="store_true")
    args = parser.parse_args(argv)
    {"beauty": bench_beauty, "synthetic": bench_synthetic, "_child": _child}[args.cmd](args)


if __name__ == "__main__":
    main()
