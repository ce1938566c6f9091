"""The regenerator model, its config, checkpoints and pre-training (tiny sizes)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from fastregen.config import load_config, save_config
from fastregen.data import SequenceDataset
from fastregen.dr4sr import RegenConfig
from fastregen.generator import DecodeConfig, GeneratorConfig, PretrainConfig, split_options
from fastregen.generator import Regenerator, bos_id, eos_id, load_checkpoint, pretrain, save_checkpoint
from fastregen.generator.pretrain import balance_penalty, validation_losses

TINY = dict(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=2,
            batch_size=32, max_len=12, max_pattern_len=5, progress=False, dropout=0.1)


class Pairs:
    """A stand-in for `fastregen.patterns.PretrainPairs` (only what `pretrain` reads)."""

    def __init__(self, seqs, pats, num_items):
        self.sequences = SequenceDataset.from_lists(seqs, num_items=num_items)
        self.patterns = SequenceDataset.from_lists(pats, num_items=num_items)
        self.source = np.arange(len(seqs))

    def __len__(self):
        return len(self.source)


def toy_pairs(n=200, num_items=30, seed=0):
    """Sequences with one of three planted patterns; the target is the planted pattern."""
    rng = np.random.default_rng(seed)
    planted = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    seqs, pats = [], []
    for _ in range(n):
        p = planted[rng.integers(3)]
        noise = rng.integers(10, num_items + 1, size=rng.integers(2, 7)).tolist()
        cut = rng.integers(0, len(noise) + 1)
        seqs.append(noise[:cut] + p + noise[cut:])
        pats.append(p)
    return Pairs(seqs, pats, num_items)


def test_special_tokens_documented_layout():
    assert (eos_id(10), bos_id(10)) == (11, 12)
    m = Regenerator(10, RegenConfig(**TINY))
    assert m.item_embedding.num_embeddings == 13
    assert m.eos == 11 and m.bos == 12
    assert torch.all(m.item_embedding.weight[0] == 0)


@pytest.mark.parametrize(
    "field, value, exc, match",
    [
        ("K", 0, ValueError, "K must be >= 1"),
        ("gamma", 1.5, ValueError, "gamma must be in \\[0, 1\\]"),
        ("gamma", -0.1, ValueError, "gamma must be in \\[0, 1\\]"),
        ("schedule", "greedy", ValueError, "schedule must be one of"),
        ("restrict", "subsequence", ValueError, "restrict must be one of"),
        ("diversity", "sharp", ValueError, "diversity must be one of"),
        ("n_heads", 3, ValueError, "divisible by n_heads"),
        ("min_pattern_len", 9, ValueError, "exceeds max_pattern_len"),
        ("K", 2.0, TypeError, "K must be an int"),
        ("tau_min", 0.0, ValueError, "tau_min"),
        ("training_set", "all", ValueError, "training_set must be one of"),
    ],
)
def test_config_rejects_bad_values(field, value, exc, match):
    with pytest.raises(exc, match=match):
        RegenConfig(**{**TINY, field: value})


def test_config_yaml_round_trip(tmp_path):
    cfg = RegenConfig(**{**TINY, "gamma": 0.3, "schedule": "released"})
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(RegenConfig, tmp_path / "c.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("K: 0\n")
    with pytest.raises(ValueError, match="K must be >= 1"):
        load_config(RegenConfig, tmp_path / "bad.yaml")


@pytest.mark.parametrize("softmax", ["source", "full"])
@pytest.mark.parametrize("diversity, K", [("soft", 3), ("gumbel", 3), ("hard", 3), ("soft", 1)])
def test_loss_is_finite_and_trains_every_part(softmax, diversity, K):
    cfg = RegenConfig(**{**TINY, "train_softmax": softmax, "diversity": diversity, "K": K})
    m = Regenerator(30, cfg).train()
    src = torch.tensor([[1, 2, 3, 11, 0], [4, 5, 6, 7, 8]])
    pat = torch.tensor([[1, 3, 0], [5, 7, 8]])
    ce, ent, pi = m.loss(src, pat)
    assert torch.isfinite(ce) and ce > 0
    assert pi.shape == (2, K) and torch.allclose(pi.sum(-1), torch.ones(2))
    (ce + ent).backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert grads["memory_projection.0.weight"].abs().sum() > 0
    if K > 1 and diversity != "hard":
        assert grads["promoter_head.2.weight"].abs().sum() > 0
    else:  # K = 1 builds no promoter; "hard" routes by the decoding loss and never calls it
        assert all(g is None or not n.startswith("promoter") for n, g in grads.items())


@pytest.mark.parametrize("softmax", ["source", "full"])
@pytest.mark.parametrize("K", [1, 3])
def test_memory_nll_is_the_loss_with_one_memory_chosen(softmax, K):
    """memory_nll[k] is `loss` when pi puts all its weight on memory k (the inference view)."""
    torch.manual_seed(0)
    m = Regenerator(30, RegenConfig(**{**TINY, "train_softmax": softmax, "K": K})).eval()
    src = torch.tensor([[1, 2, 3, 11, 0], [4, 5, 6, 7, 8], [9, 0, 0, 0, 0]])
    pat = torch.tensor([[1, 3, 0], [5, 7, 8], [9, 0, 0]])
    tokens = int((pat != 0).sum()) + pat.shape[0]
    with torch.no_grad():
        nll = m.memory_nll(src, pat)
        assert nll.shape == (K, 3) and bool((nll > 0).all())
        for k in range(K):
            m.promote = lambda p, k=k, **_: torch.nn.functional.one_hot(torch.full((p.shape[0],), k), K).float() * 1e4
            ce, _, _ = m.loss(src, pat)
            assert float(ce) * tokens == pytest.approx(float(nll[k].sum()), rel=1e-5)


@pytest.mark.parametrize("diversity", ["soft", "hard"])
def test_heldout_nll_matches_loss_and_memory_nll(diversity):
    """heldout_nll (one encoder pass) gives loss * scored tokens and memory_nll's best-memory sum.

    Pattern item 12 is not in its source (as after truncating a long source):
    the restricted softmax cannot score it, so 8 of the 9 targets (6 items + 3 EOS) count.
    """
    torch.manual_seed(0)
    m = Regenerator(30, RegenConfig(**{**TINY, "diversity": diversity})).eval()
    src = torch.tensor([[1, 2, 3, 11, 0], [4, 5, 6, 7, 8], [9, 0, 0, 0, 0]])
    pat = torch.tensor([[1, 12, 3], [5, 7, 0], [9, 0, 0]])
    calls = []
    encode = m.encode
    m.encode = lambda s: calls.append(1) or encode(s)
    with torch.no_grad():
        mixture, best, tokens = m.heldout_nll(src, pat)
        assert len(calls) == 1 and tokens == 8
        ce, _, _ = m.loss(src, pat)
        if diversity == "soft":
            assert mixture == pytest.approx(float(ce) * tokens, rel=1e-5)
        else:  # hard: the mixture is the best memory
            assert mixture == best
        assert best == pytest.approx(float(m.memory_nll(src, pat).min(0).values.sum()), rel=1e-6)
        assert best > 0 and mixture > 0


@pytest.mark.parametrize("softmax", ["source", "full"])
def test_hard_diversity_trains_each_pattern_through_its_best_memory(softmax):
    torch.manual_seed(0)
    m = Regenerator(30, RegenConfig(**{**TINY, "train_softmax": softmax, "diversity": "hard"})).eval()
    src = torch.tensor([[1, 2, 3, 11, 0], [4, 5, 6, 7, 8], [9, 10, 0, 0, 0]])
    pat = torch.tensor([[1, 3, 0], [5, 7, 8], [10, 0, 0]])
    ce, ent, pi = m.loss(src, pat)
    nll = m.memory_nll(src, pat).detach()
    assert float(ce.detach()) == pytest.approx(float(nll.min(0).values.sum()) / (6 + 3), rel=1e-6)  # 6 items + 3 EOS
    assert torch.equal(pi.argmax(-1), nll.argmin(0)) and torch.equal(pi.sum(-1), torch.ones(3))
    assert float(ent) == 0.0
    ce.backward()
    k = nll.argmin(0).tolist()
    # only the chosen memories' slices of the projection get gradient
    g = m.memory_projection[2].weight.grad.view(TINY["K"], TINY["d_model"], -1).abs().sum((1, 2))
    assert all((g[j] > 0) == (j in k) for j in range(TINY["K"]))


def test_gumbel_temperature_anneals():
    m = Regenerator(30, RegenConfig(**{**TINY, "diversity": "gumbel", "tau_decay": 0.5, "tau_min": 0.2}))
    for _ in range(5):
        m.anneal()
    assert m.tau == pytest.approx(0.2)


def test_init_item_embedding():
    m = Regenerator(30, RegenConfig(**TINY))
    w = torch.randn(31, 16)
    m.init_item_embedding(w)
    assert torch.equal(m.item_embedding.weight[1:31], w[1:])
    assert torch.all(m.item_embedding.weight[0] == 0)
    with pytest.raises(ValueError, match="\\(31, 16\\)"):
        m.init_item_embedding(torch.randn(30, 16))


def test_checkpoint_round_trip_and_vocabulary_check(tmp_path):
    m = Regenerator(30, RegenConfig(**TINY)).eval()
    save_checkpoint(m, tmp_path / "r.pt", note="x")
    m2, rec = load_checkpoint(tmp_path / "r.pt", num_items=30)
    assert rec["note"] == "x" and m2.config == m.config
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(ValueError, match="vocabulary of 30 items, but the data has 31"):
        load_checkpoint(tmp_path / "r.pt", num_items=31)
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fastregen regenerator checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_model_stores_its_architecture_only_and_reads_old_checkpoints(tmp_path):
    # a checkpoint holds the architecture (GeneratorConfig) alone, not the pipeline's options
    cfg = RegenConfig(**{**TINY, "gamma": 0.7, "epochs": 9, "restrict": "span"})
    m = Regenerator(30, cfg).eval()
    assert m.config == cfg.architecture() and not hasattr(m.config, "gamma")
    save_checkpoint(m, tmp_path / "new.pt")
    record = torch.load(tmp_path / "new.pt", weights_only=True)
    assert set(record["config"]) == {f.name for f in dataclasses.fields(GeneratorConfig)}
    # what the code before this split wrote: the whole RegenConfig (every pipeline option) under "config"
    from fastregen.config import config_to_dict

    old = {"format": "fastregen-regenerator", "format_version": 1, "num_items": 30, "config": config_to_dict(cfg),
           "state_dict": {k: v.detach().clone() for k, v in m.state_dict().items()}, "tau": 0.5, "complete": True}
    assert "gamma" in old["config"] and "training_set" in old["config"]
    torch.save(old, tmp_path / "old.pt")
    m2, rec = load_checkpoint(tmp_path / "old.pt", num_items=30, backend="torch")
    assert m2.config == cfg.architecture() and m2.tau == 0.5 and m2.backend == "torch" and rec["complete"]
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    # and the old record's extra fields (a UniDS generator's, say) are ignored, not refused
    old["config"] = {**old["config"], "some_future_option": 1}
    torch.save(old, tmp_path / "old2.pt")
    assert load_checkpoint(tmp_path / "old2.pt")[0].config == cfg.architecture()


def test_generator_options_have_one_home_and_one_check():
    # RegenConfig's generator fields take their defaults from the generator's configs and are checked there
    assert RegenConfig().gamma == DecodeConfig().gamma and RegenConfig().K == GeneratorConfig().K
    assert RegenConfig().epochs == PretrainConfig().epochs
    for bad, match in ((dict(gamma=1.5), "gamma must be in"), (dict(d_model=15, n_heads=2), "divisible"),
                       (dict(balance_weight=1.0, K=1), "balance_weight")):
        with pytest.raises(ValueError, match=match):
            RegenConfig(**bad)
        with pytest.raises(ValueError, match=match):
            split_options(bad)
    arch, pre, dec = RegenConfig(**{**TINY, "gamma": 0.4}).generator_configs()
    assert (arch.d_model, pre.epochs, dec.gamma, dec.max_pattern_len) == (16, 2, 0.4, 5)
    with pytest.raises(ValueError, match="unknown generator option"):
        split_options({"gama": 0.1})


def test_pretrain_learns_is_seeded_and_checkpoints(tmp_path):
    pairs = toy_pairs()
    cfg = RegenConfig(**{**TINY, "epochs": 4, "lr": 3e-3, "valid_fraction": 0.1})
    m, hist = pretrain(pairs, 30, cfg, checkpoint=tmp_path / "r.pt")
    assert len(hist) == 4 and all(h["valid_loss"] is not None for h in hist)
    assert all(np.isfinite(h["valid_best_memory_loss"]) and h["valid_best_memory_loss"] > 0 for h in hist)
    # the held-out losses of the finished model, re-drawn on pretrain's own split: the weights kept are
    # those of the epoch whose single best memory decodes the held-out patterns best (what inference sees)
    again = validation_losses(m, pairs, cfg)
    best = min(hist, key=lambda h: h["valid_best_memory_loss"])
    assert again["valid_best_memory_loss"] == pytest.approx(best["valid_best_memory_loss"], rel=1e-6)
    assert again["valid_loss"] == pytest.approx(best["valid_loss"], rel=1e-6)
    assert again["pairs"] == 20
    with pytest.raises(ValueError, match="nothing was held out"):
        validation_losses(Regenerator(30, RegenConfig(**TINY)), pairs, RegenConfig(**{**TINY, "valid_fraction": 0.0}))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    _, rec = load_checkpoint(tmp_path / "r.pt", num_items=30)
    assert rec["complete"] and len(rec["history"]) == 4
    _, hist2 = pretrain(pairs, 30, cfg)
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in hist2]


def test_entropy_term_sharpens_pi():
    pairs = toy_pairs(n=120)
    base = {**TINY, "epochs": 3, "lr": 3e-3, "valid_fraction": 0.0}
    _, h0 = pretrain(pairs, 30, RegenConfig(**base))
    _, h1 = pretrain(pairs, 30, RegenConfig(**{**base, "entropy_weight": 1.0}))
    assert h1[-1]["entropy"] < h0[-1]["entropy"]


def test_balance_penalty_values():
    K = 4
    even = torch.full((6, K), 1 / K)
    one = torch.zeros(6, K)
    one[:, 2] = 1
    split = torch.eye(K).repeat(2, 1)  # one-hot, every memory used twice
    assert float(balance_penalty(even)) == pytest.approx(0.0, abs=1e-6)
    assert float(balance_penalty(split)) == pytest.approx(0.0, abs=1e-6)
    assert float(balance_penalty(one)) == pytest.approx(math.log(K), abs=1e-6)
    # the gradient moves the batch mean toward uniform
    logits = torch.tensor([[3.0, 0.0, 0.0, 0.0]] * 5, requires_grad=True)
    balance_penalty(torch.softmax(logits, -1)).backward()
    assert float(logits.grad[0, 0]) > 0 and all(float(g) < 0 for g in logits.grad[0, 1:])


def test_balance_term_spreads_patterns_over_memories():
    pairs = toy_pairs(n=120)
    cfg = {**TINY, "epochs": 6, "batch_size": 16, "lr": 3e-3, "valid_fraction": 0.0, "diversity": "gumbel",
           "entropy_weight": 1.0}

    def collapsed_start(config):
        # a promoter leaning to memory 0 at the start (the Beauty run ended with all patterns there)
        torch.manual_seed(0)
        model = Regenerator(30, config)
        with torch.no_grad():
            model.promoter_head[-1].bias.copy_(torch.tensor([2.0, 0.0, 0.0]))
        return model

    uses = []
    for weight in (0.0, 1.0):
        config = RegenConfig(**{**cfg, "balance_weight": weight})
        _, h = pretrain(pairs, 30, config, model=collapsed_start(config))
        assert len(h[-1]["memory_use"]) == TINY["K"] and sum(h[-1]["memory_use"]) == pytest.approx(1.0)
        uses.append(h[-1]["memory_use"])
    assert uses[0][0] > 0.9  # left alone, the entropy term pushes more patterns there (0.86 -> 0.93)
    assert uses[1][0] < 0.6 and min(uses[1]) > 0.15  # the balance term spreads them (0.47, 0.23, 0.29)
    with pytest.raises(ValueError, match="balance_weight must be >= 0"):
        RegenConfig(balance_weight=-1.0)
    with pytest.raises(ValueError, match=r"needs\s+diversity 'soft' or 'gumbel' and K > 1"):
        RegenConfig(balance_weight=1.0, K=1)
    with pytest.raises(ValueError, match="got diversity='hard'"):
        RegenConfig(balance_weight=1.0, diversity="hard")


def test_pretrain_rejects_empty_and_foreign_pairs():
    with pytest.raises(ValueError, match="pattern set is empty"):
        pretrain(Pairs([], [], 30), 30, RegenConfig(**TINY))
    with pytest.raises(ValueError, match="num_items = 10"):
        pretrain(toy_pairs(n=10), 10, RegenConfig(**TINY))


def _torch_reference_stacks(cfg):
    """The regenerator's encoder and decoder built from torch's own transformer layers."""
    from torch import nn

    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout,
                                                           activation="gelu", layer_norm_eps=1e-12,
                                                           batch_first=True), cfg.n_encoder_layers,
                                enable_nested_tensor=False)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout,
                                                           activation="gelu", layer_norm_eps=1e-12,
                                                           batch_first=True), cfg.n_decoder_layers)
    return enc, dec


@pytest.mark.parametrize("layers", [1, 2])
def test_layers_equal_torch_transformer_layers(layers):
    """Same parameter names (old checkpoints load) and the same outputs as nn.Transformer{Encoder,Decoder}."""
    cfg = RegenConfig(**{**TINY, "n_encoder_layers": layers, "n_decoder_layers": layers, "d_model": 16})
    torch.manual_seed(layers)
    m = Regenerator(30, cfg).eval()
    enc, dec = _torch_reference_stacks(cfg)
    enc.load_state_dict(m.encoder.state_dict())
    dec.load_state_dict(m.decoder.state_dict())
    enc.eval(), dec.eval()
    x = torch.randn(3, 7, 16)
    pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3, [False] + [True] * 6])
    with torch.no_grad():
        torch.testing.assert_close(m.encoder(x, key_padding=pad)[~pad], enc(x, src_key_padding_mask=pad)[~pad],
                                   rtol=1e-5, atol=1e-5)
        y = torch.randn(3, 4, 16)
        tpad = torch.tensor([[False] * 4, [False, False, True, True], [False, True, True, True]])
        causal = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
        want = dec(y, x, tgt_mask=causal, tgt_key_padding_mask=tpad, memory_key_padding_mask=pad, tgt_is_causal=True)
        got = m.decoder(y, x, tgt_padding=tpad, memory_padding=pad)
        torch.testing.assert_close(got[~tpad], want[~tpad], rtol=1e-5, atol=1e-5)


def test_shared_sources_are_encoded_once_with_the_same_loss():
    from fastregen.generator.pretrain import PairData

    torch.manual_seed(0)
    m = Regenerator(30, RegenConfig(**TINY)).eval()
    src = torch.tensor([[1, 2, 3, 11, 0], [4, 5, 6, 7, 8]])
    pat = torch.tensor([[1, 3, 0], [2, 3, 0], [5, 7, 8], [4, 0, 0]])
    index = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        for reduction in ("mean", "sum"):
            shared, _, pi = m.loss(src, pat, index, reduction=reduction)
            per_pair, _, pi2 = m.loss(src[index], pat, reduction=reduction)
            torch.testing.assert_close(shared, per_pair)
        torch.testing.assert_close(m.memory_nll(src, pat, index), m.memory_nll(src[index], pat))
        assert m.heldout_nll(src, pat, index) == pytest.approx(m.heldout_nll(src[index], pat), rel=1e-6)
    # batches keep a source's pairs together and carry each distinct source once
    source_of = np.repeat(np.arange(40), 3)
    sources = torch.randint(1, 30, (40, 6))
    data = PairData(sources, source_of, torch.randint(1, 30, (120, 3)))
    order = data.batch_order(12, torch.Generator().manual_seed(0), bucketing=True)
    assert sorted(np.concatenate(order).tolist()) == list(range(120)) and len(order) == 10
    for b in order:
        batch = data.batch(b)
        assert batch.src.shape[0] == len(np.unique(source_of[b])) <= 5
        np.testing.assert_array_equal(batch.src[batch.src_index].numpy(), sources[source_of[b]].numpy())


# ---------------------------------------------------------------- per-segment promoter (UniDS)
def test_mixed_cross_attention_equals_attending_to_the_mixture():
    from fastregen.generator.layers import MultiheadAttention

    torch.manual_seed(0)
    att = MultiheadAttention(8, 2, 0.0).eval()
    x, mem = torch.randn(3, 5, 8), torch.randn(3, 4, 3, 8)
    pad = torch.tensor([[False] * 4, [False, False, True, True], [False, True, False, False]])
    mix = torch.softmax(torch.randn(3, 5, 3), -1)
    got = att(x, mem, key_padding=pad, mix=mix)
    for t in range(5):  # query t alone against its own mixed memory
        m = (mem * mix[:, t, None, :, None]).sum(2)
        want = att(x[:, t : t + 1], m, key_padding=pad)
        torch.testing.assert_close(got[:, t : t + 1], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"need mix of shape \(B, T, K\) = \(3, 5, 3\)"):
        att(x, mem, key_padding=pad)


def test_one_segment_per_target_is_the_dr4sr_promoter():
    torch.manual_seed(0)
    model = Regenerator(20, RegenConfig(d_model=16, n_heads=2, d_ff=32, K=3, dropout=0.0)).eval()
    src = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]])
    pat = torch.tensor([[2, 3, 5], [7, 8, 0]])
    one = torch.where(pat > 0, 0, -1)
    ce0, h0, pi0 = model.loss(src, pat)
    ce1, h1, pi1 = model.loss(src, pat, segments=one)
    torch.testing.assert_close(ce0, ce1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pi0, pi1)


def test_segment_mixture_layout():
    torch.manual_seed(0)
    model = Regenerator(20, RegenConfig(d_model=16, n_heads=2, d_ff=32, K=3, dropout=0.0)).eval()
    pat = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 7, 0, 0]])
    seg = torch.tensor([[0, 0, 1, 2, -1], [0, 1, 1, -1, -1]])
    pi, mix = model.segment_mixture(pat, seg)
    assert pi.shape == (5, 3)
    # each segment's pi is the promoter on that segment alone
    for row, toks in enumerate([[1, 2], [3], [4], [5], [6, 7]]):
        torch.testing.assert_close(pi[row], torch.softmax(model.promote(torch.tensor([toks])), -1)[0])
    # decoding step j reads the segment of the token it predicts; EOS and padding: the last segment
    want = [[0, 0, 1, 2, 2, 2], [3, 4, 4, 4, 4, 4]]
    torch.testing.assert_close(mix, pi[torch.tensor(want)])
    ce, h, p = model.loss(torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]]), pat, segments=seg)
    assert torch.isfinite(ce) and p.shape == (5, 3)
    with pytest.raises(ValueError, match="no per-segment form"):
        hard = Regenerator(20, RegenConfig(d_model=16, n_heads=2, d_ff=32, K=3, diversity="hard"))
        hard.loss(torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]]), pat, segments=seg)
