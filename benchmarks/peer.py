"""Issue 28, item 1: the DR4SR authors' code and fastregen, stage by stage, side by side.

    git clone <a checkout of USTC-StarTeam/DR4SR> /work/peer-authors     # the user's; never copied here
    python -m venv /work/peer-venv && /work/peer-venv/bin/pip install torch==2.13.0 numpy pandas \\
        torchmetrics matplotlib pyyaml tqdm seq2pat
    OMP_NUM_THREADS=1 python benchmarks/peer.py --authors /work/peer-authors \\
        --authors-python /work/peer-venv/bin/python --repeats 3

On Beauty (``--data``), one thread each (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``), every measurement in its own process, the
two sides alternating (authors, fastregen, authors, fastregen, ...) and
``--repeats`` times each; the rows hold the medians and every repetition.
Their scripts run in their own interpreter (``--authors-python``: a venv with
their imports, so fastregen's is left alone) from a scratch copy of their
code in a temporary folder; the checkout given is only read.

Stages (``--stages``)
---------------------
``build_pretraining_dataset``
    Theirs: ``1.Build_pretraining_dataset.py --alpha 5 --beta 2 --n_jobs 1``,
    the whole script (Seq2Pat mining, their pattern file, the
    sequence-pattern pairs: up to 10 patterns per sequence, plain
    subsequence test), timed around the script. Ours: load ``beauty.txt``,
    ``mine_patterns(max_span=5, min_support=2)`` and
    ``pretrain_pairs(max_per_sequence=10, max_len=50, span=None)`` (the
    authors' containment rule; the pipeline's default is ``span="alpha"``),
    both written to disk, timed from the load to the last write.
``pretrain_epoch``
    One epoch of regenerator pre-training on that stage's pairs. Theirs:
    ``2.Pretrain_regenerator.py --epochs 1``, the "Epoch time" it prints (its
    own timer around ``train_epoch``). Ours: `fastregen.dr4sr.pretrain` with
    the released settings (``diversity="gumbel"``, ``entropy_weight=1``,
    K = 5, batch 256, Adam 1e-3, ``train_softmax="source"``, no held-out
    pairs as they hold none, ``epochs=1``), the epoch's ``seconds`` in its
    history. Both initialise the item table from their released
    ``pre-trained_embedding.ckpt`` (ours through the id relabelling of
    ``authors.py convert``).
``hybrid_inference``
    Theirs: ``3.Hybrid_inference.py`` with the regenerator its stage 2 just
    wrote; ours: `fastregen.dr4sr.hybrid_inference` (``schedule="released"``,
    ``gamma=1``: their decoding rule, restrictive for two steps, generative
    after; ``max_pattern_len=24`` = their ``max_len=25`` with SOS) with the
    regenerator our stage 2 just wrote. Their decoder runs one sequence at a
    time (about 2 sequences/s here), so both sides decode the **same fixed
    prefix** of ``--prefix`` training sequences (default 200) with each of
    the K = 5 memories; the time is the decoding alone (their 5 loops, timed
    by the tqdm observer below; our call). The two regenerators differ (each
    side trained its own for one epoch), so the patterns decoded differ: the
    rows' ``work`` field gives how many each side decoded and their mean
    length.
``sasrec_epoch``, ``sasrec_validation``
    SASRec under the released configs on the original split (one training
    row per user, every position a target). Theirs: ``run.py -m SASRec``
    (benchmarks/authors.py's way, its patches 1 to 9, ``--epochs 1``), the
    wall time of ``BaseModel.training_epoch`` and of the validation pass
    (``validation_epoch`` + ``validation_epoch_end``, full ranking); the
    process stops after it (their test pass is not needed). Ours:
    ``fit_and_evaluate(model="sasrec", train_targets="all", epochs=1)``,
    the time of ``Trainer.run_epoch`` and of the validation ``evaluate``.

Patches to their code (all listed; the checkout is never written)
------------------------------------------------------------------
Applied to the scratch copy (text replaced, each one checked to match
exactly as often as stated, else the run stops naming it: `PATCHES`):

1. ``2.Pretrain_regenerator.py``, ``3.Hybrid_inference.py``: every
   ``'cuda'`` -> ``'cpu'`` (the device is hard-coded; no CPU option).
2. ``3.Hybrid_inference.py``: ``begin = args.begin * 5000`` /
   ``end = args.end * 5000`` -> ``begin = args.begin`` / ``end = args.end``,
   so ``-b 0 -e PREFIX`` decodes the first PREFIX sequences (their unit of
   5,000 sequences is for splitting the work over GPUs).

Applied from outside their files, by the driver that runs each script
(benchmarks/authors.py's ``DRIVER_PREAMBLE`` and patches):

3. threads: ``torch.set_num_threads(1)`` (and ``OMP_NUM_THREADS=1``);
4. ``torch.load(weights_only=False)`` for their own pickles (torch >= 2.6);
5. anomaly detection off: ``utils/utils.py`` switches
   ``torch.autograd.set_detect_anomaly(True)`` on when imported (stages 2 and 3
   import it); a debug mode that slows every backward, switched off after;
6. wandb and faiss stubs (only ``run.py`` imports them; see authors.py);
7. observers, not changes: ``tqdm`` is replaced by a pass-through that
   times each loop it wraps (stage 3's decoding loops); ``BaseModel``'s
   ``training_epoch``, ``validation_epoch`` and ``validation_epoch_end``
   are wrapped with timers, and the process exits after the first
   validation pass;
8. SASRec only: authors.py's patches 1 (``device: 'cpu'``), 5 (the data
   path) and 8 (``epochs: 1``) in the copy's configs.

Arguments, not patches: ``--n_jobs 1`` (stage 1; theirs defaults to 2),
``--epochs 1`` (stage 2), ``--root_path`` (the converted data, made by
``authors.py convert``, cached in ``benchmarks/runs/peer/data``).

Rows go to ``benchmarks/results/peer.csv`` (`COLUMNS`), one per (stage,
side), ``value`` the median wall seconds; ``python benchmarks/report.py peer``
makes the ratio table. The machine's load (1-minute load average and the
nice'd one-thread study workers found running) is in ``load``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_row  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "peer.csv"
WORK = HERE / "runs" / "peer"
COLUMNS = ["benchmark", "dataset", "variant", "stage", "metric", "value", "unit", "threads", "device", "machine",
           "commit", "date", "repeats", "values", "load", "work", "authors_commit", "note"]
STAGES = ("build_pretraining_dataset", "pretrain_epoch", "hybrid_inference", "sasrec_epoch", "sasrec_validation")
VARIANTS = ("authors", "fastregen")
SCRIPTS = ("1.Build_pretraining_dataset.py", "2.Pretrain_regenerator.py", "3.Hybrid_inference.py")
NUM_ITEMS_BEAUTY = 12102  # their num_item_dict['beauty'] (the SOS/EOS ids follow it)
DOMAIN_DIR = "dataset/amazon-beauty/beauty"  # where their scripts read Beauty (root_path)
SASREC_WORK = {"sasrec_epoch": "SASRec epoch, original split (one row per user, all targets), batch 256",
               "sasrec_validation": "full-ranking validation pass, every user"}


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


# ----------------------------------------------------------------- patches
@dataclasses.dataclass(frozen=True)
class Patch:
    """Replace ``old`` by ``new`` in ``path`` (relative to the code copy), exactly ``count`` times."""

    path: str
    old: str
    new: str
    count: int
    why: str


def patches(prefix_hint: str = "PREFIX") -> list[Patch]:
    """The text patches of the module docstring (1 and 2), in order."""
    return [
        Patch(SCRIPTS[1], "'cuda'", "'cpu'", 8, "patch 1: the device is hard-coded to CUDA"),
        Patch(SCRIPTS[2], "'cuda'", "'cpu'", 10, "patch 1: the device is hard-coded to CUDA"),
        Patch(SCRIPTS[2], "begin = args.begin * 5000", "begin = args.begin", 1,
              f"patch 2: -b 0 -e {prefix_hint} decodes the first {prefix_hint} sequences"),
        Patch(SCRIPTS[2], "end = args.end * 5000", "end = args.end", 1,
              f"patch 2: -b 0 -e {prefix_hint} decodes the first {prefix_hint} sequences"),
    ]


def apply_patches(code: Path, todo: list[Patch]) -> None:
    """Apply ``todo`` to the files under ``code`` in place (a scratch copy, never the user's checkout).

    Raises ValueError naming the patch whose text does not occur exactly ``count`` times (their code
    changed: the patch list must be revisited, not applied blindly).
    """
    texts: dict[str, str] = {}
    for p in todo:
        if p.path not in texts:
            f = code / p.path
            if not f.is_file():
                raise ValueError(f"patch {p.why!r}: {p.path} is not in the code copy")
            texts[p.path] = f.read_text()
        found = texts[p.path].count(p.old)
        if found != p.count:
            raise ValueError(f"patch {p.why!r}: {p.old!r} occurs {found} times in {p.path}, expected {p.count}")
        texts[p.path] = texts[p.path].replace(p.old, p.new)
    for rel, text in texts.items():
        (code / rel).write_text(text)


# ----------------------------------------------------------------- their side
#: Runs one of their numbered scripts (argv: THREADS RESULT SCRIPT ARGS...). Prepended: authors.py's
#: DRIVER_PREAMBLE (patches 3 to 6).
SCRIPT_DRIVER = r'''
loops = []
class _Observed:                                                   # patch 7: times each tqdm loop
    def __init__(self, iterable=None, *a, **k):
        self.iterable = iterable
    def __iter__(self):
        t0, n = time.perf_counter(), 0
        for x in self.iterable:
            n += 1
            yield x
        loops.append({"seconds": time.perf_counter() - t0, "items": n})
    def __len__(self):
        return len(self.iterable)
    def __getattr__(self, name):                                   # update, set_description, close, ...
        return lambda *a, **k: None
_tqdm = types.ModuleType("tqdm")
_tqdm.tqdm = _Observed
sys.modules["tqdm"] = _tqdm
sys.argv = [SCRIPT] + ARGS
t0 = time.perf_counter()
runpy.run_path(SCRIPT, run_name="__main__")
with open(RESULT, "w") as f:
    json.dump({"seconds": time.perf_counter() - t0, "loops": loops}, f)
'''

#: Runs their run.py (SASRec) until the end of its first validation pass. Prepended: DRIVER_PREAMBLE.
SASREC_DRIVER = r'''
from model.basemodel import BaseModel
times = {}
def _timed(name, fn, last=False):                                  # patch 7: observers
    def wrapped(self, *a, **k):
        t0 = time.perf_counter()
        out = fn(self, *a, **k)
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        if last:  # the first validation pass is over: what is timed is done
            with open(RESULT, "w") as f:
                json.dump(times, f)
            os._exit(0)
        return out
    return wrapped
BaseModel.training_epoch = _timed("sasrec_epoch", BaseModel.training_epoch)
BaseModel.validation_epoch = _timed("sasrec_validation", BaseModel.validation_epoch)
BaseModel.validation_epoch_end = _timed("sasrec_validation", BaseModel.validation_epoch_end, last=True)
sys.argv = ["run.py"] + ARGS
runpy.run_path("run.py", run_name="__main__")
'''


def _driver_text(body: str) -> str:
    from authors import DRIVER_PREAMBLE

    head = "import sys\nTHREADS, RESULT, SCRIPT, ARGS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]\n"
    return head + DRIVER_PREAMBLE + body


def setup_authors(authors, converted: Path, root: Path, prefix: int) -> Path:
    """Their code in ``root`` (authors.py's SASRec setup + the text patches) and Beauty in ``DOMAIN_DIR``."""
    from authors import RELEASED, setup_code

    code = setup_code(authors, converted, "peer", epochs=1, seed=None, root=root)
    apply_patches(code, patches(str(prefix)))
    data = code / DOMAIN_DIR
    data.mkdir(parents=True)
    for name in ("train.pth", "val.pth", "test.pth"):
        shutil.copyfile(converted / "beauty" / name, data / name)
    for key in ("seq2pat", "checkpoint"):
        (data / Path(RELEASED[key]).name).write_bytes(authors.read(RELEASED[key]))
    (code / "_peer_script.py").write_text(_driver_text(SCRIPT_DRIVER))
    (code / "_peer_sasrec.py").write_text(_driver_text(SASREC_DRIVER))
    return code


def _run(cmd: list[str], cwd: Path, log: Path, extra_env: dict | None = None) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", TQDM_DISABLE="1",
               **(extra_env or {}))
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text()
    if proc.returncode:
        tail = text.strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}): {tail}; see {log}")
    return text


