"""The Trainer: unbiased per-target weights, hooks, steps; Examples built lazily per batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastregen.data import SequenceDataset, concat
from fastregen.training import (
    CallbackHook,
    EarlyStopping,
    Examples,
    LossTerms,
    NextItemLoss,
    Trainer,
    build_examples,
)


class _Probe(torch.nn.Module):
    """A model with one parameter; the objective below measures what the Trainer does to each target."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


class _UnitLoss:
    """Every target has loss 1 through its own leaf tensor, so after backward its
    ``.grad`` is exactly the weight the Trainer gave that target in the update."""

    def __call__(self, model, batch, generator):
        self.ell = torch.ones(batch.targets.shape, requires_grad=True)
        return LossTerms(total=(self.ell * batch.weights).sum() + 0 * model.w.sum())


def _per_target_weights(examples, bucketing, batch_size=64, seed=0):
    """(interaction index, gradient weight) of every target of one epoch."""
    obj = _UnitLoss()
    seen = []

    def record(trainer, batch, loss):
        g = obj.ell.grad
        sel = batch.targets > 0
        seen.append((batch.index[sel].numpy(), g[sel].numpy()))

    trainer = Trainer(_Probe(), obj, batch_size=batch_size, bucketing=bucketing, seed=seed, progress=False,
                      hooks=[CallbackHook(step=record)])
    trainer.fit(examples, 1)
    index = np.concatenate([s[0] for s in seen])
    weight = np.concatenate([s[1] for s in seen])
    return index, weight, trainer


def _original_plus_patterns(seed=0, n_long=300, n_short=900):
    """Long 'original' sequences and many short 'pattern' ones, as original + mined patterns are."""
    rng = np.random.default_rng(seed)
    longs = [rng.integers(1, 50, rng.integers(8, 40)) for _ in range(n_long)]
    shorts = [rng.integers(1, 50, rng.integers(2, 4)) for _ in range(n_short)]
    return concat(SequenceDataset.from_lists(longs, num_items=50), SequenceDataset.from_lists(shorts, num_items=50)), n_long


def _shares(examples, index, weight, n_long):
    seq = examples.sequence_of(index)
    is_pattern = seq >= n_long
    return is_pattern.mean(), weight[is_pattern].sum() / weight.sum()


@pytest.mark.parametrize("bucketing", [False, True])
def test_every_target_gets_the_same_weight_over_an_epoch(bucketing):
    data, n_long = _original_plus_patterns()
    ex = Examples(data, 20, "all")
    index, weight, trainer = _per_target_weights(ex, bucketing)
    # every target exactly once, each with weight 1 / (targets per batch)
    assert sorted(index.tolist()) == sorted(
        i for s in range(len(data)) for i in range(data.offsets[s] + 1, data.offsets[s + 1]))
    np.testing.assert_allclose(weight, 1.0 / trainer.targets_per_batch, rtol=1e-6)
    target_share, update_share = _shares(ex, index, weight, n_long)
    assert abs(update_share / target_share - 1) < 0.01


def test_per_batch_normalisation_would_have_biased_the_patterns():
    # the check above can fail: dividing each bucketed batch by its own count
    # gives the short pattern batches far more than their share
    data, n_long = _original_plus_patterns()
    ex = Examples(data, 20, "all")
    order = ex.batch_order(64, torch.Generator().manual_seed(0), bucketing=True)
    idx, w = [], []
    for b in order:
        batch = ex.batch(b)
        sel = batch.targets > 0
        idx.append(batch.index[sel].numpy())
        w.append(np.full(int(sel.sum()), 1.0 / int(sel.sum())))
    target_share, update_share = _shares(ex, np.concatenate(idx), np.concatenate(w), n_long)
    assert update_share / target_share > 1.5


@pytest.mark.data
@pytest.mark.parametrize("bucketing", [False, True])
def test_beauty_original_plus_patterns_weights_are_uniform(beauty_path, bucketing):
    from fastregen import DR4SR
    from fastregen.data import load

    sets = DR4SR(progress=False).mine(load(beauty_path)).training_sets()
    original = sets["original"]
    ex = Examples(sets["original+patterns"], 50, "all")
    index, weight, _ = _per_target_weights(ex, bucketing, batch_size=256)
    target_share, update_share = _shares(ex, index, weight, len(original))
    assert 0.2 < target_share < 0.5
    assert abs(update_share / target_share - 1) < 0.01


def _lists(ds):
    return [list(map(int, s)) for s in ds]


@pytest.mark.parametrize("mode", ["all", "last", "packed"])
@pytest.mark.parametrize("L", [1, 3, 8])
def test_lazy_batches_equal_the_materialised_rows(mode, L):
    rng = np.random.default_rng(L)
    ds = SequenceDataset.from_lists([rng.integers(1, 20, rng.integers(0, 15)) for _ in range(40)], num_items=19,
                                    timestamps=None)
    ex = Examples(ds, L, mode)
    x, y, w = ex.arrays()
    for b in ex.batch_order(7, torch.Generator().manual_seed(1)):
        batch = ex.batch(b)
        W = batch.inputs.shape[1]
        assert (x[b][:, :-W] == 0).all()  # only all-padding columns are trimmed
        np.testing.assert_array_equal(batch.inputs.numpy(), x[b][:, -W:])
        np.testing.assert_array_equal(batch.targets.numpy(), y[b][:, -W:])
        np.testing.assert_array_equal(batch.weights.numpy(), w[b][:, -W:])
        # every target traces back to its interaction
        sel = batch.targets.numpy() > 0
        np.testing.assert_array_equal(ds.items[batch.index.numpy()[sel]], batch.targets.numpy()[sel])
        assert (batch.index.numpy()[~sel] == -1).all()
    assert ex.total_targets == int((y > 0).sum())


