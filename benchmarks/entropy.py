"""Benchmark of the Lempel-Ziv real-entropy estimator and the UniDS pattern miner.

Side by side in one run, on the same inputs:

- ``fastregen``: the C++ core (suffix automaton, amortised O(n) per sequence);
- ``reference``: ``fastregen.reference.entropy`` (the literal definition in pure
  Python, O(n^3) worst case);
- ``numba``: an O(n^2)-time, O(n)-memory implementation of the same estimator
  (LCP dynamic programme over pairs of positions), compiled with numba.

Every implementation's sum of Lambda is checked against the others before
timings are reported (the script exits non-zero on a mismatch). Every timing
is also appended as a row to ``benchmarks/results/entropy.csv`` (``--results``;
the core schema of ``_results.append_result``, value = the median seconds).

Usage::

    python benchmarks/entropy.py [--data ../shared/data/beauty.txt] [--repeats 5] [--quick] [--out results.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fastregen import _core
from fastregen import entropy as E
from fastregen import patterns as P
from fastregen.data import SequenceDataset, load
from fastregen.reference import entropy as R

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "entropy.csv"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "beauty.txt"


def _numba_lambda_sums():
    from numba import njit

    @njit(cache=False, nogil=True)
    def one(s):
        # row[j] = lcp(s[i:], s[j:]) for j < i, updated in place from i = n-1 down;
        # an occurrence at j lies inside s[0:i] for lengths <= i - j.
        n = s.shape[0]
        row = np.zeros(n + 1, np.int64)
        total = 0
        for i in range(n - 1, -1, -1):
            best = 0
            si = s[i]
            for j in range(i):
                v = row[j + 1] + 1 if s[j] == si else 0
                row[j] = v
                m = v if v < i - j else i - j
                if m > best:
                    best = m
            total += best + 1
        return total

    @njit(cache=False, nogil=True)
    def all_sums(offsets, items):
        out = np.zeros(offsets.shape[0] - 1, np.int64)
        for u in range(offsets.shape[0] - 1):
            out[u] = one(items[offsets[u] : offsets[u + 1]])
        return out

    return all_sums


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def machine() -> str:
    model = cpu_model()
    return f"{model}, nproc={os.cpu_count()}, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def commit() -> str:
    return git_commit(HERE)


def synthetic(kind: str, n: int, n_seq: int, seed: int = 0) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    if kind == "periodic":  # period 7 of distinct items: Lambda grows like i, the naive worst case
        seqs = [np.arange(n) % 7 + 1 for _ in range(n_seq)]
    elif kind == "random":  # uniform over 100 items
        seqs = [rng.integers(1, 101, n) for _ in range(n_seq)]
    else:
        raise ValueError(kind)
    return SequenceDataset.from_lists(seqs)


def fmt(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.3f} ms" if t < 1 else f"{t:.2f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset file (default: ../shared/data/beauty.txt)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of the fast paths (median reported)")
    ap.add_argument("--ref-repeats", type=int, default=3, help="timed runs of the pure-Python reference")
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown tables here")
    ap.add_argument("--results", default=str(RESULTS), help="append result rows to this CSV ('' for none)")
    args = ap.parse_args(argv)
    load_avg = f"{os.getloadavg()[0]:.1f}"

    def record(benchmark: str, dataset: str, variant: str, seconds, threads=1, **extra) -> None:
        if args.results and seconds is not None:
            append_result(args.results, benchmark=benchmark, dataset=dataset, variant=variant,
                          metric="seconds_median", value=f"{seconds:.6g}", unit="s", threads=threads,
                          load=load_avg, **extra)

    lines: list[str] = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    numba_sums = _numba_lambda_sums()
    numba_sums(np.array([0, 2], np.int64), np.array([1, 1], np.int32))  # compile outside the timings

    emit(f"machine: {machine()}; fastregen commit {commit()}; OpenMP threads available: {_core.max_threads()}")
    emit()
    emit("### Real entropy: fastregen vs reference vs numba O(n^2) (single thread unless noted)")
    emit()
    emit("| input | sequences x length | fastregen (1 thread) | fastregen automaton only (1 thread) | fastregen (all threads) | numba O(n^2) | reference | ref / fastregen | numba / fastregen | identical |")
    emit("|---|---|---|---|---|---|---|---|---|---|")

    cases: list[tuple[str, SequenceDataset, bool]] = []
    if args.data.is_file():
        cases.append((args.data.name, load(args.data), True))
    else:
        print(f"note: {args.data} not found, skipping the real-data row", file=sys.stderr)
    sizes = [(1000, 4), (10_000, 1)] if not args.quick else [(1000, 1)]
    for n, n_seq in sizes:
        for kind in ("periodic", "random"):
            # The reference is O(n^3) on periodic input: minutes at n = 10,000; skipped there.
            cases.append((f"synthetic {kind}", synthetic(kind, n, n_seq), n <= 1000 or kind == "random"))

    ok = True
    for name, ds, run_ref in cases:
        shape = f"{len(ds):,} x {ds.lengths.mean():.1f}" if name.endswith(".txt") else f"{len(ds)} x {int(ds.lengths[0]):,}"
        t1, fast = median_time(lambda: E.lambda_sums(ds, threads=1), args.repeats)
        ta, fast_sam = median_time(lambda: E.lambda_sums(ds, threads=1, method="automaton"), args.repeats)
        tall, fast_all = median_time(lambda: E.lambda_sums(ds), args.repeats)
        tn, nb = median_time(lambda: numba_sums(ds.offsets, ds.items), max(1, min(args.repeats, 3)))
        same = np.array_equal(fast, nb) and np.array_equal(fast, fast_all) and np.array_equal(fast, fast_sam)
        tr = None
        if run_ref:
            seqs = ds.to_lists()
            # one run where the reference takes minutes (n = 10,000)
            rr = args.ref_repeats if max(len(s) for s in seqs) <= 1000 else 1
            tr, ref = median_time(lambda: [R.lambda_sum(s) for s in seqs], rr)
            same = same and fast.tolist() == ref
            # the floats, through the same formula: bit-identical
            ent_ref = R.real_entropy(seqs)
            ent = E.real_entropy(ds)
            same = same and all((a == b) or (a != a and b != b) for a, b in zip(ent.tolist(), ent_ref))
        ok = ok and same
        for variant, t, threads in (("fastregen", t1, 1), ("fastregen automaton only", ta, 1),
                                    ("fastregen (threads=0)", tall, E._core.max_threads()), ("numba O(n^2)", tn, 1),
                                    ("reference", tr, 1)):
            record("lambda_sums", f"{name} ({shape})", variant, t, threads, identical=same,
                   runs=(rr if run_ref else 0) if variant == "reference" else args.repeats)
        emit(
            f"| {name} | {shape} | {fmt(t1)} | {fmt(ta)} | {fmt(tall)} | {fmt(tn)} | {fmt(tr) if run_ref else 'skipped (O(n^3))'} | "
            f"{f'{tr / t1:,.0f}x' if tr else '-'} | {tn / t1:,.1f}x | {'yes' if same else 'NO'} |"
        )

    emit()
    emit("### Growth in n (fastregen, 1 thread, one sequence)")
    emit()
    emit("| n | periodic: time | periodic: ns / item | random: time | random: ns / item | numba O(n^2), random | automaton + table (MB) |")
    emit("|---|---|---|---|---|---|---|")
    grow = [10**3, 10**4, 10**5, 10**6] if not args.quick else [10**3, 10**4]
    for n in grow:
        row = [f"{n:,}"]
        for kind in ("periodic", "random"):
            ds = synthetic(kind, n, 1)
            t, _ = median_time(lambda: E.lambda_sums(ds, threads=1), args.repeats)
            row += [fmt(t), f"{t / n * 1e9:.0f}"]
            record("lambda_sums growth", f"synthetic {kind} (1 x {n:,})", "fastregen", t, runs=args.repeats)
        if n <= 10**5:
            t, nb = median_time(lambda: numba_sums(ds.offsets, ds.items), 1)
            ok = ok and np.array_equal(nb, E.lambda_sums(ds))
            row.append(fmt(t))
        else:
            row.append("skipped (~minutes)")
        # Allocated by one build: <= 2n states of 24 B, a table of >= 4n + 16 slots of 16 B,
        # <= 3n overflow-list entries of 8 B.
        cap = 1 << max(4, (4 * n + 16 - 1).bit_length())
        row.append(f"{(2 * n * 24 + cap * 16 + 3 * n * 8) / 2**20:.1f}")
        emit("| " + " | ".join(row) + " |")

    emit()
    emit("### Predictability (Fano bisection): vectorised NumPy vs the scalar reference")
    emit()
    emit("| pairs (S, N) | fastregen | reference | ref / fastregen | max abs difference |")
    emit("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for m in ([10_000, 1_000_000] if not args.quick else [1_000]):
        N = rng.integers(2, 500, m)
        S = rng.uniform(0, 1, m) * np.log2(N)  # strictly inside (0, log2 N): every pair is bisected
        tf, pi = median_time(lambda: E.predictability(S, N), args.repeats)
        if m <= 10_000:
            tr, ref = median_time(lambda: [R.predictability(a, b) for a, b in zip(S.tolist(), N.tolist())], 1)
            diff = float(np.max(np.abs(pi - np.asarray(ref))))
            ok = ok and diff <= 1e-12
            emit(f"| {m:,} | {fmt(tf)} | {fmt(tr)} | {tr / tf:,.0f}x | {diff:.1e} |")
            record("predictability", f"{m:,} random (S, N) pairs", "reference", tr, runs=1)
        else:
            emit(f"| {m:,} | {fmt(tf)} | - | - | - |")
        record("predictability", f"{m:,} random (S, N) pairs", "fastregen", tf, runs=args.repeats)

    if args.data.is_file():
        ds = load(args.data)
        emit()
        emit(f"### Pattern miner on {args.data.name} (order-2 Markov model, min_count 2, max_len 8)")
        emit()
        emit("| step | median time | result |")
        emit("|---|---|---|")
        t, model = median_time(lambda: E.MarkovModel(2).fit(ds), args.repeats)
        record("markov fit (order 2)", args.data.name, "fastregen", t, runs=args.repeats)
        emit(f"| Markov fit (order 2) | {fmt(t)} | {model.num_items:,} items, {model.num_tokens:,} tokens |")
        t, rep = median_time(lambda: E.entropy_report(ds), args.repeats)
        emit(f"| entropy + predictability of every sequence | {fmt(t)} | median S {np.nanmedian(rep.entropy):.3f} bits, median Pi {np.nanmedian(rep.predictability):.3f} |")
        for stage in P.STAGE_THETA_SCALES:
            t, pats = median_time(lambda: P.mine_entropy_patterns(ds, model, stage=stage), args.repeats)
            lens = pats.lengths
            t2, seg = median_time(lambda: P.segment(ds, pats), args.repeats)
            record(f"mine_entropy_patterns[{stage}]", args.data.name, "fastregen", t, runs=args.repeats,
                   patterns=len(pats))
            record(f"segment[{stage}]", args.data.name, "fastregen", t2, runs=args.repeats)
            emit(
                f"| mine, stage {stage} (theta {pats.theta:.2f}) | {fmt(t)} | {len(pats):,} patterns, "
                f"{int((lens > 1).sum()):,} multi-item, longest {int(lens.max(initial=0))} |"
            )
            emit(
                f"| segment, stage {stage} | {fmt(t2)} | {seg.num_segments:,} segments, "
                f"{int((np.diff(seg.bounds) > 1).sum()):,} multi-item |"
            )
        # reference miner on a slice, to show the agreement holds on real data
        sub = ds.subset(np.arange(min(len(ds), 2000)))
        seqs = sub.to_lists()
        sm = E.MarkovModel(2).fit(sub)
        rm = R.MarkovModel(2, sub.num_items).fit(seqs)
        theta = P.default_theta(sub, 1.0)
        tf, pats = median_time(lambda: P.mine_entropy_patterns(sub, sm, theta), args.repeats)
        tr, ref = median_time(lambda: R.mine_entropy_patterns(seqs, theta, markov=rm), 1)
        got = [(tuple(pats[k].tolist()), float(pats.entropy[k]), int(pats.count[k])) for k in range(len(pats))]
        same = got == ref
        ok = ok and same
        for variant, t in (("fastregen", tf), ("reference", tr)):
            record("mine_entropy_patterns[theta]", f"{args.data.name}[:{len(sub)}]", variant, t,
                   runs=args.repeats if variant == "fastregen" else 1, identical=same, patterns=len(pats))
        emit(
            f"| miner vs reference, first {len(sub):,} users (theta {theta:.2f}) | fastregen {fmt(tf)}, reference {fmt(tr)} "
            f"({tr / tf:,.0f}x) | {len(pats):,} patterns, identical: {'yes' if same else 'NO'} |"
        )

    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    if not ok:
        print("MISMATCH between implementations", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
