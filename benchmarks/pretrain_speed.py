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

``--option NAME=VALUE`` (repeatable) sets a `fastregen.dr4sr.RegenConfig`
option on the current side only, e.g. ``--option pack_targets=true``; the
row's variant then reads ``current[pack_targets=true]/baseline``.

``--quality EPOCHS`` measures what the options cost instead: this checkout
pre-trains the default regenerator for EPOCHS epochs (seed 0, 5% of the
pairs held out) without and with the options, alternating over
``--repeats`` seeds, and records the held-out best-memory loss of each
(metric ``valid_best_memory_loss``, variants ``default`` and ``[options]``).

One row per run (per side with ``--quality``) is appended to
``benchmarks/results/pretrain_speed.csv``.
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
run = dict(epochs=1, valid_fraction=0.0, progress=False, seed=0)
run.update(json.loads(os.environ.get("FASTREGEN_BENCH_RUN", "{}")))
cfg = RegenConfig(**run, **json.loads(os.environ.get("FASTREGEN_BENCH_OPTIONS", "{}")))
t0, c0 = time.perf_counter(), time.process_time()
model, history = pretrain(pairs, n, cfg)
best = min((h["valid_best_memory_loss"] for h in history if h["valid_best_memory_loss"] is not None), default=None)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                  "train_loss": history[-1]["train_loss"], "valid_best_memory_loss": best}))
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


def parse_options(items) -> dict:
    """``["name=value", ...]`` -> ``{name: value}`` with YAML scalars (``true``, ``0.5``, ``lazy``), each name
    checked against `fastregen.dr4sr.RegenConfig` (a bad name: ValueError; a bad value: what the config raises)."""
    import dataclasses

    import yaml

    from fastregen.dr4sr import RegenConfig

    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--option takes NAME=VALUE, got {item!r}")
        out[name.strip()] = yaml.safe_load(value)
    names = {f.name for f in dataclasses.fields(RegenConfig)}
    unknown = sorted(set(out) - names)
    if unknown:
        raise ValueError(f"unknown RegenConfig option(s): {', '.join(unknown)}")
    RegenConfig(**out)  # the config's own checks
    return out


def options_label(options: dict) -> str:
    """``{"pack_targets": True}`` -> ``"pack_targets=true"`` (YAML spelling, sorted); "" for none."""
    import yaml

    return ",".join(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                    for k, v in sorted(options.items()))


def _run(pythonpath: str | None, pairs: Path, threads: int, options: dict | None = None,
         run: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("FASTREGEN_BASELINE", None)
    env["FASTREGEN_BENCH_DIR"] = os.fspath(Path(__file__).resolve().parent)
    env["FASTREGEN_BENCH_OPTIONS"] = json.dumps(options or {})
    env["FASTREGEN_BENCH_RUN"] = json.dumps(run or {})
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
    ap.add_argument("--option", action="append", metavar="NAME=VALUE",
                    help="a RegenConfig option of the current side (repeatable), e.g. pack_targets=true")
    ap.add_argument("--quality", type=int, metavar="EPOCHS",
                    help="instead of timing: held-out best-memory loss after EPOCHS epochs without and with --option")
    args = ap.parse_args(argv)
    try:
        options = parse_options(args.option)
    except (ValueError, TypeError) as err:
        ap.error(str(err))
    label = options_label(options)
    if args.quality is not None and (args.quality < 1 or not options):
        ap.error("--quality needs EPOCHS >= 1 and at least one --option")

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
        if args.quality is not None:
            return _quality(args, npz, options, label, commit, len(pairs), load_before)
        old_path = os.fspath(_baseline_tree(args.baseline, tmp))
        for r in range(args.repeats):
            for name, path in (("baseline", old_path), ("current", None)):
                res = _run(path, npz, args.threads, options if path is None else None)
                times[name].append(res["seconds"])
                cpu[name].append(res["cpu_seconds"])
                print(f"repeat {r}: {name:<8} {res['seconds']:7.1f} s/epoch, {res['cpu_seconds']:.1f} s CPU "
                      f"(train CE {res['train_loss']:.3f})", flush=True)
    old, new = statistics.median(times["baseline"]), statistics.median(times["current"])
    old_cpu, new_cpu = statistics.median(cpu["baseline"]), statistics.median(cpu["current"])
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    print(f"median: baseline {args.baseline} {old:.1f} s, current {commit} {new:.1f} s -> {old / new:.2f}x "
          f"(CPU time {old_cpu:.1f} s vs {new_cpu:.1f} s -> {old_cpu / new_cpu:.2f}x; load {load})")
    variant = f"current[{label}]/baseline" if label else "current/baseline"
    append_result(args.results, benchmark="pretrain_speed", dataset=Path(args.data).name, variant=variant,
                  metric="speedup", value=round(old / new, 2), unit="x", threads=args.threads, device="cpu",
                  commit=commit, pairs=len(pairs), baseline=args.baseline, repeats=args.repeats,
                  baseline_s=round(old, 2), current_s=round(new, 2),
                  baseline_all=" ".join(f"{t:.1f}" for t in times["baseline"]),
                  current_all=" ".join(f"{t:.1f}" for t in times["current"]),
                  baseline_cpu_s=round(old_cpu, 2), current_cpu_s=round(new_cpu, 2), load=load)
    return 0


def _quality(args, npz: Path, options: dict, label: str, commit: str, n_pairs: int, load_before: float) -> int:
    """``--quality``: the held-out best-memory loss after ``args.quality`` epochs, without and with ``options``,
    seeds 0 .. repeats - 1 alternating; one row per side (median over the seeds)."""
    losses: dict[str, list[float]] = {"default": [], label: []}
    cpu: dict[str, list[float]] = {"default": [], label: []}
    for seed in range(args.repeats):
        for name, opts in (("default", {}), (label, options)):
            res = _run(None, npz, args.threads, opts, dict(epochs=args.quality, valid_fraction=0.05, seed=seed))
            losses[name].append(res["valid_best_memory_loss"])
            cpu[name].append(res["cpu_seconds"])
            print(f"seed {seed}: {name:<24} valid best-memory loss {res['valid_best_memory_loss']:.4f} "
                  f"({res['cpu_seconds']:.1f} s CPU)", flush=True)
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    base = statistics.median(losses["default"])
    for name in losses:
        value = statistics.median(losses[name])
        print(f"{name}: median {value:.4f} ({100 * (value / base - 1):+.2f}% vs default)")
        append_result(args.results, benchmark="pretrain_speed", dataset=Path(args.data).name,
                      variant=f"[{name}]" if name != "default" else "default", metric="valid_best_memory_loss",
                      value=round(value, 4), unit="nats", threads=args.threads, device="cpu", commit=commit,
                      pairs=n_pairs, repeats=args.repeats, current_all=" ".join(f"{x:.4f}" for x in losses[name]),
                      current_cpu_s=round(statistics.median(cpu[name]), 2), load=load,
                      note=f"{args.quality} epochs, seeds 0-{args.repeats - 1}, 5% held out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
