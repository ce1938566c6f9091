"""``TrainConfig.item_updates="lazy"``: target models' item table updated row by row (`LazyAdam`).

Where every row of the table has a gradient entry in every step the lazy
update is Adam's (checked in float64 against the fused dense Adam); where
rows are left out it leaves them alone; a lazy run is reproducible by seed
and resumes bit-identically (tests/test_resume.py, kind ``sasrec_lazy``);
bad combinations raise naming the value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastregen.data import SequenceDataset, leave_one_out, synthetic
from fastregen.models import build_model
from fastregen.training import Examples, LazyAdam, NextItemLoss, TrainConfig, Trainer, fit_and_evaluate
from fastregen.training.fit import target_optimizer

SMALL = dict(progress=False, embed_dim=16, max_len=12, batch_size=32, num_threads=1)


def _train(item_updates: str, data: SequenceDataset, steps: int, dtype=torch.float64):
    """``steps`` one-batch epochs of a tiny SASRec (no dropout) with `target_optimizer`; the model."""
    torch.manual_seed(0)
    net = build_model("sasrec", data.num_items, embed_dim=8, max_len=6, num_layers=1, num_heads=1,
                      dropout=0.0).to(dtype)
    opt = target_optimizer(TrainConfig(item_updates=item_updates, lr=0.01), net)
    examples = Examples(data, net.max_len, "all")
    trainer = Trainer(net, NextItemLoss("bce", 1), optimizer=opt, batch_size=len(examples), seed=0,
                      progress=False)
    trainer.set_normaliser(examples)
    for _ in range(steps):
        trainer.run_epoch(examples)
    return net, opt


def test_lazy_is_adam_when_every_row_is_looked_up_in_every_step():
    # every sequence holds every item: the model's own lookup touches rows 1..6 in every step
    rng = np.random.default_rng(0)
    data = SequenceDataset.from_lists([rng.permutation(6) + 1 for _ in range(8)], num_items=6)
    (lazy, opt), (dense, ref) = _train("lazy", data, 5), _train("dense", data, 5)
    assert isinstance(opt, LazyAdam) and not isinstance(ref, LazyAdam)
    assert lazy.item_embedding.sparse and not dense.item_embedding.sparse
    assert opt.state[lazy.item_embedding.weight]["step"] == 5
    for (name, a), b in zip(lazy.state_dict().items(), dense.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    assert not lazy.item_embedding.weight[0].any()  # the padding row stays zero
    assert not torch.equal(lazy.item_embedding.weight, _train("lazy", data, 4)[0].item_embedding.weight)


def _moves(item_updates: str, data: SequenceDataset, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per step: the rows with a gradient entry, and the rows whose weights the step changed."""
    from fastregen.training import CallbackHook

    out, before = [], []

    def record(trainer, batch, value):
        table = trainer.model.item_embedding.weight
        grad = table.grad.coalesce() if table.grad.is_sparse else table.grad.to_sparse(1)
        out.append((set(grad.indices()[0].tolist()), set(torch.nonzero((table != before[-1]).any(1)).flatten().tolist())))
        before.append(table.detach().clone())

    torch.manual_seed(0)
    net = build_model("sasrec", data.num_items, embed_dim=8, max_len=6, num_layers=1, num_heads=1,
                      dropout=0.0).double()
    opt = target_optimizer(TrainConfig(item_updates=item_updates, lr=0.01), net)
    examples = Examples(data, net.max_len, "all")
    trainer = Trainer(net, NextItemLoss("bce", 1), optimizer=opt, batch_size=len(examples), seed=0,
                      progress=False, hooks=[CallbackHook(step=record)])
    trainer.set_normaliser(examples)
    before.append(net.item_embedding.weight.detach().clone())
    for _ in range(steps):
        trainer.run_epoch(examples)
    return out


def test_lazy_moves_only_the_rows_a_step_looked_up():
    # 40 items, 6 of them in the data: BCE's negatives touch other rows in some steps and not in others
    rng = np.random.default_rng(1)
    data = SequenceDataset.from_lists([rng.permutation(6) + 1 for _ in range(4)], num_items=40)
    lazy, dense = _moves("lazy", data, 4), _moves("dense", data, 4)
    for looked_up, moved in lazy:
        assert moved <= looked_up and moved  # (a looked-up row may keep its weights: a zero update)
    # dense Adam moves rows of earlier steps along their momentum although this step left them out
    assert any(moved - looked_up for looked_up, moved in dense[1:])


def test_fit_with_lazy_item_updates_learns_and_is_reproducible():
    data = synthetic("demo", n_users=150, n_items=80, avg_len=8, n_patterns=10, pattern_len=4, seed=3)
    runs = [fit_and_evaluate(data, model="sasrec", seed=1, epochs=3, patience=10, item_updates="lazy", **SMALL)
            for _ in range(2)]
    assert isinstance(runs[0]["trainer"].optimizer, LazyAdam)
    a, b = (r["model"].state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0]["test"] == runs[1]["test"]
    dense = fit_and_evaluate(data, model="sasrec", seed=1, epochs=3, patience=10, **SMALL)
    assert type(dense["trainer"].optimizer) is torch.optim.Adam
    assert not torch.equal(a["item_embedding.weight"], dense["model"].state_dict()["item_embedding.weight"])
    assert runs[0]["config"]["item_updates"] == "lazy"


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(item_updates="sparse"), r"item_updates must be one of dense, lazy; got 'sparse'"),
    (dict(item_updates="lazy", weight_decay=1e-4), r"item_updates='lazy' takes no weight decay .*; got weight_decay=0\.0001"),
])
def test_bad_options_raise_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_lazy_with_an_optimizer_of_the_callers_is_refused():
    data = synthetic("demo", n_users=40, n_items=30, avg_len=6, n_patterns=4, pattern_len=3, seed=0)
    net = build_model("sasrec", data.num_items, embed_dim=8, max_len=6)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    from fastregen.training import fit

    with pytest.raises(ValueError, match=r"item_updates='lazy' builds fastregen's own optimizer; got optimizer=SGD"):
        fit(TrainConfig(item_updates="lazy", epochs=1, **SMALL), leave_one_out(data).train,
            leave_one_out(data).valid, model=net, optimizer=opt)
