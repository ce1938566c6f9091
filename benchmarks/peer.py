"""Issue 28, item 1: the DR4SR authors' code and fastregen, stage by stage, side by side.

    git clone <a checkout of USTC-StarTeam/DR4SR> /work/peer-authors     # the user's; never copied here
    python -m venv /work/peer-venv && /work/peer-venv/bin/pip install torch==2.13.0 numpy pandas \\
        torchmetrics matplotlib pyyaml tqdm scipy seq2pat
    OMP_NUM_THREADS=1 python benchmarks/peer.py --authors /work/peer-authors \\
        --authors-python /work/peer-venv/bin/python --repeats 3

On Beauty (``--data``), one thread each (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``), every measurement in its own process, the
two sides alternating (authors, fastregen, authors, fastregen, ...) and
``--repeats`` times each; the rows hold the medians and every repetition,
of wall time and of CPU time (``time.process_time``; for their whole
stage-1 script, ``getrusage`` of the process and its children). The
machine is shared (the nice'd study workers and other benchmarks), which
inflates wall time, so the verdict uses CPU time; both are in the rows.
Their scripts run in their own interpreter (``--authors-python``: a venv with
their imports, so fastregen's is left alone) from a scratch copy of their
code in a temporary folder; the checkout given is only read.

Stages (``--stages``)
---------------------
Where a stage of theirs takes too long to run three times on this machine,
both sides do the same declared fixed prefix of the work (``--pairs-prefix``,
``--epoch-pairs``, ``--decode-prefix``); the rows' ``note`` says so.

``mine``, ``pretrain_pairs``
    Theirs: ``1.Build_pretraining_dataset.py --alpha 5 --beta 2 --n_jobs 1``
    in one process; ``mine`` is its Seq2Pat ``get_patterns`` call (every
    training sequence), ``pretrain_pairs`` its pair loop (up to 10 shuffled
    patterns per sequence, plain subsequence test, one pattern list scan
    per sequence: about 0.1 s per sequence here, 40 min for Beauty's
    22,363), over the first ``--pairs-prefix`` sequences (patch 3). Ours, in
    one process: ``mine_patterns(max_span=5, min_support=2)`` over every
    training sequence, then ``pretrain_pairs(max_per_sequence=10, max_len=48,
    span=None)`` (the authors' containment rule; the pipeline's default is
    ``span="alpha"``) over the same first sequences; then, untimed, the pairs
    of every sequence, which the next stage reads. Their inputs are each
    user's last 50 items less the last two (``train.pth``), so ours keep the
    last 48 items of each training sequence (``max_len=48``), here and when
    decoding: their 50 positions must hold SOS and EOS too.
``pretrain_epoch``
    One epoch of regenerator pre-training over the first ``--epoch-pairs``
    of our pairs, the same pairs on both sides (written in their item ids as
    their ``seq-pat-pair.pth``: their stage-1 file holds only the prefix's
    pairs). Theirs: ``2.Pretrain_regenerator.py --epochs 1``, its loop over
    the batches (timed by the tqdm observer; the "Epoch time" it prints also
    holds a second pass over the data loader, ``len(list(train_dataloader))``,
    left out here). Ours: `fastregen.generator.pretrain` with the released
    settings (``diversity="gumbel"``, ``entropy_weight=1``, K = 5, batch
    256, Adam 1e-3, ``train_softmax="source"``, no held-out pairs as they
    hold none, ``epochs=1``), its ``Trainer.run_epoch``. Both initialise the
    item table from their released ``pre-trained_embedding.ckpt`` (ours
    through the id relabelling of ``authors.py convert``).
``hybrid_inference``
    Theirs: ``3.Hybrid_inference.py`` with the regenerator its stage 2 just
    wrote; ours: `fastregen.generator.hybrid_inference` (``schedule="released"``,
    ``gamma=1``: their decoding rule, restrictive for two steps, generative
    after; ``max_pattern_len=24`` = their ``max_len=25`` with SOS) with the
    regenerator our stage 2 just wrote. Their decoder runs one sequence at a
    time, so both sides decode the **same fixed prefix** of
    ``--decode-prefix`` training sequences with each of the K = 5 memories;
    the time is the decoding alone (their 5 loops, timed by the tqdm
    observer; our call). The two regenerators differ (each side trained its
    own for one epoch), so the patterns decoded differ and so does the
    number of decoding steps: each row's ``work`` gives the row-steps (a
    sequence's decoder pass for one more item: counted by an observer on
    ``nn.TransformerDecoder.forward`` on their side, on
    ``Regenerator.decode`` on ours), the distinct patterns each side kept
    (of length >= 2 for ours) and their mean length.
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
exactly as often as stated, else the run stops naming it: `patches`):

1. ``2.Pretrain_regenerator.py``, ``3.Hybrid_inference.py``: every
   ``'cuda'`` -> ``'cpu'`` (the device is hard-coded; no CPU option).
2. ``3.Hybrid_inference.py``: ``begin = args.begin * 5000`` /
   ``end = args.end * 5000`` -> ``begin = args.begin`` / ``end = args.end``,
   so ``-b 0 -e PREFIX`` decodes the first PREFIX sequences (their unit of
   5,000 sequences is for splitting the work over GPUs).
3. ``1.Build_pretraining_dataset.py``: ``for seq_ori in tqdm(seq_list_ori):``
   -> ``tqdm(seq_list_ori[:PAIRS_PREFIX])``: the pair loop over the first
   ``--pairs-prefix`` sequences (mining and the pattern file are whole).

Applied from outside their files, by the driver that runs each script
(benchmarks/authors.py's ``DRIVER_PREAMBLE`` and patches):

4. threads: ``torch.set_num_threads(1)`` (and ``OMP_NUM_THREADS=1``);
5. ``torch.load(weights_only=False)`` for their own pickles (torch >= 2.6);
6. anomaly detection off: ``utils/utils.py`` switches
   ``torch.autograd.set_detect_anomaly(True)`` on when imported (stages 2 and 3
   import it); a debug mode that slows every backward, switched off after;
7. wandb and faiss stubs (only ``run.py`` imports them; see authors.py);
8. observers, not changes: ``tqdm`` is replaced by a pass-through that
   times each loop it wraps (the pair loop, the epoch loop, the decoding
   loops); ``Seq2Pat.get_patterns`` is wrapped with a timer and
   ``nn.TransformerDecoder.forward`` with a counter; ``BaseModel``'s
   ``training_epoch``, ``validation_epoch`` and ``validation_epoch_end``
   are wrapped with timers, and the process exits after the first
   validation pass;
9. SASRec only: authors.py's patches 1 (``device: 'cpu'``), 5 (the data
   path) and 8 (``epochs: 1``) in the copy's configs.

Arguments, not patches: ``--n_jobs 1`` (stage 1; theirs defaults to 2),
``--epochs 1`` (stage 2), ``--root_path`` (the converted data, made by
``authors.py convert``, cached in ``benchmarks/runs/peer/data``).

Rows go to ``benchmarks/results/peer.csv`` (`COLUMNS`), two per (stage,
side): ``metric`` wall_seconds and cpu_seconds, ``value`` the median;
``python benchmarks/report.py peer`` makes the ratio table. The machine's load (1-minute load average and the
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
STAGES = ("mine", "pretrain_pairs", "pretrain_epoch", "hybrid_inference", "sasrec_epoch", "sasrec_validation")
#: Processes: each side runs one per unit; "build" times mine and pretrain_pairs, "sasrec" both SASRec stages.
UNITS = {"mine": "build", "pretrain_pairs": "build", "pretrain_epoch": "pretrain_epoch",
         "hybrid_inference": "hybrid_inference", "sasrec_epoch": "sasrec", "sasrec_validation": "sasrec"}
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


def patches(decode_prefix: str = "PREFIX", pairs_prefix: str = "PAIRS_PREFIX") -> list[Patch]:
    """The text patches of the module docstring (1 to 3)."""
    return [
        Patch(SCRIPTS[0], "for seq_ori in tqdm(seq_list_ori):", f"for seq_ori in tqdm(seq_list_ori[:{pairs_prefix}]):",
              1, f"patch 3: the pair loop reads the first {pairs_prefix} sequences"),
        Patch(SCRIPTS[1], "'cuda'", "'cpu'", 8, "patch 1: the device is hard-coded to CUDA"),
        Patch(SCRIPTS[2], "'cuda'", "'cpu'", 10, "patch 1: the device is hard-coded to CUDA"),
        Patch(SCRIPTS[2], "begin = args.begin * 5000", "begin = args.begin", 1,
              f"patch 2: -b 0 -e {decode_prefix} decodes the first {decode_prefix} sequences"),
        Patch(SCRIPTS[2], "end = args.end * 5000", "end = args.end", 1,
              f"patch 2: -b 0 -e {decode_prefix} decodes the first {decode_prefix} sequences"),
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
#: DRIVER_PREAMBLE (patches 4 to 7).
SCRIPT_DRIVER = r'''
loops = []
class _Observed:                                                   # patch 8: times each tqdm loop
    def __init__(self, iterable=None, *a, **k):
        self.iterable = iterable
    def __iter__(self):
        t0, c0, n = time.perf_counter(), time.process_time(), 0
        for x in self.iterable:
            n += 1
            yield x
        loops.append({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "items": n})
    def __len__(self):
        return len(self.iterable)
    def __getattr__(self, name):                                   # update, set_description, close, ...
        return lambda *a, **k: None
import importlib.machinery
_tqdm = types.ModuleType("tqdm")
_tqdm.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)   # torch's find_spec("tqdm") needs one
_tqdm.tqdm = _Observed
sys.modules["tqdm"] = _tqdm
import resource
def _cpu():  # this process and any it waited for (their mining may use worker processes)
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                       resource.RUSAGE_CHILDREN)))
calls = {"decoder_steps": 0}
if SCRIPT.startswith("3."):                                        # patch 8: counts their decoder calls
    _decoder_forward = torch.nn.TransformerDecoder.forward
    def _counted_decoder_forward(self, tgt, *a, **k):
        calls["decoder_steps"] += tgt.shape[0]  # rows decoded this step (theirs: one sequence at a time)
        return _decoder_forward(self, tgt, *a, **k)
    torch.nn.TransformerDecoder.forward = _counted_decoder_forward
if SCRIPT.startswith("1."):                                        # patch 8: times their Seq2Pat mining
    from sequential.seq2pat import Seq2Pat
    _get_patterns = Seq2Pat.get_patterns
    def _timed_get_patterns(self, *a, **k):
        t0, c0 = time.perf_counter(), _cpu()
        out = _get_patterns(self, *a, **k)
        calls["get_patterns"] = {"seconds": time.perf_counter() - t0, "cpu": _cpu() - c0}
        return out
    Seq2Pat.get_patterns = _timed_get_patterns
sys.argv = [SCRIPT] + ARGS
t0, c0 = time.perf_counter(), _cpu()
runpy.run_path(SCRIPT, run_name="__main__")
with open(RESULT, "w") as f:
    json.dump({"seconds": time.perf_counter() - t0, "cpu": _cpu() - c0, "loops": loops, "calls": calls}, f)
'''

#: Runs their run.py (SASRec) until the end of its first validation pass. Prepended: DRIVER_PREAMBLE.
SASREC_DRIVER = r'''
from model.basemodel import BaseModel
times = {}
def _timed(name, fn, last=False):                                  # patch 8: observers
    def wrapped(self, *a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(self, *a, **k)
        wall, cpu = times.get(name, (0.0, 0.0))
        times[name] = (wall + time.perf_counter() - t0, cpu + time.process_time() - c0)
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


def setup_authors(authors, converted: Path, root: Path, decode_prefix: int, pairs_prefix: int) -> Path:
    """Their code in ``root`` (authors.py's SASRec setup + the text patches) and Beauty in ``DOMAIN_DIR``."""
    from authors import RELEASED, setup_code

    code = setup_code(authors, converted, "peer", epochs=1, seed=None, root=root)
    apply_patches(code, patches(str(decode_prefix), str(pairs_prefix)))
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
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    text = log.read_text()
    if proc.returncode:
        tail = text.strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}): {tail}; see {log}")
    return text


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The declared prefixes: sequences whose pairs are drawn (``pairs``), pairs of the timed epoch
    (``epoch_pairs``), sequences decoded (``decode``); the same for both sides."""

    pairs: int = 500
    epoch_pairs: int = 6_400
    decode: int = 200


def authors_unit(unit: str, python: str, code: Path, sizes: Sizes, out: Path) -> dict:
    """One timed process of their code: ``{stage: {"seconds", "cpu", "work"}}`` for the stages of ``unit``."""
    result = out / f"authors-{unit}.json"
    log = result.with_suffix(".log")
    root = f"./{DOMAIN_DIR}"
    if unit == "sasrec":
        _run([python, "_peer_sasrec.py", "1", str(result), "run.py", "-m", "SASRec", "-d", "peer"], code, log,
             {"PYTHONPATH": str(code)})
        times = json.loads(result.read_text())
        return {s: {"seconds": times[s][0], "cpu": times[s][1], "work": SASREC_WORK[s]}
                for s in ("sasrec_epoch", "sasrec_validation")}
    script, args = {
        "build": (SCRIPTS[0], ["--root_path", root, "--alpha", "5", "--beta", "2", "--n_jobs", "1"]),
        "pretrain_epoch": (SCRIPTS[1], ["--root_path", root, "--epochs", "1", "--seed", "2024"]),
        "hybrid_inference": (SCRIPTS[2], ["--root_path", root + "/", "-b", "0", "-e", str(sizes.decode)]),
    }[unit]
    text = _run([python, "_peer_script.py", "1", str(result), script, *args], code, log, {"PYTHONPATH": str(code)})
    res = json.loads(result.read_text())
    if unit == "build":
        m = re.search(r"patterns mined with size (\d+)", text)
        n_pairs = re.search(r"pair dataset with size (\d+)", text)
        loops = [lp for lp in res["loops"] if lp["items"] == sizes.pairs]
        if "get_patterns" not in res["calls"] or len(loops) != 1 or not (m and n_pairs):
            raise RuntimeError(f"{SCRIPTS[0]}: no mining call or pair loop of {sizes.pairs} sequences seen; see {log}")
        return {"mine": {**res["calls"]["get_patterns"], "work": f"Seq2Pat, {m.group(1)} patterns"},
                "pretrain_pairs": {"seconds": loops[0]["seconds"], "cpu": loops[0]["cpu"],
                                   "work": f"first {sizes.pairs} sequences, {n_pairs.group(1)} pairs"}}
    if unit == "pretrain_epoch":
        if len(res["loops"]) != 1 or not re.search(r"Epoch time = ([0-9.]+)s", text):
            raise RuntimeError(f"{SCRIPTS[1]}: expected one epoch loop, saw {res['loops']}; see {log}")
        (loop,) = res["loops"]
        return {unit: {"seconds": loop["seconds"], "cpu": loop["cpu"],
                       "work": f"1 epoch, {loop['items']} batches of 256"}}
    decoding = [lp for lp in res["loops"] if lp["items"] == sizes.decode]
    if len(decoding) != 5:
        raise RuntimeError(f"{SCRIPTS[2]}: expected 5 decoding loops of {sizes.decode} sequences, saw {res['loops']}")
    import torch

    # their output file: the original rows, the pattern rows, then one row per distinct decoded pattern
    data = code / DOMAIN_DIR
    skip = sum(len(torch.load(data / f, weights_only=False)) for f in ("train.pth", "patterns.pth"))
    regen = torch.load(data / "train_regen.pth", weights_only=False)[skip:]
    mean = sum(row[3] + 1 for row in regen) / max(len(regen), 1)
    return {unit: {"seconds": sum(lp["seconds"] for lp in decoding), "cpu": sum(lp["cpu"] for lp in decoding),
                   "work": f"{sizes.decode} sequences x K = 5, {res['calls']['decoder_steps']} row-steps; "
                           f"{len(regen)} distinct patterns, mean length {mean:.2f}"}}


def write_their_pairs(pairs_npz: Path, items_npy: Path, n: int, out: Path) -> int:
    """The first ``n`` of our pre-training pairs as their ``seq-pat-pair.pth`` ([sequence, pattern] lists in
    their item ids), so both sides' timed epoch reads the same pairs; returns how many were written."""
    import numpy as np
    import torch

    items = np.load(items_npy)
    with np.load(pairs_npz) as z:
        so, si, po, pi = z["seq_offsets"], z["seq_items"], z["pat_offsets"], z["pat_items"]
        rows = [[items[si[so[r]:so[r + 1]]].tolist(), items[pi[po[r]:po[r + 1]]].tolist()]
                for r in range(min(n, len(po) - 1))]
    torch.save(rows, out)
    return len(rows)


