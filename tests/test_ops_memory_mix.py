"""K-memory mixing: triton kernel (interpreted on CPU) vs the torch reference, forward and backward."""

from __future__ import annotations

import os

# Before triton decorates anything: run the kernels in triton's CPU interpreter.
os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from fastregen.ops import mix_memories, mix_memories_torch, resolve_backend  # noqa: E402

pytest.importorskip("triton")

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-5, rtol=1e-5)}

SHAPES = [
    (1, 1, 1, 1),      # smallest
    (2, 5, 3, 7),      # odd sizes
    (3, 17, 5, 64),    # the regenerator's defaults (K = 5, D = 64)
    (2, 300, 2, 8),    # L * D = 2400 spans several 1024-blocks, last one partial
    (1, 3, 1, 130),    # K = 1
]


def _explicit(m, pi):
    return (m * pi[:, None, :, None]).sum(2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_matches_reference_forward_and_backward(shape, dtype):
    B, L, K, D = shape
    g = torch.Generator().manual_seed(sum(shape))
    m = torch.randn(shape, generator=g, dtype=dtype)
    pi = torch.softmax(torch.randn(B, K, generator=g, dtype=dtype), -1)
    grad = torch.randn(B, L, D, generator=g, dtype=dtype)

    outs, grads = {}, {}
    for backend in ("torch", "triton"):
        mm = m.clone().requires_grad_()
        pp = pi.clone().requires_grad_()
        out = mix_memories(mm, pp, backend=backend)
        out.backward(grad)
        outs[backend] = out.detach()
        grads[backend] = (mm.grad, pp.grad)
    assert outs["triton"].dtype == dtype and outs["triton"].shape == (B, L, D)
    torch.testing.assert_close(outs["triton"], outs["torch"], **TOL[dtype])
    torch.testing.assert_close(grads["triton"][0], grads["torch"][0], **TOL[dtype])
    torch.testing.assert_close(grads["triton"][1], grads["torch"][1], **TOL[dtype])
    # the reference itself against the formula
    torch.testing.assert_close(outs["torch"], _explicit(m, pi), **TOL[dtype])
    torch.testing.assert_close(grads["torch"][1], torch.einsum("bld,blkd->bk", grad, m), **TOL[dtype])


def test_non_contiguous_inputs_and_unnormalised_pi():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(2, 4, 6, 3, generator=g)
    m = base.permute(0, 1, 3, 2)  # (2, 4, 3, 6), non-contiguous
    pi = torch.randn(3, 2, generator=g).T  # non-contiguous, rows do not sum to 1
    torch.testing.assert_close(mix_memories(m, pi, backend="triton"), _explicit(m, pi))


def test_one_hot_pi_selects_one_memory():
    m = torch.randn(3, 4, 5, 8)
    pi = torch.nn.functional.one_hot(torch.tensor([0, 4, 2]), 5).float()
    out = mix_memories(m, pi, backend="triton")
    for b, k in enumerate([0, 4, 2]):
        torch.testing.assert_close(out[b], m[b, :, k])


def test_auto_is_torch_on_cpu():
    m, pi = torch.zeros(1, 1, 1, 1), torch.zeros(1, 1)
    assert resolve_backend("auto", m, pi) == "torch"
    assert resolve_backend("triton", m, pi) == "triton"  # the interpreter is on in this module


def test_triton_on_cpu_without_interpreter_is_an_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        mix_memories(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1), backend="triton")


@pytest.mark.parametrize(
    "m_shape, pi_shape, match",
    [((2, 3, 4), (2, 4), "shape \\(B, L, K, D\\)"), ((2, 3, 4, 5), (2, 3), "pi must have shape"),
     ((2, 3, 4, 5), (3, 4), "pi must have shape")],
)
def test_bad_shapes(m_shape, pi_shape, match):
    with pytest.raises(ValueError, match=match):
        mix_memories_torch(torch.zeros(m_shape), torch.zeros(pi_shape))


def test_bad_backend_and_dtype():
    with pytest.raises(ValueError, match="backend must be one of"):
        mix_memories(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1), backend="cuda")
    with pytest.raises(TypeError, match="floating point"):
        mix_memories(torch.zeros(1, 1, 1, 1, dtype=torch.long), torch.zeros(1, 1))


