"""The sampled softmax with the log-Q correction (``train_softmax="sampled"``): its math against the full
softmax and a hand-computed case, accidental hits, the sampler's draws and seeds, and config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.dr4sr import RegenConfig
from fastregen.generator import Regenerator, pretrain
from fastregen.training import (
    SAMPLED_SOFTMAX_MIN_VOCAB,
    NegativeSampler,
    NextItemLoss,
    TrainConfig,
    resolve_train_softmax,
    sampled_softmax_cross_entropy,
)
from fastregen.training.losses import dense_lookups, full_softmax_cross_entropy, softmax_per_target

TINY = dict(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=2,
            batch_size=32, max_len=12, max_pattern_len=5, progress=False, dropout=0.0)


def _loss_and_grads(fn, hidden, table, *args, **kw):
    h = hidden.clone().requires_grad_(True)
    t = table.clone().requires_grad_(True)
    with dense_lookups():  # a dense table gradient to compare with
        per = fn(h, t, *args, **kw)
    (per * torch.linspace(0.5, 1.5, per.numel(), dtype=per.dtype)).sum().backward()
    return per.detach(), h.grad, t.grad


# ------------------------------------------------------------------ the loss
@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("start, stop", [(0, 40), (1, 40), (1, 33)])
def test_every_id_sampled_without_correction_is_the_full_softmax(temperature, start, stop):
    g = torch.Generator().manual_seed(7)
    N, V, d = 17, 40, 6
    hidden = torch.randn(N, d, generator=g, dtype=torch.float64)
    table = torch.randn(V, d, generator=g, dtype=torch.float64)
    targets = torch.randint(start, stop, (N,), generator=g)
    want = _loss_and_grads(full_softmax_cross_entropy, hidden, table, targets, temperature=temperature,
                           vocab_start=start, vocab_stop=stop)
    got = _loss_and_grads(sampled_softmax_cross_entropy, hidden, table, targets, torch.arange(start, stop),
                          temperature=temperature)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # and with a zero correction, in any order of the candidates (the comparison path for the hits)
    perm = torch.randperm(stop - start, generator=g) + start
    again = _loss_and_grads(sampled_softmax_cross_entropy, hidden, table, targets, perm,
                            torch.zeros(stop - start, dtype=torch.float64), temperature=temperature)
    for a, b in zip(again, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 12), V=st.integers(2, 50), d=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_every_id_sampled_float32(N, V, d, seed):
    g = torch.Generator().manual_seed(seed)
    hidden, table = torch.randn(N, d, generator=g), torch.randn(V, d, generator=g)
    targets = torch.randint(0, V, (N,), generator=g)
    got = sampled_softmax_cross_entropy(hidden, table, targets, torch.arange(V))
    torch.testing.assert_close(got, F.cross_entropy(hidden @ table.T, targets, reduction="none"),
                               rtol=1e-5, atol=1e-5)


def test_log_q_correction_against_a_hand_computed_case():
    # d = 1, hidden 1: logits are the table's values
    table = torch.tensor([[0.0], [1.0], [2.0], [-1.0], [0.5]], dtype=torch.float64)
    hidden = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    targets = torch.tensor([1, 3])
    candidates = torch.tensor([1, 2, 4])
    # id 1 drawn twice, expected 0.5 times; id 2 once, expected 4; id 4 once, expected 1
    log_weight = torch.tensor([math.log(2 / 0.5), math.log(1 / 4), math.log(1 / 1)], dtype=torch.float64)
    got = sampled_softmax_cross_entropy(hidden, table, targets, candidates, log_weight)
    # row 0 (target 1, z = 1): id 1 is an accidental hit; the others: 2 * e^2 / 4... written out
    row0 = math.log(math.exp(1.0) + math.exp(2.0) * 1 / 4 + math.exp(0.5) * 1) - 1.0
    # row 1 (target 3, z = -2): z = 2 * e_j: ids 1, 2, 4 -> 2, 4, 1
    row1 = math.log(math.exp(-2.0) + math.exp(2.0) * 4 + math.exp(4.0) / 4 + math.exp(1.0)) + 2.0
    torch.testing.assert_close(got, torch.tensor([row0, row1], dtype=torch.float64), rtol=1e-12, atol=0)


def test_accidental_hits_are_masked_and_get_no_gradient():
    g = torch.Generator().manual_seed(3)
    hidden, table = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g,
                                                                                       dtype=torch.float64)
    targets = torch.tensor([2, 2, 6, 8])
    candidates = torch.tensor([1, 2, 5, 6])
    w = torch.randn(4, generator=g, dtype=torch.float64)
    got, _, grad = _loss_and_grads(sampled_softmax_cross_entropy, hidden, table, targets, candidates, w)
    z = hidden @ table.T
    for i, t in enumerate(targets.tolist()):
        others = [(j, wj) for j, wj in zip(candidates.tolist(), w.tolist()) if j != t]
        zi = z[i].tolist()
        want = math.log(math.exp(zi[t]) + sum(math.exp(zi[j] + wj) for j, wj in others)) - zi[t]
        assert got[i].item() == pytest.approx(want, rel=1e-12)
    # id 5 is a candidate of every row and a target of none: its row has a gradient; id 3 is neither
    assert grad[5].abs().sum() > 0 and grad[3].abs().sum() == 0


# ------------------------------------------------------------------ the sampler
def test_sampler_weights_are_log_count_over_expected_count():
    freq = np.array([5, 3, 1, 0, 4, 2, 0, 1, 1], dtype=np.float64)  # id 0 is outside [1, 9): ignored
    sampler = NegativeSampler(7, 1, 9, freq)
    targets = torch.tensor([1, 4, 4, 2])
    ids, w = sampler.sample(targets, torch.Generator().manual_seed(11))
    uniform = torch.randint(1, 9, (7,), generator=torch.Generator().manual_seed(11))
    pool = torch.cat([uniform, targets]).tolist()
    assert ids.tolist() == sorted(set(pool))
    p = freq / freq[1:].sum()
    for j, wj in zip(ids.tolist(), w.tolist()):
        expected = 7 / 8 + len(targets) * p[j]
        assert wj == pytest.approx(math.log(pool.count(j)) - math.log(expected), rel=1e-6)
    # uniform only: E = R / V for every id
    ids, w = NegativeSampler(7, 1, 9).sample(targets, torch.Generator().manual_seed(11))
    assert ids.tolist() == sorted(set(uniform.tolist()))
    assert w.tolist() == pytest.approx([math.log(uniform.tolist().count(j) / (7 / 8)) for j in ids.tolist()])


def test_sampler_is_reproducible_by_seed():
    sampler = NegativeSampler(50, 1, 1000, np.ones(1000))
    targets = torch.tensor([3, 4, 5])

    def draw(seed):
        return sampler.sample(targets, torch.Generator().manual_seed(seed))

    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_regenerator_sampled_loss_with_every_id_and_no_correction_is_the_full_loss():
    class Everything:
        """A sampler whose candidates are every id a pattern can hold, once, uncorrected."""

        def __init__(self, model):
            self.ids = torch.arange(1, model.bos)

        def sample(self, targets, generator):
            return self.ids, torch.zeros(self.ids.numel())

    src = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    pattern = torch.tensor([[2, 3, 0], [5, 7, 6]])
    for diversity in ("soft", "hard"):
        full = Regenerator(30, RegenConfig(**{**TINY, "train_softmax": "full", "diversity": diversity})).eval()
        sampled = Regenerator(30, RegenConfig(**{**TINY, "train_softmax": "sampled", "num_negatives": 31,
                                                 "diversity": diversity})).eval()
        sampled.load_state_dict(full.state_dict())
        want = full.loss(src, pattern, reduction="sum")[0]
        got = sampled.loss(src, pattern, reduction="sum", sampler=Everything(sampled))[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # held-out scores of a sampled-softmax regenerator are full-softmax ones
        with torch.no_grad():
            assert sampled.heldout_nll(src, pattern) == pytest.approx(full.heldout_nll(src, pattern), rel=1e-6)


def test_target_model_sampled_loss_with_every_item_is_the_softmax_loss():
    class Everything:
        def sample(self, targets, generator):
            return torch.arange(1, 21), torch.zeros(20)

    g = torch.Generator().manual_seed(0)
    table = torch.randn(21, 8, generator=g)

    class Model:
        num_items = 20

        def item_weight(self):
            return table

    hidden = torch.randn(3, 5, 8, generator=g)
    targets = torch.randint(0, 21, (3, 5), generator=g)
    loss = NextItemLoss("softmax", 20, sampler=Everything())
    got = loss.per_target(Model(), hidden, targets, g)
    torch.testing.assert_close(got, softmax_per_target(hidden, table, targets), rtol=1e-5, atol=1e-6)


def test_pretraining_with_the_sampled_softmax_is_reproducible_by_seed():
    from test_dr4sr_model import toy_pairs

    pairs = toy_pairs(n=120)
    cfg = dict(TINY, train_softmax="sampled", num_negatives=8, dropout=0.1)
    runs = [pretrain(pairs, 30, RegenConfig(**cfg, seed=s))[0].state_dict() for s in (0, 0)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_negatives_come_from_the_trainers_generator():
    # the same model and batch, the sampler fed by two generators in the same state: the same loss;
    # in another state: another loss (the draws are not torch's global stream)
    from test_dr4sr_model import toy_pairs

    from fastregen.generator.pretrain import pair_data

    model = Regenerator(30, RegenConfig(**TINY, train_softmax="sampled", num_negatives=4)).eval()
    data = pair_data(toy_pairs(n=40), model.config)
    b = data.batch(np.arange(16))

    def loss(seed):
        torch.manual_seed(123)  # the global stream is the same every time
        return model.loss(b.src, b.pattern, b.src_index, generator=torch.Generator().manual_seed(seed))[0]

    assert torch.equal(loss(5), loss(5)) and not torch.equal(loss(5), loss(6))


# ------------------------------------------------------------------ choice and errors
def test_auto_samples_from_the_measured_vocabulary_size():
    assert resolve_train_softmax("auto", SAMPLED_SOFTMAX_MIN_VOCAB - 1) == "full"
    assert resolve_train_softmax("auto", SAMPLED_SOFTMAX_MIN_VOCAB) == "sampled"
    assert resolve_train_softmax("full", 10**7) == "full" and resolve_train_softmax("sampled", 5) == "sampled"
    assert Regenerator(30, RegenConfig(**TINY, train_softmax="auto")).train_softmax == "full"
    assert Regenerator(30, RegenConfig(**TINY, train_softmax="source")).train_softmax == "source"


@pytest.mark.parametrize("make, match", [
    (lambda: RegenConfig(train_softmax="sampeld"), r"train_softmax must be one of .*'sampeld'"),
    (lambda: RegenConfig(num_negatives=0), "num_negatives must be >= 1, got 0"),
    (lambda: RegenConfig(num_negatives=2.5), "num_negatives must be an int, got 2.5"),
    (lambda: Regenerator(30, RegenConfig(**TINY, train_softmax="sampled", num_negatives=32)),
     "num_negatives = 32 exceeds the 31 ids"),
    (lambda: TrainConfig(train_softmax="partial"), r"train_softmax must be one of .*'partial'"),
    (lambda: TrainConfig(loss="bce", train_softmax="sampled"), "loss 'bce' takes 'full' only"),
    (lambda: NegativeSampler(11, 1, 11), "num_negatives = 11 exceeds the 10 ids"),
    (lambda: NegativeSampler(0, 1, 11), "num_negatives must be a positive int, got 0"),
    (lambda: NegativeSampler(3, 1, 11, np.ones(5)), "frequencies must be 11 finite values"),
    (lambda: NegativeSampler(2, 1, 3, np.array([5.0, 0, 0])), "frequencies are all 0"),
    (lambda: NextItemLoss("bce", 1, sampler=NegativeSampler(3, 1, 11)), "loss is 'bce'"),
])
def test_bad_options_raise_naming_the_value(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_target_model_run_with_more_negatives_than_items_is_refused():
    from fastregen.data import synthetic
    from fastregen.training import fit_and_evaluate

    data = synthetic("demo", n_users=40, n_items=30, avg_len=6, n_patterns=4, pattern_len=3, seed=1)
    with pytest.raises(ValueError, match="num_negatives = 31 exceeds the 30 ids"):
        fit_and_evaluate(data, "sasrec", loss="softmax", train_softmax="sampled", num_negatives=31, epochs=1,
                         embed_dim=8, max_len=8, progress=False, num_threads=1)
    res = fit_and_evaluate(data, "sasrec", loss="softmax", train_softmax="sampled", num_negatives=10, epochs=1,
                           embed_dim=8, max_len=8, progress=False, num_threads=1)
    assert res["train_softmax"] == "sampled" and res["num_negatives"] == 10


# ------------------------------------------------------------------ lazy item-table updates
def test_lazy_adam_is_adam_on_rows_with_a_gradient_and_leaves_the_others():
    from fastregen.training import LazyAdam

    g = torch.Generator().manual_seed(0)
    table = torch.nn.Parameter(torch.randn(6, 3, generator=g, dtype=torch.float64))
    other = torch.nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
    ref_table = torch.nn.Parameter(table.detach().clone())
    ref_other = torch.nn.Parameter(other.detach().clone())
    lazy = LazyAdam([table, other], [table], lr=0.1, betas=(0.9, 0.98), eps=1e-9)
    ref = torch.optim.Adam([ref_table, ref_other], lr=0.1, betas=(0.9, 0.98), eps=1e-9)
    after_first = None
    for step in range(3):
        # rows 0..4 every step (row 2 twice), row 5 in the first step only
        ids = torch.tensor([0, 1, 2, 3, 4, 2] + ([5] if step == 0 else []))
        for t, o, opt in ((table, other, lazy), (ref_table, ref_other, ref)):
            opt.zero_grad()
            w = torch.linspace(0.5, 2.0, len(ids), dtype=torch.float64)[:, None]
            (F.embedding(ids, t, sparse=t is table) * w).sum().mul(step + 1).add((o ** 2).sum()).backward()
            opt.step()
        if step == 0:
            after_first = table.detach()[5].clone()
            torch.testing.assert_close(after_first, ref_table.detach()[5], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(table.detach()[:5], ref_table.detach()[:5], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(other.detach(), ref_other.detach(), rtol=1e-6, atol=1e-9)  # fused vs not
    # the documented difference: Adam keeps moving row 5 on its momentum, the lazy update leaves it
    assert torch.equal(table.detach()[5], after_first)
    assert not torch.allclose(ref_table.detach()[5], after_first)
    clone = LazyAdam([table, other], [table], lr=0.1, betas=(0.9, 0.98), eps=1e-9)
    clone.load_state_dict(lazy.state_dict())
    assert clone.state[table]["step"] == 3
    assert torch.equal(clone.state[table]["exp_avg"], lazy.state[table]["exp_avg"])


def test_pretraining_with_lazy_item_updates_learns_and_is_reproducible():
    from test_dr4sr_model import toy_pairs

    from fastregen.generator.pretrain import validation_losses

    pairs = toy_pairs(n=160)
    cfg = dict(TINY, epochs=4, train_softmax="sampled", num_negatives=8, item_updates="lazy")
    (a, _), (b, _) = (pretrain(pairs, 30, RegenConfig(**cfg)) for _ in range(2))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    torch.manual_seed(0)
    untrained = Regenerator(30, RegenConfig(**cfg))
    with torch.no_grad():
        trained, before = validation_losses(a, pairs), validation_losses(untrained.eval(), pairs)
    assert trained["valid_best_memory_loss"] < before["valid_best_memory_loss"] - 0.2
    with pytest.raises(ValueError, match=r"item_updates must be one of dense, lazy; got 'sparse'"):
        RegenConfig(item_updates="sparse")
