"""DR4SR+ study (issue 18): the personalizer against DR4SR and the original data, selection on validation only.

    python benchmarks/dr4srplus.py plan     --regen beauty=DIR --regen toys=DIR
    python benchmarks/dr4srplus.py select   --regen beauty=DIR --regen toys=DIR --threads 1 --worker 0/2
    python benchmarks/dr4srplus.py replicate --regen beauty=DIR --regen toys=DIR --threads 1 --worker 0/2
    python benchmarks/dr4srplus.py others   --regen beauty=DIR --threads 1
    python benchmarks/dr4srplus.py ablation --regen beauty=DIR --threads 1
    python benchmarks/dr4srplus.py overhead --regen beauty=DIR --threads 1 --epochs 3
    python benchmarks/report.py dr4srplus [--write BENCHMARKS.md]

``DIR`` is a finished ``fastregen regenerate`` folder of that dataset; its
own training set (``combined`` or ``combined_authors``) is the DR4SR data
every DR4SR and DR4SR+ run of the dataset trains on.

Declared before any test figure is read:

* Target models as in ``dr4sr_study.py`` (SASRec: 400 epochs, patience 20;
  GRU4Rec: dropout 0.2, weight decay 1e-4, patience 60), early stopping on
  validation NDCG@20; protocol "auto" ("all" for the causal models, "last"
  for FMLP-Rec).
* DR4SR+: `PlusConfig` defaults (the released code: interval 30, K = 3,
  SGD lr 1e-3 momentum 0.9, clip 10, tau 10, 10 warm-up epochs; nothing
  pinned; dev = a held-out 10% of the original training sequences).
* Selection (``select``), seed 0, per dataset (Beauty, Toys) and model
  (SASRec, GRU4Rec): the upper level's SGD learning rate x weight decay in
  {1e-3, 1e-2, 1e-1}^2, as the paper states (App. A.4). The authors' sweep
  file (``sweep/metamodel7.yaml`` at 40c85f8) searches the Neumann step
  ``hpo_learning_rate`` (alpha) instead, with the SGD rate fixed at 1e-3;
  ``--grid alpha`` runs that grid. At the SGD rate 1e-3 phi hardly moves (a
  Beauty smoke run: mean w 0.500 -> 0.501 over six bi-level epochs, the
  variance that of the Gumbel noise alone), so alpha alone would select
  among near-identical runs. The best **validation** NDCG@20 picks the
  setting (`report.py` recomputes the choice from the rows).
* Replication (``replicate``): the selected setting with target seeds 0-2,
  beside the controls on the same seeds: ``original`` (the train split),
  ``dr4sr`` (the regenerated set, no personalizer) and
  ``original+patterns``.
* ``others``: FMLP-Rec, GNN, CL4SRec on Beauty, seed 0: DR4SR+ with SASRec's
  selected Beauty setting, DR4SR and original.
* ``ablation``: Table 4 row (C), end-to-end training from the first step
  (``warmup_epochs=0``: with the warm-up, early stopping would return the
  unweighted warm-up model), Beauty SASRec seed 0.

Issue 26, stage 5 (``queue``; declared in this commit, before any of its
runs): Beauty, on the DR4SR regenerator of ``dr4sr_study.py``'s selected
setting (V1, K = 5, gamma = 0.3, regenerator seed 0; its folder is the
default ``--regen beauty=``), at most three upper-level settings, the SGD
learning rate of phi with everything else at `PlusConfig`'s defaults:

* ``upper_lr = 1e-3``: the released code's setting;
* ``upper_lr = 1e-2`` and ``1e-1``: the smoke run found phi hardly moving at
  1e-3 (mean w 0.500 -> 0.501 over six bi-level epochs, the variance that of
  the Gumbel noise alone), i.e. the hypergradient steps are too small to
  change the weights within a run; ten and a hundred times the step are the
  paper's own grid values (App. A.4) and the smallest that can let phi
  depart from uniform weights within the run's upper steps.

The one with the best validation NDCG@20 of SASRec at target seed 0 is
selected; then SASRec at seeds 1-2 with it, then GRU4Rec at seeds 0-2 with
it. The original and DR4SR rows these are compared with are
``dr4sr_study.py``'s (stages 1 and 3), on the same seeds.

Each finished run appends one row to ``results/dr4srplus.csv`` and its
per-user test ranks to ``results/ranks/dr4srplus/RUN_ID.npz``; run folders
live under ``--work`` and a finished one is reused, so the study resumes.
``overhead`` times plain vs bi-level epochs alternately in one process and
appends to ``results/dr4srplus_overhead.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from _harness import cpu_model, git_commit, regenerated_sha256  # noqa: E402 (this folder is on sys.path)
from _results import append_row  # noqa: E402
from fastregen.study import Store, file_lock, run_queue  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dr4srplus.csv"
OVERHEAD = HERE / "results" / "dr4srplus_overhead.csv"
RANKS = HERE / "results" / "ranks" / "dr4srplus"
DATA = {name: f"{name}.txt" for name in ("beauty", "sports", "toys")}
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr")
#: The searched values: the grid's rate (``upper_lr`` or ``alpha``) x ``upper_weight_decay``.
RATES = (1e-3, 1e-2, 1e-1)
WEIGHT_DECAYS = (1e-3, 1e-2, 1e-1)
GRIDS = ("upper_lr", "alpha")
TARGET = {
    "sasrec": dict(epochs=400, patience=20),
    "gru4rec": dict(epochs=400, patience=60, weight_decay=1e-4, model_kwargs={"dropout": 0.2}),
    "fmlp": dict(epochs=400, patience=20),
    "gnn": dict(epochs=400, patience=20),
    "cl4srec": dict(epochs=400, patience=20),
}
SETS = ("original", "original+patterns", "dr4sr", "dr4sr+", "dr4sr+e2e")
COLUMNS = [
    "run_id", "stage", "dataset", "model", "train_set", "mode", "grid", "upper_lr", "alpha", "upper_weight_decay",
    "target_seed",
    "regen", "protocol", "epochs", "best_epoch", "seconds_per_epoch", "seconds", "upper_steps", "upper_skipped",
    "weight_mean", "weight_var", "train_sequences", "dev_sequences",
    *[f"valid_{m}" for m in METRICS], *[f"test_{m}" for m in METRICS], "test_auc", "n_test_users",
    "plus_config", "train_config", "commit", "machine", "date",
]
OVERHEAD_COLUMNS = ["dataset", "model", "train_set", "epochs", "plain_cpu_s_median", "bilevel_cpu_s_median",
                    "overhead_cpu", "plain_s_median", "bilevel_s_median", "overhead", "upper_s_median",
                    "upper_steps_per_epoch", "plain_cpu_s", "bilevel_cpu_s", "threads", "commit", "machine", "date"]


@dataclasses.dataclass(frozen=True)
class Run:
    stage: str
    dataset: str
    model: str
    train_set: str
    target_seed: int = 0
    grid: str = ""  # for dr4sr+: which rate `rate` is (upper_lr or alpha)
    rate: float = 0.0
    upper_weight_decay: float = 0.0
    options: tuple = ()  # (PlusConfig field, value) pairs changed (stage "explore"); in the key through `plus`

    @property
    def plus(self) -> dict | None:
        from fastregen.dr4sr.plus import PlusConfig

        if self.train_set == "dr4sr+":
            return dataclasses.asdict(PlusConfig(**{self.grid: self.rate}, upper_weight_decay=self.upper_weight_decay,
                                                 **dict(self.options)))
        if self.train_set == "dr4sr+e2e":
            # from the first step: with the 10 unweighted warm-up epochs, early stopping would return the
            # warm-up's unweighted model, not what joint training makes of it
            return dataclasses.asdict(PlusConfig(mode="end_to_end", warmup_epochs=0))
        return None

    def key(self, regen: str) -> dict:
        k = {"dataset": self.dataset, "model": self.model, "train_set": self.train_set, "seed": self.target_seed,
             "train": TARGET[self.model], "plus": self.plus}
        if self.train_set != "original" and self.train_set != "original+patterns":
            k["regen"] = regen
        return k

    def run_id(self, regen: str) -> str:
        return hashlib.sha256(json.dumps(self.key(regen), sort_keys=True).encode()).hexdigest()[:12]

    def label(self) -> str:
        s = f"{self.dataset}/{self.model}/{self.train_set}"
        if self.train_set == "dr4sr+":
            changed = "".join(f" {k}={v}" for k, v in self.options)
            s += f"[{self.grid}={self.rate:g} wd={self.upper_weight_decay:g}{changed}]"
        return s + f" seed {self.target_seed}"


def selection_runs(grid: str = "upper_lr") -> list[Run]:
    return [Run("select", d, m, "dr4sr+", 0, grid, r, wd) for d in ("beauty", "toys") for m in ("sasrec", "gru4rec")
            for r in RATES for wd in WEIGHT_DECAYS]


def selected(rows: list[dict], dataset: str, model: str, regen: str | None = None,
             grid: str = "upper_lr") -> tuple[float, float] | None:
    """(rate, weight decay) of the best validation NDCG@20 among the 9 selection runs of ``grid`` (on the
    regenerator ``regen``, any when None); None until all ran."""
    done = [r for r in rows if r["stage"] == "select" and r["dataset"] == dataset and r["model"] == model
            and r["grid"] == grid and (regen is None or r["regen"] == regen)]
    if len({(r[grid], r["upper_weight_decay"]) for r in done}) < len(RATES) * len(WEIGHT_DECAYS):
        return None
    best = max(done, key=lambda r: float(r["valid_ndcg@20"]))
    return float(best[grid]), float(best["upper_weight_decay"])


#: Issue 26's declared upper-level settings (SGD learning rate of phi; the rest PlusConfig defaults).
ISSUE26_RATES = (1e-3, 1e-2, 1e-1)
#: dr4sr_study.py's selected DR4SR regenerator folder on Beauty: the default ``--regen beauty=``.
STUDY_REGEN = HERE.parent / "runs" / "dr4sr-study" / "decode" / "beauty-V1-K5-s0-g0.3"


def issue26_runs(rows, regen: str = "") -> list[Run]:
    """Issue 26 stage 5, in order: the three settings at seed 0, then (once all three ran) SASRec
    seeds 1-2 and GRU4Rec seeds 0-2 at the validation-selected one."""
    from fastregen.dr4sr.plus import PlusConfig

    wd = PlusConfig().upper_weight_decay
    runs = [Run("issue26", "beauty", "sasrec", "dr4sr+", 0, "upper_lr", r, wd) for r in ISSUE26_RATES]
    ids = {r.run_id(regen): r for r in runs}
    done = [row for row in rows if row["run_id"] in ids]
    if len(done) == len(runs):
        best = ids[max(done, key=lambda row: float(row["valid_ndcg@20"]))["run_id"]]
        runs += [dataclasses.replace(best, target_seed=s) for s in (1, 2)]
        runs += [dataclasses.replace(best, model="gru4rec", target_seed=s) for s in (0, 1, 2)]
    return runs


def explore_runs(rows, regen: str = "") -> list[Run]:
    """Exploratory (post hoc, never in the verdict): the selected issue-26 run at seed 0 again with one
    PlusConfig option changed, in this order (empty until the selection has run):

    * ``detach_hidden=True``: the released code feeds the personalizer undetached hidden states (e25d0c3
      ``model/metamodel.py:177-178``), so the target model can lower its weighted loss by lowering every
      weight; in the selected runs the mean weight fell from 0.5 to 0.09-0.26 while validation fell with it.
    * ``tau=1e4``: weights 0.5 without their Gumbel noise (+-9% per target at tau = 10); the runs with
      steady weights (upper lr 1e-3, detached) still plateau below DR4SR from epoch ~22, and this tells
      the noise apart from what is left (the held-out dev rows, the upper steps' side effects).
    * ``warmup_epochs=400``: the personalizer never switches on (no weights, no upper steps), so this is
      plain training on DR4SR+'s lower-level set, DR4SR's set less the held-out dev rows; declared after
      the two above also stopped at epoch 22. Then at target seeds 1-2 too (declared after it also
      stopped at epoch 22 at seed 0), to tell whether training on the lower-level set stops early by
      itself or only at seed 0.
    * ``dev="train_batch"`` at target seeds 0-2: the released code's dev set (a fresh batch of the
      training set itself, nothing held out); declared after plain training on the lower-level set
      scored 0.0382 and 0.0400 at seeds 0-1 against DR4SR's 0.0416 and 0.0430 on the whole set, i.e.
      most of DR4SR+'s gap at those seeds came with the rows it holds out.
    """
    runs = issue26_runs(rows, regen)
    if len(runs) == len(ISSUE26_RATES):
        return []
    best = runs[len(ISSUE26_RATES)]
    runs = [dataclasses.replace(best, stage="explore", target_seed=0, options=opt)
            for opt in ((("detach_hidden", True),), (("tau", 1e4),), (("warmup_epochs", 400),))]
    runs += [dataclasses.replace(runs[-1], target_seed=s) for s in (1, 2)]
    return runs + [dataclasses.replace(best, stage="explore", target_seed=s, options=(("dev", "train_batch"),))
                   for s in (0, 1, 2)]


def issue26_status(rows, regen: str = "") -> str:
    """One line on stage 5 for ``plan``: runs done of the 8 declared, the selected rate (validation, seed 0)
    and the pending one-thread hours, each estimated from the done runs of its target model."""
    runs = issue26_runs(rows, regen)
    by_id = {row["run_id"]: row for row in rows}
    done = [by_id[r.run_id(regen)] for r in runs if r.run_id(regen) in by_id]
    pending = [r for r in runs if r.run_id(regen) not in by_id]
    total = len(ISSUE26_RATES) + 5  # the selection, then SASRec seeds 1-2 and GRU4Rec seeds 0-2
    if len(runs) == len(ISSUE26_RATES):
        chosen = f"selection {len(done)}/{len(ISSUE26_RATES)} (validation N@20, seed 0)"
    else:
        chosen = f"selected upper lr {runs[-1].rate:g} on validation"
    hours, known, unknown = 0.0, 0, set()
    for r in pending:
        same = [float(row["seconds"]) for row in done if row["model"] == r.model]
        if same:
            hours, known = hours + sum(same) / len(same) / 3600, known + 1
        else:
            unknown.add(r.model)
    est = [f"~{hours:.1f} one-thread hours for {known} (estimated from the done rows)"] if known else []
    est += [f"{'/'.join(sorted(unknown))}: no done row to estimate from"] if unknown else []
    est = f"{len(pending)} pending" + (f", {'; '.join(est)}" if est else "")
    return f"issue 26 stage 5: {len(done)}/{total} done; {chosen}; {est}"


def replication_runs(rows, regen=lambda dataset: None, grid: str = "upper_lr") -> list[Run]:
    runs = []
    for dataset in ("beauty", "toys"):
        for model in ("sasrec", "gru4rec"):
            setting = selected(rows, dataset, model, regen(dataset), grid)
            for seed in (0, 1, 2):
                if setting is not None:
                    runs.append(Run("replicate", dataset, model, "dr4sr+", seed, grid, *setting))
                for control in ("original", "dr4sr", "original+patterns"):
                    runs.append(Run("replicate", dataset, model, control, seed))
    return runs


def other_runs(rows, regen=lambda dataset: None, grid: str = "upper_lr") -> list[Run]:
    setting = selected(rows, "beauty", "sasrec", regen("beauty"), grid)
    runs = []
    for model in ("fmlp", "gnn", "cl4srec"):
        if setting is not None:
            runs.append(Run("others", "beauty", model, "dr4sr+", 0, grid, *setting))
        runs += [Run("others", "beauty", model, "original", 0), Run("others", "beauty", model, "dr4sr", 0)]
    return runs


class Study:
    def __init__(self, args) -> None:
        self.data_dir, self.work = Path(args.data_dir), Path(args.work)
        self.threads, self.progress, self.results = args.threads, args.progress, Path(args.results)
        self.regen_dirs = dict(kv.split("=", 1) for kv in args.regen)
        self.commit, self.machine = git_commit(HERE), f"{os.cpu_count()} cores, {cpu_model()}"
        self._sets: dict = {}
        # The study declares its rows' columns; the engine (fastregen.study) appends and reads them.
        self.store = Store(self.results.parent, results=self.results, ranks_dir=RANKS, columns=COLUMNS, ranks_cutoff=50,
                           what="DR4SR+ study results file", hint="start a new file or migrate it")

    def regen_id(self, dataset: str) -> str:
        d = self.regen_dirs.get(dataset)
        if d is None:
            return ""
        if not (Path(d) / "regenerated.json").exists():
            raise SystemExit(f"--regen {dataset}={d}: no finished `fastregen regenerate` folder there "
                             "(no regenerated.json)")
        return regenerated_sha256(d)[:12]

    def sets(self, dataset: str):
        """(data, {train_set: SequenceDataset or None}) for ``dataset``."""
        if dataset in self._sets:
            return self._sets[dataset]
        from fastregen.dr4sr import DR4SR
        from fastregen.dr4sr.plus import load_training_set
        from fastregen.data import load

        path = self.data_dir / DATA[dataset]
        d = self.regen_dirs.get(dataset)
        if d is not None:
            data, chosen, _ = load_training_set(path, d)
            mined = DR4SR(progress=False).mine(data).training_sets()
        else:
            data, chosen = load(path), None
            mined = DR4SR(progress=False).mine(data).training_sets()
        out = {"original": None, "original+patterns": mined["original+patterns"], "dr4sr": chosen,
               "dr4sr+": chosen, "dr4sr+e2e": chosen}
        self._sets[dataset] = (data, out)
        return self._sets[dataset]

    def done(self) -> dict:
        return self.store.done()

    def run(self, run: Run) -> None:
        regen = self.regen_id(run.dataset)
        if run.train_set not in ("original", "original+patterns") and not regen:
            raise SystemExit(f"{run.label()} needs --regen {run.dataset}=DIR")
        rid = run.run_id(regen)
        with file_lock(self.work / "locks" / f"{rid}.lock"):
            if rid in self.done():
                return
            self._train(run, rid, regen)

    def _train(self, run: Run, rid: str, regen: str) -> None:
        import torch
        from fastregen.dr4sr.plus import PlusConfig, personalize
        from fastregen.training import fit_and_evaluate

        data, sets = self.sets(run.dataset)
        train = sets[run.train_set]
        kwargs = dict(TARGET[run.model], num_threads=self.threads, progress=self.progress)
        out = self.work / "runs" / rid
        print(f"[{time.strftime('%H:%M:%S')}] {run.label()} ({rid})", flush=True)
        torch.set_num_threads(self.threads)
        if run.plus is None:
            res = fit_and_evaluate(data, model=run.model, seed=run.target_seed, train_data=train, out_dir=out,
                                   **kwargs)
            res.update(upper_steps=0, upper_skipped=0, dev_sequences=0,
                       train_sequences="" if train is None else len(train))
        else:
            res = personalize(data, train, run.model, run.target_seed, plus=PlusConfig(**run.plus), out_dir=out,
                              **kwargs)
        last = res["history"][-1] if res["history"] else {}
        self.store.save_ranks(rid, res["test_ranks"])
        row = {
            "run_id": rid, "stage": run.stage, "dataset": run.dataset, "model": run.model,
            "train_set": run.train_set, "mode": (run.plus or {}).get("mode", "off"), "grid": run.grid,
            "upper_lr": (run.plus or {}).get("upper_lr", ""), "alpha": (run.plus or {}).get("alpha", ""),
            "upper_weight_decay": (run.plus or {}).get("upper_weight_decay", ""),
            "target_seed": run.target_seed, "regen": regen if run.train_set not in ("original", "original+patterns") else "",
            "protocol": res.get("train_targets", ""), "epochs": res["epochs"], "best_epoch": res["best_epoch"],
            "seconds_per_epoch": round(res["seconds_per_epoch"], 2), "seconds": round(res["seconds"], 1),
            "upper_steps": res["upper_steps"], "upper_skipped": res["upper_skipped"],
            "weight_mean": last.get("weight_mean", ""), "weight_var": last.get("weight_var", ""),
            "train_sequences": res["train_sequences"], "dev_sequences": res["dev_sequences"],
            **{f"valid_{m}": res["valid"][m] for m in METRICS}, **{f"test_{m}": res["test"][m] for m in METRICS},
            "test_auc": res["test"]["auc"], "n_test_users": res["test"]["n_users"],
            "plus_config": json.dumps(run.plus or {}, sort_keys=True),
            "train_config": json.dumps(kwargs | {"threads": self.threads}, sort_keys=True),
            "commit": self.commit, "machine": self.machine,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.store.append(row)
        print(f"   -> valid N@20 {row['valid_ndcg@20']:.4f}, {res['epochs']} epochs, {res['seconds']:.0f} s", flush=True)


def overhead(study: Study, dataset: str, model: str, epochs: int, results: Path, device: str = "cpu") -> dict:
    """Plain vs bi-level training epochs, alternating in one process; medians of the train time.

    On CUDA (the paper's Table 5 is a GPU figure) the wall time is the figure: process CPU time is
    then the host's, not the work done; the machine column names the GPU.
    """
    import numpy as np
    import torch
    from fastregen.dr4sr.plus import PersonalizedWeights, Personalizer, PersonalizerHook, PlusConfig, split_dev
    from fastregen.training import Examples, NextItemLoss, Trainer, TrainConfig
    from fastregen.training.fit import build_target_model, resolve_loss, seed_everything

    torch.set_num_threads(study.threads)
    data, sets = study.sets(dataset)
    train = sets["dr4sr+"] if sets["dr4sr+"] is not None else sets["original+patterns"]
    cfg = TrainConfig(model=model, progress=study.progress, num_threads=study.threads)
    plus = PlusConfig(warmup_epochs=0)
    lower, dev = split_dev(train, plus)
    loss, neg = resolve_loss(cfg)
    trainers = {}
    for kind in ("plain", "bilevel"):
        seed_everything(0)
        net = build_target_model(cfg, max(data.num_items, train.num_items), lower)
        examples = Examples(lower, net.max_len, cfg.resolved_targets(net.causal))
        hooks, weight_fn = [], None
        if kind == "bilevel":
            p = Personalizer(net.embed_dim)
            weight_fn = PersonalizedWeights(p)
            hooks = [PersonalizerHook(p, weight_fn, plus, dev=Examples(dev, net.max_len, examples.mode),
                                      batch_size=cfg.batch_size, loss=loss, num_negatives=neg)]
        trainers[kind] = (Trainer(net, NextItemLoss(loss, neg, weight_fn=weight_fn), hooks=hooks,
                                  batch_size=cfg.batch_size, progress=study.progress, desc=kind, device=device),
                          examples)
    # CPU time of this process is the primary figure: the shared machine's other jobs move wall time by
    # +-30% from epoch to epoch, and with one torch thread the process time is the work done
    times = {"plain": [], "bilevel": []}
    cpu = {"plain": [], "bilevel": []}
    upper, steps = [], []
    for epoch in range(epochs):
        for kind in ("plain", "bilevel") if epoch % 2 == 0 else ("bilevel", "plain"):
            trainer, examples = trainers[kind]
            c0 = time.process_time()
            rec = trainer.fit(examples, 1)[-1]
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            cpu[kind].append(time.process_time() - c0)
            times[kind].append(rec["train_seconds"])
            if kind == "bilevel":
                upper.append(rec["upper_seconds"])
                steps.append(rec["upper_steps"])
            print(f"epoch {epoch} {kind:<8} {rec['train_seconds']:.2f} s wall, {cpu[kind][-1]:.2f} s cpu", flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    cmed = {k: float(np.median(v)) for k, v in cpu.items()}
    row = {"dataset": dataset, "model": model, "train_set": train.name, "epochs": epochs,
           "plain_cpu_s_median": round(cmed["plain"], 3), "bilevel_cpu_s_median": round(cmed["bilevel"], 3),
           "overhead_cpu": round(cmed["bilevel"] / cmed["plain"] - 1, 4),
           "plain_s_median": round(med["plain"], 3), "bilevel_s_median": round(med["bilevel"], 3),
           "overhead": round(med["bilevel"] / med["plain"] - 1, 4), "upper_s_median": round(float(np.median(upper)), 3),
           "upper_steps_per_epoch": int(np.median(steps)),
           "plain_cpu_s": " ".join(f"{t:.2f}" for t in cpu["plain"]),
           "bilevel_cpu_s": " ".join(f"{t:.2f}" for t in cpu["bilevel"]), "threads": study.threads,
           "commit": study.commit,
           "machine": study.machine if torch.device(device).type != "cuda" else torch.cuda.get_device_name(device),
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    append_row(results, row, OVERHEAD_COLUMNS)
    print(json.dumps(row, indent=2))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["plan", "select", "replicate", "others", "ablation", "overhead", "queue",
                                      "explore"])
    ap.add_argument("--max-runs", type=int, default=0,
                    help="queue, explore: stop after this many runs (0: until none is left)")
    ap.add_argument("--regen", action="append", default=[], metavar="DATASET=DIR",
                    help="finished `fastregen regenerate` folder of a dataset (repeatable)")
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--work", default=str(HERE.parent / "runs" / "dr4srplus"), help="run folders and locks")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", default="0/1", metavar="K/N", help="take every N-th run starting at K")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--epochs", type=int, default=3, help="overhead: epochs of each kind")
    ap.add_argument("--model", default="sasrec", help="overhead: target model")
    ap.add_argument("--dataset", default="beauty", help="overhead: dataset")
    ap.add_argument("--device", default="cpu", help="overhead: torch device (cuda: the paper's Table 5 setting)")
    ap.add_argument("--grid", default="upper_lr", choices=GRIDS,
                    help="the rate searched with the weight decay: upper_lr (the paper) or alpha (the authors' sweep)")
    args = ap.parse_args(argv)
    for kv in args.regen:
        if "=" not in kv or kv.split("=", 1)[0] not in DATA:
            raise SystemExit(f"--regen takes DATASET=DIR with DATASET in {sorted(DATA)}, got {kv!r}")
    if args.stage in ("plan", "queue", "explore") and not any(kv.startswith("beauty=") for kv in args.regen) \
            and (STUDY_REGEN / "regenerated.json").exists():
        args.regen.append(f"beauty={STUDY_REGEN}")
    study = Study(args)
    if args.stage == "overhead":
        overhead(study, args.dataset, args.model, args.epochs, OVERHEAD if args.results == str(RESULTS)
                 else Path(args.results).with_name("dr4srplus_overhead.csv"), device=args.device)
        return 0
    k, _, n = args.worker.partition("/")
    k, n = int(k), int(n or 1)
    if not 0 <= k < n:
        raise SystemExit(f"--worker K/N needs 0 <= K < N, got {args.worker!r}")
    rows = list(study.done().values())
    plan = {
        "select": selection_runs(args.grid),
        "replicate": replication_runs(rows, study.regen_id, args.grid),
        "others": other_runs(rows, study.regen_id, args.grid),
        "ablation": [Run("ablation", "beauty", "sasrec", "dr4sr+e2e", 0)],
        "queue": issue26_runs(rows, study.regen_id("beauty")),
        "explore": explore_runs(rows, study.regen_id("beauty")),
    }
    if args.stage in ("queue", "explore"):  # exit 0 after a run, 3: every pending run held elsewhere, 4: none
        if not study.regen_id("beauty"):
            raise SystemExit(f"the {args.stage} needs the study's DR4SR folder ({STUDY_REGEN}) or --regen beauty=DIR")
        import torch

        torch.set_num_threads(args.threads)
        regen = study.regen_id("beauty")
        declared = issue26_runs if args.stage == "queue" else explore_runs
        return run_queue(lambda: declared(list(study.done().values()), regen), lambda r: r.run_id(regen),
                         study.done, study.work / "locks", lambda r: study._train(r, r.run_id(regen), regen),
                         max_runs=args.max_runs)
    if args.stage == "plan":
        done = study.done()
        for stage, runs in plan.items():
            for r in runs:
                regen = study.regen_id(r.dataset)
                mark = "done" if r.run_id(regen) in done else "    "
                print(f"{mark}  {stage:<9} {r.label()}")
        print("issue 18's grids (stages select, replicate, others):")
        for dataset in ("beauty", "toys"):
            for model in ("sasrec", "gru4rec"):
                print(f"  selected {dataset}/{model} ({args.grid} x weight decay): "
                      f"{selected(rows, dataset, model, study.regen_id(dataset), args.grid) or 'not yet'}")
        print(issue26_status(rows, study.regen_id("beauty")))
        return 0
    for i, r in enumerate(plan[args.stage]):
        if i % n == k:
            study.run(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