# ------------------------------------------------ memories of distinct sources, read by pairs (``index``)
def _bits(t):
    return t.detach().contiguous().view(torch.int64 if t.dtype == torch.float64 else torch.int32)


INDEXED = [  # (S, L, K, D, index)
    (1, 1, 1, 1, [0]),                         # smallest
    (3, 4, 5, 8, [0, 0, 0, 1, 2, 2]),          # repeats, in order (the pre-training batches)
    (4, 6, 5, 64, [3, 1, 3, 0, 1, 1, 3]),      # repeats out of order, source 2 unused
    (5, 1, 2, 7, [4, 4]),                      # L = 1, one source for every pair
    (6, 17, 1, 130, [5, 0, 2]),                # K = 1
    (4, 3, 8, 16, [1, 1, 2, 3, 0]),            # K = 8
    (65, 14, 5, 64, None),                     # a Beauty batch: ~60 sources, 256 pairs of ~4 each
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("S, L, K, D, index", INDEXED)
def test_indexed_torch_path_is_the_reference_bit_for_bit(S, L, K, D, index, dtype):
    """mix_memories(memories, pi, index) on the torch backend: the reference's output, grad_memories and
    grad_pi (memories[index] then the einsum), the same bits; zero rows (padding) and signed zeros too."""
    g = torch.Generator().manual_seed(S * 1000 + L)
    if index is None:
        index = torch.sort(torch.randint(0, S, (256,), generator=g)).values
    index = torch.as_tensor(index, dtype=torch.int64)
    B = index.shape[0]
    m = torch.randn(S, L, K, D, generator=g, dtype=dtype)
    m[:, -1] = 0.0  # a padded position
    pi = torch.softmax(torch.randn(B, K, generator=g, dtype=dtype), -1)
    grad = torch.randn(B, L, D, generator=g, dtype=dtype)
    grad[:, 0] = -0.0
    runs = []
    for fn in (mix_memories_torch, mix_memories):
        mm, pp = m.clone().requires_grad_(), pi.clone().requires_grad_()
        out = fn(mm, pp, index)
        out.backward(grad)
        runs.append((out, mm.grad, pp.grad))
    for new, ref in zip(runs[1], runs[0]):
        assert new.shape == ref.shape and new.dtype == ref.dtype
        assert torch.equal(_bits(new), _bits(ref))
    torch.testing.assert_close(runs[1][0], _explicit(m[index], pi), **TOL[dtype])


def test_indexed_without_pi_gradient_and_triton_path():
    g = torch.Generator().manual_seed(7)
    m = torch.randn(3, 5, 4, 16, generator=g, requires_grad=True)
    pi = torch.softmax(torch.randn(5, 4, generator=g), -1)  # no gradient wanted
    index = torch.tensor([2, 0, 2, 2, 1])
    out = mix_memories(m, pi, index)
    out.sum().backward()
    torch.testing.assert_close(out, _explicit(m[index], pi))
    torch.testing.assert_close(m.grad, torch.zeros_like(m).index_add_(0, index, pi[:, None, :, None].expand(5, 5, 4, 16)))
    torch.testing.assert_close(mix_memories(m, pi, index, backend="triton"), out, **TOL[torch.float32])


@pytest.mark.parametrize("index, err, match", [
    (torch.tensor([0, 3]), ValueError, "outside \\[0, 3\\)"),
    (torch.tensor([-1, 0]), ValueError, "outside"),
    (torch.tensor([0, 1], dtype=torch.int32), TypeError, "1-d int64"),
    (torch.tensor([[0, 1]]), TypeError, "1-d int64"),
    ([0, 1], TypeError, "1-d int64"),
    (torch.tensor([0, 1, 2]), ValueError, "pi must have shape \\(B, K\\) = \\(3, 4\\)"),
])
def test_bad_index(index, err, match):
    with pytest.raises(err, match=match):
        mix_memories(torch.zeros(3, 2, 4, 5), torch.zeros(2, 4), index)
