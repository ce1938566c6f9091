"""Load-time benchmark of the data layer: time and peak memory per loader.

Each measurement runs in a fresh subprocess (so peak RSS is that loader's
alone): the worker imports its modules, records its RSS, times one load and
reports the wall time of the load and the peak RSS of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Medians over ``--repeats``
runs.

Loaders
-------
fastregen     ``fastregen.data.load(path)``: streaming reader, C++ parser (one thread, the default)
fastregen-mt  ``load(path, threads=0)``: the parser split across all OpenMP threads
reference     ``fastregen.reference.textio.read_lines(path)``: the pure-Python oracle
naive         ``[[int(t) for t in line.split()] for line in f]`` (lists, no validation)

Usage::

    python benchmarks/load.py                       # beauty.txt + a 10 M-interaction file in /tmp
    python benchmarks/load.py --repeats 7 --big /tmp/fastregen_books.txt

The synthetic file (preset "books", seed 0: 800k users, 700k items, ~10 M
interactions, ~74 MB) is generated into /tmp on first use, never into the
repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import cpu_model  # noqa: E402 (this folder is on sys.path)


REPO = Path(__file__).resolve().parents[1]
DEFAULT_BEAUTY = Path(os.environ.get("FASTREGEN_SHARED_DATA", REPO.parent / "shared" / "data")) / "beauty.txt"
DEFAULT_BIG = Path("/tmp/fastregen_books_10M.txt")
RESULTS = REPO / "benchmarks" / "results" / "load.csv"
LOADERS = ("fastregen", "fastregen-mt", "reference", "naive")


def worker(loader: str, path: str) -> None:
    import resource

    if loader in ("fastregen", "fastregen-mt"):
        from fastregen.data import load

        threads = 0 if loader == "fastregen-mt" else 1
        run = lambda: load(path, threads=threads)  # noqa: E731
    elif loader == "reference":
        from fastregen.reference.textio import read_lines

        run = lambda: read_lines(path)  # noqa: E731
    elif loader == "naive":

        def run():
            with open(path) as f:
                return [[int(t) for t in line.split()] for line in f]

    else:
        raise SystemExit(f"unknown loader {loader}")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = run()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del out
    print(json.dumps({"seconds": dt, "peak_kb": peak, "base_kb": base}))


def measure(loader: str, path: Path, repeats: int) -> dict:
    runs = []
    env = dict(os.environ)
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", loader, str(path)],
            check=True, capture_output=True, text=True, env=env,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": statistics.median(r["peak_kb"] for r in runs) / 1024,
        "base_mb": statistics.median(r["base_kb"] for r in runs) / 1024,
        "runs": len(runs),
    }


def ensure_big(path: Path) -> None:
    if path.exists():
        return
    # In a subprocess: Linux keeps ru_maxrss across fork+exec, so a parent that
    # grew while generating would inflate every worker's peak.
    print(f"generating {path} (preset 'books', seed 0) ...", file=sys.stderr)
    code = f"from fastregen import data; data.save(data.synthetic('books', seed=0), {str(path)!r})"
    subprocess.run([sys.executable, "-c", code], check=True)


def machine() -> str:
    model = cpu_model()
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beauty", type=Path, default=DEFAULT_BEAUTY, help="beauty.txt (default: ../shared/data)")
    ap.add_argument("--no-big", action="store_true", help="only beauty.txt (skip the 10 M-interaction file)")
    ap.add_argument("--results", default=str(RESULTS), help="append result rows to this CSV ('' for none)")
    ap.add_argument("--big", type=Path, default=DEFAULT_BIG, help="10 M-interaction text file (generated if absent)")
    ap.add_argument("--repeats", type=int, default=5, help="runs per fast measurement (median)")
    ap.add_argument("--slow-repeats", type=int, default=1, help="runs of the Python loaders on the big file")
    ap.add_argument("--loaders", default=",".join(LOADERS), help="comma-separated subset of " + ", ".join(LOADERS))
    ap.add_argument("--worker", nargs=2, metavar=("LOADER", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    loaders = [name for name in args.loaders.split(",") if name]
    if not args.no_big:
        ensure_big(args.big)
    files = [("beauty.txt", args.beauty)] + ([] if args.no_big else [(args.big.name, args.big)])
    load_avg = f"{os.getloadavg()[0]:.1f}"
    rows: list[dict] = []
    print(f"machine: {machine()}")
    print()
    print("| file | size | loader | median load time (s) | speed-up vs naive | peak RSS (MiB) | RSS before load (MiB) | runs |")
    print("|---|---|---|---|---|---|---|---|")
    for label, path in files:
        if not path.exists():
            print(f"| {label} | missing: {path} | | | | | | |")
            continue
        size = f"{path.stat().st_size / 2**20:.1f} MiB"
        res = {}
        for loader in loaders:
            reps = args.repeats if (loader.startswith("fastregen") or path == args.beauty) else args.slow_repeats
            res[loader] = measure(loader, path, reps)
        naive = res.get("naive", {}).get("seconds")
        for loader, r in res.items():
            speed = f"{naive / r['seconds']:.1f}x" if naive else ""
            print(
                f"| {label} | {size} | {loader} | {r['seconds']:.4f} | {speed} | {r['peak_mb']:.0f} | "
                f"{r['base_mb']:.0f} | {r['runs']} |"
            )
            rows.append(dict(benchmark="cold load", dataset=label, variant=loader, metric="seconds_median",
                             value=f"{r['seconds']:.5f}", unit="s",
                             threads=os.cpu_count() if loader == "fastregen-mt" else 1, size=size, runs=r["runs"],
                             peak_rss_mib=f"{r['peak_mb']:.0f}", rss_before_mib=f"{r['base_mb']:.0f}",
                             vs_naive=speed, load=load_avg))
        sys.stdout.flush()
    if args.results:
        # imported only now: _results imports fastregen, and Linux hands a parent's peak RSS (ru_maxrss) on to
        # the workers it starts, which would inflate every worker's "RSS before load"
        from _results import append_result

        for row in rows:
            append_result(args.results, **row)


if __name__ == "__main__":
    main()
