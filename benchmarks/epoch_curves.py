"""Exploratory: the test figures of a study run at every epoch, from the run trained again bit for bit.

    python benchmarks/epoch_curves.py RUN_ID [RUN_ID ...] --threads 1
    python benchmarks/report.py epoch_curves

A run of ``results/dr4sr.csv`` or of issue 26's rows of ``results/dr4srplus.csv`` is trained again as
its study trained it (the same training set, config and seeds; no run folder is written), with a hook
that scores the test split after every epoch. Each epoch's validation NDCG@20 must equal the one the
study logged (its folder's ``metrics.jsonl``; the row's epochs alone when that folder is gone), and
the test figures at the selected epoch the row's: the script stops at the first difference, since the
curve would then be another run's. Only then does it append one row per epoch to
``results/epoch_curves.csv``.

What it is for: a run's row says what early stopping chose; the curve says what it chose *from*, e.g.
whether DR4SR+ trails DR4SR at every epoch or stops earlier on the same path. The test figures select
nothing (the rows' settings were selected on validation before this ran); this is post hoc and says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_row, read_rows

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "epoch_curves.csv"
METRICS = ("ndcg@10", "ndcg@20", "recall@20")
COLUMNS = ["run_id", "source", "label", "epoch", "selected", "valid_ndcg@20",
           *[f"test_{m}" for m in METRICS], "weight_mean", "commit", "machine", "date"]


def test_curve_hook(split, repeated_target: str = "keep", batch_size: int = 1024):
    """A `fastregen.training.Hook` that adds ``test_<metric>`` (`METRICS`) to each epoch's record.

    It draws no random numbers and leaves the model's mode as it found it, so the run it rides on
    trains exactly as it would without it (checked by `Curve.check` against the study's log)."""
    from fastregen.evaluation import evaluate
    from fastregen.training import Hook

    class TestCurve(Hook):
        def on_epoch_end(self, trainer, record):
            model = trainer.model
            was_training = model.training
            try:
                m = evaluate(model, split, (10, 20), True, batch_size, repeated_target=repeated_target)
            finally:
                model.train(was_training)
            record.update({f"test_{k}": float(m[k]) for k in METRICS})

    return TestCurve()


class Curve:
    """Collects a re-trained run's epochs and checks them against the study's row and log."""

    def __init__(self, row: dict, logged: list[dict] | None, echo: bool = False) -> None:
        self.row, self.logged, self.records, self.echo = row, logged, [], echo

    def __call__(self, record: dict) -> None:  # the Trainer's ``log``: stops at the first differing epoch
        e = record["epoch"]
        if self.logged is not None:
            if e >= len(self.logged):
                raise SystemExit(f"{self.row['run_id']}: epoch {e} was not in the study's log "
                                 f"({len(self.logged)} epochs): the run differs")
            want, got = self.logged[e]["valid_ndcg@20"], record["valid_ndcg@20"]
            if want != got:
                raise SystemExit(f"{self.row['run_id']}: epoch {e} validation NDCG@20 {got!r}, the study logged "
                                 f"{want!r}: not the same run (another build or library version?)")
        self.records.append(dict(record))
        if self.echo:
            print(f"   epoch {e}: valid N@20 {record['valid_ndcg@20']:.4f}"
                  f"{' (as logged)' if self.logged is not None else ''}, "
                  f"test N@20 {record['test_ndcg@20']:.4f}", flush=True)

    def check(self, result: dict) -> None:
        """The re-trained run ended as the study's did: epochs, selected epoch and its test figures."""
        rid, row = self.row["run_id"], self.row
        if (len(self.records), result["best_epoch"]) != (int(row["epochs"]), int(row["best_epoch"])):
            raise SystemExit(f"{rid}: {len(self.records)} epochs, best {result['best_epoch']}; the row has "
                             f"{row['epochs']}, best {row['best_epoch']}")
        for m in METRICS:
            if f"test_{m}" in row and float(row[f"test_{m}"]) != result["test"][m]:
                raise SystemExit(f"{rid}: test {m} {result['test'][m]!r}, the row has {row[f'test_{m}']}")
        best = self.records[int(row["best_epoch"])]
        for m in METRICS:  # the hook scored the same model the run kept
            if best[f"test_{m}"] != result["test"][m]:
                raise SystemExit(f"{rid}: the hook's test {m} at the selected epoch {best[f'test_{m}']!r} "
                                 f"is not the run's {result['test'][m]!r}")

    def rows(self, source: str, label: str, commit: str, machine: str) -> list[dict]:
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        best = int(self.row["best_epoch"])
        return [{"run_id": self.row["run_id"], "source": source, "label": label, "epoch": r["epoch"],
                 "selected": int(r["epoch"] == best), "valid_ndcg@20": r["valid_ndcg@20"],
                 **{f"test_{m}": r[f"test_{m}"] for m in METRICS},
                 "weight_mean": "" if r.get("weight_mean") is None else r["weight_mean"],
                 "commit": commit, "machine": machine, "date": date} for r in self.records]


def _logged(folder: Path) -> list[dict] | None:
    path = folder / "metrics.jsonl"
    if not path.exists():
        return None
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def retrain_dr4sr(row: dict, args):
    """(label, result, Curve) of a dr4sr.csv run trained again."""
    import dr4sr_study as study
    from fastregen.data import leave_one_out
    from fastregen.training import fit_and_evaluate

    s = study.Study(Path(args.data_dir), Path(args.dr4sr_work), args.threads, study.RESULTS, False)
    setting = study.selected_setting(list(s.done().values()))
    declared = study.selection_runs() + (study.queued_runs(setting) + study.rebuild_runs(setting) if setting else [])
    run = next((r for r in declared if r.run_id == row["run_id"]), None)
    if run is None:
        raise SystemExit(f"{row['run_id']} is a row of dr4sr.csv but no declared run of dr4sr_study.py")
    data = s.data(run.dataset)
    curve = Curve(row, _logged(s.work / "runs" / run.run_id), echo=True)
    hook = test_curve_hook(leave_one_out(data).test)
    res = fit_and_evaluate(data, model=run.model, seed=run.target_seed, train_data=s.training_set(run),
                           hooks=(hook,), log=curve, **s._train_kwargs(run))
    return run.label(), res, curve


def retrain_dr4srplus(row: dict, args):
    """(label, result, Curve) of an issue-26 dr4srplus.csv run trained again."""
    import dr4srplus as plus
    from fastregen.data import leave_one_out
    from fastregen.dr4sr.plus import PlusConfig, personalize

    ns = argparse.Namespace(data_dir=args.data_dir, work=args.plus_work, threads=args.threads, progress=False,
                            results=str(plus.RESULTS),
                            regen=[f"beauty={Path(args.dr4sr_work) / 'decode' / plus.STUDY_REGEN.name}"])
    s = plus.Study(ns)
    regen = s.regen_id("beauty")
    run = next((r for r in plus.issue26_runs(list(s.done().values()), regen) if r.run_id(regen) == row["run_id"]), None)
    if run is None:
        raise SystemExit(f"{row['run_id']} is no issue-26 run of dr4srplus.py (the only ones this script re-trains)")
    data, sets = s.sets(run.dataset)
    curve = Curve(row, _logged(s.work / "runs" / row["run_id"]), echo=True)
    hook = test_curve_hook(leave_one_out(data).test)
    kwargs = dict(plus.TARGET[run.model], num_threads=args.threads, progress=False)
    res = personalize(data, sets[run.train_set], run.model, run.target_seed, plus=PlusConfig(**run.plus),
                      hooks=(hook,), log=curve, **kwargs)
    return run.label(), res, curve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--dr4sr-work", default=str(HERE.parent / "runs" / "dr4sr-study"))
    ap.add_argument("--plus-work", default=str(HERE.parent / "runs" / "dr4srplus"))
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)
    import dr4sr_study
    import dr4srplus
    import torch

    torch.set_num_threads(args.threads)
    sources = {"dr4sr": {r["run_id"]: r for r in read_rows(dr4sr_study.RESULTS, dr4sr_study.COLUMNS)},
               "dr4srplus": {r["run_id"]: r for r in read_rows(dr4srplus.RESULTS, dr4srplus.COLUMNS)
                             if r["stage"] == "issue26"}}
    done = {r["run_id"] for r in read_rows(args.results, COLUMNS)}
    commit, machine = git_commit(HERE), f"{os.cpu_count()} cores, {cpu_model()}"
    for rid in args.run_ids:
        source = next((name for name, rows in sources.items() if rid in rows), None)
        if source is None:
            raise SystemExit(f"{rid} is in neither dr4sr.csv nor issue 26's rows of dr4srplus.csv")
        if rid in done:
            print(f"{rid}: already in {args.results}")
            continue
        t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {rid} ({source}) ...", flush=True)
        label, res, curve = (retrain_dr4sr if source == "dr4sr" else retrain_dr4srplus)(sources[source][rid], args)
        curve.check(res)
        for row in curve.rows(source, label, commit, machine):
            append_row(args.results, row, COLUMNS)
        top = max(curve.records, key=lambda r: r["test_ndcg@20"])
        print(f"   {label}: {len(curve.records)} epochs reproduced; test N@20 {res['test']['ndcg@20']:.4f} at the "
              f"selected epoch {res['best_epoch']}, {top['test_ndcg@20']:.4f} at its best (epoch {top['epoch']}); "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
