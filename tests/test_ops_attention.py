"""Ragged attention: the compiled kernel against the NumPy reference and the torch reference,
forward and backward; the layers and the regenerator with ``fused_attention`` against the torch path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen.models.base import Dropout
from fastregen.ops import ragged_attention, ragged_attention_torch
from fastregen.reference import attention as ref


def _problem(seed, *, self_attention, groups=5, heads=2, head_dim=4, max_q=6, max_k=7, dtype=torch.float64,
             ignore=0.0, threshold=0, extra_width=1, empty_groups=True):
    g = torch.Generator().manual_seed(seed)
    low = 0 if empty_groups else 1
    q_len = torch.randint(low, max_q + 1, (groups,), generator=g)
    k_len = q_len.clone() if self_attention else torch.randint(low, max_k + 1, (groups,), generator=g)
    q_off = torch.cat([torch.zeros(1, dtype=torch.long), q_len.cumsum(0)])
    k_off = torch.cat([torch.zeros(1, dtype=torch.long), k_len.cumsum(0)])
    R, N, D = int(q_off[-1]), int(k_off[-1]), heads * head_dim
    q = torch.randn(R, 3 * D if self_attention else D, generator=g, dtype=dtype)
    kv = None if self_attention else torch.randn(N, 2 * D, generator=g, dtype=dtype)
    key_ignore = (torch.rand(N, generator=g) < ignore) if ignore else None
    width = (int(k_len.max()) if groups else 0) + extra_width
    drop = None
    if threshold:
        n = R * heads * width
        drop = torch.randint(0, 256, ((n + 7) // 8 if threshold == 128 else n,), generator=g, dtype=torch.uint8)
    return dict(q=q, kv=kv, q_offsets=q_off, k_offsets=k_off, heads=heads, width=width, key_ignore=key_ignore,
                drop=drop, drop_threshold=threshold)


def _grads(fn, p, causal, dout_seed=1):
    q = p["q"].clone().requires_grad_(True)
    kv = None if p["kv"] is None else p["kv"].clone().requires_grad_(True)
    out = fn(q, kv, p["q_offsets"], p["k_offsets"], heads=p["heads"], width=p["width"], causal=causal,
             key_ignore=p["key_ignore"], drop=p["drop"], drop_threshold=p["drop_threshold"])
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(dout_seed), dtype=out.dtype)
    seen = torch.isfinite(out).all(1)
    grads = torch.autograd.grad((out[seen] * dout[seen]).sum(), [q] + ([kv] if kv is not None else []),
                                allow_unused=True)
    return out.detach(), [torch.zeros_like(t) if gr is None else gr for t, gr in zip([q, kv], grads)]


CASES = [(sa, causal, ignore, thr) for sa in (True, False) for causal in (False, True)
         for ignore in (0.0, 0.3) for thr in (0, 128, 51)]


@pytest.mark.parametrize("self_attention,causal,ignore,threshold", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("head_dim", [4, 32])  # 32: the float kernel's compile-time width (sums in registers)
def test_core_matches_torch_reference_forward_and_backward(self_attention, causal, ignore, threshold, dtype,
                                                           head_dim):
    p = _problem(7 + threshold, self_attention=self_attention, ignore=ignore, threshold=threshold, dtype=dtype,
                 head_dim=head_dim, max_k=20)
    core = _grads(lambda *a, **k: ragged_attention(*a, **k, backend="core"), p, causal)
    torch_ = _grads(ragged_attention_torch, p, causal)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    assert torch.equal(torch.isnan(core[0]), torch.isnan(torch_[0]))
    torch.testing.assert_close(core[0].nan_to_num(), torch_[0].nan_to_num(), **tol)
    for a, b in zip(core[1], torch_[1]):
        torch.testing.assert_close(a, b, **tol)


def _numpy_case(p, causal):
    D = p["q"].shape[1] // 3 if p["kv"] is None else p["q"].shape[1]
    if p["kv"] is None:
        q, k, v = p["q"][:, :D], p["q"][:, D:2 * D], p["q"][:, 2 * D:]
    else:
        q, k, v = p["q"], p["kv"][:, :D], p["kv"][:, D:]
    scale = 1 / math.sqrt(D // p["heads"])
    ignore = None if p["key_ignore"] is None else p["key_ignore"].numpy()
    drop = None if p["drop"] is None else p["drop"].numpy()
    args = (q.numpy(), k.numpy(), v.numpy(), p["q_offsets"].numpy(), p["k_offsets"].numpy(), p["heads"], p["width"],
            causal, scale)
    return args, ignore, drop


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), self_attention=st.booleans(), causal=st.booleans(),
       ignore=st.sampled_from([0.0, 0.5, 1.0]), threshold=st.sampled_from([0, 1, 51, 128, 255]),
       groups=st.integers(0, 6), heads=st.sampled_from([1, 2, 3]), head_dim=st.sampled_from([1, 5, 32]),
       extra=st.integers(0, 3), threads=st.sampled_from([1, 2]))
def test_core_matches_numpy_reference(seed, self_attention, causal, ignore, threshold, groups, heads, head_dim,
                                      extra, threads):
    """float64, every option: the kernel's out, probs and gradients are the reference's (to rounding)."""
    p = _problem(seed, self_attention=self_attention, groups=groups, heads=heads, head_dim=head_dim,
                 ignore=ignore, threshold=threshold, extra_width=extra)
    args, ignore_np, drop = _numpy_case(p, causal)
    out, probs = _core.ragged_attention_forward(*args, ignore_np, drop, threshold, threads)
    keep = ref.keep_mask(drop, threshold, args[0].shape[0], heads, p["width"])
    want_out, want_probs = ref.forward(*args, key_ignore=ignore_np, keep=keep)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want_out))
    np.testing.assert_allclose(np.nan_to_num(out), np.nan_to_num(want_out), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-12, atol=1e-15)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    dq, dk, dv = (np.full(a.shape, np.nan) for a in args[:3])  # the kernel writes every element
    _core.ragged_attention_backward(*args, ignore_np, drop, threshold, probs, dout, dq, dk, dv, threads)
    for got, want in zip((dq, dk, dv), ref.backward(*args, ignore_np, keep, want_probs, dout)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_edges_empty_single_and_max_length():
    """No rows at all, groups of one token, and a group of 50 (the regenerator's max_len)."""
    for q_len in ([], [0, 0], [1, 1, 1], [50]):
        q_off = torch.tensor([0] + list(np.cumsum(q_len, dtype=np.int64)), dtype=torch.long)
        R, D = int(q_off[-1]), 64
        qkv = torch.randn(R, 3 * D, dtype=torch.float64)
        width = max(q_len, default=0)
        for causal in (False, True):
            a = ragged_attention(qkv, None, q_off, q_off, heads=2, width=width, causal=causal, backend="core")
            b = ragged_attention_torch(qkv, None, q_off, q_off, heads=2, width=width, causal=causal)
            assert a.shape == (R, D)
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_repeated_keys_and_all_ignored_group():
    """Identical keys weigh equally; a group whose keys are all ignored gives NaN rows and no gradient."""
    q = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(1, 16, dtype=torch.float64).repeat(4, 1).requires_grad_(True)
    q_off, k_off = torch.tensor([0, 2, 3]), torch.tensor([0, 3, 4])
    ignore = torch.tensor([False, False, False, True])
    out = ragged_attention(q, kv, q_off, k_off, heads=2, key_ignore=ignore, backend="core")
    torch.testing.assert_close(out[:2], kv[0, 8:].detach().expand(2, 8))
    assert torch.isnan(out[2]).all()
    out[:2].sum().backward()
    assert torch.isfinite(q.grad).all() and torch.equal(q.grad[2], torch.zeros(8, dtype=torch.float64))


def test_threads_do_not_change_the_result():
    p = _problem(3, self_attention=False, groups=300, max_q=8, max_k=40, ignore=0.2, threshold=128)
    args, ignore, drop = _numpy_case(p, True)
    one = _core.ragged_attention_forward(*args, ignore, drop, 128, 1)
    two = _core.ragged_attention_forward(*args, ignore, drop, 128, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_dropout_masks_are_dropouts():
    """The kernel's dropout is `Dropout.keep` of the same bytes: ~half the weights dropped at p = 0.5."""
    p = _problem(5, self_attention=True, groups=200, max_q=10, threshold=128, empty_groups=False)
    keep = ref.keep_mask(p["drop"].numpy(), 128, p["q"].shape[0], 2, p["width"])
    want = Dropout(0.5).keep(p["drop"], keep.shape, torch.float64).numpy()
    np.testing.assert_array_equal(keep, want)
    assert 0.45 < (keep > 0).mean() < 0.55


@pytest.mark.parametrize("bad,match,error", [
    (dict(heads=3), "heads", ValueError),
    (dict(q_offsets=torch.tensor([0, 3, 2, 6])), "non-decreasing", ValueError),
    (dict(q_offsets=torch.tensor([1, 3, 4, 6])), r"q_offsets\[0\]", ValueError),
    (dict(k_offsets=torch.tensor([0, 2, 4, 9])), r"k_offsets\[-1\]", ValueError),
    (dict(width=1), "more than width", ValueError),
    (dict(drop_threshold=128), "needs drop", ValueError),
    (dict(drop_threshold=300, drop=torch.zeros(100, dtype=torch.uint8)), "0..255", ValueError),
    (dict(drop_threshold=51, drop=torch.zeros(3, dtype=torch.uint8)), "at least", ValueError),
    (dict(key_ignore=torch.zeros(5, dtype=torch.bool)), "key_ignore", ValueError),
    (dict(q_offsets=torch.tensor([0, 3, 4, 6], dtype=torch.int32)), "int64", TypeError),
])
def test_bad_input_is_a_clear_error(bad, match, error):
    args = dict(q=torch.randn(6, 8), kv=torch.randn(8, 16), q_offsets=torch.tensor([0, 3, 4, 6]),
                k_offsets=torch.tensor([0, 2, 4, 8]), heads=2, width=4)
    args.update(bad)
    with pytest.raises(error, match=match):
        ragged_attention(**args, backend="core")


def test_core_binding_rejects_wrong_dtype_and_overlapping_rows():
    q = np.zeros((4, 8), np.float32)
    off = np.array([0, 4], np.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.ragged_attention_forward(q.astype(np.int32), q, q, off, off, 2, 4)
    with pytest.raises(TypeError, match="dtype"):
        _core.ragged_attention_forward(q, q.astype(np.float64), q, off, off, 2, 4)
    overlapping = np.lib.stride_tricks.as_strided(np.zeros(16, np.float32), (4, 8), (4, 4))
    with pytest.raises(ValueError, match="overlap"):
        _core.ragged_attention_forward(q, overlapping, q, off, off, 2, 4)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        ragged_attention(torch.zeros(2, 6), None, torch.tensor([0, 2]), torch.tensor([0, 2]), heads=1, backend="x")


# ---------------------------------------------------------------- the layers and the regenerator
def _layer_pair(cls, *args):
    from fastregen.generator import layers

    torch.manual_seed(0)
    a = getattr(layers, cls)(*args).double().eval()
    b = getattr(layers, cls)(*args).double().eval()
    b.load_state_dict(a.state_dict())
    for m in b.modules():
        if isinstance(m, layers.MultiheadAttention):
            m.fused = True
    return a, b


@pytest.mark.parametrize("packed", [False, True])
def test_decoder_and_encoder_layers_fused_equal_torch_path(packed):
    """Eval mode (no dropout): the fused layers compute the torch layers' outputs and gradients."""
    from fastregen.generator.layers import Packing

    g = torch.Generator().manual_seed(2)
    lengths = torch.tensor([3, 1, 5, 2])
    real = torch.arange(5)[None, :] < lengths[:, None]
    memory = torch.randn(4, 6, 16, generator=g, dtype=torch.float64)
    mem_pad = torch.arange(6)[None, :] >= torch.tensor([6, 2, 4, 1])[:, None]
    x = torch.randn(4, 5, 16, generator=g, dtype=torch.float64)
    packing = Packing(real) if packed else None
    inp = packing.pack(x) if packed else x
    for cls, call in (("DecoderLayer", lambda m, z: m(z, memory, tgt_padding=None if packed else ~real,
                                                    memory_padding=mem_pad, packing=packing)),
                      ("EncoderLayer", lambda m, z: m(z, key_padding=None if packed else ~real, packing=packing))):
        a, b = _layer_pair(cls, 16, 2, 32, 0.5)
        outs = []
        for m in (a, b):
            z = inp.clone().requires_grad_(True)
            out = call(m, z)
            keep = torch.ones(out.shape[:-1], dtype=torch.bool) if packed else real
            loss = (out[keep] ** 2).sum()
            outs.append((out[keep].detach(), *torch.autograd.grad(loss, [z] + list(m.parameters()))))
        for u, w in zip(*outs):
            torch.testing.assert_close(u, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pack", [False, True])
def test_pretraining_with_fused_attention(pack):
    """Dropout off: fused pre-training follows the torch path up to rounding; dropout on: seeded, learns,
    other masks; the option is off again once pre-training returns (inference unchanged)."""
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import pretrain

    from test_generator_identity import SharedPairs

    pairs = SharedPairs(n_sources=40, num_items=30)
    kw = dict(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=3,
              batch_size=16, max_len=12, max_pattern_len=6, progress=False, seed=1, valid_fraction=0.2,
              pack_targets=pack)
    runs = {}
    for dropout in (0.0, 0.5):
        for fused in (False, True):
            runs[dropout, fused] = pretrain(pairs, 30, RegenConfig(dropout=dropout, fused_attention=fused, **kw))
    for a, b in zip(runs[0.0, False][1], runs[0.0, True][1]):
        for key in ("train_loss", "valid_loss", "valid_best_memory_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    history = runs[0.5, True][1]
    assert history[-1]["train_loss"] != runs[0.5, False][1][-1]["train_loss"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    again = pretrain(pairs, 30, RegenConfig(dropout=0.5, fused_attention=True, **kw))[1]
    assert [h["train_loss"] for h in again] == [h["train_loss"] for h in history]
    assert not any(getattr(m, "fused", False) for m in runs[0.5, True][0].modules())


def test_fused_attention_option_is_checked():
    from fastregen.dr4sr import RegenConfig

    with pytest.raises(TypeError, match="fused_attention"):
        RegenConfig(fused_attention="yes")


def test_no_silent_second_derivative():
    q = torch.randn(4, 24, dtype=torch.float64, requires_grad=True)
    off = torch.tensor([0, 4])
    out = ragged_attention(q, None, off, off, heads=2, backend="core")
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad((out ** 2).sum(), q, create_graph=True)
