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
