"""The regenerator on packed targets (`PretrainConfig.pack_targets`, `fastregen.generator.layers.Packing`)
against the padded computation: the same loss, and every gradient, in float64 (tight) and float32
(loose) with dropout off, for each diversity, K = 1 and K > 1, UniDS segments, length-1 and empty
patterns and random batch shapes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.dr4sr import RegenConfig
from fastregen.generator import GeneratorConfig, PretrainConfig, Regenerator, pretrain
from fastregen.generator.layers import Packing

from test_generator_identity import SharedPairs

NUM_ITEMS = 30
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}


def _model(dtype=torch.float64, K=3, diversity="soft", seed=0, dropout=0.0, train_softmax="source"):
    torch.manual_seed(seed)
    cfg = GeneratorConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=2, d_ff=32, K=K,
                          dropout=dropout, diversity=diversity, max_len=12, max_pattern_len=8,
                          train_softmax=train_softmax)
    return Regenerator(NUM_ITEMS, cfg).to(dtype)


def _right_padded(lengths, width, gen):
    x = torch.randint(1, NUM_ITEMS + 1, (len(lengths), width), generator=gen)
    x[torch.arange(width)[None, :] >= torch.as_tensor(lengths)[:, None]] = 0
    return x


def _batch(gen, S=5, L=9, B=8, P=6, pattern_lengths=None):
    src_len = torch.randint(1, L + 1, (S,), generator=gen)
    src_len[0] = L
    src = _right_padded(src_len, L, gen)
    index = torch.randint(0, S, (B,), generator=gen)
    if pattern_lengths is None:
        pattern_lengths = torch.randint(1, P + 1, (B,), generator=gen)
        pattern_lengths[0] = P
    pattern = _right_padded(pattern_lengths, P, gen)
    return src, index, pattern


def _loss_and_grads(model, src, index, pattern, pack, segments=None, seed=1):
    torch.manual_seed(seed)  # the Gumbel noise: drawn alike either way (dropout is off)
    model.zero_grad(set_to_none=True)
    ce, entropy, pi = model.loss(src, pattern, index, reduction="sum", segments=segments, pack=pack)
    (ce + 0.3 * entropy).backward()
    grads = {n: p.grad.to_dense() for n, p in model.named_parameters() if p.grad is not None}
    return ce.detach(), pi.detach(), grads


def _assert_agree(model, src, index, pattern, segments=None):
    dtype = next(model.parameters()).dtype
    ce, pi, grads = _loss_and_grads(model, src, index, pattern, False, segments)
    ce_p, pi_p, grads_p = _loss_and_grads(model, src, index, pattern, True, segments)
    assert torch.isfinite(ce)
    torch.testing.assert_close(ce_p, ce, **TOL[dtype])
    torch.testing.assert_close(pi_p, pi, **TOL[dtype])
    assert set(grads_p) == set(grads)
    for name, g in grads.items():
        torch.testing.assert_close(grads_p[name], g, **TOL[dtype], msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("diversity,K", [("soft", 3), ("gumbel", 3), ("hard", 3), ("soft", 1)])
def test_packed_loss_and_gradients_match_the_padded_ones(dtype, diversity, K):
    gen = torch.Generator().manual_seed(K)
    model = _model(dtype, K, diversity)
    model.train()  # dropout 0: the training code path with nothing random but the Gumbel noise
    _assert_agree(model, *_batch(gen))


def test_full_softmax():
    """The full-vocabulary softmax scores the decoder states of real tokens only: padding never reaches it."""
    _assert_agree(_model(train_softmax="full"), *_batch(torch.Generator().manual_seed(7)))


def test_length_one_patterns_and_sources():
    gen = torch.Generator().manual_seed(2)
    model = _model()
    src, index, pattern = _batch(gen, S=3, L=1, B=6, P=1)
    _assert_agree(model, src, index, pattern)
    src, index, pattern = _batch(gen, pattern_lengths=[1, 1, 1, 4, 1, 1, 1, 1])
    _assert_agree(model, src, index, pattern)


def test_empty_patterns():
    """An empty pattern decodes BOS -> EOS. K = 1: both ways agree. K > 1: the padded promoter
    attends over no key at all (NaN), the packed one pools nothing and stays finite."""
    gen = torch.Generator().manual_seed(3)
    src, index, pattern = _batch(gen, pattern_lengths=[4, 0, 2, 0, 1, 3, 0, 2])
    _assert_agree(_model(K=1), src, index, pattern)
    model = _model(K=3)
    ce, _, _ = _loss_and_grads(model, src, index, pattern, False)
    ce_p, _, grads_p = _loss_and_grads(model, src, index, pattern, True)
    assert torch.isnan(ce) and torch.isfinite(ce_p)
    assert all(torch.isfinite(g).all() for g in grads_p.values())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unids_segments(dtype):
    gen = torch.Generator().manual_seed(4)
    src, index, pattern = _batch(gen, pattern_lengths=[6, 3, 1, 5, 2, 6, 4, 1])
    lengths = (pattern != 0).sum(1)
    segments = torch.full(pattern.shape, -1)
    for b, n in enumerate(lengths.tolist()):  # one to three contiguous segments per target
        cuts = sorted(torch.randint(1, max(n, 2), (2,), generator=gen).tolist())
        segments[b, :n] = torch.tensor([(t >= cuts[0]) + (t >= cuts[1]) for t in range(n)])
        segments[b, :n] -= segments[b, 0].clone()
        _, segments[b, :n] = torch.unique_consecutive(segments[b, :n], return_inverse=True)
    model = _model(dtype)
    model.train()
    _assert_agree(model, src, index, pattern, segments)


def test_heldout_and_memory_nll_match():
    gen = torch.Generator().manual_seed(5)
    model = _model().eval()
    src, index, pattern = _batch(gen)
    with torch.no_grad():  # as `fastregen.generator.pretrain` scores held-out pairs
        _check_heldout(model, src, index, pattern)


def _check_heldout(model, src, index, pattern):
    mixture, best, tokens = model.heldout_nll(src, pattern, index)
    mixture_p, best_p, tokens_p = model.heldout_nll(src, pattern, index, pack=True)
    assert tokens_p == tokens
    assert mixture_p == pytest.approx(mixture, rel=1e-10) and best_p == pytest.approx(best, rel=1e-10)
    torch.testing.assert_close(model.memory_nll(src, pattern, index, pack=True), model.memory_nll(src, pattern, index))


@settings(max_examples=30, deadline=None)
@given(S=st.integers(1, 5), L=st.integers(1, 8), B=st.integers(1, 9), P=st.integers(1, 7), K=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_random_batch_shapes(S, L, B, P, K, seed):
    gen = torch.Generator().manual_seed(seed)
    _assert_agree(_model(K=K, seed=seed), *_batch(gen, S=S, L=L, B=B, P=P))


# ---------------------------------------------------------------- Packing itself
def test_packing_round_trip_and_split_heads():
    gen = torch.Generator().manual_seed(6)
    real = torch.arange(5)[None, :] < torch.tensor([5, 1, 3, 0])[:, None]
    packing = Packing(real)
    x = torch.randn(4, 5, 6, generator=gen)
    rows = packing.pack(x)
    assert len(packing) == rows.shape[0] == 9
    assert torch.equal(rows, x[real])
    assert torch.equal(packing.unpack(rows), x * real[:, :, None])
    torch.testing.assert_close(packing.mean(rows), (x * real[:, :, None]).sum(1) / real.sum(1).clamp_min(1)[:, None])
    qk = torch.cat([rows, -rows], 1)
    q, k = packing.heads(qk, heads=3, parts=2)  # (N, 2 * 6) -> two (B, 3, T, 2)
    padded = packing.unpack(rows).view(4, 5, 3, 2).transpose(1, 2)
    assert torch.equal(q, padded) and torch.equal(k, -padded) and q.is_contiguous()
    assert torch.equal(packing.merge(q), rows)


def test_packing_heads_and_merge_gradients():
    real = torch.arange(4)[None, :] < torch.tensor([4, 2, 1])[:, None]
    packing = Packing(real)
    x = torch.randn(len(packing), 2 * 4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: packing.heads(t, heads=2, parts=2), (x,))
    torch.autograd.gradcheck(lambda t: packing.heads(t, heads=2, parts=2)[1], (x,))  # one part unused
    y = torch.randn(3, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(packing.merge, (y,))


def test_packing_rejects_what_it_cannot_pack():
    with pytest.raises(ValueError, match="right-padded"):
        Packing(torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="bool"):
        Packing(torch.ones(2, 3, dtype=torch.int64))


# ---------------------------------------------------------------- the option
def test_pretraining_with_packed_targets():
    """Dropout off: a packed pre-training follows the padded one up to rounding; dropout on: other masks."""
    pairs = SharedPairs(n_sources=40, num_items=NUM_ITEMS)
    kw = dict(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=2,
              batch_size=16, max_len=12, max_pattern_len=6, progress=False, seed=1, valid_fraction=0.2)
    histories = {}
    for dropout in (0.0, 0.5):
        for pack in (False, True):
            _, histories[dropout, pack] = pretrain(pairs, NUM_ITEMS, RegenConfig(dropout=dropout, pack_targets=pack,
                                                                                  **kw))
    for a, b in zip(histories[0.0, False], histories[0.0, True]):
        for key in ("train_loss", "valid_loss", "valid_best_memory_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    assert histories[0.5, True][-1]["train_loss"] != histories[0.5, False][-1]["train_loss"]


def test_pack_targets_must_be_a_bool():
    with pytest.raises(TypeError, match="pack_targets"):
        PretrainConfig(pack_targets="yes")
    assert RegenConfig(pack_targets=True).pretraining().pack_targets is True
