"""What a target-model training epoch costs on each training set, one thread, CPU time.

    python benchmarks/epoch_cost.py --data ../shared/data/beauty.txt --repeats 3 \
        [--regen runs/dr4sr-study/decode/beauty-V1-K5-s0-g0.3]

Issue 25 asked why a SASRec epoch on DR4SR's training set took 42 s in
``results/dr4sr.csv`` when the original's took 4 s for 2.2x the
interactions. This measures, for each training set, the training epoch
alone (no validation) of SASRec under the study's protocol
(``train_targets="all"``, batch 256, length bucketing), in its own process
with one thread, the sets alternating, ``--repeats`` times: the median
**CPU time** (``time.process_time``, which a loaded machine does not
inflate the way it inflates wall time) and the wall time beside it, with
examples, batches and targets, so the cost can be split into a per-batch
and a per-target part. Rows go to ``benchmarks/results/engine.csv``
(benchmark ``epoch_cost``), the load average of the moment in ``load``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "engine.csv"

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from fastregen.data import load, leave_one_out
from fastregen.training import Examples, Trainer
from fastregen.training.fit import fit_and_evaluate
data_path, which, regen, window = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ds = load(data_path)
if which == "original":
    train = None
    ex_data = leave_one_out(ds).train
elif regen:  # a finished DR4SR folder: every stage is reused, nothing is trained
    from fastregen.config import load_config
    from fastregen.dr4sr import DR4SR, RegenConfig
    cfg = load_config(RegenConfig, regen + "/config.yaml")
    dr = DR4SR(cfg, progress=False).fit(ds, out_dir=regen)
    dr.regenerate()
    train = ex_data = dr.training_sets()[which]
else:
    from fastregen.dr4sr import DR4SR
    train = DR4SR(progress=False).mine(ds).training_sets()[which]
    ex_data = train
times = []
run_epoch = Trainer.run_epoch
def timed(self, data, order=None):
    c0, w0 = time.process_time(), time.perf_counter()
    r = run_epoch(self, data, order)
    times.append((time.process_time() - c0, time.perf_counter() - w0))
    return r
Trainer.run_epoch = timed
fit_and_evaluate(ds, model="sasrec", seed=0, train_data=train, epochs=2, num_threads=1, progress=False,
                 train_targets="all", eval_every=1000, **({} if window == 32 else {"bucket_window": window}))
ex = Examples(ex_data, 50, "all")
print(json.dumps({"cpu": times[-1][0], "wall": times[-1][1], "examples": len(ex), "targets": ex.total_targets,
                  "batches": -(-len(ex) // 256), "sequences": len(ex_data), "interactions": ex_data.num_interactions}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--sets", nargs="+", default=["original", "patterns", "original+patterns"])
    ap.add_argument("--regen", default="", help="a DR4SR output folder: also its regenerated and composed sets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--windows", type=int, nargs="+", default=[32],
                    help="bucket_window values to compare (batches per length-sorting window; 0: the whole epoch)")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    sets = [s if w == 32 else f"{s} (bucket_window={w})" for s in args.sets for w in args.windows]
    what = {(s if w == 32 else f"{s} (bucket_window={w})"): (s, w) for s in args.sets for w in args.windows}
    runs: dict[str, list[dict]] = {s: [] for s in sets}
    for _ in range(args.repeats):
        for s in sets:  # alternating, so every variant meets the same drift of the machine's load
            name, window = what[s]
            out = subprocess.run([sys.executable, "-c", WORKER, args.data, name, args.regen, str(window)],
                                 capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if out.returncode:
                raise SystemExit(f"{s}: {out.stderr.strip().splitlines()[-1]}")
            runs[s].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(s, runs[s][-1], flush=True)
    common = dict(benchmark="epoch_cost", dataset=Path(args.data).name, threads=1, device="cpu",
                  machine=f"{os.cpu_count()} cores, {cpu_model()}", commit=git_commit(HERE),
                  date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  load=f"{os.getloadavg()[0]:.1f}")
    print(f"{'set':<20}{'examples':>10}{'batches':>9}{'targets':>10}{'cpu s':>8}{'wall s':>8}{'ms/batch':>10}")
    for s in sets:
        r0 = runs[s][0]
        cpu = statistics.median(r["cpu"] for r in runs[s])
        wall = statistics.median(r["wall"] for r in runs[s])
        print(f"{s:<20}{r0['examples']:>10,}{r0['batches']:>9}{r0['targets']:>10,}{cpu:>8.2f}{wall:>8.2f}"
              f"{1000 * cpu / r0['batches']:>10.1f}")
        note = (f"SASRec all-targets epoch, median of {args.repeats} alternating processes; examples {r0['examples']}, "
                f"batches {r0['batches']}, targets {r0['targets']}, sequences {r0['sequences']}, "
                f"interactions {r0['interactions']}. {args.note}").strip()
        for metric, key in (("train_cpu_seconds", "cpu"), ("train_wall_seconds", "wall")):
            values = [r[key] for r in runs[s]]
            append_result(args.results, **common, variant=s, metric=metric,
                          value=round(statistics.median(values), 3), unit="s", shape=f"{r0['examples']}x50",
                          reps=len(values), values=" ".join(f"{v:.3f}" for v in values), identical_ranks="",
                          before="", note=note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
