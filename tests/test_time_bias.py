"""Timestamps reach the models in training and evaluation: HSTU's relative-time bias is trained."""

from __future__ import annotations

import numpy as np
import pytest

from fastregen.data import SequenceDataset, concat, leave_one_out
from fastregen.training import CallbackHook, TrainConfig, fit


def timed(seed=0, n=40, num_items=25):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, num_items + 1, size=rng.integers(4, 12)).tolist() for _ in range(n)]
    ts = np.concatenate([np.cumsum(rng.integers(1, 5000, size=len(s))) for s in seqs])
    return SequenceDataset.from_lists(seqs, num_items=num_items, timestamps=ts)


def grad_norms(train, valid, reppad=0):
    norms = []
    hook = CallbackHook(step=lambda tr, batch, loss: norms.append(
        (batch.timestamps is not None, float(tr.model.rel_time.grad.norm()) if tr.model.rel_time.grad is not None
         else 0.0)))
    cfg = TrainConfig(model="hstu", epochs=1, embed_dim=16, max_len=10, batch_size=16, progress=False,
                      num_threads=1, reppad=reppad)
    res = fit(cfg, train, valid, hooks=[hook])
    return norms, res["model"]


@pytest.mark.parametrize("reppad", [0, 2])
def test_hstu_time_bias_gets_gradient_on_timestamped_data(reppad):
    split = leave_one_out(timed())
    assert split.train.timestamps is not None
    norms, model = grad_norms(split.train, split.valid, reppad)
    assert norms and all(has for has, _ in norms)
    assert all(g > 0 for _, g in norms)
    assert float(model.rel_time.detach().abs().sum()) > 0  # trained away from its zero init


def test_no_timestamps_no_time_gradient():
    split = leave_one_out(timed())
    norms, model = grad_norms(split.train.replace(timestamps=None), split.valid)
    assert all(not has and g == 0.0 for has, g in norms)
    assert float(model.rel_time.detach().abs().sum()) == 0


def test_original_plus_generated_keeps_timestamps():
    split = leave_one_out(timed())
    gen = SequenceDataset.from_lists([[1, 2, 3]], num_items=25, timestamps=np.array([1, 2, 3]))
    both = concat(split.train, gen)
    assert both.timestamps is not None and both.timestamps.size == both.num_interactions
    untimed = SequenceDataset.from_lists([[1, 2, 3]], num_items=25)
    assert concat(split.train, untimed).timestamps is None
