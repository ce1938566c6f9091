"""The regenerator's attention (additive masks, in-place scores) against the
masked_fill arithmetic it replaced: same outputs and gradients, bit for bit, in
eval and (same seed) training mode, on padding, causal, cross- and mixed
attention, length 1 and fully padded rows."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastregen.generator.layers import MultiheadAttention


def old_forward(att: MultiheadAttention, x, memory=None, *, causal=False, key_padding=None, mix=None, packing=None):
    """`MultiheadAttention.forward` as written before the additive masks (commit c00d364); the layers
    pass ``packing`` (None unless targets are packed, which this arithmetic never had)."""
    assert packing is None
    d, W, b, h = att.dim, att.in_proj_weight, att.in_proj_bias, att.heads
    if memory is not None and memory.dim() == 4:
        B, T, _ = x.shape
        _, S, K, D = memory.shape
        q = att._split(F.linear(x, W[:d], b[:d]))
        k, v = F.linear(memory, W[d:], b[d:]).chunk(2, dim=-1)
        k = k.view(B, S, K, h, D // h).permute(0, 3, 1, 2, 4)
        v = v.view(B, S, K, h, D // h).permute(0, 3, 1, 2, 4)
        scores = torch.einsum("bhtd,bhskd,btk->bhts", q, k, mix) * (1.0 / math.sqrt(q.shape[-1]))
        if key_padding is not None:
            scores = scores.masked_fill(key_padding[:, None, None, :], float("-inf"))
        attn = att.dropout(torch.softmax(scores, dim=-1))
        out = torch.einsum("bhts,bhskd,btk->bhtd", attn, v, mix)
        return att.out_proj(out.transpose(1, 2).reshape(B, T, d))
    if memory is None:
        q, k, v = F.linear(x, W, b).chunk(3, dim=-1)
    else:
        q = F.linear(x, W[:d], b[:d])
        k, v = F.linear(memory, W[d:], b[d:]).chunk(2, dim=-1)
    q, k, v = att._split(q), att._split(k), att._split(v)
    T, S = q.shape[2], k.shape[2]
    blocked = None
    if key_padding is not None:
        blocked = key_padding[:, None, None, :]
    if causal:
        future = torch.triu(torch.ones(T, S, dtype=torch.bool), diagonal=1)
        blocked = future if blocked is None else blocked | future
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if blocked is not None:
        scores = scores.masked_fill(blocked, float("-inf"))
    attn = att.dropout(torch.softmax(scores, dim=-1))
    out = (attn @ v).transpose(1, 2).reshape(q.shape[0], q.shape[2], att.dim)
    return att.out_proj(out)


def _right_padding(B, S, gen, full_row=False):
    """Right padding of random widths (the regenerator's batches); row 0 unpadded; the last row all
    padding when asked (the model rejects such rows: every query then has no key to look at)."""
    lengths = torch.randint(1, S + 1, (B,), generator=gen)
    lengths[0] = S
    pad = torch.arange(S)[None, :] >= lengths[:, None]
    if full_row:
        pad[-1] = True
    return pad


CASES = [  # (kind, T, S, padding, full padded row)
    ("self", 7, 7, False, False), ("self", 7, 7, True, False), ("causal", 9, 9, False, False),
    ("causal", 9, 9, True, False), ("causal", 1, 1, False, False), ("self", 1, 1, True, False),
    ("cross", 6, 11, True, False), ("cross", 1, 4, True, False), ("cross", 5, 1, False, False),
    ("cross", 6, 8, True, True), ("mixed", 5, 8, True, False), ("mixed", 1, 3, True, True),
]


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("kind, T, S, padded, full_row", CASES)
def test_attention_equals_the_masked_fill_arithmetic(kind, T, S, padded, full_row, train):
    gen = torch.Generator().manual_seed(T * 100 + S)
    B, D, H, K = 5, 16, 2, 3
    torch.manual_seed(0)
    att = MultiheadAttention(D, H, dropout=0.5).train(train)
    x = torch.randn(B, T, D, generator=gen, requires_grad=True)
    memory = {"self": None, "causal": None, "cross": torch.randn(B, S, D, generator=gen),
              "mixed": torch.randn(B, S, K, D, generator=gen)}[kind]
    mix = torch.softmax(torch.randn(B, T, K, generator=gen), -1) if kind == "mixed" else None
    pad = _right_padding(B, S, gen, full_row) if padded else None
    kw = dict(causal=kind == "causal", key_padding=pad, mix=mix)
    outs, grads = [], []
    for fn in (old_forward, MultiheadAttention.forward):
        torch.manual_seed(1)  # the same dropout draws
        x.grad = None
        att.zero_grad()
        out = fn(att, x, memory, **kw)
        out.nan_to_num(0.0).sum().backward()
        outs.append(out)
        grads.append([x.grad.clone()] + [p.grad.clone() for p in att.parameters()])
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0, equal_nan=True)
    if full_row:
        # a query with every key padded gives NaN either way, and NaN gradients (the old masked_fill
        # zeroed some of them, not all: v's stayed NaN); the other rows are untouched
        assert outs[1][-1].isnan().all() and not outs[1][:-1].isnan().any()
        return
    for new, old in zip(grads[1], grads[0]):
        torch.testing.assert_close(new, old, rtol=0, atol=0, equal_nan=True)


def test_pretraining_is_bit_identical_to_the_masked_fill_layers(monkeypatch):
    """A whole (tiny) pre-training run with dropout: same history and weights, bit for bit."""
    import numpy as np

    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import pretrain
    from test_dr4sr_model import Pairs

    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 31, size=rng.integers(1, 12)).tolist() for _ in range(120)]
    pats = [s[: rng.integers(1, min(len(s), 4) + 1)] for s in seqs]
    cfg = RegenConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=2,
                      batch_size=32, max_len=12, max_pattern_len=5, progress=False, dropout=0.5, seed=3)
    runs = []
    for forward in (old_forward, MultiheadAttention.forward):
        monkeypatch.setattr(MultiheadAttention, "forward", forward)
        runs.append(pretrain(Pairs(seqs, pats, 30), 30, cfg))
    (old, old_history), (new, new_history) = runs
    def drop_seconds(history):
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]

    assert drop_seconds(new_history) == drop_seconds(old_history)
    for (name, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items()):
        assert torch.equal(a, b), name
