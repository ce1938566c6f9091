"""One behaviour suite run against every registered target model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastregen.data import SequenceDataset, leave_one_out
from fastregen.models import available_models, build_model, load_model, model_class, save_model
from fastregen.training import TrainConfig, bce_loss, fit, sampled_softmax_loss, softmax_loss

MODELS = available_models()
SMALL = dict(embed_dim=16, max_len=8, dropout=0.1)
NUM_ITEMS = 12


def small(name, **kw):
    torch.manual_seed(0)
    return build_model(name, NUM_ITEMS, **{**SMALL, **kw})


def planted(n_users=48, length=9, num_items=NUM_ITEMS, seed=0):
    """Cyclic sequences i, i+1, i+2, ...: the next item is fully determined."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, num_items, n_users)
    seqs = [((s + np.arange(length)) % num_items) + 1 for s in starts]
    return SequenceDataset.from_lists(seqs, num_items=num_items)


def batch(B=5, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, NUM_ITEMS + 1, (B, L), generator=g)
    x[0, :3] = 0  # left padding on one row
    x[1, :5] = 0
    return x


def test_registry_lists_all_models():
    assert set(MODELS) == {"sasrec", "gru4rec", "fmlp", "gnn", "cl4srec", "hstu", "llama"}


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'bert4rec'.*sasrec"):
        build_model("bert4rec", 10)
    with pytest.raises(ValueError, match="gru4rec"):
        TrainConfig(model="nope")


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_and_embedding_table(name):
    m = small(name).eval()
    x = batch()
    h = m(x)
    assert h.shape == (5, 6, 16)
    assert torch.isfinite(h).all()
    assert m.item_embedding.weight.shape == (NUM_ITEMS + 1, 16)
    assert torch.all(m.item_embedding.weight[0] == 0)
    assert m.score(h[:, -1]).shape == (5, NUM_ITEMS + 1)


@pytest.mark.parametrize("name", MODELS)
def test_longer_than_max_len_is_truncated_from_the_left(name):
    m = small(name).eval()
    x = torch.randint(1, NUM_ITEMS + 1, (3, 13))
    h = m(x)
    assert h.shape == (3, 8, 16)
    torch.testing.assert_close(h, m(x[:, -8:]))


@pytest.mark.parametrize("name", MODELS)
def test_bad_ids_are_clear_errors(name):
    m = small(name)
    with pytest.raises(ValueError, match=f"item id {NUM_ITEMS + 1} is beyond the embedding table"):
        m(torch.tensor([[1, 2, NUM_ITEMS + 1]]))
    with pytest.raises(ValueError, match=">= 0"):
        m(torch.tensor([[1, -1]]))
    with pytest.raises(TypeError, match="int64"):
        m(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="shape"):
        m(torch.tensor([1, 2]))


@pytest.mark.parametrize("name", [n for n in MODELS if model_class(n).causal])
def test_causal_models_do_not_see_the_future(name):
    m = small(name).eval()
    x = batch()
    y = x.clone()
    y[:, -1] = (y[:, -1] % NUM_ITEMS) + 1  # change only the last item
    torch.testing.assert_close(m(x)[:, :-1], m(y)[:, :-1])
    assert not torch.allclose(m(x)[:, -1], m(y)[:, -1])