def test_batches_carry_timestamps_aligned_with_inputs():
    items = [[1, 2, 3, 4], [5, 6]]
    stamps = [[10, 20, 30, 40], [7, 9]]
    ds = SequenceDataset.from_lists(items, num_items=6).replace(
        timestamps=np.array([t for s in stamps for t in s], dtype=np.int64))
    for mode in ("all", "last", "packed"):
        ex = Examples(ds, 3, mode)
        batch = ex.batch(np.arange(len(ex)))
        x, t = batch.inputs.numpy(), batch.timestamps.numpy()
        lookup = {(i): s for seq, ts in zip(items, stamps) for i, s in zip(seq, ts)}
        for row_x, row_t in zip(x, t):
            for i, s in zip(row_x, row_t):
                assert s == (lookup[i] if i else 0)


def test_examples_bad_input():
    ds = SequenceDataset.from_lists([[1, 2, 3]], num_items=3)
    with pytest.raises(ValueError, match="mode must be one of 'all', 'last', 'packed', got 'every'"):
        Examples(ds, 4, "every")
    with pytest.raises(ValueError, match="max_len must be a positive int, got 0"):
        Examples(ds, 0)
    with pytest.raises(ValueError, match="sequence_weights must have shape"):
        build_examples(ds, 2, "all", sequence_weights=[1.0, 2.0])


def _toy_model_and_data(seed=0):
    from fastregen.models import build_model

    rng = np.random.default_rng(seed)
    starts = rng.integers(0, 10, 40)
    ds = SequenceDataset.from_lists([((s + np.arange(8)) % 10) + 1 for s in starts], num_items=10)
    torch.manual_seed(seed)
    return build_model("gru4rec", 10, embed_dim=8, max_len=8, hidden_size=16), Examples(ds, 8, "all")


def test_trainer_steps_hooks_and_injected_optimizer():
    model, ex = _toy_model_and_data()
    calls = {"step": 0, "epoch": []}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def on_step(trainer, batch, loss):
        calls["step"] += 1
        assert trainer.step_count == calls["step"]

    def on_epoch(trainer, record):
        calls["epoch"].append(record["epoch"])
        if record["epoch"] == 2:
            trainer.stop = True

    t = Trainer(model, NextItemLoss("bce", 1), optimizer=opt, batch_size=16, progress=False,
                hooks=[CallbackHook(step=on_step, epoch=on_epoch)])
    history = t.fit(ex, 10)
    assert t.optimizer is opt
    assert calls["epoch"] == [0, 1, 2] and len(history) == 3
    assert calls["step"] == 3 * -(-len(ex) // 16)
    assert history[-1]["loss"] < history[0]["loss"]
    assert not model.training


def test_trainer_is_reproducible_and_scheduler_steps():
    def run():
        model, ex = _toy_model_and_data()
        lrs = []
        sched = lambda opt, total: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total)  # noqa: E731
        t = Trainer(model, NextItemLoss("bce", 1), batch_size=8, seed=3, progress=False, scheduler=sched,
                    hooks=[CallbackHook(step=lambda tr, b, l: lrs.append(tr.optimizer.param_groups[0]["lr"]))])
        return t.fit(ex, 2), lrs, model.item_embedding.weight.detach().clone()
    h1, lr1, w1 = run()
    h2, lr2, w2 = run()
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    torch.testing.assert_close(w1, w2, rtol=0, atol=0)
    assert lr1 == lr2 and lr1[0] > lr1[-1] and len(lr1) == 2 * -(-40 // 8)


def test_early_stopping_restores_the_best_weights():
    model, ex = _toy_model_and_data()
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.25, 0.9])
    snapshots = {}

    def evaluate(m):
        snapshots[len(snapshots)] = m.item_embedding.weight.detach().clone()
        return {"ndcg@20": next(scores)}

    stop = EarlyStopping(evaluate, "ndcg@20", patience=2)
    t = Trainer(model, NextItemLoss("bce", 1), batch_size=16, progress=False, hooks=[stop])
    history = t.fit(ex, 10)
    # best at epoch 1; epochs 2, 3, 4 bring no gain, and 3 > patience 2 stops the run after epoch 4
    assert len(history) == 5 and stop.best_epoch == 1 and stop.best == {"ndcg@20": 0.5}
    torch.testing.assert_close(model.item_embedding.weight, snapshots[1])
    assert history[1]["valid_ndcg@20"] == 0.5
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        EarlyStopping(evaluate, "x", mode="best")


def test_trainer_bad_input():
    model, ex = _toy_model_and_data()
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        Trainer(model, NextItemLoss("bce", 1), batch_size=0)
    with pytest.raises(ValueError, match="epochs must be an int >= 0, got -1"):
        Trainer(model, NextItemLoss("bce", 1), progress=False).fit(ex, -1)
    empty = Examples(SequenceDataset.from_lists([[1], [2]], num_items=10), 8)
    with pytest.raises(ValueError, match="no target"):
        Trainer(model, NextItemLoss("bce", 1), progress=False).fit(empty, 1)
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        NextItemLoss("mse", 1)
