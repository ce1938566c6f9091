"""The DR4SR study under the authors' protocol: pre-declared variants, selection on validation, replication.

    python benchmarks/dr4sr_study.py plan                      # what will run, and what is done
    python benchmarks/dr4sr_study.py select --threads 1 --worker 0/2   # and --worker 1/2 beside it
    python benchmarks/dr4sr_study.py replicate --threads 1 --worker 0/2
    python benchmarks/dr4sr_study.py queue --threads 1     # two of these side by side: issue 26's order,
                                                           # each takes the next run nobody holds
    python benchmarks/report.py dr4sr                          # tables + paired p-values from the rows

Declared before any test figure was read (BENCHMARKS.md, "DR4SR under the
authors' protocol"): every target model trains with ``train_targets="all"``
(one row per sequence, every position a target: the authors' released
configs select ``SeparateDataset``) and the Trainer's constant
targets-per-batch normalisation.

* V1, the released code: Gumbel promoter, entropy weight 1, 40 pre-training
  epochs, schedule "released", the authors' training-set composition
  (``combined_authors``: the original sequences twice).
* V2, the paper: soft promoter, no entropy term, 20 epochs, schedule
  "paper" (per-step gamma), ``combined`` (original + mined + regenerated).
* Selection (``select``), Beauty only: V1/V2 x K in {1, 5}, each decoded with
  gamma in {0.1, 0.3}: 8 settings, SASRec target seed 0, regenerator seed 0.
  The setting with the best **validation** NDCG@20 is the DR4SR row
  everywhere; `report.py` makes that choice from the rows' validation
  columns alone.
* Replication (``replicate``): the selected setting on Beauty with
  regenerator seeds 0-2 x target seeds 0-2, on Sports and Toys with
  regenerator seed 0 x target seeds 0-2; SASRec on all three datasets,
  GRU4Rec (released gru4rec.yaml: dropout 0.2, weight decay 1e-4; patience
  60 so its slow start is not cut) on Beauty and Toys. Controls on the same
  protocol and seeds: original, original+patterns, patterns, regenerated
  only (GRU4Rec: original and original+patterns).
* The authors' training scheme (issue 26, stage 2): Beauty SASRec, original
  and the selected DR4SR set (regenerator seed 0) at target seeds 0-2, trained
  with ``SCHEMES["authors"]`` (= ``fastregen.training.AUTHORS_SCHEME``:
  positions from each row's oldest item, random batches with a per-batch mean
  loss, sequences cut to their last 50 items before the split); their rows
  say ``protocol = "all/authors"``. Random batches are padded to their longest
  row, so an epoch costs more than a length-bucketed one (1.5-7x in epochs
  timed side by side on the shared 2-core machine; the original at seed 0 took
  136 epochs, 75 min), and the DR4SR set has 5x the original's rows.
* The rebuilt regenerator (issue 26, declared in this commit before its run):
  the selection's seed-0 DR4SR run (V1, K = 5, gamma = 0.3) trained on a
  regenerator built on the AMD VM at 5f30989, whose folder did not move with
  the study; the Intel VM rebuilt it (same config and seed; pre-training is
  not bit-reproducible across machines) and every later DR4SR run trained on
  that rebuild (seeds 1-2, the authors' scheme and trainer, GRU4Rec, DR4SR+).
  So Beauty SASRec DR4SR at target seed 0 runs again on the rebuild, pinned
  by its output's sha256 prefix (``REBUILDS``; stage ``rebuild``), first in
  the queue. `report.py` pairs that row at seed 0 in place of the first
  build's, and reports the first build's row on its own line.

Every finished run appends one row to ``benchmarks/results/dr4sr.csv`` and
its test ranks to ``benchmarks/results/ranks/dr4sr/RUN_ID.npz`` at once, so
the study can be stopped and resumed (possibly in another session: run
folders and regenerators live under ``--work``, rebuilt when absent).
Regenerators initialise their item table from the dataset's SASRec trained
on the original data (target seed 0), as the authors do.
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
from fastregen.study import Store, file_lock, regenerate_once, run_queue  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dr4sr.csv"
REGEN_RESULTS = HERE / "results" / "dr4sr_regenerators.csv"
RANKS = HERE / "results" / "ranks" / "dr4sr"
DATA = {name: f"{name}.txt" for name in ("beauty", "sports", "toys")}
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr")
COLUMNS = [
    "run_id", "stage", "dataset", "model", "train_set", "variant", "K", "gamma", "regen_seed", "target_seed",
    "protocol", "epochs", "best_epoch", "seconds_per_epoch", "seconds", "train_sequences", "train_interactions",
    *[f"valid_{m}" for m in METRICS], *[f"test_{m}" for m in METRICS], "test_auc", "n_test_users",
    "regen_config", "train_config", "commit", "machine", "date",
]

REGEN_COLUMNS = [
    "decode_key", "output_sha256", "dataset", "variant", "K", "gamma", "regen_seed", "epochs", "best_epoch", "valid_loss",
    "valid_best_memory_loss", "memory_use", "pretrain_seconds", "decoded", "duplicates", "kept", "mean_length",
    "train_set", "train_sequences", "train_interactions", "regen_config", "commit", "machine", "date",
]

# ------------------------------------------------------------------ declared
VARIANTS = {
    "V1": {"regen": dict(diversity="gumbel", entropy_weight=1.0, epochs=40, schedule="released"),
           "train_set": "combined_authors"},
    "V2": {"regen": dict(diversity="soft", entropy_weight=0.0, epochs=20, schedule="paper"),
           "train_set": "combined"},
}
KS = (1, 5)
GAMMAS = (0.1, 0.3)
TARGET = {
    "sasrec": dict(epochs=400, patience=20),
    "gru4rec": dict(epochs=400, patience=60, weight_decay=1e-4, model_kwargs={"dropout": 0.2}),
}
#: Regenerated sets that runs are pinned to (decode folder -> sha256 prefix of its regenerated.txt,
#: ``regenerated.json["output"]["sha256"]``): the Intel VM's rebuild of Beauty's selected setting.
REBUILDS = {"beauty-V1-K5-s0-g0.3": "71adcfc9be91"}
CONTROLS = {"sasrec": ("original", "original+patterns", "patterns", "regenerated"),
            "gru4rec": ("original", "original+patterns")}
# Training schemes other than fastregen's own (issue 26, stage 2): TrainConfig fields, frozen here
# as declared (a test checks "authors" against fastregen.training.AUTHORS_SCHEME). A run's scheme
# enters its key only when it is not the default, so the ids of the runs declared before stay put.
SCHEMES = {"authors": dict(positions="oldest", length_bucketing=False, loss_normalisation="batch_mean",
                           truncate_before_split=50)}


@dataclasses.dataclass(frozen=True)
class Run:
    """One target-model training run of the study."""

    stage: str
    dataset: str
    model: str
    train_set: str  # "dr4sr" (the variant's own composition) or a control
    variant: str = ""  # V1 / V2, for sets that need a regenerator
    K: int = 0
    gamma: float = 0.0
    regen_seed: int = -1
    target_seed: int = 0
    scheme: str = ""  # "" (fastregen's) or a key of SCHEMES
    regen_build: str = ""  # "" (whatever the decode folder holds) or the sha256 prefix of REBUILDS it must hold

    @property
    def needs_regenerator(self) -> bool:
        return self.train_set in ("dr4sr", "regenerated")

    def key(self) -> dict:
        k = {"dataset": self.dataset, "model": self.model, "train_set": self.train_set,
             "target_seed": self.target_seed, "protocol": "all", "train": TARGET[self.model]}
        if self.needs_regenerator:
            k.update(variant=self.variant, K=self.K, gamma=self.gamma, regen_seed=self.regen_seed,
                     regen=VARIANTS[self.variant]["regen"])
        if self.scheme:
            k.update(scheme=self.scheme, scheme_config=SCHEMES[self.scheme])
        if self.regen_build:  # in the key only when pinned, so the ids of the runs declared before stay put
            k.update(regen_build=self.regen_build)
        return k

    @property
    def regen_name(self) -> str:
        """The regenerator's pre-training folder under ``--work``/regen."""
        return f"{self.dataset}-{self.variant}-K{self.K}-s{self.regen_seed}"

    @property
    def decode_name(self) -> str:
        """Its decoding folder (one per gamma) under ``--work``/decode."""
        return f"{self.regen_name}-g{self.gamma}"

    @property
    def protocol(self) -> str:
        """The ``protocol`` column: "all", or "all/SCHEME" under another training scheme."""
        return "all" + (f"/{self.scheme}" if self.scheme else "")

    @property
    def run_id(self) -> str:
        return hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:12]

    def label(self) -> str:
        s = f"{self.dataset}/{self.model}/{self.train_set}"
        if self.needs_regenerator:
            s += f"[{self.variant} K={self.K} g={self.gamma} r{self.regen_seed}" + \
                (f"@{self.regen_build}]" if self.regen_build else "]")
        return s + f" seed {self.target_seed}" + (f" ({self.scheme}' scheme)" if self.scheme else "")


