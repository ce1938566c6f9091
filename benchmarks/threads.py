"""Thread defaults under load: the default against 1 and 2 torch threads, side by side.

    python benchmarks/threads.py --data ../shared/data/beauty.txt --repeats 2 [--idle]

Two benchmarks, each one epoch in a fresh process (the OpenMP runtime reads
its wait policy once, when torch loads):

* ``sasrec``: one SASRec training epoch on the leave-one-out train split
  (`TrainConfig` defaults);
* ``regen``: one DR4SR regenerator pre-training epoch (`RegenConfig`
  defaults) on the pairs of the first ``--regen-users`` sequences.

Variants: ``default`` (what a run gets when it names no thread count:
``num_threads="auto"`` and the passive OpenMP wait that ``import fastregen``
sets), ``1`` and ``2`` threads, and ``2-spin`` (two threads with the OpenMP
runtime's own wait policy: the default before issue 29). Variants alternate
within each repeat and the medians are compared, so load drift hits them
alike.

Load: as found (the machine this was written on always runs two nice'd
one-thread study workers, ``dr4sr_study.py``); with ``--idle`` the same
again with those workers paused (SIGSTOP, then SIGCONT in a ``finally``,
on SIGTERM/SIGINT, and by a timer ``--max-pause`` + 60 s after the pause
began, even mid-run; no run starts after ``--max-pause`` seconds). Other
processes are not paused: "idle" is the study workers stopped, and each
row's load average says what else ran. Each row records the load average at its start.

Rows are appended to ``benchmarks/results/threads.csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import cpu_model, git_commit, save_pairs  # noqa: E402 (this folder is on sys.path)
from _results import append_result

RESULTS = Path(__file__).parent / "results" / "threads.csv"
VARIANTS = ("default", "1", "2", "2-spin", "2-short")

WORKER = r"""
import json, os, sys, time
bench, variant, data, pairs = sys.argv[1:5]
if variant in ("2-spin", "2-short"):
    os.environ.pop("OMP_WAIT_POLICY", None)
    if variant == "2-short":  # libgomp's spin before a waiting thread sleeps: 10,000 polls, not 300,000
        os.environ["GOMP_SPINCOUNT"] = "10000"
    import torch  # loads OpenMP before fastregen can ask for a passive wait
import fastregen
import torch
from fastregen._threads import apply_threads
threads = "auto" if variant == "default" else int(variant.split("-")[0])
if bench == "sasrec":
    from fastregen.data import leave_one_out, load
    from fastregen.training import Examples, NextItemLoss, TrainConfig, Trainer, build_target_model, resolve_loss
    cfg = TrainConfig(model="sasrec", progress=False)
    if threads != "auto":
        cfg.num_threads = threads
    split = leave_one_out(load(data))
    torch.manual_seed(0)
    net = build_target_model(cfg, split.train.num_items, split.train)
    ex = Examples(split.train, net.max_len, cfg.resolved_targets(net.causal))
    tr = Trainer(net, NextItemLoss(*resolve_loss(cfg), cfg.temperature), lr=cfg.lr, batch_size=cfg.batch_size,
                 bucketing=cfg.length_bucketing, seed=0, progress=False)
    tr.set_normaliser(ex)
    n = apply_threads(cfg.num_threads)  # as fit() does
    t0 = time.perf_counter()
    tr.run_epoch(ex)
