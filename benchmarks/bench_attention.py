"""pytest-benchmark rows for the regenerator's compiled kernels against their torch references (history per commit).

    python -m pytest benchmarks/bench_attention.py --benchmark-enable -p no:cacheprovider

Shapes of a Beauty pre-training step (`pretrain_speed.py` times the whole epoch side by side with an earlier
commit): 256 pairs of ~5 decoder tokens reading a 14-item source, 2 heads of 32, dropout 0.5; one thread.
"""

from __future__ import annotations

import pytest
import torch

from fastregen.models.base import Dropout
from fastregen.ops import ragged_attention

B, S, HEADS, D = 256, 14, 2, 64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cross():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 9, (B,), generator=g)
    q_offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    R = int(q_offsets[-1])
    q = torch.randn(R, D, generator=g, requires_grad=True)
    kv = torch.randn(B * S, 2 * D, generator=g, requires_grad=True)
    k_offsets = torch.arange(0, B * S + 1, S)
    drop = Dropout(0.5).draw(R * HEADS * S, "cpu")
    return q, kv, q_offsets, k_offsets, drop


@pytest.mark.parametrize("backend", ["core", "torch"])
def test_cross_attention_forward_backward(benchmark, cross, backend):
    q, kv, q_offsets, k_offsets, drop = cross

    def step():
        out = ragged_attention(q, kv, q_offsets, k_offsets, heads=HEADS, width=S, drop=drop, drop_threshold=128,
                               backend=backend)
        out.backward(torch.ones_like(out))

    benchmark(step)


@pytest.mark.parametrize("core", [True, False])
def test_dropout_forward_backward(benchmark, core):
    x = torch.randn(1280, D, requires_grad=True)
    d = Dropout(0.5).train()

    def step():
        out = d(x) if core else x * d.mask(x.shape, x.dtype, x.device)
        out.backward(torch.ones_like(out))

    benchmark(step)