def selection_runs() -> list[Run]:
    runs = [Run("select", "beauty", "sasrec", "original", target_seed=0)]
    for variant in VARIANTS:
        for K in KS:
            for gamma in GAMMAS:
                runs.append(Run("select", "beauty", "sasrec", "dr4sr", variant, K, gamma, 0, 0))
    return runs


def selected_setting(rows: list[dict]) -> tuple[str, int, float] | None:
    """(variant, K, gamma) of the selection run with the best validation NDCG@20; None until all 8 ran."""
    want = {r.run_id: r for r in selection_runs() if r.train_set == "dr4sr"}
    done = [row for row in rows if row["run_id"] in want]
    if len(done) < len(want):
        return None
    best = max(done, key=lambda row: float(row["valid_ndcg@20"]))
    r = want[best["run_id"]]
    return r.variant, r.K, r.gamma


def replication_runs(setting) -> list[Run]:
    variant, K, gamma = setting
    runs = []
    for dataset, models in (("beauty", ("sasrec", "gru4rec")), ("sports", ("sasrec",)), ("toys", ("sasrec", "gru4rec"))):
        for model in models:
            regen_seeds = (0, 1, 2) if dataset == "beauty" and model == "sasrec" else (0,)
            for seed in (0, 1, 2):
                for rs in regen_seeds:
                    runs.append(Run("replicate", dataset, model, "dr4sr", variant, K, gamma, rs, seed))
                for control in CONTROLS[model]:
                    if control == "regenerated":
                        runs.append(Run("replicate", dataset, model, control, variant, K, gamma, 0, seed))
                    else:
                        runs.append(Run("replicate", dataset, model, control, target_seed=seed))
    return runs


