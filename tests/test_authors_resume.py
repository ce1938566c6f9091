"""benchmarks/authors.py patch 10: the authors' trainer resumes a killed run exactly.

The end-to-end test runs their code and needs a checkout of USTC-StarTeam/DR4SR
(``FASTREGEN_DR4SR_AUTHORS``, default /work/peer-authors) and their extra packages;
it skips with the reason otherwise. The others need neither.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import authors  # noqa: E402
from _results import load_ranks  # noqa: E402

AUTHORS_DIR = Path(os.environ.get("FASTREGEN_DR4SR_AUTHORS", "/work/peer-authors"))
_MISSING = [m for m in ("pandas", "torchmetrics", "matplotlib") if importlib.util.find_spec(m) is None]
needs_their_code = pytest.mark.skipif(
    not (AUTHORS_DIR / "model" / "basemodel.py").is_file() or bool(_MISSING),
    reason=f"no checkout of USTC-StarTeam/DR4SR at {AUTHORS_DIR} (set FASTREGEN_DR4SR_AUTHORS to one)"
    if not (AUTHORS_DIR / "model" / "basemodel.py").is_file()
    else f"their code needs {', '.join(_MISSING)} (pip install {' '.join(_MISSING)})")

EPOCHS = 40  # the cap; early stopping (patience 3 below) ends the tiny run long before
PATIENCE = 3


def tiny_converted(out: Path, n_users: int = 100, n_items: int = 110, seed: int = 0) -> Path:
    """A folder as `authors.py convert` writes it, of learnable synthetic sequences (mostly i -> i + 1);
    over 100 items, as their evaluation takes the top 100 (``topk: 100``, configs/basemodel.yaml)."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_users):
        x, s = int(rng.integers(1, n_items + 1)), []
        for _ in range(int(rng.integers(5, 14))):
            s.append(x)
            x = x % n_items + 1 if rng.random() < 0.8 else int(rng.integers(1, n_items + 1))
        seqs.append(s)
    seqs[0] = list(range(1, n_items + 1))  # every item occurs (their loader counts items in inter.csv)
    rows = [authors.split_rows(u + 1, s) for u, s in enumerate(seqs)]
    dom = out / authors.DOMAIN
    dom.mkdir(parents=True)
    for i, name in enumerate(("train", "val", "test")):
        authors._atomic_save([r[i] for r in rows], dom / f"{name}.pth")
    with open(dom / "inter.csv", "w") as f:
        f.write("user_id,item_id,rating,timestamp,domain\n")
        for u, s in enumerate(seqs):
            f.writelines(f"{u + 1},{x},5.0,{t},0\n" for t, x in enumerate(s))
    np.save(out / "users.npy", np.arange(1, n_users + 1, dtype=np.int64))
    meta = {"train_set": "original", "train_rows": len(rows), "train_sha256": authors._sha256(dom / "train.pth")}
    (out / "convert.json").write_text(json.dumps(meta))
    return out


# ------------------------------------------------------------------ without their code
def test_the_transcribed_fit_loop_is_theirs_but_the_marked_lines():
    """Patch 10's fit_loop with its "resume" lines undone hashes to FIT_LOOP_SHA256, the hash the driver
    requires of their BaseModel.fit_loop (model/basemodel.py:117-169 at e25d0c3) before it replaces it."""
    src = authors.RESUME_PATCH[authors.RESUME_PATCH.index("def fit_loop(self):"):
                               authors.RESUME_PATCH.index("BaseModel.fit_loop = fit_loop")]
    marked = [line for line in src.splitlines() if "# resume:" in line]
    assert len(marked) == 3
    undone = "\n".join(line for line in src.splitlines() if "restore_state(" not in line and "save_state(" not in line)
    undone = re.sub(r"range\(nepoch, (self\.config\['train'\]\['epochs'\])\):\s+# resume:.*", r"range(\1):", undone)
    theirs = textwrap.indent(undone.rstrip("\n") + "\n", "    ")  # as inspect.getsource gives a method
    assert hashlib.sha256(theirs.encode()).hexdigest() == authors.FIT_LOOP_SHA256
    compile(authors.DRIVER, "_fastregen_driver.py", "exec")


