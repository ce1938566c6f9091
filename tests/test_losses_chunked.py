"""The vocabulary-chunked softmax cross-entropy equals the full one (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.memory import PeakRSS, can_reset_peak
from fastregen.training import losses
from fastregen.training.losses import (
    chunked_softmax_cross_entropy,
    full_softmax_cross_entropy,
    softmax_per_target,
)


def full_reference(hidden, table, targets, temperature=1.0, start=0, stop=None):
    """The plain loss: all logits, columns outside [start, stop) at -inf."""
    logits = hidden @ table.T / temperature
    stop = table.shape[0] if stop is None else stop
    mask = torch.zeros(table.shape[0], dtype=torch.bool)
    mask[start:stop] = True
    return F.cross_entropy(logits.masked_fill(~mask, float("-inf")), targets, reduction="none")


def loss_and_grads(fn, hidden, table, targets, weights, **kw):
    h = hidden.clone().requires_grad_(True)
    t = table.clone().requires_grad_(True)
    per = fn(h, t, targets, **kw)
    (per * weights).sum().backward()
    return per.detach(), h.grad, t.grad


@pytest.mark.parametrize("chunk", [1, 3, 7, 40, 1000])
@pytest.mark.parametrize("temperature, start, stop", [(1.0, 0, None), (0.5, 1, None), (2.0, 1, 38)])
def test_chunked_equals_full_loss_and_gradients_float64(chunk, temperature, start, stop):
    g = torch.Generator().manual_seed(chunk)
    N, V, d = 13, 40, 6
    hidden = torch.randn(N, d, generator=g, dtype=torch.float64)
    table = torch.randn(V, d, generator=g, dtype=torch.float64)
    hi = V if stop is None else stop
    targets = torch.randint(start, hi, (N,), generator=g)
    weights = torch.rand(N, generator=g, dtype=torch.float64)  # per-target weights reach backward
    want = loss_and_grads(full_reference, hidden, table, targets, weights, temperature=temperature, start=start,
                          stop=stop)
    got = loss_and_grads(chunked_softmax_cross_entropy, hidden, table, targets, weights, temperature=temperature,
                         vocab_start=start, vocab_stop=stop, chunk_size=chunk)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, rtol=1e-6, atol=1e-12)
    # outside [start, stop) the table gets no gradient from the softmax (only targets, which lie inside)
    assert bool((got[2][:start] == 0).all()) and bool((got[2][hi:] == 0).all())


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 20), V=st.integers(2, 60), d=st.integers(1, 9), chunk=st.integers(1, 70),
       seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_chunked_equals_full_random_float32(N, V, d, chunk, seed, scale):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, d, generator=g) * scale
    table = torch.randn(V, d, generator=g)
    targets = torch.randint(1, V, (N,), generator=g) if V > 1 else torch.zeros(N, dtype=torch.long)
    weights = torch.rand(N, generator=g)
    want = loss_and_grads(full_reference, hidden, table, targets, weights, start=1)
    got = loss_and_grads(chunked_softmax_cross_entropy, hidden, table, targets, weights, vocab_start=1,
                         chunk_size=chunk)
    # float32: logits of size ~scale^2 carry rounding of ~1e-7 scale^2 into the loss and gradients
    # (the float64 test above checks the algebra tightly)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * max(1.0, scale) ** 2)


def test_softmax_per_target_auto_switches_to_chunks_above_the_limit(monkeypatch):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 3, 8, generator=g)
    table = torch.randn(50, 8, generator=g)
    targets = torch.tensor([[0, 4, 9], [1, 0, 0], [49, 2, 7]])
    small = softmax_per_target(hidden, table, targets, 0.7)
    calls = []
    real = losses.chunked_softmax_cross_entropy
    monkeypatch.setattr(losses, "chunked_softmax_cross_entropy", lambda *a, **k: calls.append(k) or real(*a, **k))
    assert softmax_per_target(hidden, table, targets, 0.7) is not None and not calls  # below the limit: full logits
    monkeypatch.setattr(losses, "FULL_LOGITS_LIMIT", 10)
    monkeypatch.setattr(losses, "_MIN_CHUNK", 2)
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", 50)  # 6 targets: chunks of 8 ids
    big = softmax_per_target(hidden, table, targets, 0.7)
    assert calls and calls[-1]["vocab_start"] == 1 and calls[-1]["chunk_size"] == 8
    torch.testing.assert_close(big, small)
    assert bool((big[targets == 0] == 0).all())
    torch.testing.assert_close(softmax_per_target(hidden, table, targets, 0.7, chunk_size=3), small)


def test_chunked_loss_rejects_bad_input():
    h, t = torch.randn(4, 3), torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"targets must be ids in \[1, 10\)"):
        full_softmax_cross_entropy(h, t, torch.tensor([0, 1, 2, 3]), vocab_start=1)
    with pytest.raises(ValueError, match="do not match"):
        full_softmax_cross_entropy(h, torch.randn(10, 4), torch.tensor([1, 1, 2, 3]))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        chunked_softmax_cross_entropy(h, t, torch.tensor([1, 1, 2, 3]), chunk_size=0)
    with pytest.raises(ValueError, match="vocab_start < vocab_stop"):
        full_softmax_cross_entropy(h, t, torch.tensor([1, 1, 2, 3]), vocab_start=5, vocab_stop=5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        full_softmax_cross_entropy(h, t, torch.tensor([1, 1, 2, 3]), temperature=0)


@pytest.mark.skipif(not can_reset_peak(), reason="needs a resettable peak RSS (/proc/self/clear_refs)")
def test_chunked_loss_never_holds_targets_times_vocabulary():
    """256 targets x 120k items: the full logits would be 117 MiB (and their softmax gradient as much again)."""
    g = torch.Generator().manual_seed(0)
    N, V, d = 256, 120_000, 8
    hidden = torch.randn(N, d, generator=g, requires_grad=True)
    table = torch.randn(V, d, generator=g, requires_grad=True)
    targets = torch.randint(1, V, (N,), generator=g)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: saved.append(x.numel()) or x, lambda x: x):
        with PeakRSS() as m:
            chunked_softmax_cross_entropy(hidden, table, targets, vocab_start=1, chunk_size=2048).sum().backward()
    assert max(saved) <= V * d  # the table itself, nothing of N x V
    assert m.growth < 50 * 2**20, f"peak grew by {m.growth / 2**20:.0f} MiB"
    assert table.grad.shape == (V, d) and bool(torch.isfinite(table.grad).all())


@pytest.mark.parametrize("diversity", ["soft", "hard"])
def test_regenerator_full_softmax_in_chunks_equals_the_full_logits(monkeypatch, diversity):
    """train_softmax="full": the chunked path (forced by a zero limit) gives the loss and gradients of the
    (B, T, V) logits, and memory_nll / heldout_nll agree too."""
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator

    cfg = RegenConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, dropout=0.0,
                      max_len=12, max_pattern_len=5, train_softmax="full", diversity=diversity, progress=False)
    torch.manual_seed(0)
    model = Regenerator(30, cfg)
    src = torch.tensor([[1, 2, 3, 11, 0], [4, 5, 6, 7, 8], [9, 0, 0, 0, 0]])
    pat = torch.tensor([[1, 3, 0], [5, 7, 8], [9, 22, 0]])

    def run():
        model.zero_grad()
        ce, _, _ = model.loss(src, pat)
        ce.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        with torch.no_grad():
            return ce.detach(), grads, model.memory_nll(src, pat), model.heldout_nll(src, pat)

    ce, grads, nll, held = run()
    monkeypatch.setattr(losses, "FULL_LOGITS_LIMIT", 0)
    monkeypatch.setattr(losses, "_MIN_CHUNK", 4)
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", 40)  # chunks of 4 ids over V = 33
    ce2, grads2, nll2, held2 = run()
    torch.testing.assert_close(ce2, ce)
    torch.testing.assert_close(nll2, nll)
    assert held2[2] == held[2] and held2[0] == pytest.approx(held[0], rel=1e-5)
    assert grads.keys() == grads2.keys()
    for name in grads:
        torch.testing.assert_close(grads2[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
