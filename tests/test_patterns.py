"""The one `Patterns` type: span, window and entropy patterns share storage, save/load and segmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastregen import patterns
from fastregen.data import SequenceDataset
from fastregen.reference import entropy as ref

SEQS = [[1, 2, 3, 1, 2, 3, 1, 2], [4, 5, 4, 5, 4], [1, 2, 3, 4, 5, 1, 2]]


def test_one_type_under_every_name():
    span = patterns.mine_patterns(SEQS, max_span=3, min_support=2)
    low = patterns.mine_entropy_patterns(SEQS, theta=4.0)
    win = patterns.window_counts(SEQS, window=2, min_count=2)
    assert {type(p) for p in (span, low, win)} == {patterns.Patterns}
    assert (span.kind, low.kind, win.kind) == ("span", "entropy", "window")
    assert low.count is low.support and low.theta == 4.0 and low.entropy.shape == (len(low),)


def test_entropy_patterns_match_the_reference():
    low = patterns.mine_entropy_patterns(SEQS, theta=4.0)
    want = ref.mine_entropy_patterns(SEQS, 4.0, markov=ref.MarkovModel(2, 5).fit(SEQS))
    assert [(tuple(p), h, c) for p, h, c in want] == [
        (tuple(low[k].tolist()), float(low.entropy[k]), int(low.count[k])) for k in range(len(low))]


@pytest.mark.parametrize("kind", ["span", "window", "entropy"])
def test_save_load_roundtrip_every_kind(tmp_path, kind):
    pats = {"span": lambda: patterns.mine_patterns(SEQS, max_span=3, min_support=2),
            "window": lambda: patterns.window_counts(SEQS, window=2, min_count=2),
            "entropy": lambda: patterns.mine_entropy_patterns(SEQS, theta=4.5)}[kind]()
    path = tmp_path / "p.tsv"
    pats.save(path)
    back = patterns.Patterns.load(path)
    assert back.kind == kind and back.to_list() == pats.to_list()
    assert (back.max_span, back.min_support, back.min_len, back.max_len, back.num_items) == (
        pats.max_span, pats.min_support, pats.min_len, pats.max_len, pats.num_items)
    if kind == "entropy":  # bit for bit
        assert back.theta == pats.theta and np.array_equal(back.entropy, pats.entropy)
    else:
        assert back.entropy is None and "theta" not in path.read_text().splitlines()[0]


def test_empty_entropy_patterns_roundtrip(tmp_path):
    none = patterns.mine_entropy_patterns([[1, 2, 3]], min_count=2)  # no item occurs twice
    assert len(none) == 0 and math.isnan(none.theta)
    none.save(tmp_path / "e.tsv")
    back = patterns.Patterns.load(tmp_path / "e.tsv")
    assert len(back) == 0 and back.kind == "entropy" and math.isnan(back.theta)


def test_bad_entropy_files_and_fields(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("# fastregen patterns kind=entropy theta=4.0\n2\t1 2\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 'support<TAB>items<TAB>entropy'"):
        patterns.Patterns.load(path)
    path.write_text("# fastregen patterns kind=entropy theta=4.0\n2\t1 2\tinf\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected"):
        patterns.Patterns.load(path)
    path.write_text("# fastregen patterns kind=entropy theta=four\n2\t1 2\t1.0\n")
    with pytest.raises(ValueError, match=r"bad.tsv:1: header field theta = 'four' is not a number"):
        patterns.Patterns.load(path)
    path.write_text("2\t1 2\t0.5\n")  # a span file has two columns
    with pytest.raises(ValueError, match=r"bad.tsv:1: expected 'support<TAB>items'"):
        patterns.Patterns.load(path)
    with pytest.raises(ValueError, match="kind must be one of"):
        patterns.Patterns(np.array([0, 1]), np.array([1]), np.array([1]), kind="ngram")
    with pytest.raises(ValueError, match="entropy patterns need their entropy"):
        patterns.Patterns(np.array([0, 1]), np.array([1]), np.array([1]), kind="entropy")
    with pytest.raises(ValueError, match=r"entropy has shape \(2,\), expected \(1,\)"):
        patterns.Patterns(np.array([0, 1]), np.array([1]), np.array([1]), kind="entropy", entropy=[1.0, 2.0])


def test_segment_takes_any_kind():
    ds = SequenceDataset.from_lists(SEQS)
    span = patterns.mine_patterns(SEQS, max_span=2, min_support=2)  # span 2 = contiguous pairs
    seg = patterns.segment(ds, span)
    want = ref.segment(SEQS, span.to_lists())
    assert [[s.tolist() for s in seg.segments(u)] for u in range(len(ds))] == [[p for p, _ in row] for row in want]
