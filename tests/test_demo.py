"""The stages `fastregen demo` adds after the data steps (the DR4SR stage is tested in test_regen_pipeline)."""

import numpy as np
import pytest

from fastregen import data
from fastregen.cli import _demo


@pytest.fixture(scope="module")
def demo_result():
    return {"dataset": data.synthetic("demo", seed=0), "seed": 0}


def test_mining_step_recovers_planted_patterns(demo_result, capsys):
    out = _demo._mining_step(demo_result, quiet=True)
    # every planted pattern is repeated in well over min_support sequences
    assert out["planted"] == 50 and out["planted_found"] == 50
    assert out["patterns"] == sum(out["by_length"].values())
    assert "planted patterns recovered: 50/50" in capsys.readouterr().out


def test_entropy_step_is_in_range(demo_result):
    out = _demo._entropy_step(demo_result, quiet=True)
    assert 0 < out["entropy_mean"] < np.log2(1000)
    assert 0 < out["predictability_mean"] <= 1


def test_target_step_prints_before_after(monkeypatch, capsys):
    ds = data.synthetic("demo", n_users=300, n_items=60, n_patterns=5, seed=1)

    class _FakeDR4SR:  # stands in for a fitted DR4SR: the training set is the original one, doubled
        def regenerate(self, which):
            assert which == "combined"
            train = data.leave_one_out(ds).train
            return train.subset(np.r_[np.arange(len(train)), np.arange(len(train))])

    monkeypatch.setattr(_demo, "DEMO_TRAIN", dict(epochs=1, patience=1, num_threads=1))
    rows = _demo._target_step({"dataset": ds, "seed": 0, "dr4sr": {"dr4sr": _FakeDR4SR()}}, quiet=True)
    assert set(rows) == {"original", "DR4SR (combined)"}
    for metrics in rows.values():
        assert 0 <= metrics["ndcg@20"] <= metrics["recall@20"] <= 1
    assert "training set" in capsys.readouterr().out


def test_stages_print_progress_lines(tmp_path, capsys):
    from fastregen.cli._data import run_demo

    def step(result, quiet):
        print("working")
        return 7

    result = run_demo(tmp_path, quiet=True, steps=[("extra", step)])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "stage 1/2: data (generate, save, split) ..."
    assert any(line.startswith("stage 1/2: data (generate, save, split) done in ") for line in out)
    k = out.index("stage 2/2: extra ...")
    assert out[k + 1] == "working" and out[k + 2].startswith("stage 2/2: extra done in ")
    assert out[-1].startswith("demo done in ")
    assert result["extra"] == 7 and set(result["stage_seconds"]) == {"data", "extra"}


@pytest.mark.slow
def test_demo_finishes_in_two_minutes_with_progress_when_not_a_tty(tmp_path):
    # Issue 21: the demo took 13-28 minutes on 2 cores and, piped, showed no
    # progress at all. Run as a user would, stdout a pipe (not a terminal).
    import subprocess
    import sys
    import time

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fastregen", "demo", "--out", str(tmp_path / "demo")],
                       capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    for k, title in enumerate(["data", "mining", "real entropy", "DR4SR regeneration", "SASRec"], 1):
        assert f"stage {k}/5: {title}" in r.stdout
    assert r.stdout.count(" done in ") >= 5 and "training SASRec on original done in" in r.stdout
    assert "planted patterns recovered: 50/50" in r.stdout
    assert seconds < 120, f"the demo took {seconds:.0f} s"
