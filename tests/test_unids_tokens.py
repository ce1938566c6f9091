"""Pattern-token sequences: T tokens in their own id range; stripping them gives the segmentation back."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import patterns
from fastregen.data import SequenceDataset
from fastregen.unids.tokens import build_vocab, pattern_token_sequences, resolve_kind, segment_tokens

seqs_st = st.lists(st.lists(st.integers(1, 9), min_size=0, max_size=12), min_size=1, max_size=8)


def dataset(seqs, seed, with_cat=True):
    rng = np.random.default_rng(seed)
    ts = np.concatenate([np.cumsum(rng.integers(0, 20_000, size=len(s))) for s in seqs]) if seqs else None
    meta = {"item_category": rng.integers(0, 4, size=10)} if with_cat else {}
    return SequenceDataset.from_lists(seqs, num_items=9, timestamps=ts.astype(np.int64), meta=meta)


@settings(max_examples=80, deadline=None)
@given(seqs=seqs_st, kind=st.sampled_from(["time", "session", "position", "category", "none"]),
       theta=st.floats(2.0, 9.0), seed=st.integers(0, 1000))
def test_strip_recovers_the_segmented_sequence(seqs, kind, theta, seed):
    ds = dataset(seqs, seed)
    pats = patterns.mine_entropy_patterns(ds, theta=theta, min_count=1, max_len=4)
    seg = patterns.segment(ds, pats)
    vocab = build_vocab(ds.num_items, [kind], ("recall", "fine"), categories=3, time_buckets=6, position_buckets=3)
    pt, end = pattern_token_sequences(seg, kind, vocab)
    assert pt.num_items == vocab.size and len(pt) == len(ds)
    # T tokens live above the items, below the stage tokens
    t_ids = pt.items[pt.items > ds.num_items]
    if kind != "none":
        start, size = vocab.block(kind)
        assert t_ids.size == seg.num_segments and np.all((t_ids >= start) & (t_ids < start + size))
        assert np.all(t_ids < vocab.stage_token("recall"))
    else:
        assert t_ids.size == 0
    # stripping T tokens gives the data back, timestamps included
    back = vocab.strip(pt)
    assert back.to_lists() == ds.to_lists()
    assert np.array_equal(back.timestamps, ds.timestamps)
    # and the segments: the tokens between two T tokens are exactly segment k
    for u in range(len(ds)):
        row = pt[u].tolist()
        if kind == "none":
            assert row == [x for s in seg.segments(u) for x in s.tolist()]
            continue
        got, cur = [], []
        for x in row:
            if x > ds.num_items:
                got.append(cur)
                cur = []
            else:
                cur.append(x)
        assert cur == [] and got == [s.tolist() for s in seg.segments(u)]
    # segment_end points just past each segment's tokens
    first = np.r_[0, end[:-1]]
    starts = pt.offsets[np.repeat(np.arange(len(ds)), np.diff(seg.offsets))]
    first = np.where(np.r_[True, np.diff(np.repeat(np.arange(len(ds)), np.diff(seg.offsets))) > 0], starts, first)
    for k in range(seg.num_segments):
        items = pt.items[first[k]:end[k]]
        assert items[items <= ds.num_items].tolist() == ds.items[seg.bounds[k]:seg.bounds[k + 1]].tolist()


def test_token_values():
    ds = SequenceDataset.from_lists([[1, 2, 3, 4]], num_items=4, timestamps=np.array([0, 1, 4000, 4000]),
                                    meta={"item_category": np.array([0, 1, 2, 1, 2])})
    seg = patterns.segment(ds, [[1, 2], [3]])  # [1 2] [3] [4]
    vocab = build_vocab(4, ["time", "session", "position", "category"], categories=2, time_buckets=8,
                        position_buckets=2, session_gap=3600)
    t0, _ = vocab.block("time")
    assert (segment_tokens(seg, "time", vocab) - t0).tolist() == [min(math.floor(math.log2(1 + 3999)), 7), 0, 8]
    s0, _ = vocab.block("session")
    assert (segment_tokens(seg, "session", vocab) - s0).tolist() == [1, 0, 2]
    p0, _ = vocab.block("position")
    assert (segment_tokens(seg, "position", vocab) - p0).tolist() == [1, 1, 0]
    c0, _ = vocab.block("category")
    assert (segment_tokens(seg, "category", vocab) - c0).tolist() == [2, 1, 2]
    assert vocab.to_dict() == type(vocab).from_dict(vocab.to_dict()).to_dict()


def test_clear_errors():
    untimed = SequenceDataset.from_lists([[1, 2]], name="beauty.txt")
    with pytest.raises(ValueError, match=r"token_fine = 'time' needs timestamps, but beauty.txt has none; set "
                                         r"token_fine to 'position'"):
        resolve_kind("time", untimed, "token_fine")
    with pytest.raises(ValueError, match="token_coarse = 'session' needs timestamps"):
        resolve_kind("session", untimed, "token_coarse")
    with pytest.raises(ValueError, match="token_recall = 'category' needs item categories"):
        resolve_kind("category", untimed, "token_recall")
    with pytest.raises(ValueError, match="token_recall = 'genre' is not a T-token kind"):
        resolve_kind("genre", untimed, "token_recall")
    assert resolve_kind("auto", untimed) == "position"
    assert resolve_kind("auto", untimed.replace(timestamps=np.array([1, 2]))) == "time"
    vocab = build_vocab(2, ["position"], ("fine",))
    with pytest.raises(ValueError, match="no 'time' tokens"):
        vocab.block("time")
    with pytest.raises(ValueError, match="unknown stage 'final'"):
        vocab.stage_token("final")
    with pytest.raises(ValueError, match="time_buckets must be a positive int"):
        build_vocab(2, ["time"], time_buckets=0)
