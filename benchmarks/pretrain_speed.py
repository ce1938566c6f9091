"""Regenerator pre-training speed, this checkout against an earlier commit, side by side.

    python benchmarks/pretrain_speed.py --data ../shared/data/beauty.txt --baseline 87d0582 --repeats 3

Both versions pre-train the default regenerator (`RegenConfig()`, K = 5) for
one epoch on the same pre-training pairs (mined and drawn once, by this
checkout), with no held-out pairs, so the time is the training epoch alone.
Each version runs in its own process, alternating (old, new, old, new, ...),
and the medians are compared: the machine's load drifts, and alternating
exposes both versions to it alike. Each worker also reports its CPU time
(``time.process_time``, one thread): on a shared machine it moves less with
the load than the wall clock, so the row carries both medians and the load
average (1 min) before and after. The baseline's Python package is taken
from ``git archive BASELINE`` and runs on this checkout's compiled core (it
only needs the CSR gather, whose binding is unchanged).

One row per run is appended to ``benchmarks/results/pretrain_speed.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from _harness import git_commit, save_pairs  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "pretrain_speed.csv"

WORKER = r"""
import json, os, sys, time
if os.environ.get("FASTREGEN_BASELINE"):
    # an editable install of this checkout redirects `import fastregen` ahead of PYTHONPATH: drop that finder
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, os.environ["FASTREGEN_BASELINE"])
import numpy as np, torch
import fastregen
assert os.path.dirname(os.path.dirname(fastregen.__file__)) == (os.environ.get("FASTREGEN_BASELINE")
    or os.path.dirname(os.path.dirname(fastregen.__file__))), fastregen.__file__
torch.set_num_threads(int(sys.argv[2]))
try:
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import pretrain
except ImportError:  # commits before the move of fastregen.regen
    from fastregen.regen import RegenConfig, pretrain
sys.path.insert(0, os.environ["FASTREGEN_BENCH_DIR"])  # no package there: fastregen stays the chosen one
from _harness import load_pairs
pairs, n = load_pairs(sys.argv[1])
cfg = RegenConfig(epochs=1, valid_fraction=0.0, progress=False, seed=0)
t0, c0 = time.perf_counter(), time.process_time()
model, history = pretrain(pairs, n, cfg)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                  "train_loss": history[-1]["train_loss"]}))
"""


def _baseline_tree(commit: str, into: Path) -> Path:
    """``python/`` of ``commit`` under ``into``, with this checkout's compiled core dropped in."""
    import fastregen._core as core

    archive = into / "src.tar"
    subprocess.run(["git", "archive", "-o", str(archive), commit, "python/fastregen"],
                   cwd=Path(__file__).resolve().parent.parent, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    pkg = into / "python" / "fastregen"
    (pkg / Path(core.__file__).name).write_bytes(Path(core.__file__).read_bytes())
    return into / "python"


def _run(pythonpath: str | None, pairs: Path, threads: int) -> dict:
    env = dict(os.environ)
    env.pop("FASTREGEN_BASELINE", None)
    env["FASTREGEN_BENCH_DIR"] = os.fspath(Path(__file__).resolve().parent)
    if pythonpath is not None:
        env["FASTREGEN_BASELINE"] = pythonpath
    out = subprocess.run([sys.executable, "-c", WORKER, str(pairs), str(threads)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from fastregen.data import load
    from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--baseline", default="87d0582", help="commit to compare against")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)

    commit = git_commit(Path(__file__).parent)
    data = load(args.data)
    train = dr4sr_input(data)
    pairs = pretrain_pairs(train, mine_patterns(train, max_span=5, min_support=2), max_per_sequence=10, seed=0,
                           max_len=50)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    cpu: dict[str, list[float]] = {"baseline": [], "current": []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        npz = tmp / "pairs.npz"
        save_pairs(pairs, data.num_items, npz)
        old_path = os.fspath(_baseline_tree(args.baseline, tmp))
        for r in range(args.repeats):
            for name, path in (("baseline", old_path), ("current", None)):
                res = _run(path, npz, args.threads)
                times[name].append(res["seconds"])
                cpu[name].append(res["cpu_seconds"])
                print(f"repeat {r}: {name:<8} {res['seconds']:7.1f} s/epoch, {res['cpu_seconds']:.1f} s CPU "
                      f"(train CE {res['train_loss']:.3f})", flush=True)
    old, new = statistics.median(times["baseline"]), statistics.median(times["current"])
    old_cpu, new_cpu = statistics.median(cpu["baseline"]), statistics.median(cpu["current"])
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    print(f"median: baseline {args.baseline} {old:.1f} s, current {commit} {new:.1f} s -> {old / new:.2f}x "
          f"(CPU time {old_cpu:.1f} s vs {new_cpu:.1f} s -> {old_cpu / new_cpu:.2f}x; load {load})")
    append_result(args.results, benchmark="pretrain_speed", dataset=Path(args.data).name, variant="current/baseline",
                  metric="speedup", value=round(old / new, 2), unit="x", threads=args.threads, device="cpu",
                  commit=commit, pairs=len(pairs), baseline=args.baseline, repeats=args.repeats,
                  baseline_s=round(old, 2), current_s=round(new, 2),
                  baseline_all=" ".join(f"{t:.1f}" for t in times["baseline"]),
                  current_all=" ".join(f"{t:.1f}" for t in times["current"]),
                  baseline_cpu_s=round(old_cpu, 2), current_cpu_s=round(new_cpu, 2), load=load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
