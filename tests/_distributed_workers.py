"""Workers of tests/test_distributed.py, run in gloo process groups by torch.multiprocessing.spawn.

(A module of its own, so that spawned processes can import the functions.)
"""

from __future__ import annotations

import os

import numpy as np
import torch


def tiny_sequences(n=37, num_items=40, seed=0):
    from fastregen.data import SequenceDataset

    rng = np.random.default_rng(seed)
    return SequenceDataset.from_lists([rng.integers(1, num_items + 1, rng.integers(2, 9)) for _ in range(n)],
                                      num_items=num_items)


def train_target_model(batch_size: int):
    """SASRec, full softmax, no dropout: one epoch; returns per-step losses, the record and the weights."""
    from fastregen.models import build_model
    from fastregen.training import CallbackHook, Examples, NextItemLoss, Trainer

    data = tiny_sequences()
    torch.manual_seed(0)
    model = build_model("sasrec", 40, embed_dim=8, max_len=6, dropout=0.0)
    losses = []
    trainer = Trainer(model, NextItemLoss("softmax", 0), batch_size=batch_size, seed=3, progress=False,
                      hooks=[CallbackHook(step=lambda t, b, v: losses.append(v))])
    history = trainer.fit(Examples(data, 6, "all"), 1)
    return {"losses": losses, "loss": history[0]["loss"], "normaliser": trainer.targets_per_batch,
            "state": {k: v.clone() for k, v in model.state_dict().items()},
            "draws": torch.randint(1, 41, (8,), generator=trainer.generator).tolist()}


def train_regenerator(batch_size: int):
    """Regenerator pre-training steps (soft mixture, no dropout, no entropy/balance terms)."""
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator.pretrain import RegeneratorLoss, pair_data
    from fastregen.patterns import mine_patterns, pretrain_pairs
    from fastregen.training import CallbackHook, Trainer

    data = tiny_sequences(n=60, num_items=12, seed=1)
    cfg = RegenConfig(d_model=8, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=16, K=2, dropout=0.0,
                      max_len=8, max_pattern_len=4, progress=False)
    pairs = pretrain_pairs(data, mine_patterns(data, max_span=3, min_support=2), max_per_sequence=3, max_len=8)
    from fastregen.generator import Regenerator

    torch.manual_seed(0)
    model = Regenerator(12, cfg)
    losses = []
    trainer = Trainer(model, RegeneratorLoss(cfg), batch_size=batch_size, seed=5, progress=False,
                      hooks=[CallbackHook(step=lambda t, b, v: losses.append(v))])
    trainer.fit(pair_data(pairs, cfg), 1)
    return {"losses": losses, "state": {k: v.clone() for k, v in model.state_dict().items()}}