# ----------------------------------------------------------------- our side
OURS = r"""
import dataclasses, json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
unit, data_path, work, sizes, items_npy, ckpt_src = sys.argv[1:7]
sizes = json.loads(sizes)
from fastregen.data import SequenceDataset, load
from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs
from fastregen.dr4sr import RegenConfig
from fastregen.generator import hybrid_inference, load_checkpoint, pretrain, save_checkpoint
from fastregen.patterns import PretrainPairs
from fastregen.training import Trainer
work = __import__("pathlib").Path(work)
def clock():
    return time.perf_counter(), time.process_time()
def since(t):
    return {"seconds": time.perf_counter() - t[0], "cpu": time.process_time() - t[1]}
out = {}
# the released regenerator settings (pre-training and hybrid inference)
cfg = RegenConfig(diversity="gumbel", entropy_weight=1.0, epochs=1, valid_fraction=0.0, K=5, batch_size=256,
                  schedule="released", gamma=1.0, max_pattern_len=24, progress=False, seed=0)
if unit == "build":
    train = dr4sr_input(load(data_path))
    t = clock()
    patterns = mine_patterns(train, max_span=5, min_support=2, threads=1)
    out["mine"] = {**since(t), "work": f"{len(patterns)} patterns"}
    head = train.subset(np.arange(sizes["pairs"]))
    t = clock()
    pairs = pretrain_pairs(head, patterns, max_per_sequence=10, seed=0, max_len=48, span=None, threads=1)
    out["pretrain_pairs"] = {**since(t), "work": f"first {sizes['pairs']} sequences, {len(pairs)} pairs"}
    # untimed: every sequence's pairs, the input of the pre-training epoch (ours and, converted, theirs)
    pretrain_pairs(train, patterns, max_per_sequence=10, seed=0, max_len=48, span=None, threads=1).save(
        work / "pairs.npz")
elif unit == "pretrain_epoch":
    data = load(data_path)
    full = PretrainPairs.load(work / "pairs.npz")
    n = min(sizes["epoch_pairs"], len(full))
    pairs = dataclasses.replace(full, sequences=full.sequences.subset(np.arange(n)),
                                patterns=full.patterns.subset(np.arange(n)), source=full.source[:n],
                                pattern_index=None if full.pattern_index is None else full.pattern_index[:n])
    # their released SASRec item table, in our item ids (authors.py convert's relabelling)
    released = torch.load(ckpt_src, map_location="cpu", weights_only=False)["parameters"]["item_embedding.weight"]
    emb = released[torch.from_numpy(np.load(items_npy))].clone()
    run_epoch = Trainer.run_epoch
    def timed_epoch(self, *a, **k):  # the epoch loop alone, as theirs is timed
        t = clock(); r = run_epoch(self, *a, **k)
        out[unit] = {**since(t), "work": f"1 epoch, {-(-n // 256)} batches of 256"}
        return r
    Trainer.run_epoch = timed_epoch
    model, history = pretrain(pairs, data.num_items, cfg, item_embedding=emb)
    save_checkpoint(model, work / "regenerator.pt", history=history, complete=True)
elif unit == "hybrid_inference":
    data = load(data_path)
    model, _ = load_checkpoint(work / "regenerator.pt", num_items=data.num_items)
    head = dr4sr_input(data).subset(np.arange(sizes["decode"]))
    rows = [head.items[head.offsets[i]:head.offsets[i + 1]][-48:] for i in range(len(head))]  # their inputs
    src = SequenceDataset(np.cumsum([0] + [len(x) for x in rows]), np.concatenate(rows), num_items=data.num_items)
    steps = [0]
    decode = type(model).decode
    def counted_decode(self, tgt_in, *a, **k):  # an observer: rows decoded per step, as counted on their side
        steps[0] += tgt_in.shape[0]
        return decode(self, tgt_in, *a, **k)
    type(model).decode = counted_decode
    if hasattr(type(model), "decode_step"):  # the cached decoder: one new position per row and step
        decode_step = type(model).decode_step
        def counted_step(self, tokens, *a, **k):
            steps[0] += tokens.shape[0]
            return decode_step(self, tokens, *a, **k)
        type(model).decode_step = counted_step
    if sizes.get("profile"):  # where our time goes (not a timed run): Python functions, then torch ops
        import cProfile, io, pstats
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            hybrid_inference(model, src, progress=False, config=cfg.decoding())
        pr = cProfile.Profile()
        pr.runcall(hybrid_inference, model, src, progress=False, config=cfg.decoding())
        text = io.StringIO()
        pstats.Stats(pr, stream=text).sort_stats("tottime").print_stats(25)
        (work / "profile.txt").write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
                                          + "\n" + text.getvalue())
        steps[0] = 0  # count the timed call's steps only
    t = clock()
    regen, info = hybrid_inference(model, src, progress=False, config=cfg.decoding())
    out[unit] = {**since(t), "work": f"{sizes['decode']} sequences x K = 5, {steps[0]} row-steps; "
                                    f"{len(regen)} distinct patterns, mean length {regen.lengths.mean():.2f}"}
else:
    import importlib
    fit = importlib.import_module("fastregen.training.fit")  # the package's `fit` attribute is the function
    run_epoch, evaluate = Trainer.run_epoch, fit.evaluate
    def timed_epoch(self, *a, **k):
        t = clock(); r = run_epoch(self, *a, **k)
        out["sasrec_epoch"] = {**since(t), "work": sizes["sasrec_epoch"]}
        return r
    def timed_evaluate(*a, **k):
        t = clock(); r = evaluate(*a, **k)
        out["sasrec_validation"] = {**since(t), "work": sizes["sasrec_validation"]}
        print(json.dumps(out), flush=True)
        import os; os._exit(0)  # the first evaluate is the validation pass: what is timed is done
    Trainer.run_epoch, fit.evaluate = timed_epoch, timed_evaluate
    fit.fit_and_evaluate(load(data_path), model="sasrec", seed=0, epochs=1, num_threads=1, progress=False,
                         train_targets="all")
print(json.dumps(out))
"""


