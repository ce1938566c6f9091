"""Issue 26, stage 2: the DR4SR authors' own trainer on fastregen's data.

The authors' code (USTC-StarTeam/DR4SR) trains SASRec with ``run.py`` on
``.pth`` files made by their ``dataset/preprocess_amazon.ipynb`` (cell 20).
This script converts fastregen training sets into that format, in the
authors' item ids, checks the conversion against their released checkpoint,
and runs their trainer on a converted set, one result row per run:

    AUTH=/work/.mirror/USTC-StarTeam+DR4SR/repo     # `fetch github:USTC-StarTeam/DR4SR` (or a checkout)
    python benchmarks/authors.py convert --authors $AUTH --train original \\
        --out benchmarks/runs/authors/data/beauty-original
    python benchmarks/authors.py convert --authors $AUTH --train runs/dr4sr-study/decode/beauty-V1-K5-s0-g0.3 \\
        --out benchmarks/runs/authors/data/beauty-dr4sr        # a DR4SR folder (its combined_authors set)
    python benchmarks/authors.py check --authors $AUTH --converted benchmarks/runs/authors/data/beauty-original
    OMP_NUM_THREADS=1 nice python benchmarks/authors.py run --authors $AUTH \\
        --converted benchmarks/runs/authors/data/beauty-original   # ~75 min on one thread

Their code also needs ``pip install pandas torchmetrics matplotlib`` (with
pyyaml and tqdm, which fastregen already pulls in); faiss and wandb are
stubbed (below).

``convert``
    Validation and test rows are cell 20's: each user's sequence cut to its
    last 50 items, then test = (items[:-1], items[-1]), validation =
    (items[:-2], items[-2]), post-padded to 50. Training rows: for the
    original split, cell 20's one row per user (input items[:-3], targets
    items[1:-2]); for any other training set, one row per sequence of at
    least two items, input its last 50 items but one, targets shifted by
    one (``3.Hybrid_inference.py``'s rule for regenerated rows; its
    ``seq_len`` is capped at 50 here, theirs is not for the rare longer
    sequence). Rows not from the original split get user id 1, as theirs.

    Item and user ids are the authors': the released ``seq2pat_data.pth``
    (each user's sequence without its last two items, users in id order)
    is matched to ``beauty.txt`` sequence by sequence under an item
    relabelling; every sequence must match exactly and the relabelling must
    be a bijection, else the conversion stops. The items that occur only
    among users' last two items (33 on Beauty) are absent from
    ``seq2pat_data.pth``: they get the authors' unused ids in increasing
    order of both ids. Their code never sees those items in training
    (neither as input nor as target), so which unused id each gets changes
    nothing but the random initial row it draws. ``inter.csv`` (their
    loader reads it for the item count) holds every interaction with
    ``rating`` 5 and ``timestamp`` the position in the sequence (the text
    files have no times; the trainer reads neither).

``check``
    Scores the released ``pre-trained_embedding.ckpt`` (a SASRec, stored
    validation NDCG@20 0.0526) on the converted validation split with the
    authors' own model and evaluator, imported from a scratch copy of their
    code, and fails unless it gives the stored figure (within 1e-4).

``run``
    Copies their code (``.py`` and ``configs/`` only) to
    ``benchmarks/runs/authors/code`` (gitignored), links the converted set
    in and runs their ``run.py -m SASRec -d NAME`` unchanged, with the
    released configs (basemodel.yaml + sasrec.yaml, seed 2023), under these
    patches, each applied from outside their files:

    1. CPU: ``device: 'cpu'`` in the copy's ``configs/basemodel.yaml``
       (released: ``device: 1``, a CUDA index);
    2. threads: ``torch.set_num_threads(--threads)`` (1 by default);
    3. wandb: a stub module (init/log/finish/Image do nothing; their
       ``wandb.init`` is already ``mode="disabled"``);
    4. anomaly detection off: ``utils/utils.py`` switches
       ``torch.autograd.set_detect_anomaly(True)`` on at import (a debug
       mode that slows every backward); it is switched off after the import;
    5. the data path: the converted folder is ``dataset/NAME/beauty/`` and
       ``configs/NAME.yaml`` is ``configs/amazon-beauty.yaml`` with
       ``train_file: ''`` (released: ``'_regen'``, their DR4SR set), so
       ``train.pth`` is what trains;
    6. ``torch.load(weights_only=False)`` for their own pickles (the
       default changed in torch 2.6);
    7. observers, not changes: ``BaseModel.evaluate`` is wrapped to write
       its returned metrics (full precision), the early-stopping state, the
       epochs run (``training_epoch_end``, basemodel.py:216-242, is wrapped
       to count them) and sha256 digests of the state ``fit_loop`` ended with
       (model, optimizer, best parameters, torch's RNG) to JSON, and
       ``BaseModel.test_step`` to record each test user's rank of
       the target (a second forward pass in eval mode, the same masking as
       their ``topk``: other domains and the history, the padding id
       included, at -inf; rank = #{other items scoring >= the target}, a
       target masked as history ranks last), for paired tests against
       fastregen's runs. Their code exposes no ranks (their evaluator
       keeps the top 100 items only).
    8. ``--epochs`` (smoke runs only) overrides ``epochs: 1000``; ``--seed``
       overrides ``seed: 2023`` when given;
    9. faiss: a stub module. ``model/sasrec.py`` imports
       ``module/data_augmentation.py``, which imports faiss at the top for
       the clustering augmentations of other models (ICLRec-style); SASRec
       never calls it, and any use of the stub raises.
    10. resume: their trainer saves no state but the best parameters
       (``EarlyStopping.save_checkpoint``, utils/callbacks.py:130-136), so
       ``BaseModel.fit_loop`` (model/basemodel.py:117-169) is replaced by a
       transcription of it (``RESUME_PATCH``; the driver refuses to run if
       their method's source is not the one transcribed, ``FIT_LOOP_SHA256``)
       with three lines added. After every epoch that does not stop the
       run (after ``nepoch += 1``, basemodel.py:160) it writes
       ``runs/authors/resume/RUN_ID.pt`` atomically (temp file, fsync,
       rename) holding: the model's and Adam's state dicts (the optimizer
       of basemodel.py:47, 79-98); EarlyStopping's state (utils/callbacks.py:
       ``_counter`` and ``best_value``, 66-67; ``best_ckpt``'s epoch,
       parameters and metric, 70-76, set by ``_reset_counter``, 123-128);
       ``training_time`` / ``inference_time`` (basemodel.py:34-35, summed
       at 130 and 151); the Analyzer's counter (callbacks.py:147, a plot
       every 10th epoch, 161-198); the next epoch; and the RNG states of
       python's ``random``, numpy and torch (their ``seed_everything``,
       utils/utils.py:13-20, seeds those three; the training DataLoader,
       data/dataset.py:105-108, shuffles with no generator of its own, so
       its sampler draws its seed from torch's global one, as do the
       negatives, ``torch.multinomial`` at basemodel.py:57, and dropout; no
       worker processes). On start, after ``train_start`` (174-175, a no-op
       for SASRec) and the model's usual initialisation (``fit``, 109-115),
       a checkpoint found there is loaded over that state and the loop
       (basemodel.py:121) goes on from the next epoch. A stopping epoch
       writes none: a run cut during its final test resumes from the epoch
       before and repeats the same last epoch. ``EarlyStopping`` names its
       best-parameters file after the process's log (callbacks.py:78-84), so a
       resumed process writes the restored best parameters to its own file
       at the loop's end (basemodel.py:163) and ``evaluate`` loads them from
       there (383). ``run`` refuses (one line, exit 2) a checkpoint written
       under other options: its fingerprint holds the run id, their commit,
       the converted files' sha256, seed, epoch cap, threads and
       ``RESUME_FORMAT``, not fastregen's commit (the driver's changes
       between commits must keep resumed runs exact). The row's ``seconds``
       sum the segments, each up to its last checkpoint; ``epochs`` counts
       all of them. ``$FASTREGEN_AUTHORS_KILL_AFTER=K`` (tests only)
       SIGKILLs the driver once K epochs are done and checkpointed.
       ``tests/test_authors_resume.py`` checks that a run killed and resumed
       ends exactly as an uninterrupted run of their own ``fit_loop``.

    Appends one row to ``benchmarks/results/authors.csv`` and the ranks
    to ``benchmarks/results/ranks/authors/RUN_ID.npz`` and deletes the
    resume checkpoint; a run whose row exists is skipped, so the command
    can be repeated until every row is there. Their original-data run took
    74 min on one thread.

``queue``
    A study worker's turn (``benchmarks/study_workers.sh`` runs it after
    the DR4SR core runs): converts what ``QUEUE`` needs and ``run``s the
    first pending run nobody holds, resuming it if it was cut. The
    checkout comes from ``--authors``, ``$FASTREGEN_DR4SR_AUTHORS`` or
    ``benchmarks/runs/authors.path``; their code runs under the queue's own
    interpreter (the workers': ``benchmarks/runs/python``), which must have
    their extra packages (above).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_row, file_lock, read_rows, save_ranks  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "authors.csv"
WORK = HERE / "runs" / "authors"
DOMAIN = "beauty"  # the authors' domain folder name for Amazon Beauty
MAX_SEQ_LEN = 50  # their max_seq_len (configs/amazon-beauty.yaml, the notebook)
RELEASED = {"seq2pat": f"dataset/amazon-beauty/{DOMAIN}/seq2pat_data.pth",
            "checkpoint": f"dataset/amazon-beauty/{DOMAIN}/pre-trained_embedding.ckpt"}
NEEDED = ("run.py", "quickstart/run.py", "model/sasrec.py", "model/basemodel.py", "configs/sasrec.yaml",
          "configs/basemodel.yaml", "configs/amazon-beauty.yaml", "data/dataset.py", RELEASED["seq2pat"])
CHECK_NDCG = 0.0526  # pre-trained_embedding.ckpt's stored validation NDCG@20
COLUMNS = ["run_id", "dataset", "trainer", "train_set", "seed", "epochs", "best_epoch", "seconds", "valid_ndcg@20",
           "test_recall@10", "test_recall@20", "test_ndcg@10", "test_ndcg@20", "commit", "machine", "date",
           "threads", "max_epochs", "train_rows", "train_sha256", "authors_commit", "ranks_ndcg@20", "converted"]


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


# ----------------------------------------------------------------- their code
class Authors:
    """Read-only access to the authors' code: a git directory (bare, e.g. `fetch`'s mirror) or a checkout."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise UsageError(f"--authors {path}: no such folder (fetch github:USTC-StarTeam/DR4SR or clone it)")
        self.git = (self.path / "HEAD").is_file() and (self.path / "objects").is_dir()
        missing = [p for p in NEEDED if not self.has(p)]
        if missing:
            raise UsageError(f"--authors {path}: not the DR4SR authors' repository (no {missing[0]})")

    def _git(self, *args, binary=False):
        out = subprocess.run(["git", "--git-dir", str(self.path), *args], capture_output=True, check=False)
        if out.returncode:
            raise UsageError(f"--authors {self.path}: git {' '.join(args)} failed: "
                             f"{out.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
        return out.stdout if binary else out.stdout.decode()

    def files(self) -> list[str]:
        if self.git:
            return self._git("ls-tree", "-r", "--name-only", "HEAD").split("\n")[:-1]
        return [str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file() and ".git" not in p.parts]

    def has(self, rel: str) -> bool:
        if self.git:
            return subprocess.run(["git", "--git-dir", str(self.path), "cat-file", "-e", f"HEAD:{rel}"],
                                  capture_output=True).returncode == 0
        return (self.path / rel).is_file()

    def read(self, rel: str) -> bytes:
        return self._git("show", f"HEAD:{rel}", binary=True) if self.git else (self.path / rel).read_bytes()

    def commit(self) -> str:
        if self.git:
            return self._git("rev-parse", "HEAD").strip()
        return git_commit(self.path) if (self.path / ".git").exists() else "unknown"

    def load_torch(self, rel: str):
        import io

        import torch

        return torch.load(io.BytesIO(self.read(rel)), map_location="cpu", weights_only=False)

    def export_code(self, dest: Path) -> None:
        """Their Python code and configs (no datasets, no assets) into ``dest``, replaced if present."""
        if dest.exists():
            shutil.rmtree(dest)
        for rel in self.files():
            if rel.endswith(".py") or rel.startswith("configs/"):
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(self.read(rel))


# ----------------------------------------------------------------- ids
def derive_relabelling(sequences: list[list[int]], released: list[list[int]], num_items: int):
    """Match fastregen's sequences to the authors' ``seq2pat_data.pth``.

    Parameters
    ----------
    sequences : list of list of int
        Each user's full sequence in fastregen's ids (1..num_items), users in file order.
    released : list of list of int
        The authors' ``seq2pat_data.pth``: user ``u + 1``'s sequence without its last two items.
    num_items : int

    Returns
    -------
    items : np.ndarray of int64, shape (num_items + 1,)
        The authors' id of each fastregen item id (``items[0] = 0``), a bijection of 1..num_items.
    users : np.ndarray of int64, shape (len(sequences),)
        The authors' user id of each fastregen user.
    unseen : int
        Items absent from ``released`` (given the unused ids in increasing order).

    Raises ValueError when a sequence has no exact counterpart or the relabelling is not one-to-one.
    Signatures (each item replaced by its frequency, or by its id once mapped) pair sequences
    that are unique under them; the pairs fix item ids, which refine the signatures, until none is left.
    """
    trunc = [list(s[:-2]) for s in sequences]
    if len(trunc) != len(released):
        raise ValueError(f"{len(trunc)} users here, {len(released)} in the released seq2pat_data.pth")
    fa = Counter(i for s in released for i in s)
    fb = Counter(i for s in trunc for i in s)
    f, g, pair = {}, {}, {}
    todo_a, todo_b = set(range(len(released))), set(range(len(trunc)))
    while todo_b:
        da, db = defaultdict(list), defaultdict(list)
        for i in todo_a:
            da[tuple(g.get(x, -fa[x]) for x in released[i])].append(i)
        for j in todo_b:
            db[tuple(x if x in f else -fb[x] for x in trunc[j])].append(j)
        new = 0
        for key, js in db.items():
            is_ = da.get(key, [])
            if len(is_) != len(js):
                continue
            if len(js) > 1 and any(k < 0 for k in key):
                continue  # several candidates with unmapped items: wait for more ids
            # identical mapped sequences: pair in order (users are otherwise paired in order too, checked below)
            for i, j in zip(sorted(is_), sorted(js)):
                for a, b in zip(released[i], trunc[j]):
                    if f.setdefault(b, a) != a or g.setdefault(a, b) != b:
                        raise ValueError(f"item {b} would map to both {f[b]} and {a} (user {j})")
                pair[j] = i
                todo_a.discard(i)
                todo_b.discard(j)
                new += 1
        if not new:
            raise ValueError(f"{len(todo_b)} sequences have no exact counterpart in seq2pat_data.pth "
                             f"(first: user {min(todo_b)})")
    users = np.array([pair[j] + 1 for j in range(len(trunc))], dtype=np.int64)
    items = np.zeros(num_items + 1, dtype=np.int64)
    for b, a in f.items():
        items[b] = a
    unseen_b = [b for b in range(1, num_items + 1) if b not in f]
    free_a = sorted(set(range(1, num_items + 1)) - set(g))
    if len(unseen_b) != len(free_a):
        raise ValueError(f"{len(unseen_b)} items unseen here but {len(free_a)} ids free in the authors' range")
    items[unseen_b] = free_a
    if sorted(items[1:].tolist()) != list(range(1, num_items + 1)):
        raise ValueError("the item relabelling is not a bijection of 1..num_items")
    for j, s in enumerate(trunc):  # the whole claim, checked directly
        if items[np.asarray(s, dtype=np.int64)].tolist() != list(released[users[j] - 1]):
            raise ValueError(f"user {j}: relabelled sequence differs from seq2pat_data.pth row {users[j] - 1}")
    return items, users, len(unseen_b)


# ----------------------------------------------------------------- rows
def _pad(seq, n=MAX_SEQ_LEN):
    """The notebook's ``truncate_or_pad``: the last ``n`` items, post-padded with 0; and the length kept."""
    seq = list(seq)[-n:]
    return seq + [0] * (n - len(seq)), len(seq)


def split_rows(user: int, seq) -> tuple[list, list, list]:
    """Cell 20 of ``dataset/preprocess_amazon.ipynb`` for one user: (train, val, test) rows."""
    s = [int(x) for x in seq][-MAX_SEQ_LEN:]
    if len(s) < 3:
        raise ValueError(f"user {user}: {len(s)} items; the authors' split needs 3 or more")
    dom = [0] * MAX_SEQ_LEN
    hist, n = _pad(s[:-1])
    test = [user, hist, s[-1], n, 1, dom, hist]
    hist, n = _pad(s[:-2])
    val = [user, hist, s[-2], n, 1, dom, hist]
    hist, n = _pad(s[:-3])
    target, _ = _pad(s[-n - 2:-2])
    train = [user, hist, target, n, [1] * n + [0] * (MAX_SEQ_LEN - n), dom]
    return train, val, test


def train_row(seq, user: int = 1) -> list | None:
    """One training row of any sequence: input its last 50 items but one, targets the next items."""
    s = [int(x) for x in seq]
    if len(s) < 2:
        return None
    hist, n = _pad(s[:-1])
    target, _ = _pad(s[1:])
    return [user, hist, target, n, [1] * n + [0] * (MAX_SEQ_LEN - n), [0] * MAX_SEQ_LEN]


def load_training_set(spec: str, data, training_set: str):
    """(name, SequenceDataset or None for the original split) for ``--train``."""
    if spec == "original":
        return "original", None
    path = Path(spec)
    if path.is_dir():
        if not (path / "regenerated.json").exists():
            raise UsageError(f"--train {spec}: not a finished DR4SR folder (no regenerated.json)")
        import tempfile

        from fastregen.dr4sr.plus.pipeline import load_training_set as load_dr4sr

        # loading rewrites the folder's config.yaml / source.json: read a copy, so that a folder
        # the study's workers are using is never written
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            shutil.copytree(path, copy)
            _, train, name = load_dr4sr(data, copy, training_set)
        return f"dr4sr:{name}", train
    if path.is_file():
        from fastregen.data import load

        return f"file:{path.name}", load(path)
    raise UsageError(f"--train {spec}: neither 'original', a DR4SR folder nor a dataset file")


def _atomic_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(args) -> int:
    from fastregen.data import load

    authors = Authors(args.authors)
    data = load(args.data)
    seqs = [data.items[data.offsets[u]:data.offsets[u + 1]].tolist() for u in range(len(data))]
    released = authors.load_torch(RELEASED["seq2pat"])
    items, users, unseen = derive_relabelling(seqs, released, int(data.num_items))
    name, train = load_training_set(args.train, data, args.training_set)
    out = Path(args.out) / DOMAIN
    out.mkdir(parents=True, exist_ok=True)
    train_rows, val_rows, test_rows = [], [], []
    for u, s in enumerate(seqs):
        tr, va, te = split_rows(int(users[u]), items[np.asarray(s, dtype=np.int64)])
        train_rows.append(tr)
        val_rows.append(va)
        test_rows.append(te)
    if train is not None:
        if train.num_items > data.num_items:
            raise UsageError(f"--train {args.train}: item id {train.num_items} is beyond the data's {data.num_items}")
        train_rows = [r for u in range(len(train))
                      if (r := train_row(items[train.items[train.offsets[u]:train.offsets[u + 1]]])) is not None]
    order = sorted(range(len(val_rows)), key=lambda i: val_rows[i][0])  # user-id order, as their notebook writes
    _atomic_save(train_rows, out / "train.pth")
    _atomic_save([val_rows[i] for i in order], out / "val.pth")
    _atomic_save([test_rows[i] for i in order], out / "test.pth")
    tmp = out / "inter.csv.tmp"
    with open(tmp, "w") as f:
        f.write("user_id,item_id,rating,timestamp,domain\n")
        for u in order:
            for t, x in enumerate(seqs[u]):
                f.write(f"{users[u]},{items[x]},5.0,{t},0\n")
    os.replace(tmp, out / "inter.csv")
    np.save(out.parent / "items.npy", items)
    np.save(out.parent / "users.npy", users)
    meta = {"data": str(Path(args.data).resolve()), "train": args.train, "train_set": name,
            "training_set_key": args.training_set, "train_rows": len(train_rows),
            "train_sha256": _sha256(out / "train.pth"), "users": len(seqs), "items": int(data.num_items),
            "items_unseen_in_seq2pat": unseen, "authors_commit": authors.commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    (out.parent / "convert.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: {len(train_rows):,} training rows, {len(val_rows):,} validation / test users, "
          f"{unseen} items unseen in seq2pat_data.pth -> {out}")
    return 0


# ----------------------------------------------------------------- their code, run
#: Patches 2, 3, 4, 6 and 9 (below), applied before any of their modules is imported; benchmarks/peer.py
#: runs their other scripts under the same preamble. Expects ``THREADS`` to be set.
DRIVER_PREAMBLE = r'''
import functools, json, os, runpy, sys, time, types
import torch
torch.set_num_threads(THREADS)                                     # patch 2
stub = types.ModuleType("wandb")                                   # patch 3
stub.init = stub.log = stub.finish = lambda *a, **k: None
stub.Image = lambda *a, **k: None
sys.modules["wandb"] = stub
class _NoFaiss(types.ModuleType):                                  # patch 9
    def __getattr__(self, name):
        raise AttributeError(f"faiss.{name}: faiss is a stub here (SASRec never uses it)")
sys.modules["faiss"] = _NoFaiss("faiss")
torch.load = functools.partial(torch.load, weights_only=False)     # patch 6
import utils.utils                                                 # sets anomaly detection on at import
torch.autograd.set_detect_anomaly(False)                           # patch 4
'''
#: sha256 of inspect.getsource(BaseModel.fit_loop) at e25d0c3: the driver replaces no other fit_loop
FIT_LOOP_SHA256 = "28563e13c46258ba2677d5c37d44ddb9afc407a306226d988249265589f8cc0f"
#: The resume checkpoint's layout, part of its fingerprint: bump it when RESUME_PATCH saves other state.
RESUME_FORMAT = 1
#: Patch 10 (resume): their fit_loop, model/basemodel.py:117-169 at e25d0c3, transcribed with three lines added
#: (marked "resume"); the driver installs it unless its resume path is "-". Expects RESUME, FINGERPRINT, RUN, t0.
RESUME_PATCH = r"""
import inspect, signal
if hashlib.sha256(inspect.getsource(BaseModel.fit_loop).encode()).hexdigest() != FIT_LOOP_SHA256:
    sys.exit("authors.py patch 10: their BaseModel.fit_loop (model/basemodel.py) is not the one transcribed here "
             "(commit e25d0c3); resume cannot be applied")
KILL_AFTER = int(os.environ.get("FASTREGEN_AUTHORS_KILL_AFTER", "0"))  # tests: SIGKILL once K epochs are saved
def save_state(self, nepoch):
    # after epoch nepoch - 1: everything the next epoch reads (utils/callbacks.py:66-76 and 123-128 for
    # EarlyStopping's; basemodel.py:34-35 the time totals; callbacks.py:147 the Analyzer's plot counter)
    cb = self.callback
    state = {"fingerprint": FINGERPRINT, "next_epoch": nepoch, "model": self.state_dict(),
             "optimizer": self.optimizer.state_dict(),
             "early_stopping": {"counter": cb._counter, "best_value": cb.best_value, "epoch": cb.best_ckpt["epoch"],
                                "parameters": cb.best_ckpt["parameters"], "metric": cb.best_ckpt["metric"]},
             "analyzer_counter": self.analyzer.counter, "training_time": self.training_time,
             "inference_time": self.inference_time, "seconds": RUN["seconds_before"] + time.time() - t0,
             "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}}
    with open(RESUME + ".tmp", "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(RESUME + ".tmp", RESUME)
    if nepoch == KILL_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)
def restore_state(self):
    if not os.path.exists(RESUME):
        return 0
    state = torch.load(RESUME, map_location="cpu")
    if state["fingerprint"] != FINGERPRINT:  # run() refuses first; this guards a direct call
        sys.exit(f"authors.py patch 10: {RESUME} is a checkpoint of other options")
    self.load_state_dict(state["model"])
    self.optimizer.load_state_dict(state["optimizer"])
    cb, es = self.callback, state["early_stopping"]
    cb._counter, cb.best_value = es["counter"], es["best_value"]
    cb.best_ckpt.update(epoch=es["epoch"], parameters=es["parameters"], metric=es["metric"])
    self.analyzer.counter = state["analyzer_counter"]
    self.training_time, self.inference_time = state["training_time"], state["inference_time"]
    RUN.update(epochs=state["next_epoch"], resumed_from=state["next_epoch"], seconds_before=state["seconds"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    print(f"authors.py patch 10: resumed after epoch {state['next_epoch']} from {RESUME}", flush=True)
    return state["next_epoch"]
def fit_loop(self):
    try:
        nepoch = 0
        self.train_start()
        nepoch = restore_state(self)                                   # resume: 0 on a fresh start
        for e in range(nepoch, self.config['train']['epochs']):        # resume: from the restored epoch on
            self.logged_metrics = {}
            self.logged_metrics['epoch'] = nepoch

            # training procedure
            tik_train = time.time()
            self.train()
            training_output_list = self.training_epoch(nepoch)
            tok_train = time.time()
            self.training_time += tok_train - tik_train

            # validation procedure
            tik_valid = time.time()
            self.eval()
            if nepoch % 1 == 0:
                for domain in self.domain_name_list:
                    val_dataset = self.dataset_list[1]
                    val_dataset.set_eval_domain(domain)
                    self.set_eval_domain(domain)
                    validation_output_list = self.validation_epoch(nepoch, val_dataset.get_loader())
                    self.validation_epoch_end(validation_output_list, domain)
                all_domain_result = defaultdict(float)
                for k, v in self.logged_metrics.items():
                    for domain_name in self.domain_name_list:
                        if domain_name in k: # result of a single domain
                            all_domain_result[k.removeprefix(domain_name + '_')] += v
                            break
                self.logged_metrics.update(all_domain_result)
                wandb.log(all_domain_result)
            tok_valid = time.time()
            self.inference_time += tok_valid - tik_valid

            self.training_epoch_end(training_output_list)

            # model is saved in callback when the callback return True.
            stop_training = self.callback(self, nepoch, self.logged_metrics)
            if stop_training:
                break

            nepoch += 1
            save_state(self, nepoch)                                   # resume: after every epoch that goes on

        self.training_end()
        self.callback.save_checkpoint(nepoch)
        self.ckpt_path = self.callback.get_checkpoint_path()
    except KeyboardInterrupt:
        # if catch keyboardinterrupt in training, save the best model.
        self.callback.save_checkpoint(nepoch)
        self.ckpt_path = self.callback.get_checkpoint_path()
    return
BaseModel.fit_loop = fit_loop
"""
DRIVER = r'''
"""Runs the authors' run.py under the patches listed in benchmarks/authors.py (written there)."""
import sys
THREADS, RESULT, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
''' + DRIVER_PREAMBLE + r'''
import hashlib, random
from collections import defaultdict
import numpy as np
import wandb                                                       # the stub (patch 3)
from model.basemodel import BaseModel
ranks, users, t0 = [], [], time.time()
# the run's epochs so far and its earlier segments' seconds (patch 10 restores them on a resume)
RUN = {"epochs": 0, "resumed_from": None, "seconds_before": 0.0}
_test_step = BaseModel.test_step
def test_step(self, batch):                                        # patch 7: observe ranks
    with torch.no_grad():
        q = self.forward(batch)
        s = q @ self.item_embedding.weight[:self.num_items].T
        dom = torch.ones(1, self.num_items, dtype=torch.bool, device=s.device)
        dom[:, self.domain_item_mapping[self.eval_domain]] = 0
        s = torch.scatter(s.masked_fill(dom, -torch.inf), 1, batch["user_hist"], -torch.inf)
        t = s.gather(1, batch[self.fiid].view(-1, 1))
        r = (s >= t).sum(1) - 1
        r = torch.where(torch.isinf(t.view(-1)), torch.full_like(r, self.num_items), r)
        ranks.append(r.cpu()); users.append(batch[self.fuid].cpu())
    return _test_step(self, batch)
BaseModel.test_step = test_step
_training_epoch_end = BaseModel.training_epoch_end
def training_epoch_end(self, output_list):                         # patch 7: count the epochs
    RUN["epochs"] += 1
    return _training_epoch_end(self, output_list)
BaseModel.training_epoch_end = training_epoch_end
def digest(obj):
    """sha256 of nested dicts / lists of tensors and plain values (dtypes and bytes; keys in sorted order)."""
    h = hashlib.sha256()
    def walk(x):
        if isinstance(x, torch.Tensor):
            h.update(f"{x.dtype}{tuple(x.shape)}".encode()); h.update(x.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=repr):
                h.update(repr(k).encode()); walk(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"["); [walk(v) for v in x]; h.update(b"]")
        else:
            h.update(repr(x).encode())
    walk(obj)
    return h.hexdigest()
_evaluate = BaseModel.evaluate
def evaluate(self):                                                # patch 7: observe the result
    cb = self.callback
    # the state fit_loop ended with (evaluate loads the best parameters over the model's)
    state = {"model": digest(self.state_dict()), "optimizer": digest(self.optimizer.state_dict()),
             "best_parameters": digest(cb.best_ckpt["parameters"]), "torch_rng": digest(torch.get_rng_state())}
    out = _evaluate(self)
    res = {"test": {k: float(v) for k, v in out.items()}, "best_epoch": int(cb.best_ckpt["epoch"]),
           "best_valid": {k: float(v) for k, v in cb.best_ckpt["metric"].items() if k != "epoch"},
           "seconds": time.time() - t0, "training_time": self.training_time, "epochs": RUN["epochs"],
           "resumed_from": RUN["resumed_from"], "seconds_before": RUN["seconds_before"], "state_sha256": state,
           "users": torch.cat(users).tolist(), "ranks": torch.cat(ranks).tolist()}
    with open(RESULT + ".tmp", "w") as f:
        json.dump(res, f)
    os.replace(RESULT + ".tmp", RESULT)
    return out
BaseModel.evaluate = evaluate
if MODE == "run":
    RESUME, FINGERPRINT = sys.argv[4], json.loads(sys.argv[5])
    if RESUME != "-":
''' + textwrap.indent(f"FIT_LOOP_SHA256 = {FIT_LOOP_SHA256!r}\n" + RESUME_PATCH, "        ") + r'''
    sys.argv = ["run.py"] + sys.argv[6:]
    runpy.run_path("run.py", run_name="__main__")
else:  # check: score a checkpoint on the validation split with their model and evaluator
    from utils import load_config, prepare_datasets, prepare_model, get_logger
    from utils import callbacks
    ckpt_path, name = sys.argv[4], sys.argv[5]
    config = load_config({"model": "SASRec", "dataset": name})
    config["train"]["device"] = "cpu"
    get_logger(None)
    datasets = prepare_datasets(config)
    model = prepare_model(config, datasets)
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu")["parameters"])
    model.analyzer = callbacks.Analyzer(model)
    model.logged_metrics = {}
    model.eval()
    val = datasets[1]
    val.set_eval_domain("beauty"); model.set_eval_domain("beauty")
    out = model.validation_epoch_end(model.validation_epoch(0, val.get_loader()), "beauty")
    with open(RESULT, "w") as f:
        json.dump({k: float(v) for k, v in out.items()}, f)
'''


def setup_code(authors: Authors, converted: Path, name: str, epochs: int | None, seed: int | None,
               root: Path | None = None) -> Path:
    """A scratch copy of their code in ``root / name`` (default ``runs/authors/code/NAME``) with the
    converted data as dataset ``name`` (patches 1, 5, 8)."""
    import yaml

    code = (WORK / "code" if root is None else Path(root)) / name
    authors.export_code(code)
    base = yaml.safe_load((code / "configs" / "basemodel.yaml").read_text())
    base["train"]["device"] = "cpu"
    if epochs is not None:
        base["train"]["epochs"] = epochs
    if seed is not None:
        base["train"]["seed"] = seed
    (code / "configs" / "basemodel.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    data_cfg = yaml.safe_load((code / "configs" / "amazon-beauty.yaml").read_text())
    data_cfg["train_file"] = ""
    (code / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(data_cfg, sort_keys=False))
    (code / "dataset" / name).mkdir(parents=True)
    os.symlink((converted / DOMAIN).resolve(), code / "dataset" / name / DOMAIN)
    (code / "_fastregen_driver.py").write_text(DRIVER)
    return code


def _needs() -> None:
    """One line naming what their code imports and this interpreter lacks."""
    import importlib.util

    missing = [m for m in ("pandas", "torchmetrics", "matplotlib", "yaml", "tqdm") if importlib.util.find_spec(m) is None]
    if missing:
        names = " ".join("pyyaml" if m == "yaml" else m for m in missing)
        raise UsageError(f"the authors' code needs {', '.join(missing)}: pip install {names}")


def _driver(code: Path, threads: int, result: Path, mode: str, *extra: str, append: bool = False) -> None:
    """Run ``_fastregen_driver.py`` in ``code``; its output goes to ``result``'s ``.log`` (appended to when
    ``append``: a resumed run keeps its earlier segments' log)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg",
               TQDM_DISABLE="1", PYTHONPATH=str(code))
    cmd = [sys.executable, "_fastregen_driver.py", str(threads), str(result), mode, *extra]
    log = open(result.with_suffix(".log"), "a" if append else "w")
    proc = subprocess.run(cmd, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    if proc.returncode:
        tail = result.with_suffix(".log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"the authors' code failed (exit {proc.returncode}): {tail}; see {result.with_suffix('.log')}")


def _converted(path) -> tuple[Path, dict]:
    path = Path(path)
    if not (path / "convert.json").exists() or not (path / DOMAIN / "train.pth").exists():
        raise UsageError(f"--converted {path}: not a folder written by `authors.py convert`")
    return path, json.loads((path / "convert.json").read_text())


def check(args) -> int:
    authors = Authors(args.authors)
    _needs()
    converted, _ = _converted(args.converted)
    name = "fr-check"
    code = setup_code(authors, converted, name, None, None)
    ckpt = code / "released.ckpt"
    ckpt.write_bytes(authors.read(RELEASED["checkpoint"]))
    stored = float(authors.load_torch(RELEASED["checkpoint"])["metric"]["ndcg@20"])
    result = WORK / "check.json"
    _driver(code, args.threads, result, "check", str(ckpt), name)
    got = json.loads(result.read_text())["beauty_ndcg@20"]
    ok = abs(got - stored) < 1e-4 and abs(stored - CHECK_NDCG) < 1e-4
    print(f"released checkpoint on the converted validation split: NDCG@20 {got:.6f} "
          f"(stored {stored:.6f}): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def fingerprint(authors: Authors, converted: Path, run_id: str, seed: int, epochs: int | None,
                threads: int) -> dict:
    """What a resume checkpoint must have been written under (patch 10): the run, their code's commit, the
    converted files' content, seed, epoch cap and threads (more threads may round differently)."""
    files = {f: _sha256(converted / DOMAIN / f) for f in ("train.pth", "val.pth", "test.pth", "inter.csv")}
    return {"format": RESUME_FORMAT, "run_id": run_id, "authors_commit": authors.commit(), "seed": seed,
            "max_epochs": epochs or 1000, "threads": threads, "data_sha256": files}


def resume_point(path: Path, expected: dict) -> int | None:
    """The epoch a run resumes after (None: no checkpoint); UsageError for a checkpoint of other options."""
    if not path.exists():
        return None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        found = state["fingerprint"]
    except Exception as e:  # noqa: BLE001 (any unreadable file is refused the same way)
        raise UsageError(f"{path}: not a readable resume checkpoint ({type(e).__name__}); delete it to start over")
    if found != expected:
        key = next(k for k in sorted(set(found) | set(expected)) if found.get(k) != expected.get(k))
        raise UsageError(f"{path}: a checkpoint of other options ({key}: {found.get(key)!r} there, "
                         f"{expected.get(key)!r} now); delete it to start the run over")
    return int(state["next_epoch"])


def run(args) -> int:
    authors = Authors(args.authors)
    _needs()
    converted, meta = _converted(args.converted)
    seed = 2023 if args.seed is None else args.seed
    run_id = _run_id(meta, args.dataset, seed, args.epochs)
    results = Path(args.results)
    ranks_dir = results.parent / "ranks" / results.stem
    with file_lock(WORK / "locks" / f"{run_id}.lock", blocking=False) as held:
        if not held:
            print(f"{run_id} is running elsewhere; skipped")
            return 0
        if any(r["run_id"] == run_id for r in read_rows(results, COLUMNS)):
            print(f"{run_id} ({meta['train_set']}, seed {seed}) already has its row in {results}; skipped")
            return 0
        # the resume checkpoint (patch 10) lives outside the code copy, which setup_code replaces
        resume = WORK / "resume" / f"{run_id}.pt"
        resume.parent.mkdir(parents=True, exist_ok=True)
        fp = json.loads(json.dumps(fingerprint(authors, converted, run_id, seed, args.epochs, args.threads)))
        after = resume_point(resume, fp)
        name = f"fr-{run_id}"
        code = setup_code(authors, converted, name, args.epochs, args.seed)
        result = WORK / "results" / f"{run_id}.json"
        result.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{time.strftime('%H:%M:%S')}] {meta['train_set']} seed {seed} ({run_id}): "
              f"their run.py in {code}, log {result.with_suffix('.log')}"
              + ("" if after is None else f"; resumes after epoch {after}"), flush=True)
        t0 = time.time()
        _driver(code, args.threads, result, "run", str(resume), json.dumps(fp), "-m", "SASRec", "-d", name,
                append=after is not None)
        res = json.loads(result.read_text())
        users = np.load(converted / "users.npy")  # authors' user id of each fastregen user
        by_user = dict(zip(res["users"], res["ranks"]))
        ranks = np.array([by_user[int(u)] for u in users], dtype=np.int64)
        ranks_dir.mkdir(parents=True, exist_ok=True)
        save_ranks(ranks_dir / f"{run_id}.npz", ranks)
        t = res["test"]
        # seconds: this segment's, plus the earlier segments' up to the checkpoint resumed from
        row = {"run_id": run_id, "dataset": args.dataset, "trainer": "authors", "train_set": meta["train_set"],
               "seed": seed, "epochs": res["epochs"],
               "best_epoch": res["best_epoch"], "seconds": round(time.time() - t0 + res["seconds_before"], 1),
               "valid_ndcg@20": res["best_valid"]["ndcg@20"], "test_recall@10": t["recall@10"],
               "test_recall@20": t["recall@20"], "test_ndcg@10": t["ndcg@10"], "test_ndcg@20": t["ndcg@20"],
               "commit": git_commit(HERE), "machine": f"{os.cpu_count()} cores, {cpu_model()}",
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "threads": args.threads,
               "max_epochs": args.epochs or 1000, "train_rows": meta["train_rows"],
               "train_sha256": meta["train_sha256"], "authors_commit": authors.commit(),
               "ranks_ndcg@20": float(np.mean(np.where(ranks < 20, 1.0 / np.log2(ranks + 2.0), 0.0))),
               "converted": str(converted)}
        append_row(results, row, COLUMNS)
        resume.unlink(missing_ok=True)  # the row marks the run done; a later start would skip it anyway
        print(f"   -> test N@20 {t['ndcg@20']:.4f} (from the ranks {row['ranks_ndcg@20']:.4f}), "
              f"best epoch {res['best_epoch']}, {row['seconds']:.0f} s"
              + ("" if res["resumed_from"] is None else f", resumed after epoch {res['resumed_from']}"), flush=True)
    return 0


def _run_id(meta: dict, dataset: str, seed: int, epochs: int | None) -> str:
    """The id of a run of their trainer: the data, the converted training set's content, the seed, the cap."""
    key = {"dataset": dataset, "trainer": "authors", "train_set": meta["train_set"], "seed": seed,
           "max_epochs": epochs or 1000, "train_sha256": meta["train_sha256"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


#: Issue 26, stage 2, in order: their trainer (seed 2023) on the original split, then on fastregen's DR4SR
#: training set of the selected setting (V1, K = 5, gamma = 0.3, regenerator seed 0: the decode folder
#: of `dr4sr_study.py`, its combined_authors set). A set whose folder is not finished yet waits.
QUEUE = (("original", "original"), ("dr4sr", "runs/dr4sr-study/decode/beauty-V1-K5-s0-g0.3"))


def authors_checkout(given: str | None) -> str | None:
    """``--authors``, else ``$FASTREGEN_DR4SR_AUTHORS``, else the one line of ``benchmarks/runs/authors``."""
    if given:
        return given
    if os.environ.get("FASTREGEN_DR4SR_AUTHORS"):
        return os.environ["FASTREGEN_DR4SR_AUTHORS"]
    path = HERE / "runs" / "authors.path"
    return path.read_text().strip() or None if path.exists() else None


def queue(args) -> int:
    """One turn of a worker: convert what `QUEUE` needs, then run the first pending set nobody holds
    (`fastregen.study.run_queue`), resuming it from its last epoch if it was cut (patch 10); exit 0 after a
    run, 3 when every pending run is held or not ready, 4 when none is pending (or no checkout of their code
    is configured)."""
    from fastregen.study import DONE_NONE_PENDING, run_queue

    where = authors_checkout(args.authors)
    if where is None:
        print("authors.py queue: no checkout of the authors' code configured (--authors, $FASTREGEN_DR4SR_AUTHORS "
              f"or {HERE / 'runs' / 'authors.path'}); nothing to run")
        return DONE_NONE_PENDING
    Authors(where)
    _needs()
    results = Path(args.results)

    def converted(name: str, spec: str) -> Path | None:
        out = WORK / "data" / f"{args.dataset}-{name}"
        if spec != "original" and not (HERE.parent / spec / "regenerated.json").exists():
            return None  # its DR4SR folder is not finished: the run waits
        with file_lock(WORK / "locks" / f"convert-{name}.lock"):
            if not (out / "convert.json").exists():
                train = spec if spec == "original" else str(HERE.parent / spec)
                convert(argparse.Namespace(authors=where, data=args.data, train=train,
                                           training_set="combined_authors", out=str(out)))
        return out

    def declared():
        return [c for c in (converted(n, s) for n, s in QUEUE) if c is not None]

    def run_id(conv: Path) -> str:
        return _run_id(_converted(conv)[1], args.dataset, 2023, None)

    def done():
        return {r["run_id"] for r in read_rows(results, COLUMNS)}

    def train(conv: Path) -> None:
        run(argparse.Namespace(authors=where, converted=str(conv), dataset=args.dataset, threads=args.threads,
                               seed=None, epochs=None, results=str(results)))
    # the queue's own lock names differ from run()'s per-run lock, which run() takes again inside
    code = run_queue(declared, run_id, done, WORK / "locks", train, max_runs=args.max_runs, lock_prefix="queue-")
    if code == DONE_NONE_PENDING and len(declared()) < len(QUEUE):
        return 3  # a set is not ready yet: not "none pending"
    return code


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="a fastregen training set -> the authors' .pth files")
    c.add_argument("--authors", required=True, help="the authors' repository (git dir from `fetch`, or a checkout)")
    c.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "beauty.txt"))
    c.add_argument("--train", default="original",
                   help="'original' (the leave-one-out train split), a DR4SR output folder, or a dataset file")
    c.add_argument("--training-set", default="combined_authors", help="which set of a DR4SR folder")
    c.add_argument("--out", required=True)
    k = sub.add_parser("check", help="score the released checkpoint on a converted validation split")
    k.add_argument("--authors", required=True)
    k.add_argument("--converted", required=True)
    k.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("run", help="train their SASRec on a converted set and append a result row")
    r.add_argument("--authors", required=True)
    r.add_argument("--converted", required=True)
    r.add_argument("--dataset", default="beauty")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--seed", type=int, default=None, help="overrides their seed 2023")
    r.add_argument("--epochs", type=int, default=None, help="smoke runs only: overrides their 1000-epoch cap")
    r.add_argument("--results", default=str(RESULTS))
    q = sub.add_parser("queue", help="a study worker's turn: the next pending run of QUEUE (issue 26, stage 2)")
    q.add_argument("--authors", default=None,
                   help="their repository (default: $FASTREGEN_DR4SR_AUTHORS or benchmarks/runs/authors.path)")
    q.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "beauty.txt"))
    q.add_argument("--dataset", default="beauty")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--max-runs", type=int, default=0)
    q.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.command == "run" and args.epochs is not None and Path(args.results).resolve() == RESULTS.resolve():
        print("authors.py: --epochs makes a smoke run, not a result: give --results another file", file=sys.stderr)
        return 2
    try:
        return {"convert": convert, "check": check, "run": run, "queue": queue}[args.command](args)
    except UsageError as e:
        print(f"authors.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
