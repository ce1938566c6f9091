"""k-core, remap, truncation, the synthetic generator and split files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import data
from fastregen.data import SequenceDataset, kcore, leave_one_out, remap


def naive_kcore(seqs, user_k, item_k):
    """One removal at a time, in Python: the definition."""
    seqs = [list(s) for s in seqs]
    alive = list(range(len(seqs)))
    while True:
        counts = {}
        for u in alive:
            for i in seqs[u]:
                counts[i] = counts.get(i, 0) + 1
        changed = False
        for u in alive:
            kept = [i for i in seqs[u] if counts[i] >= item_k]
            if kept != seqs[u]:
                seqs[u], changed = kept, True
        new_alive = [u for u in alive if len(seqs[u]) >= user_k]
        if new_alive != alive:
            alive, changed = new_alive, True
        if not changed:
            return [seqs[u] for u in alive], alive


@settings(max_examples=60, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=10), min_size=1, max_size=25),
    user_k=st.integers(1, 4),
    item_k=st.integers(1, 4),
)
def test_kcore_matches_definition(seqs, user_k, item_k):
    ds = SequenceDataset.from_lists(seqs, user_ids=np.arange(100, 100 + len(seqs)))
    got = kcore(ds, user_k=user_k, item_k=item_k)
    want, users = naive_kcore(seqs, user_k, item_k)
    assert got.to_lists() == want
    assert got.user_ids.tolist() == [100 + u for u in users]
    if got.items.size:
        lengths = got.lengths
        assert lengths.min() >= user_k
        assert np.bincount(got.items)[np.unique(got.items)].min() >= item_k


def test_kcore_is_iterative_and_keeps_timestamps():
    # Item 5 is rare; dropping it drops the last user, then item 3 is rare,
    # then the first user is too short: only a chain of rounds finds this.
    ds = SequenceDataset.from_lists([[1, 2, 3], [1, 2, 4], [1, 2, 4], [3, 5]], timestamps=np.arange(11))
    got = kcore(ds, user_k=3, item_k=2)
    assert got.to_lists() == [[1, 2, 4], [1, 2, 4]]
    assert got.timestamps.tolist() == [3, 4, 5, 6, 7, 8]
    assert got.meta["kcore_rounds"] >= 3
    with pytest.raises(ValueError, match="user_k=0"):
        kcore(ds, user_k=0)


@pytest.mark.data
def test_beauty_is_already_5core(beauty_path):
    ds = data.load(beauty_path)
    core = kcore(ds, 5)
    assert core.num_interactions == ds.num_interactions and core.meta["kcore_rounds"] == 1


def test_remap_dense_and_composes():
    ds = SequenceDataset.from_lists([[10, 3, 10], [7]])
    r = remap(ds)
    assert r.to_lists() == [[3, 1, 3], [2]] and r.num_items == 3
    assert r.item_ids.tolist() == [-1, 3, 7, 10]
    r2 = remap(r.subset([0]))
    assert r2.to_lists() == [[2, 1, 2]] and r2.item_ids.tolist() == [-1, 3, 10]


def test_truncate_keeps_latest():
    ds = SequenceDataset.from_lists([[1, 2, 3, 4], [5]], timestamps=np.arange(5))
    t = ds.truncate(2)
    assert t.to_lists() == [[3, 4], [5]] and t.timestamps.tolist() == [2, 3, 4]


# ------------------------------------------------------------------ synthetic
def test_synthetic_deterministic_and_shaped():
    a = data.synthetic("demo", seed=7)
    b = data.synthetic("demo", seed=7)
    c = data.synthetic("demo", seed=8)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.meta["patterns"], b.meta["patterns"])
    assert not np.array_equal(a.meta["patterns"], c.meta["patterns"])
    cfg = data.PRESETS["demo"]
    assert len(a) == cfg.n_users and a.num_items == cfg.n_items
    assert a.lengths.min() >= cfg.min_len and a.lengths.max() <= cfg.max_len
    assert abs(a.lengths.mean() - cfg.avg_len) < 1.0
    pats = a.meta["patterns"]
    assert pats.shape == (cfg.n_patterns, cfg.pattern_len)
    assert np.unique(pats).size == pats.size  # disjoint patterns


def test_synthetic_patterns_are_planted():
    ds = data.synthetic("demo", seed=1)
    pats = ds.meta["patterns"]
    first, second = pats[:, 0], pats[:, 1]
    # Within sequences, how often is a pattern's first item followed by its second?
    nxt = np.r_[ds.items[1:], 0]
    last = np.zeros(ds.items.size, dtype=bool)
    last[ds.offsets[1:] - 1] = True
    succ = {int(a): int(b) for a, b in zip(first, second)}
    is_first = np.isin(ds.items, first) & ~last
    hits = np.mean([succ[int(a)] == int(b) for a, b in zip(ds.items[is_first], nxt[is_first])])
    assert hits > 0.8
    # Background popularity is skewed (power law): the top 1% of items take far more than 1%.
    counts = np.sort(np.bincount(ds.items, minlength=ds.num_items + 1)[1:])[::-1]
    assert counts[: len(counts) // 100].sum() > 0.1 * counts.sum()


def test_synthetic_timestamps_increase_per_user():
    ds = data.synthetic("demo", n_users=100, timestamps=True, seed=2)
    ts = ds.timestamps
    step = np.diff(ts)
    inside = np.ones(step.size, dtype=bool)
    inside[ds.offsets[1:-1] - 1] = False
    assert (step[inside] > 0).all()


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"preset": "nope"}, ValueError, "unknown preset"),
        ({"n_patterns": 600}, ValueError, "n_patterns \\* pattern_len"),
        ({"pattern_prob": 1.5}, ValueError, "pattern_prob"),
        ({"avg_len": 2.0}, ValueError, "avg_len"),
        ({"pattern_len": 1}, ValueError, "pattern_len"),
        ({"zipf_a": -1.0}, ValueError, "zipf_a"),
        ({"colour": 1}, TypeError, "unknown synthetic option"),
    ],
)
def test_synthetic_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        data.synthetic(**kwargs)


@pytest.mark.slow
def test_books_preset_scale():
    ds = data.synthetic("books", seed=0)
    assert 9_000_000 < ds.num_interactions < 11_000_000
    assert ds.num_items == 700_000


# ---------------------------------------------------------------------- split
def test_save_split_files(tmp_path):
    ds = SequenceDataset.from_lists([[1, 2, 3, 4], [5, 6], [7, 8, 9]], user_ids=np.array([11, 12, 13]))
    sizes = data.save_split(leave_one_out(ds), tmp_path)
    assert sizes == {"train": 2, "valid": 2, "test": 3}
    assert (tmp_path / "train.txt").read_text() == "11 1 2\n13 7\n"
    assert (tmp_path / "valid.txt").read_text() == "11 1 2 3\n13 7 8\n"
    assert (tmp_path / "test.txt").read_text() == "11 1 2 3 4\n12 5 6\n13 7 8 9\n"
    back = data.load(tmp_path / "test.txt")
    assert back.to_lists() == ds.to_lists()
