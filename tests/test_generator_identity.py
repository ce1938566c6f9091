"""Whole (tiny) pre-training runs of the regenerator against the arithmetic its speed-ups replaced:
the same history and weights, bit for bit, with dropout on and sources shared by several pairs
(issue 28 item 5: the default numerics must not change)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastregen.generator.model as model_module
from fastregen.data import SequenceDataset
from fastregen.dr4sr import RegenConfig
from fastregen.generator import pretrain
from fastregen.ops import mix_memories_torch


class SharedPairs:
    """Pre-training pairs whose sources repeat (as `fastregen.patterns.pretrain_pairs` draws them:
    several patterns per input sequence), so a batch encodes fewer sources than it has pairs."""

    def __init__(self, n_sources=60, num_items=30, seed=0):
        rng = np.random.default_rng(seed)
        seqs, pats, source = [], [], []
        for s in range(n_sources):
            seq = rng.integers(1, num_items + 1, size=rng.integers(2, 12)).tolist()
            for _ in range(rng.integers(1, 5)):
                start = int(rng.integers(0, len(seq)))
                seqs.append(seq)
                pats.append(seq[start: start + int(rng.integers(1, 5))])
                source.append(s)
        self.sequences = SequenceDataset.from_lists(seqs, num_items=num_items)
        self.patterns = SequenceDataset.from_lists(pats, num_items=num_items)
        self.source = np.asarray(source)

    def __len__(self):
        return len(self.source)


def _reference_mix(memories, pi, index=None, *, backend="auto"):
    """The mixing as it was computed before `mix_memories` took ``index``: gather, then the einsum."""
    return mix_memories_torch(memories, pi, index)


def _runs(monkeypatch, cfg, pairs, num_items):
    runs = []
    for mix in (_reference_mix, model_module.mix_memories):
        monkeypatch.setattr(model_module, "mix_memories", mix)
        runs.append(pretrain(pairs, num_items, cfg))
    return runs


@pytest.mark.parametrize("diversity", ["soft", "gumbel"])
def test_pretraining_with_gathered_mixing_is_bit_identical(monkeypatch, diversity):
    pairs = SharedPairs()
    assert len(np.unique(pairs.source)) < len(pairs) / 2  # sources are shared
    cfg = RegenConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=2,
                      batch_size=32, max_len=12, max_pattern_len=5, progress=False, dropout=0.5, seed=3,
                      diversity=diversity)
    (old, old_history), (new, new_history) = _runs(monkeypatch, cfg, pairs, 30)

    def drop_seconds(history):
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]

    assert drop_seconds(new_history) == drop_seconds(old_history)
    for (name, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items()):
        assert torch.equal(a.view(torch.int32) if a.dtype == torch.float32 else a,
                           b.view(torch.int32) if b.dtype == torch.float32 else b), name