def authors_stage(stage: str, python: str, code: Path, prefix: int, out: Path) -> dict:
    """One timed run of their code for ``stage``: ``{"seconds": ..., "work": ...}``."""
    result = out / f"authors-{stage}.json"
    log = result.with_suffix(".log")
    root = f"./{DOMAIN_DIR}"
    if stage == "sasrec":
        _run([python, "_peer_sasrec.py", "1", str(result), "run.py", "-m", "SASRec", "-d", "peer"], code, log,
             {"PYTHONPATH": str(code)})
        times = json.loads(result.read_text())
        return {s: {"seconds": times[s], "work": SASREC_WORK[s]} for s in ("sasrec_epoch", "sasrec_validation")}
    script, args = {
        "build_pretraining_dataset": (SCRIPTS[0], ["--root_path", root, "--alpha", "5", "--beta", "2", "--n_jobs", "1"]),
        "pretrain_epoch": (SCRIPTS[1], ["--root_path", root, "--epochs", "1", "--seed", "2024"]),
        "hybrid_inference": (SCRIPTS[2], ["--root_path", root + "/", "-b", "0", "-e", str(prefix)]),
    }[stage]
    text = _run([python, "_peer_script.py", "1", str(result), script, *args], code, log, {"PYTHONPATH": str(code)})
    res = json.loads(result.read_text())
    data = code / DOMAIN_DIR
    if stage == "build_pretraining_dataset":
        import torch

        pairs = torch.load(data / "seq-pat-pair.pth", weights_only=False)
        m = re.search(r"patterns mined with size (\d+)", text)
        return {"seconds": res["seconds"], "work": f"{m.group(1) if m else '?'} patterns, {len(pairs)} pairs"}
    if stage == "pretrain_epoch":
        m = re.search(r"Epoch time = ([0-9.]+)s", text)
        if not m:
            raise RuntimeError(f"{SCRIPTS[1]} printed no 'Epoch time'; see {log}")
        return {"seconds": float(m.group(1)), "work": "1 epoch, batch 256"}
    decoding = [lp for lp in res["loops"] if lp["items"] == prefix]
    if len(decoding) != 5:
        raise RuntimeError(f"{SCRIPTS[2]}: expected 5 decoding loops of {prefix} sequences, saw {res['loops']}")
    return {"seconds": sum(lp["seconds"] for lp in decoding), "work": f"{prefix} sequences x K = 5"}


