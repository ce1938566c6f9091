"""torch.distributed: data-parallel training and sharded inference on 2 gloo processes (CPU).

* The Trainer on 2 ranks with batch b takes the steps of 1 process with batch 2b (softmax loss, no
  dropout, so nothing random but the shared batch order): same losses, same weights.
* ``torchrun --nproc-per-node 2 -m fastregen regenerate`` writes the byte-identical regenerated.txt of
  one process for the same regenerator; a rank that dies leaves no output and the rerun resumes; more
  processes than sequences is a clear error; ``fastregen train`` under torchrun writes once, and resumes.
* Item tables updated row by row (``item_updates="lazy"``, `LazyAdam`): the row-sparse all-reduce gives
  every rank the same gradient (the union of the ranks' rows, averaged), so 2 ranks take the steps of 1
  process with the doubled batch (SASRec and the regenerator) and keep identical tables and Adam states.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import _distributed_workers as workers
from fastregen.data import load, save
from fastregen.training import distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn_name: str, arg, tmp_path, world_size: int = 2) -> list:
    import torch.multiprocessing as mp

    mp.spawn(workers.run, args=(world_size, _free_port(), fn_name, arg, str(tmp_path)), nprocs=world_size)
    return [torch.load(tmp_path / f"{fn_name}-{r}.pt", weights_only=False) for r in range(world_size)]


def test_two_ranks_take_the_steps_of_one_process_with_the_doubled_batch(tmp_path):
    one = workers.train_target_model(batch_size=10)
    two = spawn("train_target_model", 5, tmp_path)
    # 41 examples: 4 global batches of 10, the last of 1 (rank 1's share of it is empty)
    assert len(one["losses"]) == len(two[0]["losses"]) == 5
    for r in two:
        np.testing.assert_allclose(r["losses"], one["losses"], rtol=1e-5)
        assert r["loss"] == pytest.approx(one["loss"], rel=1e-5)
        assert r["normaliser"] == pytest.approx(one["normaliser"] / 2)
        for name, value in one["state"].items():
            torch.testing.assert_close(r["state"][name], value, rtol=1e-4, atol=1e-6, msg=name)
    # negatives, augmentations: each rank draws from its own stream
    assert two[0]["draws"] != two[1]["draws"]

    one = workers.train_regenerator(batch_size=16)
    two = spawn("train_regenerator", 8, tmp_path)
    assert len(two[0]["losses"]) == len(one["losses"]) > 1
    np.testing.assert_allclose(two[0]["losses"], one["losses"], rtol=1e-5)
    for name, value in one["state"].items():
        torch.testing.assert_close(two[1]["state"][name], value, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("case", ["rows", "none", "empty"])
def test_row_sparse_gradients_are_averaged_over_the_union_of_the_ranks_rows(tmp_path, case):
    # rank 0: rows 1 and 4 (4 twice, summed); rank 1: rows 4 and 5, no gradient, or a sparse one of no rows
    out = spawn("sync_rows", case, tmp_path)
    assert out[0] == out[1]  # the same gradient on every rank
    got = out[0]
    assert got["sparse"] and got["coalesced"]
    if case == "rows":
        assert got["rows"] == [1, 4, 5] and got["values"] == [[1.5, 2.0], [18.0, 24.0], [5.0, 10.0]]
    else:
        assert got["rows"] == [1, 4] and got["values"] == [[1.5, 2.0], [3.0, 4.0]]
    assert got["bias"] == [1.0, 2.0, 3.0] and got["loss"] == 0.5  # the dense parameter and the loss ride along


def test_lazy_item_updates_on_two_ranks_take_the_steps_of_one_process_with_the_doubled_batch(tmp_path):
    # 41 examples in global batches of 10: the last holds 1, so rank 1's share of it touches no row
    one = workers.lazy_runs(10)
    two = spawn("lazy_runs", 5, tmp_path)
    for name, ref in one.items():
        a, b = two[0][name], two[1][name]
        # every rank computed its own step from the same synced gradients: bit-identical tables and states
        for key in ref["state"]:
            assert torch.equal(a["state"][key], b["state"][key]), (name, key)
        assert a["adam"]["step"] == b["adam"]["step"] == ref["adam"]["step"] == len(ref["losses"])
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a["adam"][key], b["adam"][key]), (name, key)
        # the 1-process run of the same global batches, up to float32 summation order (the all-reduce adds
        # the two shares' gradients, one backward pass adds them in another order): ~1e-7 relative in the
        # gradients, which Adam's normalised steps (lr 0.01) carry into the weights as ~1e-6 at most
        np.testing.assert_allclose(a["losses"], ref["losses"], rtol=1e-5)
        for key, value in ref["state"].items():
            got = a["state"][key]
            if key.endswith("in_proj_bias"):
                # the key bias's gradient is zero in exact arithmetic (softmax ignores a constant over keys):
                # float noise of ~1e-10, which Adam (eps 1e-9) turns into steps of +-lr either way; not compared
                d = len(value) // 3
                got, value = torch.cat([got[:d], got[2 * d:]]), torch.cat([value[:d], value[2 * d:]])
            torch.testing.assert_close(got, value, rtol=1e-4, atol=1e-5, msg=f"{name} {key}")
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(a["adam"][key], ref["adam"][key], rtol=1e-4, atol=1e-7, msg=f"{name} {key}")
        # rows looked up by no step keep zero moments on every rank, as in one process
        assert torch.equal(a["adam"]["exp_avg_sq"] == 0, ref["adam"]["exp_avg_sq"] == 0), name


def test_helpers_alone_are_no_ops():
    assert distributed.current() is None and distributed.is_main()
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.gather_object(3) == [3]
    assert distributed.main_first(lambda: 5, lambda: 6) == 5
    batch = np.arange(7)
    assert distributed.shard(batch, None) is batch
    shares = [distributed.shard(batch, distributed.World(r, 3)).tolist() for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]
    assert distributed.rank_seed(0, 0) != distributed.rank_seed(0, 1)
    assert distributed.rank_seed(0, 1) == distributed.rank_seed(0, 1)


# ------------------------------------------------------------------------ torchrun
TINY = """d_model: 16
n_heads: 2
n_encoder_layers: 1
n_decoder_layers: 1
d_ff: 32
K: 3
epochs: 1
batch_size: 64
max_len: 12
max_pattern_len: 5
dropout: 0.1
gamma: 0.3
decode_batch_size: 32
progress: false
"""

FAULT = """
import os, sys
import fastregen.generator.decode as infer
from fastregen.training import Trainer
stage = os.environ["FAULT_STAGE"]
real = infer._decode_batch if stage == "inference" else Trainer.step
calls = []
def dying(*args, **kwargs):
    calls.append(1)
    if os.environ.get("RANK") == "1" and len(calls) == int(os.environ.get("FAULT_AT", "2")):
        os._exit(3)  # a rank killed mid-stage
    return real(*args, **kwargs)
