"""Sparse item-table gradients (the regenerator's nn.Embedding(sparse=True)) train like dense ones."""

from __future__ import annotations

import copy

import torch

from fastregen.dr4sr import RegenConfig
from fastregen.generator import Regenerator
from fastregen.generator.pretrain import PairData, RegeneratorLoss
from fastregen.training import CallbackHook, Trainer


def _pairs():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, 30, (12, 7), generator=g)
    src[3:, 5:] = 0
    pat = torch.randint(1, 30, (20, 3), generator=g)
    pat[::2, 2] = 0
    return PairData(src, torch.randint(0, 12, (20,), generator=g).numpy(), pat)


def test_sparse_item_table_gradients_give_the_dense_update():
    cfg = RegenConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=2, dropout=0.0,
                      max_len=8, max_pattern_len=4, progress=False)
    torch.manual_seed(0)
    sparse = Regenerator(30, cfg)
    assert sparse.item_embedding.sparse
    dense = copy.deepcopy(sparse)
    dense.item_embedding.sparse = False
    data = _pairs()
    runs, kinds = [], []
    for model in (sparse, dense):
        # SGD: the update is linear in the gradient (Adam would blow up last-bit differences of ~0 gradients)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        trainer = Trainer(model, RegeneratorLoss(cfg), optimizer=opt, batch_size=8, seed=1, progress=False,
                          grad_clip=1.0, hooks=[CallbackHook(
                              step=lambda t, b, v: kinds.append(t.model.item_embedding.weight.grad.is_sparse))])
        trainer.fit(data, 2)
        runs.append((trainer.history, model.state_dict()))
    (h_sparse, w_sparse), (h_dense, w_dense) = runs
    for a, b in zip(h_sparse, h_dense):
        assert abs(a["loss"] - b["loss"]) < 1e-5
    for name in w_dense:
        torch.testing.assert_close(w_sparse[name], w_dense[name], rtol=1e-4, atol=1e-6)
    assert kinds and not any(kinds)  # the optimizer (and the hooks) saw the dense sum
    assert sparse.item_embedding.weight.grad is None  # freed at the end of fit
