"""Dropout's compiled pass (`fastregen._core.apply_dropout`) is bit for bit the torch product, forward and
backward, and the NumPy reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen.models.base import Dropout
from fastregen.reference import dropout as ref


def _torch_path(d: Dropout, x: torch.Tensor) -> torch.Tensor:
    """What `Dropout.forward` computed before the compiled pass: ``x * mask`` (CUDA still does)."""
    return x * d.mask(x.shape, x.dtype, x.device)


@pytest.mark.parametrize("p", [0.5, 0.2, 1 / 256, 255 / 256, 0.3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5, 8), (4, 1000), (1 << 20) + 3])
def test_forward_and_backward_bit_for_bit_the_torch_path(p, dtype, shape):
    d = Dropout(p).train()
    x = torch.randn(shape, dtype=dtype)
    x[..., :1] = -0.0  # signed zeros survive alike
    torch.manual_seed(3)
    a_in = x.clone().requires_grad_(True)
    a = d(a_in)
    torch.manual_seed(3)
    b_in = x.clone().requires_grad_(True)
    b = _torch_path(d, b_in)
    assert torch.equal(a, b) and torch.equal(torch.signbit(a), torch.signbit(b))
    g = torch.randn(a.shape, dtype=dtype)
    a.backward(g)
    b.backward(g)
    assert torch.equal(a_in.grad, b_in.grad)


def test_non_contiguous_input_and_eval_mode():
    d = Dropout(0.5).train()
    x = torch.randn(6, 10).t()
    torch.manual_seed(1)
    a = d(x)
    torch.manual_seed(1)
    assert torch.equal(a, _torch_path(d, x))
    assert d.eval()(x) is x


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 5000), threshold=st.integers(1, 255), seed=st.integers(0, 2**31 - 1),
       double=st.booleans(), threads=st.sampled_from([1, 2]))
def test_kernel_matches_numpy_reference(n, threshold, seed, double, threads):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float64 if double else np.float32)
    raw = rng.integers(0, 256, (n + 7) // 8 if threshold == 128 else n, dtype=np.uint8)
    out = np.empty_like(x)
    _core.apply_dropout(x, raw, threshold, out, threads)
    np.testing.assert_array_equal(out, ref.apply_dropout(x, raw, threshold))


def test_in_place_and_bad_input():
    x = np.arange(16, dtype=np.float32)
    raw = np.full(2, 0b01010101, np.uint8)
    _core.apply_dropout(x, raw, 128, x)
    np.testing.assert_array_equal(x, np.arange(16) * np.tile([2, 0], 8))
    with pytest.raises(ValueError, match="at least 2 bytes"):
        _core.apply_dropout(x, raw[:1], 128, x)
    with pytest.raises(ValueError, match="1..255"):
        _core.apply_dropout(x, raw, 0, x)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.apply_dropout(x.astype(np.int32), raw, 128, x)
    with pytest.raises(ValueError, match="out must be"):
        _core.apply_dropout(x, raw, 128, np.empty(3, np.float32))
    with pytest.raises(TypeError, match="uint8"):
        _core.apply_dropout(x, raw.astype(np.int16), 128, x)


def test_double_backward_matches_the_torch_path():
    """DR4SR+ differentiates a gradient (Hessian-vector products): through the compiled dropout the second
    derivative is the torch path's, not cut at the dropout."""
    
    def hvp(use_core: bool):
        torch.manual_seed(0)
        w1 = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
        w2 = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
        x = torch.randn(5, 6, dtype=torch.float64)
        d = Dropout(0.5).train()
        torch.manual_seed(1)
        h = torch.tanh(x @ w1)
        h = d(h) if use_core else _torch_path(d, h)
        loss = (torch.tanh(h @ w2) ** 2).sum()
        g = torch.autograd.grad(loss, [w1, w2], create_graph=True)
        v = [torch.ones_like(t) for t in g]
        return torch.autograd.grad(g, [w1, w2], grad_outputs=v)

    for a, b in zip(hvp(True), hvp(False)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert a.abs().sum() > 0
