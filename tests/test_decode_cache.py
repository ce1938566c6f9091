"""Cached greedy decoding (`Regenerator.start_decoding` / `decode_step`) against the full decoder.

The cached step computes position t from the keys and values of positions
< t instead of re-running the prefix. It is the same arithmetic in a
different float order (matmuls of other shapes: torch picks other kernels for
a (1 x t) score row than for a (t x t) block, and for 1-2 row linears), so
states agree to ~1e-6, not bit for bit, and a greedy choice could differ only
where two candidates' scores are that close: a near tie. The tests compare
the choices exactly and accept a difference only at a recorded near tie
(`NEAR_TIE`), and compare hybrid inference's output with the decoder of
before the cache (`uncached_decode_batch`, the code it replaced), on random
models and on a regenerator trained on Beauty (byte-identical
``regenerated.txt`` unless a near tie flipped).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastregen.data import SequenceDataset, load, save
from fastregen.dr4sr import DR4SR, RegenConfig
from fastregen.generator import Regenerator, hybrid_inference
from fastregen.generator import decode as infer
from fastregen.patterns import dr4sr_input
from fastregen.ops import constrained_argmax

CACHED = infer._decode_batch  # the cached decoder (tests swap the module's for the uncached one)

# two scores closer than this (relative to |state| x max|row|) are a near tie: the ~1e-6
# difference between cached and full states can order them either way
NEAR_TIE = 1e-4

SMALL = dict(d_model=16, n_heads=2, n_encoder_layers=2, n_decoder_layers=2, d_ff=32, K=3, max_len=9,
             max_pattern_len=7, progress=False)


def random_model(num_items=60, seed=0, **overrides) -> Regenerator:
    """An untrained regenerator with weights pushed away from their N(0, 0.02) init, so that
    attention is far from uniform and scores spread."""
    torch.manual_seed(seed)
    model = Regenerator(num_items, RegenConfig(**{**SMALL, **overrides})).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def random_sources(B, L, num_items, seed=0, lengths=None) -> torch.Tensor:
    """Right-padded (B, L) sources; ``lengths`` default random in [1, L], always one of length 1."""
    g = torch.Generator().manual_seed(seed)
    if lengths is None:
        lengths = torch.randint(1, L + 1, (B,), generator=g)
        lengths[0] = 1
    src = torch.randint(1, num_items + 1, (B, L), generator=g)
    return src.masked_fill(torch.arange(L)[None] >= torch.as_tensor(lengths)[:, None], 0)


@torch.no_grad()
@pytest.mark.parametrize("L, B, d_model, heads", [(9, 7, 16, 2), (1, 3, 16, 2), (9, 5, 24, 3), (4, 1, 16, 1)])
def test_cached_steps_agree_with_the_full_decoder(L, B, d_model, heads):
    """Every step, every row: states within float noise and the same greedy choice (generative and
    restrictive) except at near ties, for one memory and for K memories as K x B rows;
    sources with padding and of length 1, prefixes from length 1 (BOS alone) up."""
    model = random_model(d_model=d_model, n_heads=heads, max_len=max(L, 2))
    table = model.item_embedding.weight
    src = random_sources(B, L, model.num_items, seed=L + B)
    pad = src == 0
    memories = model.encode(src)  # (B, L, K, D)
    K, P = model.config.K, model.config.max_pattern_len
    g = torch.Generator().manual_seed(1)
    ys = torch.randint(1, model.num_items + 1, (K * B, P), generator=g)
    ys[:, 0] = model.bos
    for memory in (memories[:, :, 1], memories):  # one memory (B rows), then all K (K x B rows)
        rows = B if memory.dim() == 3 else K * B
        cache = model.start_decoding(memory, pad, P)
        near, compared = 0, 0
        for t in range(P):
            if memory.dim() == 3:
                full = model.decode(ys[:B, : t + 1], memory, pad)[:, -1]
            else:
                full = torch.cat([model.decode(ys[k * B:(k + 1) * B, : t + 1], memories[:, :, k], pad)[:, -1]
                                  for k in range(K)])
            step = model.decode_step(ys[:rows, t], t, cache)
            torch.testing.assert_close(step, full, rtol=1e-5, atol=1e-5)
            allowed = torch.cat([src.repeat(rows // B, 1).masked_fill(pad.repeat(rows // B, 1), -1),
                                 torch.full((rows, 1), model.eos)], 1)
            taken = ys[:rows, 1 : t + 1]
            for generative in (True, False):
                mode = torch.full((rows,), generative)
                a, _ = constrained_argmax(full, table, allowed, taken, mode, vocab_start=1, vocab_stop=model.eos + 1)
                b, _ = constrained_argmax(step, table, allowed, taken, mode, vocab_start=1, vocab_stop=model.eos + 1)
                differ = a != b
                if differ.any():  # only at a near tie of the full path's scores
                    sa = (full[differ] * table[a[differ]]).sum(1)
                    sb = (full[differ] * table[b[differ]]).sum(1)
                    scale = full[differ].norm(dim=1) * table.norm(dim=1).max()
                    assert bool(((sa - sb).abs() <= NEAR_TIE * scale).all()), (t, generative, a, b)
                near += int(differ.sum())
                compared += rows
        assert near <= compared // 100, f"{near} of {compared} choices differ"


@torch.no_grad()
def test_cache_select_keeps_rows_and_their_positions():
    """Rows dropped from the cache mid-decoding: the kept ones go on as if decoded alone."""
    model = random_model()
    src = random_sources(6, 9, model.num_items, seed=3)
    pad = src == 0
    memory = model.encode(src)[:, :, 0]
    P = model.config.max_pattern_len
    ys = torch.randint(1, model.num_items + 1, (6, P), generator=torch.Generator().manual_seed(2))
    ys[:, 0] = model.bos
    whole = model.start_decoding(memory, pad, P)
    keep = torch.tensor([4, 1, 5])
    part = model.start_decoding(memory[keep], pad[keep], P)
    for t in range(P):
        got = model.decode_step(ys[:, t] if t < 3 else ys[keep, t], t, whole)
        want = model.decode_step(ys[keep, t], t, part)
        if t == 2:
            whole.select(keep, t + 1)
        if t < 3:
            got = got[keep]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_cached_decoding_is_for_eval_mode_and_the_position_table():
    model = random_model()
    src = random_sources(2, 9, model.num_items)
    memory = model.encode(src)
    with pytest.raises(ValueError, match="positions"):
        model.start_decoding(memory, src == 0, model.position_embedding.num_embeddings + 1)
    model.train()
    with pytest.raises(RuntimeError, match="model.eval"):
        model.start_decoding(memory, src == 0, 3)


# ------------------------------------------------------------------ hybrid inference
@torch.no_grad()
def uncached_decode_batch(model, part, modes, max_pattern_len, restrict, backend, repeatable_from=None,
                          max_span=5, table_bound=None):
    """`_decode_batch` before the cache (commit cb1866a, then in `dr4sr/infer.py`), verbatim but for
    ``max_span``, since an argument (it left the model's config): one memory at a time, the whole prefix
    through the decoder at every step."""
    dev = model.device
    K = model.config.K
    table = model.item_embedding.weight
    eos, bos = model.eos, model.bos
    src = torch.from_numpy(part.padded(int(part.lengths.max()), side="right")).to(dev)
    src_pad = src == 0
    memories = model.encode(src)  # (B, L, K, D)
    eos_col = torch.full((src.shape[0], 1), eos, dtype=torch.long, device=dev)
    allowed = torch.cat([src.masked_fill(src_pad, -1), eos_col], 1)
    outs = []
    for k in range(K):
        memory = memories[:, :, k]
        alive = torch.arange(src.shape[0], device=dev)
        ys = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=dev)
        mode_k = torch.from_numpy(np.ascontiguousarray(modes[k])).to(dev)
        window = infer._InputWindow(src, src_pad, restrict, max_span)
        for step in range(max_pattern_len):
            states = model.decode(ys[alive], memory[alive], src_pad[alive])[:, -1]
            taken = ys[alive, 1:]
            if repeatable_from is not None:
                taken = taken.masked_fill(taken >= repeatable_from, -1)
            ids, _ = constrained_argmax(
                states, table, window.allowed(alive, allowed), taken, mode_k[alive, step],
                vocab_start=1, vocab_stop=eos + 1, backend=backend,
            )
            window.take(alive, ids)
            ended = (ids == eos) | (ids < 0)
            ys = torch.cat([ys, torch.zeros_like(ys[:, :1])], 1)
            ys[alive, -1] = torch.where(ended, 0, ids)
            alive = alive[~ended]
            if alive.numel() == 0:
                break
        outs.append(ys[:, 1:].cpu().numpy().astype(np.int32))
    width = max(o.shape[1] for o in outs)
    got = np.zeros((K, src.shape[0], width), dtype=np.int32)
    for k, o in enumerate(outs):
        got[k, :, : o.shape[1]] = o
    return got


@torch.no_grad()
def decoded_rows(model, sources: SequenceDataset, decode_batch, *, gamma, schedule, restrict, seed, batch_size,
                 repeatable_from=None) -> np.ndarray:
    """(K, n, P) decoded ids of every memory and sequence, batched as `hybrid_inference` batches them."""
    cfg = model.config
    seqs = sources.subset(np.flatnonzero(sources.lengths > 0)).truncate(cfg.max_len)
    n, P = len(seqs), cfg.max_pattern_len
    modes = np.stack([infer.step_modes(n, P, gamma=gamma, schedule=schedule, seed=seed, memory=k)
                      for k in range(cfg.K)])
    order = np.argsort(seqs.lengths, kind="stable")
    out = np.zeros((cfg.K, n, P), dtype=np.int32)
    for b0 in range(0, n, batch_size):
        rows = order[b0 : b0 + batch_size]
        got = decode_batch(model, seqs.subset(rows), modes[:, rows], P, restrict, "torch", repeatable_from)
        out[:, rows, : got.shape[2]] = got
    return out


@torch.no_grad()
def assert_same_or_near_tie(model, sources: SequenceDataset, got: np.ndarray, want: np.ndarray) -> int:
    """Every row of ``got`` equals ``want``'s, or first differs at a near tie of the uncached decoder's
    scores; returns the number of such rows."""
    table = model.item_embedding.weight
    seqs = sources.subset(np.flatnonzero(sources.lengths > 0)).truncate(model.config.max_len)
    differ = np.argwhere((got != want).any(2))
    for k, b in differ:
        j = int(np.flatnonzero(got[k, b] != want[k, b])[0])
        src = torch.from_numpy(seqs.subset([b]).padded(int(seqs.lengths[b]), side="right"))
        prefix = torch.tensor([[model.bos, *want[k, b, :j].tolist()]])
        state = model.decode(prefix, model.encode(src)[:, :, k], src == 0)[0, -1]
        ids = [int(x) if x else model.eos for x in (got[k, b, j], want[k, b, j])]
        scores = table[ids] @ state
        scale = float(state.norm() * table.norm(dim=1).max())
        assert abs(float(scores[0] - scores[1])) <= NEAR_TIE * scale, (
            f"memory {k}, sequence {b}, step {j}: cached decoding chose {ids[0]}, the uncached {ids[1]}, "
            f"scores {scores.tolist()} are no near tie")
    return len(differ)


def planted(n=40, num_items=60, seed=0) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, num_items + 1, size=rng.integers(1, 12)).tolist() for _ in range(n)]
    return SequenceDataset.from_lists(seqs, num_items=num_items)


@torch.no_grad()
@pytest.mark.parametrize("gamma, schedule, restrict, repeatable", [
    (0.0, "paper", "items", None), (0.5, "paper", "items", None), (1.0, "released", "items", None),
    (0.3, "paper", "ordered", None), (0.3, "released", "span", None), (0.5, "paper", "items", 50),
])
def test_hybrid_inference_decodes_what_the_uncached_decoder_did(gamma, schedule, restrict, repeatable):
    model = random_model(max_span=3)
    data = planted()
    kw = dict(gamma=gamma, schedule=schedule, restrict=restrict, seed=5, batch_size=16, repeatable_from=repeatable)
    got = decoded_rows(model, data, CACHED, **kw)
    want = decoded_rows(model, data, uncached_decode_batch, **kw)
    assert assert_same_or_near_tie(model, data, got, want) <= 2
    # and through hybrid_inference: the same patterns, from the same rows and memories
    out, _ = hybrid_inference(model, data, gamma=gamma, schedule=schedule, restrict=restrict, seed=5,
                              batch_size=16, repeatable_from=repeatable, min_pattern_len=1, unique=False)
    flat = got.reshape(-1, got.shape[2])
    keep = np.flatnonzero((flat != 0).sum(1) >= 1)
    assert out.to_lists() == [r[r != 0].tolist() for r in flat[keep]]


def test_beauty_regenerated_file_is_byte_identical_to_the_uncached_decoders(beauty_path, tmp_path, monkeypatch):
    """A regenerator trained 1 epoch on Beauty's first 1,500 users (default sizes, seed 0): the
    regenerated.txt of the cached decoder against the one the uncached decoder writes from the same
    regenerator, byte for byte (a row may differ only at a near tie; then the files differ there)."""
    torch.set_num_threads(1)
    data = load(beauty_path).subset(np.arange(1500))
    cfg = RegenConfig(epochs=1, progress=False, seed=0)
    files, weights = {}, {}
    for name, decode_batch in (("cached", CACHED), ("uncached", uncached_decode_batch)):
        monkeypatch.setattr(infer, "_decode_batch", decode_batch)
        torch.manual_seed(0)
        dr = DR4SR(cfg).fit(data)  # trained afresh each time: only public API between the two runs
        files[name] = tmp_path / f"{name}.txt"
        save(dr.regenerate(), files[name], drop_empty=True)
        weights[name] = dr.regenerator.state_dict()
    assert all(torch.equal(weights["cached"][k], weights["uncached"][k]) for k in weights["cached"])
    model, sources = dr.regenerator, dr4sr_input(data)
    kw = dict(gamma=cfg.gamma, schedule=cfg.schedule, restrict=cfg.restrict, seed=cfg.seed,
              batch_size=cfg.decode_batch_size)
    got = decoded_rows(model, sources, CACHED, **kw)
    want = decoded_rows(model, sources, uncached_decode_batch, **kw)
    assert (want != 0).sum() > 1000  # the regenerator decodes patterns, not only EOS
    if assert_same_or_near_tie(model, sources, got, want) == 0:
        assert files["cached"].read_bytes() == files["uncached"].read_bytes()
