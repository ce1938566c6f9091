"""Reproduction runner: DR4SR target models on a leave-one-out dataset, full ranking.

Runs `fastregen.training.fit_and_evaluate` for each model in turn (one run at a
time), keeps every run folder, appends its figures as rows to
``benchmarks/results/train.csv`` (``--rows``; the core schema of
``_results.append_result``: one row per test metric of a run, or per timed
figure with ``--speed``), one JSON line per run to ``--results`` if given, and
prints a markdown table beside the DR4SR paper's numbers.

    python benchmarks/train.py --data ../shared/data/beauty.txt --models sasrec gru4rec \\
        --out /tmp/fastregen-runs --threads 2

Speed only (seconds per training epoch, no early stopping):

    python benchmarks/train.py --data ../shared/data/beauty.txt --models sasrec --speed --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from _harness import config_overrides, cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

ROWS = Path(__file__).resolve().parent / "results" / "train.csv"

# DR4SR (KDD'24) Table 3, Amazon Beauty, full ranking; only the entries the
# project tracks are listed (None = not tracked here).
PAPER_BEAUTY = {
    "sasrec": {"recall@10": 0.0553, "recall@20": 0.0847, "ndcg@10": 0.0291, "ndcg@20": 0.0368},
    "gru4rec": {"ndcg@20": 0.0150},
}


def _machine() -> str:
    import os

    return f"{os.cpu_count()} cores, {cpu_model()}, {platform.platform()}"


def speed(data_path: str, model: str, threads: int, epochs: int, extra: dict | None = None) -> dict:
    """Median seconds per training epoch (and per validation pass) without early stopping."""
    import torch

    from fastregen.data import leave_one_out, load
    from fastregen.evaluation import evaluate
    from fastregen.training import Examples, NextItemLoss, TrainConfig, Trainer, build_target_model, resolve_loss

    torch.set_num_threads(threads)
    data = load(data_path)
    split = leave_one_out(data)
    cfg = TrainConfig(model=model, progress=False, num_threads=threads, **(extra or {}))
    torch.manual_seed(cfg.seed)
    net = build_target_model(cfg, data.num_items, split.train)
    examples = Examples(split.train, net.max_len, cfg.resolved_targets(net.causal))
    trainer = Trainer(net, NextItemLoss(*resolve_loss(cfg), cfg.temperature), lr=cfg.lr, batch_size=cfg.batch_size,
                      bucketing=cfg.length_bucketing, seed=cfg.seed, progress=False)
    trainer.set_normaliser(examples)
    train_s, eval_s = [], []
    for _ in range(epochs):
        t = time.perf_counter()
        trainer.run_epoch(examples)
        train_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        evaluate(net, split.valid)
        eval_s.append(time.perf_counter() - t)
    return {"model": model, "threads": threads, "extra": extra or {}, "examples": len(examples),
            "train_s_per_epoch": statistics.median(train_s), "valid_eval_s": statistics.median(eval_s),
            "all_train_s": train_s, "all_eval_s": eval_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", nargs="+", default=["sasrec", "gru4rec", "fmlp", "gnn", "cl4srec"])
    ap.add_argument("--out", default="/tmp/fastregen-runs", help="parent folder of the run folders")
    ap.add_argument("--results", default=None, help="JSONL file to append one row per run to")
    ap.add_argument("--rows", default=str(ROWS), help="results CSV to append the figures to ('' for none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra TrainConfig field (YAML value)")
    ap.add_argument("--tag", default="", help="suffix of the run folder names (to tell settings apart)")
    ap.add_argument("--speed", action="store_true", help="only time epochs (see --speed-epochs)")
    ap.add_argument("--speed-epochs", type=int, default=3)
    args = ap.parse_args(argv)

    extra = config_overrides(args.set, "--set")
    # read before the runs: a run takes hours and HEAD may move meanwhile
    commit = git_commit(Path(__file__).parent)

    rows = []
    for model in args.models:
        if args.speed:
            row = speed(args.data, model, args.threads, args.speed_epochs, extra)
            print(json.dumps(row))
            rows.append(row)
            if args.rows:
                for metric, key, runs in (("train_seconds_per_epoch", "train_s_per_epoch", "all_train_s"),
                                          ("valid_eval_seconds", "valid_eval_s", "all_eval_s")):
                    append_result(args.rows, benchmark=f"{model} speed", dataset=Path(args.data).name,
                                  variant=json.dumps(extra, sort_keys=True) if extra else "default", metric=metric,
                                  value=f"{row[key]:.3f}", unit="s", threads=args.threads, commit=commit,
                                  epochs=args.speed_epochs, runs=" ".join(f"{t:.3f}" for t in row[runs]),
                                  examples=row["examples"])
            continue
        from fastregen.training import fit_and_evaluate

        out_dir = Path(args.out) / f"{Path(args.data).stem}-{model}-seed{args.seed}{'-' + args.tag if args.tag else ''}"
        res = fit_and_evaluate(args.data, model=model, seed=args.seed, out_dir=out_dir, epochs=args.epochs,
                               num_threads=args.threads, progress=False, **extra)
        row = {
            "model": model, "tag": args.tag, "data": args.data, "seed": args.seed, "test": res["test"], "valid": res["valid"],
            "best_epoch": res["best_epoch"], "epochs": res["epochs"], "seconds_per_epoch": res["seconds_per_epoch"],
            "seconds": res["seconds"], "threads": args.threads, "extra": extra, "machine": _machine(),
            "commit": commit, "run": str(out_dir), "command": " ".join([sys.executable, *sys.argv]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.results:
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
        if args.rows:
            for metric in ("ndcg@20", "recall@20", "ndcg@10", "recall@10"):
                append_result(args.rows, benchmark=f"{model} reproduction", dataset=Path(args.data).name,
                              variant=args.tag or "default", metric=f"test_{metric}", value=res["test"][metric],
                              unit="", threads=args.threads, commit=commit, seed=args.seed, epochs=res["epochs"],
                              best_epoch=res["best_epoch"], seconds_per_epoch=res["seconds_per_epoch"],
                              note=f"{json.dumps(extra, sort_keys=True) if extra else ''} run {out_dir}".strip())
    if not args.speed:
        print("\n| model | R@10 | R@20 | N@10 | N@20 | paper N@20 | epochs (best) | s/epoch |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            t = r["test"]
            paper = PAPER_BEAUTY.get(r["model"], {}).get("ndcg@20")
            print(f"| {r['model']} | {t['recall@10']:.4f} | {t['recall@20']:.4f} | {t['ndcg@10']:.4f} | "
                  f"{t['ndcg@20']:.4f} | {paper if paper is not None else '—'} | {r['epochs']} ({r['best_epoch']}) | "
                  f"{r['seconds_per_epoch']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