@pytest.mark.parametrize("name", ["sasrec", "cl4srec", "gnn", "hstu", "llama", "fmlp"])
def test_extra_left_padding_changes_nothing(name):
    m = small(name).eval()
    x = batch()[:, -4:]
    wide = torch.nn.functional.pad(x, (3, 0))
    torch.testing.assert_close(m(wide)[:, -1], m(x)[:, -1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    m = small(name)
    if name == "gnn":
        m.set_graph(planted())
    m.eval()
    x = batch()
    save_model(m, tmp_path / "m.pt")
    m2 = load_model(tmp_path / "m.pt").eval()
    assert type(m2) is type(m)
    torch.testing.assert_close(m2(x), m(x))
    torch.testing.assert_close(m2.item_weight(), m.item_weight())


def test_load_rejects_foreign_file(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a fastregen model checkpoint"):
        load_model(tmp_path / "x.pt")


def _train_steps(name, seed, steps=2):
    torch.manual_seed(seed)
    m = build_model(name, NUM_ITEMS, **SMALL)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x = batch(6, 6, seed=1)
    tgt = torch.roll(x, -1, 1) * (x > 0)
    tgt[:, -1] = 0
    for _ in range(steps):
        h = m(x)
        neg = torch.randint(1, NUM_ITEMS + 1, (*tgt.shape, 1), generator=g)
        loss = bce_loss(h, m.item_weight(), tgt, neg)
        aux = m.auxiliary_loss(x, torch.ones(6), g)
        if aux is not None:
            loss = loss + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()])


@pytest.mark.parametrize("name", MODELS)
def test_determinism_under_a_seed(name):
    a, b, c = _train_steps(name, 0), _train_steps(name, 0), _train_steps(name, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax"])
def test_all_zero_weights_give_zero_gradient(name, loss):
    m = small(name)
    if name == "gnn":
        m.set_graph(planted())
    x = batch()
    tgt = torch.roll(x, -1, 1) * (x > 0)
    tgt[:, -1] = 0
    w = torch.zeros(tgt.shape)
    h = m(x)
    if loss == "bce":
        value = bce_loss(h, m.item_weight(), tgt, torch.randint(1, NUM_ITEMS + 1, (*tgt.shape, 2)), w)
    elif loss == "sampled_softmax":
        value = sampled_softmax_loss(h, m.item_weight(), tgt, torch.randint(1, NUM_ITEMS + 1, (4,)), w, 0.5)
    else:
        value = softmax_loss(h, m.item_weight(), tgt, w)
    aux = m.auxiliary_loss(x, torch.zeros(x.size(0)), torch.Generator().manual_seed(0))
    if aux is not None:
        value = value + aux
    value.backward()
    assert float(value.detach()) == 0.0
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads, "the loss must reach the parameters"
    assert all(torch.count_nonzero(g) == 0 for g in grads)


@pytest.mark.parametrize("name", MODELS)
def test_loss_decreases_on_planted_data(name):
    data = planted()
    split = leave_one_out(data)
    cfg = TrainConfig(model=name, embed_dim=16, max_len=8, epochs=8, batch_size=16, lr=1e-2, patience=100,
                      model_kwargs={"dropout": 0.1}, progress=False, num_threads=1, ks=(1, 5), valid_metric="ndcg@5")
    out = fit(cfg, split.train, split.valid, num_items=NUM_ITEMS)
    losses = [r["loss"] for r in out["history"]]
    assert losses[-1] < losses[0], losses
    # the next item is determined by the last one: the model must rank it high
    assert out["valid"]["recall@5"] > 0.6, out["valid"]


@pytest.mark.parametrize("p", [0.5, 0.2, 0.1, 0.0])
def test_byte_dropout_keeps_the_expectation(p):
    from fastregen.models.base import Dropout

    d = Dropout(p)
    x = torch.ones(200, 101)  # an odd element count: the bit path must cut its last byte
    torch.manual_seed(0)
    y = d.train()(x)
    p_eff = d.threshold / 256
    kept = (y > 0).float().mean()
    assert abs(float(kept) - (1 - p_eff)) < 0.01
    values = torch.unique(y)
    assert values.numel() <= 2 and float(values.min()) >= 0.0
    torch.testing.assert_close(values.max(), torch.tensor(1 / (1 - p_eff)))
    assert abs(float(y.mean()) - 1.0) < 0.02
    torch.manual_seed(0)
    torch.testing.assert_close(d(x), y)  # seeded
    assert d.eval()(x) is x
    if p == 0.5:  # neighbouring elements (bits of one byte) are independent
        a, b = (y[:, :-1] > 0).float(), (y[:, 1:] > 0).float()
        assert abs(float((a * b).mean()) - 0.25) < 0.01


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (3, 5, 11), (200, 101)])
def test_half_dropout_mask_is_the_bits_of_its_random_bytes(shape):
    # the p = 0.5 mask is read from a 256 x 8 table; it must be bit j of byte i, times 2, for element 8i + j
    import math

    from fastregen.models.base import Dropout

    n = math.prod(shape)
    torch.manual_seed(3)
    raw = torch.empty((n + 7) // 8, dtype=torch.uint8).random_()
    want = ((raw[:, None].long() >> torch.arange(8)) & 1).reshape(-1)[:n].reshape(shape).double() * 2
    torch.manual_seed(3)
    got = Dropout(0.5).mask(shape, torch.float64, torch.device("cpu"))
    assert got.dtype == torch.float64 and torch.equal(got, want)
