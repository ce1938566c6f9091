"""Vectorised deduplication of decoded patterns (`deduplicate_rows`) against the one-at-a-time reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen.generator.decode import _csr, deduplicate, deduplicate_rows


def _rows(patterns, width):
    out = np.zeros((len(patterns), width), dtype=np.int32)
    for i, p in enumerate(patterns):
        out[i, : len(p)] = p
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(1, 6), min_size=0, max_size=5, unique=True), min_size=0, max_size=60),
       st.integers(0, 4), st.sampled_from([np.int32, np.int64]))
def test_deduplicate_rows_equals_the_reference(patterns, min_len, dtype):
    width = 5
    rows = _rows(patterns, width).astype(dtype)
    keep, info = deduplicate_rows(rows, min_len)
    want, want_info = deduplicate([np.asarray(p, dtype=np.int64) for p in patterns], min_len)
    assert [rows[i][rows[i] != 0].tolist() for i in keep] == [p.tolist() for p in want]
    assert info == want_info
    assert np.all(np.diff(keep) > 0)
    offsets, items = _csr(rows[keep])
    assert offsets[-1] == items.size and items.dtype == np.int32
    assert [items[offsets[i] : offsets[i + 1]].tolist() for i in range(keep.size)] == [p.tolist() for p in want]


def test_deduplicate_rows_edges():
    keep, info = deduplicate_rows(np.zeros((0, 4), np.int32), 2)
    assert keep.size == 0 and info == {"decoded": 0, "too_short": 0, "duplicates": 0, "kept": 0}
    rows = np.array([[3, 1, 0], [3, 1, 0], [1, 3, 0], [3, 0, 0], [3, 1, 2]])
    keep, info = deduplicate_rows(rows, 2)
    assert keep.tolist() == [0, 2, 4] and info == {"decoded": 5, "too_short": 1, "duplicates": 1, "kept": 3}
    with pytest.raises(ValueError, match="2-D id matrix"):
        deduplicate_rows(np.zeros(3, np.int32), 1)
