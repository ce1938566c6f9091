import numpy as np
import pytest

from fastregen.data import SequenceDataset, leave_one_out, stats


def test_from_lists_roundtrip():
    seqs = [[1, 2, 3], [], [4], [2, 2, 5, 1]]
    ds = SequenceDataset.from_lists(seqs)
    assert ds.to_lists() == seqs
    assert ds.num_items == 5
    assert ds.offsets.dtype == np.int64 and ds.items.dtype == np.int32
    assert ds.lengths.tolist() == [3, 0, 1, 4]


def test_zero_copy_when_dtypes_match():
    offsets = np.array([0, 2, 3], dtype=np.int64)
    items = np.array([1, 2, 3], dtype=np.int32)
    ds = SequenceDataset(offsets, items)
    assert np.shares_memory(ds.items, items) and np.shares_memory(ds.offsets, offsets)


@pytest.mark.parametrize(
    "offsets,items,exc,match",
    [
        ([0, 2], [1, 0], ValueError, "item ids must be >= 1"),
        ([0, 2], [1, -3], ValueError, "-3"),
        ([1, 2], [1, 2], ValueError, "offsets\\[0\\]"),
        ([0, 3], [1, 2], ValueError, "len\\(items\\)"),
        ([0, 2, 1, 2], [1, 2], ValueError, "non-decreasing"),
        ([0, 2], [1.5, 2.0], TypeError, "integers"),
        ([], [], ValueError, "empty"),
    ],
)
def test_invalid_csr(offsets, items, exc, match):
    with pytest.raises(exc, match=match):
        SequenceDataset(np.array(offsets), np.array(items))


def test_num_items_smaller_than_data():
    with pytest.raises(ValueError, match="num_items = 2"):
        SequenceDataset.from_lists([[1, 5]], num_items=2)


def test_padded_left_and_right():
    ds = SequenceDataset.from_lists([[1, 2, 3], [4], []])
    left = ds.padded(2)
    assert left.tolist() == [[2, 3], [0, 4], [0, 0]]
    right = ds.padded(4, side="right")
    assert right.tolist() == [[1, 2, 3, 0], [4, 0, 0, 0], [0, 0, 0, 0]]


def test_slice_and_subset():
    ds = SequenceDataset.from_lists([[1, 2, 3, 4], [5], [6, 7]])
    assert ds.slice_sequences(0, -2).to_lists() == [[1, 2], [], []]
    assert ds.truncate(1).to_lists() == [[4], [5], [7]]
    assert ds.subset([2, 0]).to_lists() == [[6, 7], [1, 2, 3, 4]]
    assert ds.subset(np.array([False, True, False])).to_lists() == [[5]]


def test_leave_one_out():
    ds = SequenceDataset.from_lists([[1, 2, 3, 4], [5, 6], [7]])
    sp = leave_one_out(ds)
    assert sp.train.to_lists() == [[1, 2], [], []]
    assert sp.valid.history.to_lists() == [[1, 2]] and sp.valid.target.tolist() == [3]
    assert sp.test.history.to_lists() == [[1, 2, 3], [5]] and sp.test.target.tolist() == [4, 6]
    assert sp.test.users.tolist() == [0, 1]


def test_stats_small():
    st = stats(SequenceDataset.from_lists([[1, 2], [2, 3, 4]]))
    assert (st.users, st.items, st.interactions, st.min_length, st.max_length) == (2, 4, 5, 2, 3)
    assert st.avg_length == pytest.approx(2.5)
    assert st.sparsity == pytest.approx(1 - 5 / 8)


def test_stats_repeated_items_and_sparse_ids():
    # Issue 21: a user repeating an item counted every repeat as a filled
    # cell, so sparsity went negative.
    st = stats(SequenceDataset.from_lists([[1, 1, 1, 2, 2, 1], [1, 1, 1]]))
    assert (st.users, st.items, st.interactions) == (2, 2, 9)
    assert st.sparsity == pytest.approx(1 - 3 / 4)
    # the distinct-item count is not sized by the largest id
    st = stats(SequenceDataset.from_lists([[1, 2**31 - 1], [2**31 - 1]]))
    assert (st.items, st.sparsity) == (2, pytest.approx(1 - 3 / 4))


# ---------------------------------------------------------------- compiled gather
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastregen import _core  # noqa: E402
from fastregen.reference import csr as ref_csr  # noqa: E402


