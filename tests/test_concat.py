"""`fastregen.data.concat`: the one way a training set is built from parts, each row tagged with its source."""

from __future__ import annotations

import numpy as np
import pytest

from fastregen.data import SequenceDataset, concat


def _ds(lists, **kw):
    return SequenceDataset.from_lists(lists, num_items=9, **kw)


def test_untagged_parts_are_tagged_by_source_name_then_by_dataset_name():
    a, b = _ds([[1, 2], [3]], name="a"), _ds([[4, 5, 6]], name="b")
    out = concat(a, b, sources=["original", "generated"])
    assert out.to_lists() == [[1, 2], [3], [4, 5, 6]]
    assert out.meta["source"].tolist() == [0, 0, 1] and out.meta["source_names"] == ["original", "generated"]
    by_name = concat(a, b, a)
    assert by_name.meta["source_names"] == ["a", "b"] and by_name.meta["source"].tolist() == [0, 0, 1, 0, 0]
    assert concat(_ds([[1]]), _ds([[2]])).meta["source_names"] == ["part0", "part1"]
    assert "weights" not in out.meta


def test_tagged_parts_keep_their_rows_tags():
    first = concat(_ds([[1, 2]]), _ds([[3, 4]]), sources=["original", "patterns"])
    regen = _ds([[5, 6], [7, 8]]).replace(meta={"source": np.zeros(2, np.int64), "source_names": ["regenerated"]})
    out = concat(first, regen, first)
    assert out.meta["source_names"] == ["original", "patterns", "regenerated"]
    assert out.meta["source"].tolist() == [0, 1, 2, 2, 0, 1]
    # a subset keeps each row's tag beside it (what DR4SR+'s dev split relies on)
    assert out.subset([1, 3]).meta["source"].tolist() == [1, 2]


def test_weights_drop_empty_and_given_meta():
    a, b = _ds([[1, 2], [], [3]]), _ds([[4], []])
    out = concat(a, b, sources=["x", "y"], weights=[1.0, 0.5], drop_empty=True, meta={"note": "kept"})
    assert out.to_lists() == [[1, 2], [3], [4]]
    assert out.meta["source"].tolist() == [0, 0, 1]
    assert out.meta["weights"].dtype == np.float32 and out.meta["weights"].tolist() == [1.0, 1.0, 0.5]
    assert out.meta["note"] == "kept"
    assert concat(a, b).to_lists() == [[1, 2], [], [3], [4], []]  # empty rows stay by default
    with pytest.raises(ValueError, match="1 source names for 2 datasets"):
        concat(a, b, sources=["x"])
    with pytest.raises(ValueError, match="3 weights for 2 datasets"):
        concat(a, b, weights=[1, 1, 1])


def test_dr4sr_plus_dev_split_holds_out_only_the_dev_source_of_a_unids_training_set():
    # Issue 27: UniDS built its training set with an untagged union, so
    # split_dev(dev_source="original") drew its dev set from the generated
    # sequences too. The real UniDS path, without training its generator
    # (the generated sequences are the mined segments): seconds.
    from test_unids import cfg, planted

    from fastregen import UniDS
    from fastregen.dr4sr.plus import PlusConfig, split_dev

    run = UniDS(cfg(uniform_generation=False)).fit(planted(n=40))
    train = run.generate()
    names = train.meta["source_names"]
    assert names == ["original", "generated"]
    source = np.asarray(train.meta["source"])
    assert (source == 0).sum() == len(run.train) and (source == 1).sum() == len(run.generated()) > 0
    # the UniDS training weights (hashed by the runs' fingerprints) are unchanged: all 1
    assert np.all(train.meta["weights"] == 1.0)
    for dev_source in names:
        lower, dev = split_dev(train, PlusConfig(dev_source=dev_source, dev_fraction=0.5, seed=0))
        k = names.index(dev_source)
        eligible = int(((source == k) & (train.lengths >= 2)).sum())
        assert len(dev) == round(0.5 * eligible) > 0
        assert set(dev.meta["source"].tolist()) == {k}
        assert len(lower) + len(dev) == len(train)
        assert (np.asarray(lower.meta["source"]) != k).sum() == (source != k).sum()