def ours_unit(unit: str, data: Path, converted: Path, work: Path, sizes: Sizes, checkpoint: Path,
              profile: bool = False) -> dict:
    """One timed process of fastregen: ``{stage: {"seconds", "cpu", "work"}}`` for the stages of ``unit``.
    With ``profile``, hybrid_inference is first run under torch's profiler and cProfile, into
    ``work/profile.txt``."""
    arg = json.dumps({**dataclasses.asdict(sizes), **SASREC_WORK, "profile": profile})
    out = subprocess.run([sys.executable, "-c", OURS, unit, str(data), str(work), arg,
                          str(converted / "items.npy"), str(checkpoint)],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), check=False)
    if out.returncode:
        raise RuntimeError(f"fastregen {unit} failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- rows
def load_description() -> str:
    workers = subprocess.run(["pgrep", "-fc", "dr4sr_study.py"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return f"loadavg {os.getloadavg()[0]:.1f}; {workers or 0} nice'd 1-thread dr4sr_study workers running"


def make_rows(runs: dict, *, dataset: str, commit: str, authors_commit: str, machine: str, load: str,
              date: str, sizes: Sizes) -> list[dict]:
    """Two rows (wall and CPU seconds) per (stage, variant) of ``runs[(stage, variant)] = [{"seconds", "cpu",
    "work"}, ...]``: the median and every repeat."""
    rows = []
    for (stage, variant), reps in runs.items():
        note = {"mine": "every training sequence (all but each user's last two items)",
                "pretrain_pairs": f"a fixed prefix: the pairs of the first {sizes.pairs} training sequences "
                                  "(up to 10 each, plain subsequence test)",
                "pretrain_epoch": f"a fixed prefix: one epoch over the first {sizes.epoch_pairs} of fastregen's "
                                  "pairs, the same pairs on both sides (theirs in their item ids)",
                "hybrid_inference": f"a fixed prefix: the first {sizes.decode} training sequences (the same for "
                                    "both sides), each with K = 5 memories; each side decodes with its own "
                                    "regenerator from pretrain_epoch"}.get(stage, "")
        for metric, key in (("wall_seconds", "seconds"), ("cpu_seconds", "cpu")):
            values = [r[key] for r in reps]
            rows.append({"benchmark": "peer", "dataset": dataset, "variant": variant, "stage": stage,
                         "metric": metric, "value": round(statistics.median(values), 3), "unit": "s",
                         "threads": 1, "device": "cpu", "machine": machine, "commit": commit, "date": date,
                         "repeats": len(values), "values": " ".join(f"{v:.3f}" for v in values), "load": load,
                         "work": reps[-1]["work"], "authors_commit": authors_commit, "note": note})
    return rows


def ratio_table(rows: list[dict]) -> str:
    """Markdown: per stage (its latest rows), both sides' median wall and CPU seconds and the ratios
    (authors / fastregen); the verdict is on CPU time, which the machine's other load inflates less."""
    latest: dict = {}
    for r in rows:
        key = (r["dataset"], r["stage"], r["variant"], r["metric"])
        if key not in latest or r["date"] >= latest[key]["date"]:
            latest[key] = r
    out = [("| dataset | stage | authors wall (s) | fastregen wall (s) | ratio (wall) | authors CPU (s) | "
            "fastregen CPU (s) | ratio (CPU) | >= 5x | what was timed (authors / fastregen) |"),
           "|---|---|---:|---:|---:|---:|---:|---:|:---:|---|"]
    order = {s: i for i, s in enumerate(STAGES)}
    stages = sorted({(k[0], k[1]) for k in latest}, key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
    shown, notes = [], []
    for dataset, stage in stages:
        cell = {(v, m): latest.get((dataset, stage, v, m)) for v in VARIANTS for m in ("wall_seconds", "cpu_seconds")}
        if any(r is None for r in cell.values()):
            continue
        a, f = cell["authors", "wall_seconds"], cell["fastregen", "wall_seconds"]
        wa, wf = float(a["value"]), float(f["value"])
        ca, cf = float(cell["authors", "cpu_seconds"]["value"]), float(cell["fastregen", "cpu_seconds"]["value"])
        what = f"{a['work']} / {f['work']}" + (f"; {a['note']}" if a.get("note") else "")
        out.append(f"| {dataset} | {stage} | {wa:.2f} | {wf:.2f} | {wa / wf:.1f}x | {ca:.2f} | {cf:.2f} | "
                   f"{ca / cf:.1f}x | {'yes' if ca / cf >= 5 else 'no'} | {what} |")
        shown.append(a)
        steps = [re.search(r"(\d+) row-steps", x["work"]) for x in (a, f)]
        if all(steps) and all(int(m.group(1)) for m in steps):  # different amounts of work: per row-step too
            pa, pf = (1000 * c / int(m.group(1)) for c, m in zip((ca, cf), steps))
            notes.append(f"{stage}: the sides did different work ({steps[0].group(1)} vs {steps[1].group(1)} "
                         f"decoder row-steps); per row-step {pa:.2f} vs {pf:.2f} ms of CPU, {pa / pf:.1f}x.")
    out += [""] + notes if notes else []
    if shown:
        runs = sorted({(r["date"], r["commit"], r["load"], r["repeats"]) for r in shown})
        r = shown[0]
        out.append(f"\nMedians of {'/'.join(sorted({str(x[3]) for x in runs}))} alternating processes, one thread each, "
                   f"{r['machine']}, the authors' commit {r['authors_commit'][:7]}; "
                   + "; ".join(f"run of {d} (commit {c}): {load}" for d, c, load, _ in runs) + ".")
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
    ap.add_argument("--pairs-prefix", type=int, default=Sizes.pairs,
                    help="sequences whose pre-training pairs both sides draw in pretrain_pairs")
    ap.add_argument("--epoch-pairs", type=int, default=Sizes.epoch_pairs,
                    help="pairs of the timed pre-training epoch (the first of ours, for both sides)")
    ap.add_argument("--decode-prefix", type=int, default=Sizes.decode,
                    help="sequences both sides decode in hybrid_inference")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--profile", action="store_true",
                    help="no timing: run fastregen's side of the chain once and print where hybrid_inference's "
                         "time goes (torch ops, then Python functions)")
    args = ap.parse_args(argv)
    try:
        return profile_ours(args) if args.profile else run(args)
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


def profile_ours(args) -> int:
    """Our build -> pre-training epoch -> hybrid inference chain once, hybrid_inference profiled."""
    import authors as au

    authors = _check_authors(args.authors)
    data, converted = Path(args.data), WORK / "data" / Path(args.data).stem
    if not (converted / "convert.json").exists():
        au.convert(argparse.Namespace(authors=args.authors, data=str(data), train="original",
                                      training_set="combined_authors", out=str(converted)))
    sizes = Sizes(pairs=args.pairs_prefix, epoch_pairs=args.epoch_pairs, decode=args.decode_prefix)
    with tempfile.TemporaryDirectory(prefix="fastregen-peer-") as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "released.ckpt"
        ckpt.write_bytes(authors.read(au.RELEASED["checkpoint"]))
        for unit in ("build", "pretrain_epoch", "hybrid_inference"):
            res = ours_unit(unit, data, converted, tmp, sizes, ckpt, profile=unit == "hybrid_inference")
        print(f"hybrid_inference: {res['hybrid_inference']}\n")
        print((tmp / "profile.txt").read_text())
    return 0


def run(args) -> int:
    import authors as au

    authors = _check_authors(args.authors)
    sizes = Sizes(pairs=args.pairs_prefix, epoch_pairs=args.epoch_pairs, decode=args.decode_prefix)
    for name, v in (("--repeats", args.repeats), *((f"--{k.replace('_', '-')}", v)
                                                   for k, v in dataclasses.asdict(sizes).items())):
        if v < 1:
            raise UsageError(f"{name} must be >= 1, got {v}")
    data = Path(args.data)
    if not data.is_file():
        raise UsageError(f"--data {data}: no such file")
    needs = "import torch, pandas, torchmetrics, matplotlib, yaml, scipy, sequential.seq2pat"
    probe = subprocess.run([args.authors_python, "-c", needs], capture_output=True, text=True, check=False)
    if probe.returncode:
        raise UsageError(f"--authors-python {args.authors_python}: cannot import their needs "
                         f"({(probe.stderr.strip().splitlines() or ['?'])[-1]}); pip install torch pandas "
                         "torchmetrics matplotlib pyyaml tqdm scipy seq2pat there")
    converted = WORK / "data" / data.stem
    if not (converted / "convert.json").exists():
        au.convert(argparse.Namespace(authors=args.authors, data=str(data), train="original",
                                      training_set="combined_authors", out=str(converted)))
    # a unit runs on the previous one's output (pairs -> regenerator -> decoding): run the chain up to it
    chain = ["build", "pretrain_epoch", "hybrid_inference"]
    wanted = {UNITS[s] for s in args.stages}
    last = max((chain.index(u) for u in wanted if u in chain), default=-1)
    units = chain[:last + 1] + (["sasrec"] if "sasrec" in wanted else [])
    runs: dict = {}
    commit = git_commit(HERE)  # what is measured: the checkout as the run starts
    with tempfile.TemporaryDirectory(prefix="fastregen-peer-") as tmp:
        tmp = Path(tmp)
        code = setup_authors(authors, converted, tmp / "code", sizes.decode, sizes.pairs)
        ours, logs = tmp / "ours", tmp / "logs"
        ours.mkdir()
        logs.mkdir()
        ckpt = code / DOMAIN_DIR / Path(au.RELEASED["checkpoint"]).name
        for rep in range(args.repeats):
            for unit in units:
                for variant in VARIANTS:  # alternating: both sides meet the same drift of the machine's load
                    if variant == "authors":
                        if unit == "pretrain_epoch":  # both sides' epoch reads the same pairs: ours, converted
                            write_their_pairs(ours / "pairs.npz", converted / "items.npy", sizes.epoch_pairs,
                                              code / DOMAIN_DIR / "seq-pat-pair.pth")
                        res = authors_unit(unit, args.authors_python, code, sizes, logs)
                    else:
                        res = ours_unit(unit, data, converted, ours, sizes, ckpt)
                    for stage, r in res.items():
                        runs.setdefault((stage, variant), []).append(r)
                        print(f"[{dt.datetime.now():%H:%M:%S}] rep {rep + 1} {stage:<18} {variant:<9} "
                              f"{r['seconds']:8.2f} s wall {r['cpu']:8.2f} s CPU  {r['work']}", flush=True)
        machine = f"{os.cpu_count()} cores, {cpu_model()}"
        rows = make_rows({k: v for k, v in runs.items() if k[0] in args.stages}, dataset=data.stem,
                         commit=commit, authors_commit=authors.commit(), machine=machine,
                         load=load_description(), date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         sizes=sizes)
    for row in rows:
        append_row(args.results, row, COLUMNS)
    print(ratio_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
