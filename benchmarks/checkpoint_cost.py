"""Cost of the epoch checkpoint (`fastregen.training.checkpoint`) against the epoch it follows.

    OMP_NUM_THREADS=1 python benchmarks/checkpoint_cost.py ../shared/data/beauty.txt --epochs 3

Trains SASRec with `fit_and_evaluate(out_dir=...)` (one thread, the default
TrainConfig) and times every `Checkpoint.save` (torch.save to a temporary
file, fsync, rename); prints one line per epoch: training seconds,
validation seconds, checkpoint seconds and size, and the checkpoint's share
of the epoch.
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()
    torch.set_num_threads(1)
    saves: list[float] = []
    real = ckpt_mod.Checkpoint.save

    def timed(self, state):
        t0 = time.perf_counter()
        real(self, state)
        saves.append(time.perf_counter() - t0)

    ckpt_mod.Checkpoint.save = timed
    with tempfile.TemporaryDirectory() as out:
        res = fit_and_evaluate(args.data, model=args.model, seed=0, out_dir=out, epochs=args.epochs, num_threads=1,
                               progress=False)
        size = (Path(out) / "checkpoint.pt").stat().st_size
    print(f"{args.model} on {args.data}: checkpoint {size / 2**20:.1f} MiB when finished")
    for rec, s in zip(res["history"], saves):
        epoch = rec["train_seconds"] + rec.get("eval_seconds", 0.0)
        print(f"epoch {rec['epoch']}: train {rec['train_seconds']:.2f} s, valid {rec.get('eval_seconds', 0.0):.2f} s, "
              f"checkpoint {s:.3f} s ({100 * s / epoch:.2f}% of the epoch)")
    print(f"final (finished) checkpoint write {saves[-1]:.3f} s")


if __name__ == "__main__":
    main()
