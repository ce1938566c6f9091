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
