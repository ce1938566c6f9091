"""Resumable training (`fastregen.training.checkpoint`): a run SIGKILLed anywhere and rerun ends bit-identical.

Each kill test trains in subprocesses (tests/_resume_worker.py, one thread):
an uninterrupted run, a run killed at a seeded random optimizer step (or
between an epoch's log line and its checkpoint), the rerun of that folder
to its end; the weights must be torch.equal and the metrics equal. The
in-process tests below cover the rerun of a finished folder (nothing is
trained or written), the refusal of another config and the atomic write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

WORKER = Path(__file__).with_name("_resume_worker.py")


def _start(kind, out, result, kill=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, os.fspath(WORKER), kind, os.fspath(out), os.fspath(result)] + ([kill] if kill else [])
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc, result, killed=False, timeout=180):
    _, err = proc.communicate(timeout=timeout)
    if killed:
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-3000:])
        assert not Path(result).exists()
        return None
    assert proc.returncode == 0, err[-3000:]
    return torch.load(result, weights_only=False)


def _same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


def _lines(path):
    """metrics.jsonl without its timings."""
    return [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
            for line in Path(path).read_text().splitlines()]


def _kill_and_resume(tmp_path, kind, seed, kill_kind="step"):
    """An uninterrupted run and, beside it, a run killed at a seeded random point then resumed: both results.

    The kill point is drawn from the step (or epoch) counts of the same
    configuration measured by `_counts` (runs are deterministic).
    """
    steps, epochs = COUNTS[kind.removesuffix("_sampled").removesuffix("_lazy")]
    rng = np.random.default_rng(seed)
    if kill_kind == "step":
        at = int(rng.integers(1, steps))  # after step `at` (of 1..steps-1): the run never finishes
        done = at // (steps // epochs)  # epochs whose checkpoint was written before the kill
    else:
        at = int(rng.integers(1, epochs))  # at epoch `at`'s log line, before its checkpoint
        done = at
    run = tmp_path / "run"
    full = _start(kind, tmp_path / "full", tmp_path / "full.pt")  # the two side by side: 2 cores
    _finish(_start(kind, run, tmp_path / "killed.pt", kill=f"{kill_kind}:{at}"), tmp_path / "killed.pt", killed=True)
    assert (run / ("regenerator.resume.pt" if kind.startswith("regen") else "checkpoint.pt")).exists() == (done > 0)
    resumed = _finish(_start(kind, run, tmp_path / "resumed.pt"), tmp_path / "resumed.pt")
    full = _finish(full, tmp_path / "full.pt")
    assert full["trainer"]["resumed_epochs"] == 0
    assert (full["trainer"]["steps"], full["trainer"]["epochs"]) == (steps, epochs)
    assert resumed["trainer"]["resumed_epochs"] == done and not resumed["trainer"]["finished"]
    assert resumed["trainer"]["steps"] == steps
    return full, resumed


# optimizer steps and epochs of each worker run (tests/_resume_worker.py's data and configs)
COUNTS = {"sasrec": (20, 4), "gru4rec": (20, 4), "regen": (112, 4), "plus": (15, 3)}


# slow: three one-thread processes each (two side by side), 25-30 s on the shared 2-core machine; the
# in-process tests below check the resumed result too (without a real SIGKILL)
@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed", "kill"), [("sasrec", 0, "step"), ("gru4rec", 1, "log"),
                                                    ("sasrec_sampled", 4, "step"), ("sasrec_lazy", 5, "step")])
def test_target_model_killed_and_resumed_is_bit_identical(tmp_path, kind, seed, kill):
    full, resumed = _kill_and_resume(tmp_path, kind, seed, kill)
    _same_tensors(full["state"], resumed["state"])
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    assert resumed["best_epoch"] == full["best_epoch"]
    assert _lines(tmp_path / "run" / "metrics.jsonl") == _lines(tmp_path / "full" / "metrics.jsonl")
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("full", "run"))
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    assert np.array_equal(np.load(tmp_path / "full" / "test_ranks.npy"), np.load(tmp_path / "run" / "test_ranks.npy"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["regen", "regen_sampled"])  # sampled: negatives drawn from the checkpointed generator
def test_regenerator_pretraining_killed_and_resumed_is_bit_identical(tmp_path, kind):
    full, resumed = _kill_and_resume(tmp_path, kind, 2)
    _same_tensors(full["state"], resumed["state"])
    assert resumed["tau"] == full["tau"] and resumed["history"] == full["history"]
    assert not (tmp_path / "run" / "regenerator.resume.pt").exists()  # removed once the regenerator is complete


@pytest.mark.slow
def test_dr4sr_plus_bilevel_killed_and_resumed_is_bit_identical(tmp_path):
    full, resumed = _kill_and_resume(tmp_path, "plus", 3)
    assert full["upper_steps"] > 0
    _same_tensors(full["state"], resumed["state"])
    _same_tensors(full["phi"], resumed["phi"])
    assert resumed["upper_steps"] == full["upper_steps"]
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    assert torch.equal(resumed["sampled"].nan_to_num(-1), full["sampled"].nan_to_num(-1))


# ------------------------------------------------------------------ in-process: refusal, atomicity, hooks
SMALL = {"progress": False, "embed_dim": 8, "max_len": 8, "batch_size": 32, "num_threads": 1, "epochs": 2}


@pytest.fixture
def small_data():
    from fastregen.data import synthetic

    return synthetic("demo", n_users=60, n_items=40, avg_len=6, n_patterns=5, pattern_len=3, seed=1)


def _count_steps(monkeypatch):
    """Patch `Trainer.step` to count its calls; returns the list it appends to."""
    from fastregen.training import Trainer

    real, calls = Trainer.step, []

    def counting(self, batch):
        calls.append(self.epoch)
        return real(self, batch)

    monkeypatch.setattr(Trainer, "step", counting)
    return calls


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _interrupt_at(epoch):
    """A log callback that ends the run (like a kill) at ``epoch``'s log line, before its checkpoint:
    the folder holds the checkpoint of epochs 0..epoch-1."""
    class Killed(BaseException):
        pass

    def log(record):
        if record["epoch"] == epoch:
            raise Killed
    return Killed, log


def test_config_change_is_refused_naming_the_field_and_nothing_is_written(tmp_path, small_data):
    from fastregen.training import fit_and_evaluate

    out = tmp_path / "run"
    fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **SMALL)
    before = _snapshot(out)
    with pytest.raises(ValueError) as err:
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "lr": 0.01})
    msg = str(err.value)
    assert "\n" not in msg and "config.lr: 0.001 in the checkpoint, 0.01 now" in msg and "checkpoint.pt" in msg
    with pytest.raises(ValueError, match=r"config\.seed: 0 in the checkpoint, 1 now"):
        fit_and_evaluate(small_data, "sasrec", seed=1, out_dir=out, **SMALL)
    other = small_data.subset(np.arange(50))
    with pytest.raises(ValueError, match="data_sha256"):
        fit_and_evaluate(other, "sasrec", seed=0, out_dir=out, **SMALL)
    assert _snapshot(out) == before
    # fields that change no result resume (the run is finished: it is returned as it is)
    res = fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "eval_batch_size": 7})
    assert res["resumed_epochs"] == 2 and res["trainer"].finished
    assert _snapshot(out) == before


def test_an_interrupted_run_with_another_config_is_refused_too(tmp_path, small_data):
    from fastregen.training import CallbackHook, fit_and_evaluate

    Killed, log = _interrupt_at(1)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, log=log, **{**SMALL, "epochs": 3})
    before = _snapshot(out)
    with pytest.raises(ValueError, match=r"config\.epochs: 3 in the checkpoint, 4 now"):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "epochs": 4})
    # what the Trainer adds to the fingerprint (here its hooks) is checked before anything is written too
    with pytest.raises(ValueError, match=r"trainer\.hooks: \['EarlyStopping'\] in the checkpoint, "
                                         r"\['EarlyStopping', 'CallbackHook'\] now"):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, hooks=[CallbackHook()], **{**SMALL, "epochs": 3})
    assert _snapshot(out) == before
    res = fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "epochs": 3})
    assert res["resumed_epochs"] == 1 and res["epochs"] == 3


def test_a_checkpoint_of_a_version_without_an_option_resumes_at_its_default(tmp_path, small_data):
    # a run in progress must survive an upgrade that adds an option: the option, absent from the
    # checkpoint, matches when it is at its default, and is refused when it is set otherwise
    import torch

    from fastregen.training import fit_and_evaluate

    Killed, log = _interrupt_at(1)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, log=log, **{**SMALL, "epochs": 3})
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["fingerprint"]["config"]["repeated_target"]  # as a version before that option wrote it
    torch.save(state, out / "checkpoint.pt")
    before = _snapshot(out)
    with pytest.raises(ValueError, match=r"config\.repeated_target: \(absent\) in the checkpoint, 'mask' now"):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "epochs": 3, "repeated_target": "mask"})
    assert _snapshot(out) == before
    res = fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "epochs": 3})
    assert res["resumed_epochs"] == 1 and res["epochs"] == 3


def test_a_kill_while_writing_leaves_the_previous_checkpoint(tmp_path, small_data, monkeypatch):
    from fastregen.training import checkpoint as ckpt_mod
    from fastregen.training import fit_and_evaluate

    Killed, log = _interrupt_at(1)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, log=log, **{**SMALL, "epochs": 3})
    first = (out / "checkpoint.pt").read_bytes()

    real_save = torch.save

    def dying_save(obj, f, *a, **k):  # half a file, then the process "dies"
        real_save(obj, f, *a, **k)
        f.truncate(len(first) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "epochs": 3})
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    assert (out / "checkpoint.pt").read_bytes() == first
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    state = ckpt_mod.Checkpoint(out / "checkpoint.pt").read()
    assert len(state["history"]) == 1 and not state["finished"]
    full = fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=tmp_path / "full", **{**SMALL, "epochs": 3})
    res = fit_and_evaluate(small_data, "sasrec", seed=0, out_dir=out, **{**SMALL, "epochs": 3})
    assert res["resumed_epochs"] == 1 and res["test"] == full["test"]
    _same_tensors(full["model"].state_dict(), res["model"].state_dict())


def test_trainer_checkpoint_restores_hooks_and_refuses_other_trainers(tmp_path):
    """At the Trainer level: hook state round trip, a checkpoint of other settings is refused, format check."""
    from fastregen.data import synthetic
    from fastregen.models import build_model
    from fastregen.training import EarlyStopping, Examples, Hook, NextItemLoss, Trainer
    from fastregen.training.checkpoint import Checkpoint

    class Counter(Hook):
        def __init__(self):
            self.n = 0

        def on_step_end(self, trainer, batch, loss):
            self.n += 1

        def state_dict(self):
            return {"n": self.n, "arr": np.arange(3, dtype=np.uint32)}

        def load_state_dict(self, state):
            assert state["arr"].dtype == np.uint32
            self.n = state["n"]

    data = synthetic("demo", n_users=40, n_items=30, avg_len=5, n_patterns=3, pattern_len=3, seed=0)
    ex = Examples(data, 6, "all")

    def trainer(path, batch_size=16, epochs_stop=None):
        torch.manual_seed(0)
        model = build_model("sasrec", 30, embed_dim=8, max_len=6)
        stop = EarlyStopping(lambda m: {"x": float(sum(p.detach().sum() for p in m.parameters()))}, "x")
        hooks = [stop, Counter()]
        return Trainer(model, NextItemLoss("bce", 1), hooks=hooks, batch_size=batch_size, seed=0, progress=False,
                       checkpoint=Checkpoint(path, {"run": "a"})), hooks

    t, (stop, counter) = trainer(tmp_path / "c.pt")
    t.fit(ex, 2)
    state = Checkpoint(tmp_path / "c.pt").read()
    assert state["finished"] and "optimizer" not in state and state["hooks"][1]["n"] == counter.n > 0
    t2, (stop2, counter2) = trainer(tmp_path / "c.pt")
    t2.fit(ex, 2)
    assert t2.finished and counter2.n == counter.n and stop2.best_epoch == stop.best_epoch
    _same_tensors(t.model.state_dict(), t2.model.state_dict())
    t3, _ = trainer(tmp_path / "c.pt", batch_size=8)
    with pytest.raises(ValueError, match=r"trainer\.batch_size: 16 in the checkpoint, 8 now"):
        t3.fit(ex, 2)
    with pytest.raises(ValueError, match="on_mismatch must be"):
        Checkpoint(tmp_path / "c.pt", on_mismatch="ignore")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fastregen training checkpoint"):
        Checkpoint(tmp_path / "other.pt").read()
    # restart: a checkpoint of other settings is ignored and replaced
    t4, _ = trainer(tmp_path / "c.pt", batch_size=8)
    t4.checkpoint.on_mismatch = "restart"
    t4.fit(ex, 1)
    assert t4.resumed_epochs == 0 and Checkpoint(tmp_path / "c.pt").read()["fingerprint"]["trainer"]["batch_size"] == 8


def test_pretrain_resume_refuses_or_restarts_on_another_config(tmp_path, monkeypatch):
    """`pretrain` alone refuses another config's epoch checkpoint (as the pipelines do, `fastregen.pipeline`),
    or with ``on_mismatch="restart"`` trains from scratch."""
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import pretrain
    from fastregen.generator.pretrain import resume_path
    from fastregen.training import Trainer
    from test_dr4sr_model import TINY, toy_pairs

    pairs = toy_pairs(n=60)
    cfg = RegenConfig(**{**TINY, "epochs": 3, "valid_fraction": 0.1})
    full, _ = pretrain(pairs, 30, cfg)

    real = Trainer.step

    def dying(self, batch):  # the second epoch's first step: the first epoch's checkpoint is written
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(Trainer, "step", dying)
    with pytest.raises(KeyboardInterrupt):
        pretrain(pairs, 30, cfg, checkpoint=tmp_path / "r.pt")
    monkeypatch.setattr(Trainer, "step", real)
    assert resume_path(tmp_path / "r.pt") == tmp_path / "r.resume.pt" and (tmp_path / "r.resume.pt").exists()
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"config\.lr: 0\.001 in the checkpoint, 0\.002 now"):
        pretrain(pairs, 30, RegenConfig(**{**TINY, "epochs": 3, "valid_fraction": 0.1, "lr": 2e-3}),
                 checkpoint=tmp_path / "r.pt")
    # a decoding option is no part of pre-training: the run resumes
    calls = _count_steps(monkeypatch)
    m, hist = pretrain(pairs, 30, RegenConfig(**{**TINY, "epochs": 3, "valid_fraction": 0.1, "gamma": 0.5}),
                       checkpoint=tmp_path / "r.pt")
    monkeypatch.setattr(Trainer, "step", real)
    assert calls and min(calls) == 1  # epoch 0 came from the checkpoint
    assert before != _snapshot(tmp_path) and not (tmp_path / "r.resume.pt").exists() and len(hist) == 3
    _same_tensors(full.state_dict(), m.state_dict())
    # restart: an epoch checkpoint of another config is replaced by a fresh run
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(Trainer, "step", dying)
        pretrain(pairs, 30, cfg, checkpoint=tmp_path / "s.pt")
    monkeypatch.setattr(Trainer, "step", real)
    other = RegenConfig(**{**TINY, "epochs": 2, "valid_fraction": 0.1})
    fresh, _ = pretrain(pairs, 30, other)
    calls = _count_steps(monkeypatch)
    m, hist = pretrain(pairs, 30, other, checkpoint=tmp_path / "s.pt", on_mismatch="restart")
    assert min(calls) == 0
    assert len(hist) == 2
    _same_tensors(fresh.state_dict(), m.state_dict())


def test_unids_generator_resumes_and_a_changed_generator_is_refused(tmp_path, monkeypatch):
    from fastregen.training import Trainer
    from fastregen.unids import UniDS
    from test_unids import TINY_GEN, cfg, planted

    ds = planted()
    gen = {**TINY_GEN, "epochs": 3}
    full = UniDS(cfg(generator=gen)).fit(ds, out_dir=tmp_path / "full")
    real = Trainer.step

    def dying(self, batch):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self, batch)

    def interrupted(out, generator):
        monkeypatch.setattr(Trainer, "step", dying)
        with pytest.raises(KeyboardInterrupt):
            UniDS(cfg(generator=generator)).fit(ds, out_dir=out)
        monkeypatch.setattr(Trainer, "step", real)
        assert (out / "generator.resume.pt").exists()

    interrupted(tmp_path / "run", gen)
    calls = _count_steps(monkeypatch)
    run = UniDS(cfg(generator=gen)).fit(ds, out_dir=tmp_path / "run")
    monkeypatch.setattr(Trainer, "step", real)
    assert calls and min(calls) == 1  # epoch 0 came from the checkpoint
    _same_tensors(full.generator.state_dict(), run.generator.state_dict())
    assert [h["train_loss"] for h in run.history] == [h["train_loss"] for h in full.history]
    assert not (tmp_path / "run" / "generator.resume.pt").exists()
    # an interrupted generator's epoch checkpoint never yields to other options (fastregen.pipeline's policy):
    # another generator config is refused naming the field; once the checkpoint is removed it trains from scratch
    interrupted(tmp_path / "other", gen)
    changed = {**gen, "lr": 2e-3}
    with pytest.raises(ValueError, match=r"config\.lr: 0\.001 in the checkpoint, 0\.002 now"):
        UniDS(cfg(generator=changed)).fit(ds, out_dir=tmp_path / "other")
    (tmp_path / "other" / "generator.resume.pt").unlink()
    calls = _count_steps(monkeypatch)
    other = UniDS(cfg(generator=changed)).fit(ds, out_dir=tmp_path / "other")
    monkeypatch.setattr(Trainer, "step", real)
    assert min(calls) == 0
    fresh = UniDS(cfg(generator=changed)).fit(ds, out_dir=tmp_path / "fresh")
    _same_tensors(fresh.generator.state_dict(), other.generator.state_dict())