@st.composite
def _values_and_ranges(draw):
    m = draw(st.integers(0, 30))
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    values = np.array(draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=m, max_size=m)), dtype=dtype)
    n = draw(st.integers(0, 12))
    starts, ends = [], []
    for _ in range(n):
        a = draw(st.integers(0, m))
        b = draw(st.integers(a, m))
        starts.append(a)
        ends.append(b)
    return values, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


@settings(max_examples=150, deadline=None)
@given(_values_and_ranges(), st.sampled_from([0, 1, 2]))
def test_gather_ranges_matches_reference(case, threads):
    values, starts, ends = case
    off, out = _core.gather_ranges(values, starts, ends, threads)
    ref_off, ref_out = ref_csr.gather_ranges(values, starts, ends)
    assert out.dtype == values.dtype and off.dtype == np.int64
    np.testing.assert_array_equal(off, ref_off)
    np.testing.assert_array_equal(out, ref_out)


def test_gather_ranges_large_parallel():
    # Above the serial threshold, so the OpenMP path runs.
    rng = np.random.default_rng(0)
    values = rng.integers(1, 1000, size=200_000).astype(np.int32)
    starts = rng.integers(0, values.size - 50, size=20_000)
    ends = starts + rng.integers(0, 50, size=starts.size)
    off, out = _core.gather_ranges(values, starts, ends, 2)
    ref_off, ref_out = ref_csr.gather_ranges(values, starts, ends)
    np.testing.assert_array_equal(off, ref_off)
    np.testing.assert_array_equal(out, ref_out)


@pytest.mark.parametrize(
    "values,starts,ends,exc,match",
    [
        (np.arange(5, dtype=np.float64), [0], [1], TypeError, "int32 or int64"),
        (np.arange(5, dtype=np.int16), [0], [1], TypeError, "int32 or int64"),
        (np.arange(10, dtype=np.int64)[::2], [0], [1], TypeError, "C-contiguous"),
        (np.arange(5, dtype=np.int32), [3], [2], ValueError, r"range 0 = \[3, 2\)"),
        (np.arange(5, dtype=np.int32), [0, 4], [1, 6], ValueError, r"range 1 = \[4, 6\)"),
        (np.arange(5, dtype=np.int32), [-1], [0], ValueError, r"\[-1, 0\)"),
        (np.arange(5, dtype=np.int32), [0, 1], [1], ValueError, "2 entries|equal length"),
    ],
)
def test_gather_ranges_bad_input(values, starts, ends, exc, match):
    with pytest.raises(exc, match=match):
        _core.gather_ranges(values, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64))
    if exc is ValueError:  # the reference checks the ranges too (it takes any dtype)
        with pytest.raises(ValueError, match=match):
            ref_csr.gather_ranges(values, starts, ends)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 6), max_size=6), min_size=1, max_size=8),
    st.data(),
)
def test_subset_and_slice_match_lists(seqs, data):
    ts = [list(range(100 * u, 100 * u + len(s))) for u, s in enumerate(seqs)]
    ds = SequenceDataset.from_lists(seqs, num_items=9, timestamps=np.concatenate([np.array(t, dtype=np.int64) for t in ts]),
                                    user_ids=np.arange(len(seqs)) + 10)
    index = data.draw(st.lists(st.integers(0, len(seqs) - 1), max_size=10))
    sub = ds.subset(np.array(index, dtype=np.int64))
    assert sub.to_lists() == [seqs[u] for u in index]
    assert sub.timestamps.tolist() == [t for u in index for t in ts[u]]
    assert sub.user_ids.tolist() == [u + 10 for u in index]
    assert sub.num_items == 9 and not sub.items.flags.writeable and not sub.offsets.flags.writeable
    a = data.draw(st.integers(-8, 8))
    b = data.draw(st.one_of(st.none(), st.integers(-8, 8)))
    sl = ds.slice_sequences(a, b)
    assert sl.to_lists() == [s[a:b] for s in seqs]
    assert sl.timestamps.tolist() == [x for t in ts for x in t[a:b]]


def test_subset_rejects_non_integer_index():
    ds = SequenceDataset.from_lists([[1, 2], [3]])
    with pytest.raises(TypeError, match="integers or booleans"):
        ds.subset(np.array([0.7]))
    with pytest.raises(IndexError, match="subset index -1"):
        ds.subset([0, -1])
    with pytest.raises(ValueError, match="1-D"):
        ds.subset(np.zeros((1, 1), dtype=np.int64))
    assert ds.subset([]).to_lists() == []