def run(rank: int, world_size: int, port: int, fn_name: str, arg, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from fastregen.training import distributed

    with distributed.session("cpu") as world:
        assert world is not None and world.rank == rank and world.size == world_size
        result = globals()[fn_name](arg)
    torch.save(result, os.path.join(out_dir, f"{fn_name}-{rank}.pt"))


class FixedNegativesBCE:
    """NextItemLoss("bce", 2) with negatives that depend on the targets only (no random draw), so that a
    2-rank run and a 1-process run score the same items; every lookup of the table is row-sparse."""

    def __call__(self, model, batch, generator):
        from fastregen.training import LossTerms
        from fastregen.training.losses import bce_per_target

        hidden = model(batch.inputs, timestamps=batch.timestamps)
        t = batch.targets
        neg = (t[..., None] * 7 + torch.arange(2) * 3) % model.num_items + 1
        per = bce_per_target(hidden, model.item_weight(), t, neg)
        return LossTerms(total=(per * batch.weights).sum())


def _lazy_run(trainer, data, epochs: int) -> dict:
    """``epochs`` epochs by `Trainer.run_epoch` (not `fit`, whose last broadcast would make the ranks' weights
    equal whatever they computed); the per-step losses, the weights and LazyAdam's state of the item table."""
    from fastregen.training import CallbackHook

    losses = []
    trainer.hooks.append(CallbackHook(step=lambda t, b, v: losses.append(v)))
    trainer.set_normaliser(data)
    for _ in range(epochs):
        trainer.run_epoch(data)
    table = trainer.model.item_embedding.weight
    state = trainer.optimizer.state[table]
    return {"losses": losses, "state": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            "adam": {"step": state["step"], "exp_avg": state["exp_avg"].clone(),
                     "exp_avg_sq": state["exp_avg_sq"].clone()},
            "dense_adam": trainer.optimizer.dense.state_dict()}


def lazy_runs(batch_size: int) -> dict:
    """item_updates="lazy" (LazyAdam) for SASRec (row-sparse BCE, and the full softmax, whose dense table
    gradient is sent dense) and the regenerator's pre-training (in-source softmax: row-sparse)."""
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator
    from fastregen.generator.pretrain import (
        RegeneratorLoss,
        pair_data,
        pretrain_optimizer,
    )
    from fastregen.models import build_model
    from fastregen.patterns import mine_patterns, pretrain_pairs
    from fastregen.training import Examples, NextItemLoss, TrainConfig, Trainer
    from fastregen.training.fit import target_optimizer

    out = {}
    data = tiny_sequences()
    for name, objective in (("sasrec_bce", FixedNegativesBCE()), ("sasrec_softmax", NextItemLoss("softmax", 0))):
        torch.manual_seed(0)
        model = build_model("sasrec", 40, embed_dim=8, max_len=6, dropout=0.0)
        opt = target_optimizer(TrainConfig(item_updates="lazy", lr=0.01), model)
        trainer = Trainer(model, objective, optimizer=opt, batch_size=batch_size, seed=3, progress=False)
        out[name] = _lazy_run(trainer, Examples(data, 6, "all"), 2)
    data = tiny_sequences(n=60, num_items=12, seed=1)
    cfg = RegenConfig(d_model=8, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=16, K=2, dropout=0.0,
                      max_len=8, max_pattern_len=4, progress=False, item_updates="lazy", lr=0.01)
    pairs = pretrain_pairs(data, mine_patterns(data, max_span=3, min_support=2), max_per_sequence=3, max_len=8)
    torch.manual_seed(0)
    model = Regenerator(12, cfg)
    trainer = Trainer(model, RegeneratorLoss(cfg), optimizer=pretrain_optimizer(model, cfg), batch_size=batch_size,
                      seed=5, progress=False)
    out["regenerator"] = _lazy_run(trainer, pair_data(pairs, cfg), 2)
    return out


def sync_rows(case: str) -> dict:
    """`distributed.sync_gradients` on hand-made gradients of a (6, 2) table: rank 0 touches rows {1, 4}
    (row 4 twice, uncoalesced), rank 1 rows {4, 5}, or none (``case`` "none": no gradient; "empty": a sparse
    gradient of no rows); a dense (3,) parameter beside it, present on rank 0 only."""
    from fastregen.training import distributed

    world = distributed.current()
    table, bias = torch.nn.Parameter(torch.zeros(6, 2)), torch.nn.Parameter(torch.zeros(3))
    if world.rank == 0:
        table.grad = torch.sparse_coo_tensor([[4, 1, 4]], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], (6, 2))
        bias.grad = torch.tensor([2.0, 4.0, 6.0])
    elif case == "rows":
        table.grad = torch.sparse_coo_tensor([[5, 4]], [[10.0, 20.0], [30.0, 40.0]], (6, 2))
    elif case == "empty":
        table.grad = torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.long), torch.zeros(0, 2), (6, 2))
    loss = distributed.sync_gradients([table, bias], world, torch.tensor(float(world.rank)), sparse=[table])
    g = table.grad
    return {"sparse": g.is_sparse, "rows": g._indices()[0].tolist(), "values": g._values().tolist(),
            "coalesced": g.is_coalesced(), "bias": bias.grad.tolist(), "loss": loss}