def rebuild_runs(setting) -> list[Run]:
    """Beauty SASRec DR4SR at target seed 0 on each rebuilt regenerator of ``REBUILDS`` (stage ``rebuild``)."""
    variant, K, gamma = setting
    run = Run("rebuild", "beauty", "sasrec", "dr4sr", variant, K, gamma, 0, 0)
    build = REBUILDS.get(run.decode_name)
    return [dataclasses.replace(run, regen_build=build)] if build else []


def queued_runs(setting, core_only: bool = False) -> list[Run]:
    """Every replication run, in the order issue 26 declares (each stage's rows are useful alone).

    1. Beauty SASRec: original and DR4SR (regenerator seed 0) at target seeds 1, 2; first, DR4SR at
       seed 0 again on the rebuilt regenerator of ``REBUILDS`` (the selection's seed-0 run used the first build);
    2. (the cheap half of stage 2) Beauty SASRec under the authors' training scheme (SCHEMES):
       original and DR4SR (regenerator seed 0) at target seeds 0-2;
    3. Beauty GRU4Rec: original and DR4SR at target seeds 0-2;
    4. Toys and Sports SASRec: original and DR4SR at target seeds 0-2;
    7. then the rest of the replication plan (regenerator seeds 1-2, the controls).
    (Stages 2, 5 and 6 are also other scripts: the authors' own trainer, benchmarks/authors.py;
    DR4SR+ and UniDS.)
    """
    variant, K, gamma = setting

    def pair(dataset, model, seed, scheme=""):
        return [Run("replicate", dataset, model, "original", target_seed=seed, scheme=scheme),
                Run("replicate", dataset, model, "dr4sr", variant, K, gamma, 0, seed, scheme=scheme)]

    order = rebuild_runs(setting)
    order += [r for s in (1, 2) for r in pair("beauty", "sasrec", s)]
    order += [r for s in (0, 1, 2) for r in pair("beauty", "sasrec", s, "authors")]
    order += [r for s in (0, 1, 2) for r in pair("beauty", "gru4rec", s)]
    order += [r for d in ("toys", "sports") for s in (0, 1, 2) for r in pair(d, "sasrec", s)]
    if core_only:  # stages 1, 3 and 4 alone: the workers run DR4SR+ (stage 5) before the rest
        return order
    seen = {r.run_id for r in order}
    return order + [r for r in replication_runs(setting) if r.run_id not in seen]