def test_bad_arguments_are_named_not_truncated():
    ds = SequenceDataset.from_lists([[1, 2, 3], [4]])
    # floats used to be truncated silently (truncate(2.5) kept 2 items)
    with pytest.raises(TypeError, match="max_len must be an integer, got 2.5"):
        ds.truncate(2.5)
    with pytest.raises(TypeError, match="max_len must be an integer"):
        ds.padded(2.0)
    with pytest.raises(TypeError, match="start must hold integers"):
        ds.slice_sequences(0.5)
    with pytest.raises(TypeError, match="stop must hold integers"):
        ds.slice_sequences(0, np.array([1.5, 1.0]))
    with pytest.raises(ValueError, match="max_len must be >= 1, got 0"):
        ds.truncate(0)
    with pytest.raises(ValueError, match="max_len must be >= 1, got 0"):
        ds.padded(0)
    with pytest.raises(ValueError, match="side must be 'left' or 'right', got 'up'"):
        ds.padded(2, side="up")
    with pytest.raises(ValueError, match="cannot split an empty dataset"):
        leave_one_out(SequenceDataset.from_lists([]))
    from fastregen.data import kcore

    with pytest.raises(TypeError, match="user_k must be an integer, got 2.5"):
        kcore(ds, 2.5)
    with pytest.raises(TypeError, match="item_k must be an integer"):
        kcore(ds, item_k=1.5)
    assert ds.truncate(np.int64(2)).to_lists() == [[2, 3], [4]]
    assert ds.slice_sequences(np.int32(1)).to_lists() == [[2, 3], []]


def test_from_lists_rejects_non_integer_ids():
    # np.asarray(s, dtype=int64) used to truncate 1.5 -> 1 and parse "3" silently
    with pytest.raises(TypeError, match="sequence 1 must hold integer item ids, got dtype float64"):
        SequenceDataset.from_lists([[1, 2], [1.5, 2.0]])
    with pytest.raises(TypeError, match="sequence 0 must hold integer item ids"):
        SequenceDataset.from_lists([["3", "4"]])
    with pytest.raises(TypeError, match="sequence 0 must hold integer item ids"):
        SequenceDataset.from_lists([[2**70]])
    from fastregen import entropy, patterns

    with pytest.raises(TypeError, match="integer item ids"):
        patterns.mine_patterns([[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="integer item ids"):
        entropy.real_entropy([[1.5, 2.5]])
    ok = SequenceDataset.from_lists([np.array([1, 2], dtype=np.int32), [], (3,)])
    assert ok.to_lists() == [[1, 2], [], [3]]


def test_as_dataset_accepts_dataset_or_path(tmp_path):
    from fastregen.data import as_dataset, save

    ds = SequenceDataset.from_lists([[1, 2, 3], [2, 4]])
    assert as_dataset(ds) is ds
    save(ds, tmp_path / "d.txt")
    assert as_dataset(tmp_path / "d.txt").to_lists() == ds.to_lists()
    assert as_dataset(str(tmp_path / "d.txt")).to_lists() == ds.to_lists()
    with pytest.raises(TypeError, match="list"):
        as_dataset([[1, 2]])


def test_concat_stacks_rows_and_checks_input():
    from fastregen.data import concat

    a = SequenceDataset.from_lists([[1, 2], []], num_items=3)
    b = SequenceDataset.from_lists([[5, 4, 1]])
    c = concat(a, b, name="ab")
    assert c.to_lists() == [[1, 2], [], [5, 4, 1]]
    assert c.num_items == 5 and c.name == "ab"
    assert concat(a, num_items=9).num_items == 9
    with pytest.raises(ValueError, match="at least one"):
        concat()


def test_subset_selects_per_sequence_meta_with_the_rows():
    # the DR4SR+ dev split and any subset of a tagged training set must keep
    # each row's source and weight beside it (they used to stay whole)
    ds = SequenceDataset.from_lists([[1, 2], [3], [4, 5, 6]]).replace(
        meta={"source": np.array([0, 1, 2]), "weights": np.array([0.5, 1.0, 2.0], np.float32),
              "source_names": ["original", "patterns", "regenerated"]})
    sub = ds.subset([2, 0, 2])
    assert sub.to_lists() == [[4, 5, 6], [1, 2], [4, 5, 6]]
    assert sub.meta["source"].tolist() == [2, 0, 2]
    assert sub.meta["weights"].tolist() == [2.0, 0.5, 2.0]
    assert sub.meta["source_names"] == ["original", "patterns", "regenerated"]
    assert ds.meta["source"].tolist() == [0, 1, 2]