# ----------------------------------------------------------------- our side
OURS = r'''
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
stage, data_path, work, prefix, items_npy, ckpt_src = sys.argv[1:7]
from fastregen.data import load
from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs
from fastregen.dr4sr import RegenConfig, pretrain, hybrid_inference
from fastregen.dr4sr.model import save_checkpoint, load_checkpoint
from fastregen.dr4sr.pipeline import _save_pairs, _load_pairs
work = __import__("pathlib").Path(work)
out = {}
if stage == "build_pretraining_dataset":
    t0 = time.perf_counter()
    data = load(data_path)
    train = dr4sr_input(data)
    patterns = mine_patterns(train, max_span=5, min_support=2, threads=1)
    pairs = pretrain_pairs(train, patterns, max_per_sequence=10, seed=0, max_len=50, span=None, threads=1)
    patterns.save(work / "patterns.txt")
    _save_pairs(pairs, work / "pairs.npz")
    out = {"seconds": time.perf_counter() - t0, "work": f"{len(patterns)} patterns, {len(pairs)} pairs"}
elif stage == "pretrain_epoch":
    data = load(data_path)
    pairs = _load_pairs(work / "pairs.npz")
    # their released SASRec item table, in our item ids (authors.py convert's relabelling)
    released = torch.load(ckpt_src, map_location="cpu", weights_only=False)["parameters"]["item_embedding.weight"]
    emb = released[torch.from_numpy(np.load(items_npy))].clone()
    cfg = RegenConfig(diversity="gumbel", entropy_weight=1.0, epochs=1, valid_fraction=0.0, K=5, batch_size=256,
                      schedule="released", gamma=1.0, max_pattern_len=24, progress=False, seed=0)
    model, history = pretrain(pairs, data.num_items, cfg, item_embedding=emb)
    save_checkpoint(model, work / "regenerator.pt", history=history, complete=True)
    out = {"seconds": history[0]["seconds"], "work": f"1 epoch, batch 256, {len(pairs)} pairs"}
elif stage == "hybrid_inference":
    data = load(data_path)
    model, _ = load_checkpoint(work / "regenerator.pt", num_items=data.num_items)
    src = dr4sr_input(data).subset(np.arange(int(prefix)))
    t0 = time.perf_counter()
    regen, info = hybrid_inference(model, src, progress=False)
    out = {"seconds": time.perf_counter() - t0,
           "work": f"{prefix} sequences x K = 5; {len(regen)} patterns kept, mean length {regen.lengths.mean():.2f}"}
else:
    from fastregen.training import Trainer
    import fastregen.training.fit as fit
    times = {}
    run_epoch, evaluate = Trainer.run_epoch, fit.evaluate
    def timed_epoch(self, *a, **k):
        t0 = time.perf_counter(); r = run_epoch(self, *a, **k)
        times["sasrec_epoch"] = time.perf_counter() - t0
        return r
    def timed_evaluate(*a, **k):
        t0 = time.perf_counter(); r = evaluate(*a, **k)
        times["sasrec_validation"] = time.perf_counter() - t0
        print(json.dumps({s: {"seconds": v, "work": work[s]} for s, v in times.items()}), flush=True)
        import os; os._exit(0)  # the first evaluate is the validation pass: what is timed is done
    Trainer.run_epoch, fit.evaluate = timed_epoch, timed_evaluate
    work = json.loads(prefix)
    fit.fit_and_evaluate(load(data_path), model="sasrec", seed=0, epochs=1, num_threads=1, progress=False,
                         train_targets="all")
print(json.dumps(out))
'''


