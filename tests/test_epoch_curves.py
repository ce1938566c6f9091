"""benchmarks/epoch_curves.py: the test-curve hook leaves the run as it was, and the checks catch another run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fastregen.data import leave_one_out
from fastregen.data.synthetic import synthetic
from fastregen.training import fit_and_evaluate

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SMALL = dict(progress=False, embed_dim=16, max_len=12, batch_size=32, num_threads=1, epochs=4, patience=2)


@pytest.fixture
def curves(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("epoch_curves", None)
    import epoch_curves

    return epoch_curves


def _study_run(data):
    """What a study keeps of a run: its row (figures as the CSV holds them) and its metrics.jsonl."""
    logged = []
    res = fit_and_evaluate(data, "sasrec", 0, log=logged.append, **SMALL)
    row = {"run_id": "r0", "epochs": str(res["epochs"]), "best_epoch": str(res["best_epoch"]),
           **{f"test_{m}": str(res["test"][m]) for m in ("ndcg@10", "ndcg@20", "recall@20")}}
    return row, [dict(r) for r in logged]


def _again(curves, data, row, logged):
    curve = curves.Curve(row, logged)
    hook = curves.test_curve_hook(leave_one_out(data).test)
    res = fit_and_evaluate(data, "sasrec", 0, hooks=(hook,), log=curve, **SMALL)
    return res, curve


def test_the_curve_rides_on_the_same_run_and_marks_the_selected_epoch(curves):
    data = synthetic(n_users=80, n_items=60, avg_len=8, n_patterns=5, seed=1)
    row, logged = _study_run(data)
    res, curve = _again(curves, data, row, logged)
    curve.check(res)  # same epochs, same selected epoch, same test figures: the hook changed nothing
    rows = curve.rows("dr4sr", "tiny", "abc", "here")
    assert [r["epoch"] for r in rows] == list(range(int(row["epochs"])))
    (sel,) = [r for r in rows if r["selected"]]
    assert sel["epoch"] == int(row["best_epoch"]) and sel["test_ndcg@20"] == float(row["test_ndcg@20"])
    assert all(set(curves.COLUMNS) <= set(r) for r in rows)
    assert len({r["test_ndcg@20"] for r in rows}) > 1  # scored at each epoch, not once


def test_another_run_is_refused_at_its_first_differing_epoch(curves):
    data = synthetic(n_users=80, n_items=60, avg_len=8, n_patterns=5, seed=1)
    row, logged = _study_run(data)
    logged[1]["valid_ndcg@20"] += 1e-9
    with pytest.raises(SystemExit, match=r"r0: epoch 1 validation NDCG@20 .* the study logged"):
        _again(curves, data, row, logged)
    row, logged = _study_run(data)
    res, curve = _again(curves, data, {**row, "test_ndcg@20": str(float(row["test_ndcg@20"]) + 0.01)}, logged)
    with pytest.raises(SystemExit, match=r"r0: test ndcg@20 .* the row has"):
        curve.check(res)
    res, curve = _again(curves, data, dict(row, best_epoch="0"), logged)
    with pytest.raises(SystemExit, match=r"r0: \d+ epochs, best \d+; the row has \d+, best 0"):
        curve.check(res)


def test_the_report_shows_each_curve_at_its_selected_epoch(curves, tmp_path, monkeypatch):
    import _results
    import report

    data = synthetic(n_users=80, n_items=60, avg_len=8, n_patterns=5, seed=1)
    row, logged = _study_run(data)
    res, curve = _again(curves, data, row, logged)
    path = tmp_path / "epoch_curves.csv"
    for r in curve.rows("dr4sr", "beauty/sasrec/dr4sr seed 0", "abc", "here"):
        _results.append_row(path, r, curves.COLUMNS)
    text = report.curves_report(path, tmp_path)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("| r0 |")]
    cells = [c.strip() for c in line.split("|")]
    assert cells[2:5] == ["beauty/sasrec/dr4sr seed 0", row["epochs"], row["best_epoch"]]
    # 4 epochs: the first window holds 4 of its 10, the next none
    mean4 = sum(r["test_ndcg@20"] for r in curve.records) / len(curve.records)
    assert cells[6] == f"{res['test']['ndcg@20']:.4f}" and cells[7:9] == [f"{mean4:.4f} (4)", "—"]
    assert "_No curves yet" in report.curves_report(tmp_path / "none.csv", tmp_path)


def test_plus_dev_strata_counts_the_copies_each_user_kept(monkeypatch):
    """plus_dev_strata.copies_kept: a user's two original copies, minus those held out, in test-user order;
    a training set without some user's sequence is refused."""
    import numpy as np

    from fastregen.data import concat
    from fastregen.dr4sr.plus import PlusConfig, split_dev

    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("plus_dev_strata", None)
    import plus_dev_strata

    data = synthetic(n_users=80, n_items=60, avg_len=8, n_patterns=5, seed=1)
    original = leave_one_out(data).train
    patterns = synthetic(n_users=30, n_items=60, avg_len=6, n_patterns=5, seed=2)
    train = concat(original, patterns, original, num_items=data.num_items, sources=["original", "patterns", "original"])
    lower, dev = split_dev(train, PlusConfig(dev_fraction=0.25))
    kept = plus_dev_strata.copies_kept(data, train, lower)
    assert kept.dtype == np.int8 and kept.size == len(leave_one_out(data).test.history)
    assert int(2 * kept.size - kept.sum()) == len(dev)  # every held-out original row is one copy fewer
    # by hand: which of the two rows of each user stayed
    lists, tags = lower.to_lists(), np.asarray(lower.meta["source"])
    stayed = [tuple(lists[i]) for i in np.flatnonzero(tags == list(lower.meta["source_names"]).index("original"))]
    histories = [tuple(h[:-1]) for h in leave_one_out(data).test.history.to_lists()]
    assert kept.tolist() == [stayed.count(h) // histories.count(h) for h in histories]
    with pytest.raises(ValueError, match="is no 'original' row of the set"):
        plus_dev_strata.copies_kept(data, concat(patterns, patterns, sources=["original", "patterns"]), lower)


def test_a_run_id_of_no_study_row_is_named(curves, tmp_path):
    with pytest.raises(SystemExit, match="nosuchrun is in neither dr4sr.csv nor issue 26's rows of dr4srplus.csv"):
        curves.main(["nosuchrun", "--results", str(tmp_path / "curves.csv")])