# ------------------------------------------------------------------ running
def _regen_config(run: Run, progress: bool):
    from fastregen.dr4sr import RegenConfig

    return RegenConfig(**{**VARIANTS[run.variant]["regen"], "K": run.K, "gamma": run.gamma, "seed": run.regen_seed,
                          "training_set": VARIANTS[run.variant]["train_set"], "progress": progress})


def _epoch_line(record: dict) -> None:
    """One log line per finished epoch (a run killed and restarted shows where it went on)."""
    valid = record.get("valid_ndcg@20")
    print(f"   [{time.strftime('%H:%M:%S')}] epoch {record['epoch']}: loss {record['loss']:.4f}"
          + ("" if valid is None else f", valid N@20 {valid:.4f}"), flush=True)


class Study:
    def __init__(self, data_dir: Path, work: Path, threads: int, results: Path, progress: bool,
                 smoke: int = 0) -> None:
        self.data_dir, self.work, self.threads, self.results, self.progress = data_dir, work, threads, results, progress
        self.regen_results = results.with_name(results.stem + "_regenerators.csv")
        # The study declares its rows' columns; the engine (fastregen.study) appends and reads them.
        self.store = Store(results.parent, results=results, ranks_dir=RANKS, columns=COLUMNS, ranks_cutoff=50,
                           what="DR4SR study results file", hint="start a new file or migrate it")
        self.regen_store = Store(results.parent, results=self.regen_results, columns=REGEN_COLUMNS,
                                 what="DR4SR study regenerators file", hint="start a new file or migrate it")
        self.smoke = smoke
        self.commit = git_commit(HERE)
        self.machine = f"{os.cpu_count()} cores, {cpu_model()}"
        self._data = {}

    def data(self, name: str):
        from fastregen.data import load

        if name not in self._data:
            data = load(self.data_dir / DATA[name])
            if self.smoke:  # a plumbing check: the first users only
                data = data.subset(range(self.smoke))
            self._data[name] = data
        return self._data[name]

    def done(self) -> dict[str, dict]:
        return self.store.done()

    def _train_kwargs(self, run: Run) -> dict:
        return dict(TARGET[run.model], train_targets="all", num_threads=self.threads, progress=self.progress,
                    **SCHEMES.get(run.scheme, {}))

    def baseline_model(self, dataset: str) -> Path:
        """The SASRec trained on ``dataset``'s original split (target seed 0), whose item table
        initialises the regenerators; trained (and its row appended) if absent."""
        base = Run("select" if dataset == "beauty" else "replicate", dataset, "sasrec", "original", target_seed=0)
        path = self.work / "runs" / base.run_id / "model.pt"
        with file_lock(self.work / "locks" / f"{base.run_id}.lock"):
            if not path.exists():
                self._train(base, append=base.run_id not in self.done())
        return path

    def training_set(self, run: Run):
        from fastregen.dr4sr import DR4SR

        data = self.data(run.dataset)
        if run.train_set == "original":
            return None
        if not run.needs_regenerator:
            return DR4SR(progress=False).mine(data).training_sets()[run.train_set]
        from fastregen.models import load_model

        emb = load_model(self.baseline_model(run.dataset)).item_embedding.weight.detach()
        cfg = _regen_config(run, self.progress)
        regen_dir = self.work / "regen" / run.regen_name
        decode_dir = self.work / "decode" / run.decode_name
        # pre-trained once per regenerator (recorded with the first gamma, whatever gamma asks), decoded once per gamma
        dr = regenerate_once(data, cfg, pretrain_dir=regen_dir, decode_dir=decode_dir, lock_dir=self.work / "locks",
                             item_embedding=emb, pretrain_config=dataclasses.replace(cfg, gamma=GAMMAS[0]))
        sha = regenerated_sha256(decode_dir)
        if run.regen_build and not sha.startswith(run.regen_build):
            raise SystemExit(f"{run.label()} is pinned to the regenerated set {run.regen_build}, but {decode_dir} "
                             f"holds {sha[:12]}: restore that folder (its regenerated.txt) or declare the new build")
        sets = dr.training_sets()
        with file_lock(self.work / "locks" / f"{decode_dir.name}.lock"):
            self._record_regenerator(decode_dir.name, sha, run, dr, sets)
        return sets[VARIANTS[run.variant]["train_set"] if run.train_set == "dr4sr" else run.train_set]

    def _record_regenerator(self, key: str, sha: str, run: Run, dr, sets) -> None:
        """One row per (regenerator, gamma) and build in dr4sr_regenerators.csv: pre-training and decoding
        figures (``output_sha256``: what the runs on it trained on; empty on the rows from before it was kept)."""
        if any((row["decode_key"], row["output_sha256"]) == (key, sha) for row in self.regen_store.read()):
            return
        h = dr.history
        best = min(h, key=lambda e: e["valid_best_memory_loss"]) if h and h[0]["valid_best_memory_loss"] is not None else {}
        info, composed = dr.inference_info, sets[VARIANTS[run.variant]["train_set"]]
        regen = sets["regenerated"]
        row = {
            "decode_key": key, "output_sha256": sha, "dataset": run.dataset, "variant": run.variant, "K": run.K, "gamma": run.gamma,
            "regen_seed": run.regen_seed, "epochs": len(h), "best_epoch": best.get("epoch", ""),
            "valid_loss": best.get("valid_loss", ""), "valid_best_memory_loss": best.get("valid_best_memory_loss", ""),
            # the share of training patterns each memory served in the last epoch (the promoter's choice):
            # one memory taking them all means the others were barely trained
            "memory_use": json.dumps([round(float(u), 4) for u in h[-1].get("memory_use", [])]) if h else "",
            "pretrain_seconds": round(sum(e["seconds"] for e in h), 1), "decoded": info.get("decoded", ""),
            "duplicates": info.get("duplicates", ""), "kept": info.get("kept", ""),
            "mean_length": round(float(regen.lengths.mean()), 3) if len(regen) else "",
            "train_set": VARIANTS[run.variant]["train_set"], "train_sequences": len(composed),
            "train_interactions": composed.num_interactions,
            "regen_config": json.dumps(dataclasses.asdict(dr.config), sort_keys=True),
            "commit": self.commit, "machine": self.machine,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.regen_store.append(row)

    def _train(self, run: Run, append: bool = True) -> dict:
        from fastregen.training import fit_and_evaluate

        train = self.training_set(run)
        out = self.work / "runs" / run.run_id
        print(f"[{time.strftime('%H:%M:%S')}] {run.label()} ({run.run_id})", flush=True)
        res = fit_and_evaluate(self.data(run.dataset), model=run.model, seed=run.target_seed, train_data=train,
                               out_dir=out, log=_epoch_line, **self._train_kwargs(run))
        if res.get("resumed_epochs"):  # a run killed earlier continued from its last epoch checkpoint
            print(f"   resumed after epoch {res['resumed_epochs'] - 1} (from {out / 'checkpoint.pt'})", flush=True)
        if not append:
            return res
        self.store.save_ranks(run.run_id, res["test_ranks"])
        split_train = train if train is not None else None
        row = {
            "run_id": run.run_id, "stage": run.stage, "dataset": run.dataset, "model": run.model,
            "train_set": run.train_set, "variant": run.variant, "K": run.K if run.needs_regenerator else "",
            "gamma": run.gamma if run.needs_regenerator else "", "regen_seed": run.regen_seed if run.needs_regenerator else "",
            "target_seed": run.target_seed, "protocol": run.protocol, "epochs": res["epochs"],
            "best_epoch": res["best_epoch"], "seconds_per_epoch": round(res["seconds_per_epoch"], 2),
            # a resumed run's own call timed only its part: the epochs' recorded times cover all of them
            "seconds": round(res["seconds"] if not res.get("resumed_epochs") else sum(
                e.get("train_seconds", 0) + e.get("eval_seconds", 0) for e in res["history"]), 1),
            "train_sequences": "" if split_train is None else len(split_train),
            "train_interactions": "" if split_train is None else split_train.num_interactions,
            **{f"valid_{m}": res["valid"][m] for m in METRICS}, **{f"test_{m}": res["test"][m] for m in METRICS},
            "test_auc": res["test"]["auc"], "n_test_users": res["test"]["n_users"],
            "regen_config": json.dumps(run.key().get("regen", {}), sort_keys=True),
            "train_config": json.dumps(self._train_kwargs(run) | {"threads": self.threads}, sort_keys=True),
            "commit": self.commit, "machine": self.machine,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.store.append(row)
        print(f"   -> valid N@20 {row['valid_ndcg@20']:.4f}, {res['epochs']} epochs, {res['seconds']:.0f} s", flush=True)
        return res

    def run(self, run: Run) -> None:
        with file_lock(self.work / "locks" / f"{run.run_id}.lock"):
            if run.run_id in self.done():
                return
            self._train(run)

    def _prerequisite_busy(self, run: Run) -> bool:
        """Whether another worker is building what ``run`` needs (its regenerator or the baseline model
        that initialises it): a worker takes a run it can start at once rather than wait on a lock."""
        if not run.needs_regenerator:
            return False
        base = Run("select" if run.dataset == "beauty" else "replicate", run.dataset, "sasrec", "original")
        regen = f"{run.dataset}-{run.variant}-K{run.K}-s{run.regen_seed}"
        names = [regen, f"{regen}-g{run.gamma}", base.run_id]
        for name in names:
            with file_lock(self.work / "locks" / f"{name}.lock", blocking=False) as held:
                if not held:
                    return True
        return False


def estimate_seconds(run: Run, done: dict[str, dict]) -> float:
    """A pending run's one-thread seconds: the median of done rows with its (dataset, model,
    train set), else of its (model, train set), else 30 min; plus a regenerator's ~35 min
    when the run needs one that no done row has built."""
    import statistics

    rows = list(done.values())
    for match in (lambda r: (r["dataset"], r["model"], r["train_set"], r["protocol"])
                  == (run.dataset, run.model, run.train_set, run.protocol),
                  lambda r: (r["dataset"], r["model"], r["train_set"]) == (run.dataset, run.model, run.train_set),
                  lambda r: (r["model"], r["train_set"]) == (run.model, run.train_set)):
        secs = [float(r["seconds"]) for r in rows if match(r)]
        if secs:
            break
    est = statistics.median(secs) if secs else 1800.0
    if run.needs_regenerator and not any(
            r["dataset"] == run.dataset and r["variant"] == run.variant and r["K"] == str(run.K)
            and r["regen_seed"] == str(run.regen_seed) for r in rows):
        est += 2100.0
    return est


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["plan", "select", "replicate", "queue"])
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--work", default=str(HERE.parent / "runs" / "dr4sr-study"),
                    help="run folders, regenerators and locks (not committed)")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", default="0/1", metavar="K/N", help="take every N-th run starting at K")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--core-only", action="store_true",
                    help="queue: issue 26's stages 1, 3 and 4 only (not the rest of the replication plan)")
    ap.add_argument("--max-runs", type=int, default=0, help="queue: stop after this many runs (0: until none is left)")
    ap.add_argument("--smoke", type=int, default=0, metavar="USERS",
                    help="plumbing check: the first USERS users, 1 epoch everywhere (needs --results elsewhere)")
    args = ap.parse_args(argv)
    if args.smoke:
        if Path(args.results).resolve() == RESULTS.resolve():
            raise SystemExit("--smoke writes rows that are not results: give --results another file")
        global RANKS
        RANKS = Path(args.results).parent / "ranks"
        for v in VARIANTS.values():
            v["regen"]["epochs"] = 1
        for t in TARGET.values():
            t["epochs"] = 1
    k, _, n = args.worker.partition("/")
    k, n = int(k), int(n or 1)
    if not 0 <= k < n:
        raise SystemExit(f"--worker K/N needs 0 <= K < N, got {args.worker!r}")
    study = Study(Path(args.data_dir), Path(args.work), args.threads, Path(args.results), args.progress, args.smoke)
    done = study.done()
    setting = selected_setting(list(done.values()))
    runs = selection_runs() if args.stage in ("plan", "select") else []
    if args.stage in ("plan", "replicate", "queue"):
        if setting is None:
            if args.stage != "plan":
                raise SystemExit("the selection stage has not finished: run `select` first")
        else:
            runs += [r for r in queued_runs(setting, args.core_only and args.stage == "queue")
                     if r.run_id not in {x.run_id for x in runs}]
    if args.stage == "plan":
        print(f"selected setting: {setting or 'not yet (selection unfinished)'}")
        pending_s = 0.0
        for r in runs:
            est = "" if r.run_id in done else f"~{estimate_seconds(r, done) / 3600:.1f} h"
            pending_s += 0 if r.run_id in done else estimate_seconds(r, done)
            print(f"{'done' if r.run_id in done else '    '}  {r.run_id}  {r.stage:<9} {r.label():<58} {est}")
        print(f"{sum(r.run_id in done for r in runs)}/{len(runs)} runs done; "
              f"pending ~{pending_s / 3600:.1f} one-thread hours (estimated from the done rows)")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.stage == "queue":  # exit 0 after a run, 3: every pending run is held elsewhere, 4: none pending
        return run_queue(lambda: runs, lambda r: r.run_id, study.done, study.work / "locks", study._train,
                         max_runs=args.max_runs, skip=study._prerequisite_busy)
    for i, r in enumerate(runs):
        if i % n == k:
            study.run(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