def ours_stage(stage: str, data: Path, converted: Path, work: Path, prefix: int, checkpoint: Path) -> dict:
    """One timed run of fastregen for ``stage`` in its own process (``"sasrec"``: both SASRec stages)."""
    arg = json.dumps(SASREC_WORK) if stage == "sasrec" else str(prefix)
    out = subprocess.run([sys.executable, "-c", OURS, stage, str(data), str(work), arg,
                          str(converted / "items.npy"), str(checkpoint)],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode:
        raise RuntimeError(f"fastregen {stage} failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- rows
def load_description() -> str:
    workers = subprocess.run(["pgrep", "-fc", "dr4sr_study.py"], capture_output=True, text=True).stdout.strip()
    return f"loadavg {os.getloadavg()[0]:.1f}; {workers or 0} nice'd 1-thread dr4sr_study workers running"


def make_rows(runs: dict, *, dataset: str, commit: str, authors_commit: str, machine: str, load: str,
              date: str, prefix: int) -> list[dict]:
    """One row per (stage, variant) of ``runs[(stage, variant)] = [{"seconds", "work"}, ...]``."""
    rows = []
    for (stage, variant), reps in runs.items():
        values = [r["seconds"] for r in reps]
        note = {"hybrid_inference": f"decoding of a fixed prefix of {prefix} training sequences (the same for both "
                                    "sides), each with K = 5 memories; each side decodes with its own "
                                    "one-epoch regenerator"}.get(stage, "")
        rows.append({"benchmark": "peer", "dataset": dataset, "variant": variant, "stage": stage,
                     "metric": "wall_seconds", "value": round(statistics.median(values), 3), "unit": "s",
                     "threads": 1, "device": "cpu", "machine": machine, "commit": commit, "date": date,
                     "repeats": len(values), "values": " ".join(f"{v:.3f}" for v in values), "load": load,
                     "work": reps[-1]["work"], "authors_commit": authors_commit, "note": note})
    return rows


def ratio_table(rows: list[dict]) -> str:
    """Markdown: per stage (latest rows), both sides' medians and their ratio (authors / fastregen)."""
    latest: dict = {}
    for r in rows:
        key = (r["dataset"], r["stage"], r["variant"])
        if key not in latest or r["date"] >= latest[key]["date"]:
            latest[key] = r
    out = ["| dataset | stage | authors (s) | fastregen (s) | ratio | >= 5x | what was timed |",
           "|---|---|---:|---:|---:|:---:|---|"]
    order = {s: i for i, s in enumerate(STAGES)}
    stages = sorted({(d, s) for d, s, _ in latest}, key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
    for dataset, stage in stages:
        a, f = latest.get((dataset, stage, "authors")), latest.get((dataset, stage, "fastregen"))
        if a is None or f is None:
            continue
        ratio = float(a["value"]) / float(f["value"])
        what = f"{a['work']} / {f['work']}" + (f"; {a['note']}" if a.get("note") else "")
        out.append(f"| {dataset} | {stage} | {float(a['value']):.2f} | {float(f['value']):.2f} | {ratio:.1f}x | "
                   f"{'yes' if ratio >= 5 else 'no'} | {what} |")
    if rows:
        r = max(rows, key=lambda r: r["date"])
        out.append(f"\nMedians of {r['repeats']} alternating processes, one thread each, {r['machine']}, "
                   f"{r['load']} (commit {r['commit']}, authors' {r['authors_commit'][:7]}, {r['date']}).")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors", required=True, help="a checkout (or bare git dir) of USTC-StarTeam/DR4SR")
    ap.add_argument("--authors-python", default=sys.executable,
                    help="the interpreter for their code (a venv with pandas, torchmetrics, matplotlib, seq2pat)")
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "beauty.txt"))
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prefix", type=int, default=200, help="sequences both sides decode in hybrid_inference")
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        print(f"peer.py: {e}", file=sys.stderr)
        return 2


def _check_authors(path: str):
    import authors as au

    try:
        a = au.Authors(path)
    except au.UsageError as e:
        raise UsageError(str(e)) from None
    missing = [s for s in SCRIPTS if not a.has(s)]
    if missing:
        raise UsageError(f"--authors {path}: not the DR4SR authors' repository (no {missing[0]})")
    return a


def run(args) -> int:
    import authors as au

    authors = _check_authors(args.authors)
    if args.repeats < 1 or args.prefix < 1:
        raise UsageError(f"--repeats and --prefix must be >= 1, got {args.repeats} and {args.prefix}")
    data = Path(args.data)
    if not data.is_file():
        raise UsageError(f"--data {data}: no such file")
    probe = subprocess.run([args.authors_python, "-c", "import torch, pandas, torchmetrics, matplotlib, yaml, "
                            "sequential.seq2pat"], capture_output=True, text=True)
    if probe.returncode:
        raise UsageError(f"--authors-python {args.authors_python}: cannot import their needs "
                         f"({(probe.stderr.strip().splitlines() or ['?'])[-1]}); pip install torch pandas "
                         "torchmetrics matplotlib pyyaml tqdm seq2pat there")
    converted = WORK / "data" / data.stem
    if not (converted / "convert.json").exists():
        au.convert(argparse.Namespace(authors=args.authors, data=str(data), train="original",
                                      training_set="combined_authors", out=str(converted)))
    stages = [s for s in STAGES if s in args.stages]
    needs = {"pretrain_epoch": "build_pretraining_dataset", "hybrid_inference": "pretrain_epoch"}
    for s in list(stages):  # a stage runs on its predecessor's output: run the chain up to it
        while s in needs and needs[s] not in stages:
            stages.insert(0, needs[s])
            s = needs[s]
    stages = [s for s in STAGES if s in stages and not s.startswith("sasrec")]
    stages += ["sasrec"] if any(s.startswith("sasrec") for s in args.stages) else []
    runs: dict = {}
    with tempfile.TemporaryDirectory(prefix="fastregen-peer-") as tmp:
        tmp = Path(tmp)
        code = setup_authors(authors, converted, tmp / "code", args.prefix)
        ours, logs = tmp / "ours", tmp / "logs"
        ours.mkdir()
        logs.mkdir()
        ckpt = code / DOMAIN_DIR / Path(au.RELEASED["checkpoint"]).name
        for rep in range(args.repeats):
            for stage in stages:
                for variant in VARIANTS:  # alternating: both sides meet the same drift of the machine's load
                    if variant == "authors":
                        res = authors_stage(stage, args.authors_python, code, args.prefix, logs)
                    else:
                        res = ours_stage(stage, data, converted, ours, args.prefix, ckpt)
                    # "sasrec": one process times both the training epoch and the validation pass
                    for name, r in (res.items() if stage == "sasrec" else [(stage, res)]):
                        runs.setdefault((name, variant), []).append(r)
                        print(f"[{dt.datetime.now():%H:%M:%S}] rep {rep + 1} {name:<26} {variant:<9} "
                              f"{r['seconds']:8.2f} s  {r['work']}", flush=True)
        machine = f"{os.cpu_count()} cores, {cpu_model()}"
        rows = make_rows({k: v for k, v in runs.items() if k[0] in args.stages}, dataset=data.stem,
                         commit=git_commit(HERE), authors_commit=authors.commit(), machine=machine,
                         load=load_description(), date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         prefix=args.prefix)
    for row in rows:
        append_row(args.results, row, COLUMNS)
    print(ratio_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
