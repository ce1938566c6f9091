"""Cost of the epoch checkpoint (`fastregen.training.checkpoint`) against the epoch it follows.

    OMP_NUM_THREADS=1 python benchmarks/checkpoint_cost.py ../shared/data/beauty.txt --epochs 3

Trains SASRec with `fit_and_evaluate(out_dir=...)` (one thread, the default
TrainConfig) and times every `Checkpoint.save` (torch.save to a temporary
file, fsync, rename); prints one line per epoch: training seconds,
validation seconds, checkpoint seconds and size, and the checkpoint's share
of the epoch, and appends each figure as a row to
``benchmarks/results/engine.csv`` (``--results``; benchmark ``checkpoint``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from fastregen.training import checkpoint as ckpt_mod
from fastregen.training import fit_and_evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--results", default=str(Path(__file__).resolve().parent / "results" / "engine.csv"),
                    help="append result rows to this CSV ('' for none)")
    args = ap.parse_args()
    load = f"{os.getloadavg()[0]:.1f}"
    torch.set_num_threads(1)
    saves: list[tuple[float, int]] = []
    real = ckpt_mod.Checkpoint.save

    def timed(self, state):
        t0 = time.perf_counter()
        real(self, state)
        saves.append((time.perf_counter() - t0, self.path.stat().st_size))

    ckpt_mod.Checkpoint.save = timed
    with tempfile.TemporaryDirectory() as out:
        res = fit_and_evaluate(args.data, model=args.model, seed=0, out_dir=out, epochs=args.epochs, num_threads=1,
                               progress=False)
    print(f"{args.model} on {args.data}, {torch.get_num_threads()} thread(s)")
    for rec, (s, size) in zip(res["history"], saves):
        epoch = rec["train_seconds"] + rec.get("eval_seconds", 0.0)
        print(f"epoch {rec['epoch']}: train {rec['train_seconds']:.2f} s, valid {rec.get('eval_seconds', 0.0):.2f} s, "
              f"checkpoint {s:.3f} s, {size / 2**20:.1f} MiB ({100 * s / epoch:.2f}% of the epoch)")
    s, size = saves[-1]
    print(f"final (finished) checkpoint: {s:.3f} s, {size / 2**20:.1f} MiB")
    if args.results:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _results import append_result

        for rec, (s, size) in zip(res["history"], saves):
            epoch = rec["train_seconds"] + rec.get("eval_seconds", 0.0)
            for metric, value, unit in (("checkpoint_seconds", f"{s:.4f}", "s"),
                                        ("epoch_seconds", f"{epoch:.3f}", "s"),
                                        ("checkpoint_mib", f"{size / 2**20:.1f}", "MiB")):
                append_result(args.results, benchmark="checkpoint", dataset=Path(args.data).name,
                              variant=f"{args.model} epoch {rec['epoch']}", metric=metric, value=value, unit=unit,
                              threads=1, load=load, note="Checkpoint.save (torch.save, fsync, rename) after the epoch")


if __name__ == "__main__":
    main()
