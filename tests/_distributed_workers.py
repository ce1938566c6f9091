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
