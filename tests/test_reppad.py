"""RepPad against a plain-Python transcription of the authors' rule, and its training option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.data import SequenceDataset
from fastregen.training import Examples, RepPad, TrainConfig, fit, fit_and_evaluate


def reference(seq: list[int], pad_num: int, mode: int, max_len: int):
    """KingGugu/RepPad SASRec/src/datasets.py aug_type 1/2, on our train split ``seq`` (= items[:-2]):
    input items[:-3] = seq[:-1], target items[1:-2] = seq[1:]; then left-pad and keep the last max_len."""
    x, y = seq[:-1], seq[1:]
    if len(x) < max_len:
        fx, fy = list(x), list(y)
        for _ in range(pad_num):
            if mode == 1:
                fx, fy = x + fx, y + fy
            else:
                fx, fy = x + [0] + fx, y + [0] + fy
        x, y = fx, fy
    x = ([0] * max_len + x)[-max_len:]
    y = ([0] * max_len + y)[-max_len:]
    return x, y


@settings(max_examples=60, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(1, 30), min_size=2, max_size=14), min_size=1, max_size=8),
       max_len=st.integers(2, 12), mode=st.sampled_from([1, 2]), seed=st.integers(0, 2**31))
def test_rows_match_the_authors_rule(seqs, max_len, mode, seed):
    # windows longer than max_len + 1 are split by the "all" protocol; RepPad leaves those alone
    data = SequenceDataset.from_lists(seqs, num_items=30)
    ex = Examples(data, max_len, "all")
    rp = RepPad(ex, mode)
    pads = rp.draw(torch.Generator().manual_seed(seed))
    b = rp.batch(np.arange(len(ex)))
    x, y = b.inputs.numpy(), b.targets.numpy()
    W = x.shape[1]
    for k in range(len(ex)):
        full = ex.arrays()[0][k].tolist(), ex.arrays()[1][k].tolist()
        n = int(ex.num_targets[k])
        if n < max_len:
            seq = full[0][-n:] + [full[1][-1]]  # the window is the whole sequence
            assert 1 <= pads[k] <= max_len // n
            want_x, want_y = reference(seq, int(pads[k]), mode, max_len)
        else:
            assert pads[k] == 0
            want_x, want_y = full
        assert x[k].tolist() == want_x[-W:] and all(v == 0 for v in want_x[:-W])
        assert y[k].tolist() == want_y[-W:]
    # weights follow the targets, the index traces every (repeated) target to its interaction
    w, idx = b.weights.numpy(), b.index.numpy()
    assert np.array_equal(w > 0, y > 0)
    assert np.array_equal(idx >= 0, y > 0)
    assert np.array_equal(data.items[idx[y > 0]], y[y > 0])


def test_draws_are_uniform_and_seeded():
    data = SequenceDataset.from_lists([[1, 2, 3]] * 4000, num_items=3)  # n = 2, max_len 9: p in 1..4
    rp = RepPad(Examples(data, 9, "all"), 1)
    p = rp.draw(torch.Generator().manual_seed(0))
    counts = np.bincount(p, minlength=5)[1:]
    assert counts.min() > 900 and set(np.unique(p)) == {1, 2, 3, 4}
    assert np.array_equal(p, rp.draw(torch.Generator().manual_seed(0)))
    # the normaliser is the exact expectation: mean over p of min((p + 1) * 2, 9) targets
    assert rp.total_targets == pytest.approx(4000 * np.mean([min((k + 1) * 2, 9) for k in range(1, 5)]))


def test_delimiter_targets_are_masked_and_timestamps_repeat():
    ts = np.array([10, 20, 30])
    data = SequenceDataset.from_lists([[4, 5, 6]], num_items=6, timestamps=ts)
    rp = RepPad(Examples(data, 8, "all"), 2)
    rp._pad[:] = 2
    b = rp.batch(np.array([0]))
    assert b.inputs.tolist() == [[4, 5, 0, 4, 5, 0, 4, 5]]
    assert b.targets.tolist() == [[5, 6, 0, 5, 6, 0, 5, 6]]
    assert b.weights.tolist() == [[1, 1, 0, 1, 1, 0, 1, 1]]
    assert b.timestamps.tolist() == [[10, 20, 0, 10, 20, 0, 10, 20]]


def test_training_option_and_errors():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 20, size=rng.integers(4, 9)).tolist() for _ in range(40)]
    data = SequenceDataset.from_lists(seqs, num_items=19)
    res = fit_and_evaluate(data, model="sasrec", epochs=2, embed_dim=16, max_len=12, reppad=2, progress=False,
                           num_threads=1)
    assert np.isfinite(res["test"]["ndcg@10"]) and res["history"][0]["loss"] > 0
    with pytest.raises(ValueError, match="reppad must be 0"):
        TrainConfig(reppad=3)
    with pytest.raises(ValueError, match="reppad = 1 needs train_targets='all'"):
        from fastregen.data import leave_one_out

        split = leave_one_out(data)
        fit(TrainConfig(model="fmlp", reppad=1, epochs=1, progress=False), split.train, split.valid)
    with pytest.raises(ValueError, match="RepPad needs the 'all' protocol"):
        RepPad(Examples(data, 5, "last"), 1)
    with pytest.raises(ValueError, match="mode must be 1"):
        RepPad(Examples(data, 5, "all"), 3)