def test_a_checkpoint_of_other_options_is_refused_in_one_line(tmp_path):
    fp = {"format": authors.RESUME_FORMAT, "run_id": "abc", "authors_commit": "e25d0c3", "seed": 2023,
          "max_epochs": 1000, "threads": 1, "data_sha256": {"train.pth": "00"}}
    path = tmp_path / "abc.pt"
    assert authors.resume_point(path, fp) is None  # none yet: a fresh start
    torch.save({"fingerprint": fp, "next_epoch": 7}, path)
    assert authors.resume_point(path, fp) == 7
    for key, other in (("threads", 2), ("data_sha256", {"train.pth": "11"}), ("authors_commit", "0000000")):
        with pytest.raises(authors.UsageError) as e:
            authors.resume_point(path, {**fp, key: other})
        msg = str(e.value)
        assert "\n" not in msg and f"({key}: " in msg and "other options" in msg and "delete it" in msg
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(authors.UsageError, match="not a readable resume checkpoint"):
        authors.resume_point(path, fp)


# ------------------------------------------------------------------ their code
@needs_their_code
def test_a_killed_run_resumes_exactly_as_their_uninterrupted_loop(tmp_path, monkeypatch):
    """Their own fit_loop, uninterrupted, against `authors.py run` killed (SIGKILL) after an epoch past the
    best one (early-stopping counter > 0) and run again: the same epochs, best epoch, validation and test
    metrics, per-user ranks, and the same final model, optimizer, best parameters and torch RNG state."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(authors, "WORK", tmp_path / "work")
    setup = authors.setup_code

    def tiny(*a, **k):  # early stopping ends the run (its counter crosses the kill); several batches an epoch
        code = setup(*a, **k)
        cfg = code / "configs" / "basemodel.yaml"
        text = cfg.read_text()
        for old, new in (("early_stop_patience: 20", f"early_stop_patience: {PATIENCE}"),
                         ("batch_size: 256", "batch_size: 32")):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        cfg.write_text(text)
        return code
    monkeypatch.setattr(authors, "setup_code", tiny)
    conv = tiny_converted(tmp_path / "conv")
    theirs = authors.Authors(AUTHORS_DIR)

    code = authors.setup_code(theirs, conv, "fr-ref", EPOCHS, None, root=tmp_path / "ref")
    ref_json = tmp_path / "ref.json"
    authors._driver(code, 1, ref_json, "run", "-", "{}", "-m", "SASRec", "-d", "fr-ref")  # "-": their fit_loop
    ref = json.loads(ref_json.read_text())
    assert ref["epochs"] < EPOCHS and ref["resumed_from"] is None, "the reference run did not stop early"
    kill = ref["best_epoch"] + 2  # epochs 0 .. best + 1 done: the counter is 1 at the checkpoint
    assert kill < ref["epochs"]

    args = argparse.Namespace(authors=str(AUTHORS_DIR), converted=str(conv), dataset="beauty", threads=1,
                              seed=None, epochs=EPOCHS, results=str(tmp_path / "authors.csv"))
    monkeypatch.setenv("FASTREGEN_AUTHORS_KILL_AFTER", str(kill))
    with pytest.raises(RuntimeError, match=r"exit -9"):
        authors.run(args)
    resume = next((tmp_path / "work" / "resume").glob("*.pt"))
    state = torch.load(resume, map_location="cpu", weights_only=False)
    assert state["next_epoch"] == kill and state["early_stopping"]["counter"] == 1

    with pytest.raises(authors.UsageError, match=r"other options \(threads: 1 there, 2 now\)"):
        authors.run(argparse.Namespace(**{**vars(args), "threads": 2}))
    monkeypatch.delenv("FASTREGEN_AUTHORS_KILL_AFTER")
    assert authors.run(args) == 0
    run_id = resume.stem
    got = json.loads((tmp_path / "work" / "results" / f"{run_id}.json").read_text())
    assert got["resumed_from"] == kill and got["seconds_before"] > 0
    for key in ("epochs", "best_epoch", "best_valid", "test", "users", "ranks", "state_sha256"):
        assert got[key] == ref[key], key
    assert "resumed after epoch" in (tmp_path / "work" / "results" / f"{run_id}.log").read_text()
    assert not resume.exists()  # the row is written: the checkpoint is gone
    row = authors.read_rows(tmp_path / "authors.csv", authors.COLUMNS)[0]
    assert int(row["epochs"]) == ref["epochs"] and float(row["test_ndcg@20"]) == ref["test"]["ndcg@20"]
    ranks, cutoff = load_ranks(tmp_path / "ranks" / "authors" / f"{run_id}.npz")  # in fastregen's user order
    by_user = dict(zip(ref["users"], ref["ranks"]))
    assert ranks.tolist() == [min(by_user[u], cutoff) for u in np.load(conv / "users.npy").tolist()]