else:
    sys.path.insert(0, os.environ["FASTREGEN_BENCH_DIR"])
    from _harness import load_pairs
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import pretrain
    train_pairs, k = load_pairs(pairs)
    cfg = RegenConfig(epochs=1, valid_fraction=0.0, progress=False, seed=0)
    n = apply_threads(threads)  # as `fastregen regenerate` does
    t0 = time.perf_counter()
    pretrain(train_pairs, k, cfg)
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": n}))
"""


def _study_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"dr4sr_study.py") for part in cmd):
            pids.append(int(entry))
    return pids


class Paused:
    """Pause the study workers (SIGSTOP) for the block; SIGCONT on exit, on error, on SIGTERM/SIGINT/SIGHUP,
    and after ``limit`` seconds whatever the block is doing (a timer: a run may outlast the pause budget)."""

    def __init__(self, limit: float):
        self.limit = limit

    def __enter__(self):
        import threading

        self.pids = _study_pids()
        self.old = {s: signal.signal(s, self._exit) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        self.t0 = time.monotonic()
        self.timer = threading.Timer(self.limit, self.resume)
        self.timer.daemon = True
        self.timer.start()
        return self

    @staticmethod
    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    def resume(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def __exit__(self, *exc):
        self.timer.cancel()
        self.resume()
        for s, h in self.old.items():
            signal.signal(s, h)
        print(f"study workers {self.pids} resumed after {time.monotonic() - self.t0:.0f} s paused", flush=True)
        return False


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def _run(bench: str, variant: str, data: str, pairs: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["FASTREGEN_BENCH_DIR"] = os.fspath(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", WORKER, bench, variant, data, pairs], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(args, pairs: str, deadline: float | None) -> dict:
    times: dict = {}
    for r in range(args.repeats):
        for bench in args.benchmarks:
            for variant in args.variants:
                if deadline is not None and time.monotonic() > deadline:
                    print("pause budget spent: stopping this load condition", flush=True)
                    return times
                load = _loadavg()
                res = _run(bench, variant, args.data, pairs)
                times.setdefault((bench, variant), []).append((res["seconds"], res["threads"], load))
                print(f"repeat {r} {bench:<6} {variant:<8} {res['seconds']:7.2f} s  ({res['threads']} threads, "
                      f"load {load})", flush=True)
    return times


def _rows(times: dict, args, load: str, commit: str) -> None:
    machine = f"{os.cpu_count()} cores, {cpu_model()}"
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for bench in args.benchmarks:
        one = statistics.median(t for t, _, _ in times.get((bench, "1"), [(float("nan"), 0, "")]))
        for variant in VARIANTS:
            runs = times.get((bench, variant))
            if not runs:
                continue
            med = statistics.median(t for t, _, _ in runs)
            loads = " ".join(ld for _, _, ld in runs)
            print(f"{load:<6} {bench:<6} {variant:<8} median {med:7.2f} s  ({med / one:.2f}x one thread)")
            append_result(
                Path(args.results), benchmark=f"{bench} epoch", dataset=Path(args.data).name + (
                    f"[:{args.regen_users}] pairs" if bench == "regen" else ""),
                variant=variant, metric="seconds", value=round(med, 2), unit="s",
                threads="/".join(sorted({str(n) for _, n, _ in runs})), device="cpu", machine=machine,
                commit=commit, date=date, load=f"{load}; loadavg {loads}", repeats=len(runs),
                all_values=" ".join(f"{t:.2f}" for t, _, _ in runs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--benchmarks", nargs="+", default=["sasrec", "regen"], choices=["sasrec", "regen"])
    ap.add_argument("--regen-users", type=int, default=4000, help="sequences whose pairs the regenerator trains on")
    ap.add_argument("--idle", action="store_true", help="also measure with the study workers paused")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--settle", type=float, default=0.0,
                    help="with --idle: seconds to wait after pausing, so the 1-minute load average the default's "
                         "wait policy reads has decayed as on a machine idle for a while")
    ap.add_argument("--idle-only", action="store_true", help="with --idle: skip the measurement under load")
    ap.add_argument("--max-pause", type=float, default=180.0,
                    help="no run starts after the study workers have been paused this long (they resume 60 s later)")
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)

    import numpy as np

    from fastregen.data import load
    from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs

    commit = git_commit(Path(__file__).parent)
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "pairs.npz")
        data = load(args.data)
        train = dr4sr_input(data).subset(np.arange(min(args.regen_users, len(data))))
        pairs = pretrain_pairs(train, mine_patterns(train, max_span=5, min_support=2, threads=1),
                               max_per_sequence=10, seed=0, max_len=50, threads=1)
        save_pairs(pairs, data.num_items, npz)
        print(f"regen: {len(pairs):,} pairs from {len(train):,} sequences", flush=True)
        workers = len(_study_pids())
        loaded = f"as found ({workers} nice'd one-thread study workers running)"
        if not (args.idle and args.idle_only):
            _rows(_measure(args, npz, None), args, loaded, commit)
        if args.idle:
            # runs start until max-pause; the workers resume at max-pause + 60 s even mid-run
            with Paused(args.max_pause + 60) as p:
                time.sleep(args.settle)
                idle = _measure(args, npz, p.t0 + args.max_pause)
            _rows(idle, args, f"study workers paused ({len(p.pids)})", commit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