if stage == "inference":
    infer._decode_batch = dying
else:
    Trainer.step = dying
from fastregen.cli import main
sys.argv[0] = "fastregen"
main()
"""


def _env(**extra):
    env = dict(os.environ, **extra)
    env["OMP_NUM_THREADS"] = "1"
    return env


def fastregen(*args, nproc: int = 1, script: Path | None = None, env=None):
    if nproc == 1:
        cmd = [sys.executable, "-m", "fastregen", *args]
    else:
        target = [str(script)] if script is not None else ["-m", "fastregen"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               *target, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**(env or {})), timeout=600)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One process: the whole pipeline on 300 synthetic sequences (the reference output)."""
    from fastregen.data import synthetic

    root = tmp_path_factory.mktemp("dist")
    save(synthetic("demo", n_users=300, n_items=200, n_patterns=20), root / "data.txt")
    (root / "tiny.yaml").write_text(TINY)
    out = fastregen("regenerate", str(root / "data.txt"), "--out", str(root / "one"), "--config",
                    str(root / "tiny.yaml"), "--threads", "1")
    assert out.returncode == 0, out.stderr
    return root


def _copy_until_inference(root: Path, name: str) -> Path:
    dst = root / name
    dst.mkdir()
    for f in ("config.yaml", "source.json", "patterns.txt", "pairs.npz", "regenerator.pt"):
        shutil.copy(root / "one" / f, dst / f)
    return dst


def test_two_process_inference_writes_the_same_file(finished_run):
    root = finished_run
    dst = _copy_until_inference(root, "two")
    out = fastregen("regenerate", str(root / "data.txt"), "--out", str(dst), "--config", str(root / "tiny.yaml"),
                    "--threads", "1", nproc=2)
    assert out.returncode == 0, out.stderr
    assert (dst / "regenerated.txt").read_bytes() == (root / "one" / "regenerated.txt").read_bytes()
    assert (dst / "regenerated_patterns.txt").read_bytes() == (root / "one" / "regenerated_patterns.txt").read_bytes()
    assert out.stdout.count("done in") == 1  # rank 0 alone reports
    import json

    assert json.loads((dst / "regenerated.json").read_text())["processes"] == 2


