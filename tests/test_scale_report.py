"""benchmarks/report.py scale: the BENCHMARKS tables come from benchmarks/results/scale.csv rows."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _append(csv, row: dict) -> None:
    """A row as `scale.Recorder.row` writes it (benchmark scale/<experiment>, variant the stage, value the seconds)."""
    from _results import append_result

    row = dict(row)
    core = dict(benchmark=f"scale/{row.pop('experiment')}", dataset=row.pop("data"), variant=row.pop("stage"),
                metric="seconds", value=row.pop("seconds"), unit="s", threads=row.pop("threads"), device="cpu",
                machine=row.pop("machine"), commit=row.pop("commit"), date=row.pop("date"))
    row["throughput_unit"] = row.pop("unit", "")
    append_result(csv, **core, **row)


def test_scale_report_renders_the_latest_rows(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import report
    import scale

    csv = tmp_path / "scale.csv"
    base = {c: "" for c in scale.EXTRA_COLUMNS}
    base.update(date="2026-01-01", commit="abc", machine="2 cores", load="1.0", experiment="pipeline",
                data="synthetic-books(n_users=800000)", sequences=800000, interactions=9995020, items=700000, d=64,
                threads=1, processes=1)
    _append(csv, {**base, "stage": "pairs", "seconds": 9.0, "full_seconds": 9.0, "fraction": 1,
                  "peak_rss_mib": 900, "estimate_mib": 1000, "throughput": 3732203, "unit": "pairs"})
    _append(csv, {**base, "stage": "regenerator", "seconds": 60.0, "full_seconds": 4000.0, "fraction": 0.015,
                  "peak_rss_mib": 2500, "estimate_mib": 2700, "throughput": 800, "unit": "pairs/s", "processes": 2})
    _append(csv, {**base, "experiment": "ddp", "data": "beauty.txt", "stage": "inference", "processes": 2,
                  "seconds": 40.0, "throughput": 500, "unit": "sequences/s", "note": "identical: True"})
    text = report.scale_report(csv, tmp_path)
    assert "| regenerator | 60.0 | 1.50% | 4,000 |" in text
    assert "abc 2026-01-01, 1 thr x 2 proc |" in text and "abc 2026-01-01, 1 thr |" in text  # pairs: 1 process
    assert "All stages: 1.1 h extrapolated, peak RSS 2.44 GiB." in text
    assert "| ddp | beauty.txt | inference | 2 cores | 2 |" in text
    assert sys.modules["scale"].RESULTS.name == "scale.csv"


def test_a_later_partial_row_does_not_replace_a_whole_stage(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import report
    import scale

    csv = tmp_path / "scale.csv"
    base = {c: "" for c in scale.EXTRA_COLUMNS}
    base.update(date="2026-01-01", commit="abc", machine="2 cores", load="1.0", experiment="pipeline",
                data="books", sequences=10, interactions=100, items=50, d=64, threads=1, processes=1,
                stage="sasrec_epoch", peak_rss_mib=100, estimate_mib=120)

    def add(**row):
        _append(csv, {**base, **row})

    add(seconds=900.0, full_seconds=900.0, fraction=1.0, note="whole")
    add(date="2026-01-02", seconds=5.0, full_seconds=450.0, fraction=0.006, note="partial")
    text = report.scale_report(csv, tmp_path)
    assert "| sasrec_epoch | 900.0 | all | 900 |" in text and "partial" not in text
    add(date="2026-01-03", seconds=800.0, full_seconds=800.0, fraction=1.0, note="whole again")
    assert "| sasrec_epoch | 800.0 | all | 800 |" in report.scale_report(csv, tmp_path)
    # decode rows on other machines or backends are kept apart
    for machine, note in (("2 cores", "device cpu, backend auto, K=5"), ("H200", "device cuda, backend torch, K=5"),
                          ("H200", "device cuda, backend triton, K=5")):
        add(experiment="decode", stage="decode", machine=machine, seconds=1.0, fraction=1, note=note)
    text = report.scale_report(csv, tmp_path)
    assert text.count("| decode | books | decode |") == 3