@pytest.mark.parametrize("stage", ["regenerator", "inference"])
def test_a_rank_dying_mid_stage_leaves_no_output_and_the_rerun_resumes(finished_run, tmp_path, stage):
    root = finished_run
    dst = _copy_until_inference(root, f"dies-{stage}")
    if stage == "regenerator":
        (dst / "regenerator.pt").unlink()
    script = tmp_path / "fault.py"
    script.write_text(FAULT)
    out = fastregen("regenerate", str(root / "data.txt"), "--out", str(dst), "--config", str(root / "tiny.yaml"),
                    "--threads", "1", nproc=2, script=script, env={"FAULT_STAGE": stage})
    assert out.returncode != 0
    left = sorted(p.name for p in dst.iterdir())
    done = ["config.yaml", "pairs.npz", "patterns.txt", "source.json", "stages.json"]  # stages.json: the runner's record
    assert left == (done if stage == "regenerator" else sorted(done + ["regenerator.pt"])), left
    import json

    assert stage not in json.loads((dst / "stages.json").read_text())
    again = fastregen("regenerate", str(root / "data.txt"), "--out", str(dst), "--config", str(root / "tiny.yaml"),
                      "--threads", "1")
    assert again.returncode == 0, again.stderr
    assert ("regenerator reused" in again.stdout) == (stage == "inference")
    assert (dst / "regenerated.txt").read_bytes() == (root / "one" / "regenerated.txt").read_bytes()


def test_more_processes_than_sequences_is_a_clear_error(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "two.txt").write_text("1 1 2 3 4 5\n2 2 3 4 5 6\n")
    out = fastregen("regenerate", str(tmp_path / "two.txt"), "--out", str(tmp_path / "o"), "--config",
                    str(tmp_path / "tiny.yaml"), nproc=3)
    assert out.returncode != 0
    assert "error: 3 processes for 2 sequences" in out.stderr
    assert not (tmp_path / "o" / "patterns.txt").exists()


@pytest.mark.parametrize("updates", ["dense", "lazy"])
def test_train_under_torchrun_writes_one_run_folder(finished_run, updates):
    # lazy: the item table updated row by row (LazyAdam), its gradients averaged by the row-sparse all-reduce
    root = finished_run
    train, resumed = f"train-{updates}", f"resumed-{updates}"
    lazy = ("--set", f"item_updates={updates}")
    out = fastregen("train", "--data", str(root / "data.txt"), "--out", str(root / train), "--epochs", "2",
                    "--threads", "1", "--no-progress", "--set", "embed_dim=8", "--set", "max_len=8", *lazy, nproc=2)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('"test"') == 1
    assert sorted(p.name for p in (root / train).iterdir()) == [
        "checkpoint.pt", "config.yaml", "metrics.jsonl", "model.pt", "provenance.json", "result.json",
        "test_ranks.npy"]
    assert len((root / train / "metrics.jsonl").read_text().splitlines()) == 2
    assert f"item_updates: {updates}" in (root / train / "config.yaml").read_text()
    # rank 1 killed in the second epoch (two global batches per epoch): the rerun goes on from rank 0's
    # checkpoint of the first, every rank taking its own random states, and ends as the uninterrupted run
    script = root / "fault.py"
    script.write_text(FAULT)
    args = ("train", "--data", str(root / "data.txt"), "--out", str(root / resumed), "--epochs", "2", "--threads",
            "1", "--no-progress", "--set", "embed_dim=8", "--set", "max_len=8", *lazy)
    died = fastregen(*args, nproc=2, script=script, env={"FAULT_STAGE": "train", "FAULT_AT": "3"})
    assert died.returncode != 0 and (root / resumed / "checkpoint.pt").exists()
    assert not (root / resumed / "result.json").exists()
    again = fastregen(*args, nproc=2)
    assert again.returncode == 0, again.stderr
    a, b = (json.loads((root / d / "result.json").read_text()) for d in (train, resumed))
    assert b["resumed_epochs"] == 1 and a["test"] == b["test"] and a["valid"] == b["valid"]
    from fastregen.models import load_model

    m1, m2 = load_model(root / train / "model.pt"), load_model(root / resumed / "model.pt")
    assert all(torch.equal(x, y) for x, y in zip(m1.state_dict().values(), m2.state_dict().values()))
    ds = load(root / "data.txt")
    assert len(np.load(root / train / "test_ranks.npy")) == len(ds)
