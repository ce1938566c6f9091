"""benchmarks/_results.py's measurement rows (one core schema, one writer) and report.py --check/--update."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _results  # noqa: E402
import migrate_results  # noqa: E402
import report  # noqa: E402

CORE = dict(benchmark="mine", dataset="beauty", variant="fastregen", metric="seconds_median", value=0.0143, unit="s",
            threads=1, device="cpu", machine="2 cores, test CPU", commit="abc1234", date="2026-01-01T00:00:00+00:00")


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def test_append_result_writes_the_core_columns_first_then_the_extras(tmp_path):
    path = tmp_path / "mining.csv"
    row = _results.append_result(path, **CORE, repeats=7, note="a, note")
    assert _header(path) == _results.CORE_COLUMNS + ["repeats", "note"]
    assert _results.read_results(path) == [row]
    assert row["value"] == "0.0143" and row["note"] == "a, note"
    # defaults: this machine, this checkout's commit, the time now
    auto = _results.append_result(path, benchmark="mine", dataset="beauty", variant="x", metric="m", value=1,
                                  unit="s", threads=1)
    from _harness import cpu_model

    assert auto["machine"] == f"{os.cpu_count()} cores, {cpu_model()}"
    assert auto["device"] == "cpu" and auto["date"][:2] == "20" and auto["commit"]
    last = _results.read_results(path)[-1]
    assert last["repeats"] == last["note"] == ""  # a row without an extra column has it empty


def test_a_new_extra_column_widens_the_header_and_keeps_every_row(tmp_path):
    path = tmp_path / "r.csv"
    _results.append_result(path, **CORE, repeats=3)
    _results.append_result(path, **{**CORE, "variant": "seq2pat"}, peak_rss_mib=290)
    assert _header(path) == _results.CORE_COLUMNS + ["repeats", "peak_rss_mib"]
    rows = _results.read_results(path)
    assert [(r["variant"], r["repeats"], r["peak_rss_mib"]) for r in rows] == [("fastregen", "3", ""),
                                                                               ("seq2pat", "", "290")]
    assert not [p for p in tmp_path.iterdir() if p.name != "r.csv"]  # no temporary or lock file left behind


@pytest.mark.parametrize("bad, match", [({"benchmark": ""}, "benchmark must be non-empty"),
                                        ({"value": None}, "has no value"), ({"value": ""}, "has no value")])
def test_append_result_refuses_rows_without_what_or_value(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        _results.append_result(tmp_path / "r.csv", **{**CORE, **bad})
    assert not (tmp_path / "r.csv").exists()


def test_append_result_refuses_a_file_of_another_schema(tmp_path):
    path = tmp_path / "study.csv"
    _results.append_row(path, {"run_id": "a", "seed": 0}, ["run_id", "seed"])
    with pytest.raises(ValueError, match="does not start with the core columns"):
        _results.append_result(path, **CORE)
    assert _results.read_rows(path, ["run_id", "seed"]) == [{"run_id": "a", "seed": "0"}]


WRITER = """
import sys
sys.path.insert(0, {bench!r})
import _results
for i in range(20):
    extra = {{"wide": i}} if (int(sys.argv[1]) == 2 and i == 10) else {{}}
    _results.append_result({path!r}, benchmark="b", dataset="d", variant=sys.argv[1], metric="m", value=i,
                           unit="s", threads=1, machine="m", commit="c", date="t", **extra)
"""


def test_concurrent_writers_never_lose_or_interleave_rows(tmp_path):
    path = tmp_path / "r.csv"
    code = WRITER.format(bench=str(BENCH), path=str(path))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w)]) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    rows = _results.read_results(path)
    assert len(rows) == 80
    for w in range(4):  # each writer's rows all there, in its order
        assert [r["value"] for r in rows if r["variant"] == str(w)] == [str(i) for i in range(20)]
    assert _header(path)[-1] == "wide" and [r["wide"] for r in rows if r["wide"]] == ["10"]


OLD_SCALE = ["date", "commit", "machine", "load", "experiment", "data", "stage", "sequences", "interactions", "items",
             "d", "batch", "threads", "processes", "fraction", "seconds", "full_seconds", "peak_rss_mib",
             "estimate_mib", "throughput", "unit", "note"]


def _old_scale_row(**changes) -> dict:
    row = {c: "" for c in OLD_SCALE}
    row.update(date="2026-01-01", commit="abc", machine="2 cores", load="4.0", experiment="decode",
               data="synthetic-books", stage="decode", threads=1, processes=1, fraction=1, seconds=20.4,
               throughput=805.0, unit="sequences/s", note="device cuda, backend triton, K=5")
    row.update(changes)
    return row


def test_old_schema_rows_are_read_migrated_and_appended_in_the_core_schema(tmp_path):
    path = tmp_path / "scale.csv"
    with open(path, "w", newline="") as f:  # a file as scale.py wrote it before the core schema
        w = csv.DictWriter(f, fieldnames=OLD_SCALE)
        w.writeheader()
        w.writerow(_old_scale_row())
    (row,) = _results.read_results(path)
    assert (row["benchmark"], row["dataset"], row["variant"], row["metric"], row["value"], row["unit"],
            row["device"], row["throughput_unit"]) == ("scale/decode", "synthetic-books", "decode", "seconds", "20.4",
                                                       "s", "cuda", "sequences/s")
    old_values = {k: str(v) for k, v in _old_scale_row().items()}
    assert migrate_results.migrate(path) and not migrate_results.migrate(path)  # the second run changes nothing
    assert _header(path)[:len(_results.CORE_COLUMNS)] == _results.CORE_COLUMNS
    (migrated,) = _results.read_results(path)
    assert migrated == row
    # every old value survives, under its old name or folded into a core column
    for k, v in old_values.items():
        assert v in {*migrated.values(), migrated["benchmark"].split("/")[1]}, k
    # a branch still writing the old columns with append_row gets its row converted
    _results.append_row(path, _old_scale_row(stage="inference", seconds=9.0), OLD_SCALE)
    assert [r["variant"] for r in _results.read_results(path)] == ["decode", "inference"]
    with pytest.raises(ValueError, match="no known older schema"):
        _results.to_core({"a": 1}, "mystery")


# ---------------------------------------------------------------- report.py --check / --update
def _threads_rows(path: Path, value: float, date: str) -> None:
    for variant, v in (("1", value), ("2", value / 2)):
        _results.append_result(path, benchmark="sasrec epoch", dataset="beauty.txt", variant=variant, metric="seconds",
                               value=v, unit="s", threads=variant, machine="m", commit="c", date=date,
                               load="as found; loadavg 1.0", repeats=1, all_values=str(v))


@pytest.fixture
def docs(tmp_path, monkeypatch):
    """A results folder and two documents with generated blocks, standing in for BENCHMARKS.md and README.md."""
    results = tmp_path / "results"
    _threads_rows(results / "threads.csv", 4.0, "2026-01-01T00:00:00+00:00")
    _results.append_result(results / "mining.csv", **CORE)
    bench, readme = tmp_path / "BENCHMARKS.md", tmp_path / "README.md"
    bench.write_text("# b\n\n<!-- report:threads -->\nold\n<!-- /report:threads -->\n\ntext\n\n"
                     "<!-- report:mining -->\n<!-- /report:mining -->\n")
    readme.write_text("# r\n<!-- report:mining -->\n<!-- /report:mining -->\nend\n")
    monkeypatch.setattr(report, "DOCS", (bench, readme))
    monkeypatch.setattr(report, "default_paths", lambda name: (results / f"{name}.csv", results / "ranks" / name))
    return results, bench, readme


def test_check_names_each_stale_block_and_passes_once_updated(docs, capsys):
    results, bench, readme = docs
    assert report.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "BENCHMARKS.md: report:threads" in err and "BENCHMARKS.md: report:mining" in err
    assert "README.md: report:mining" in err
    assert report.main(["--update"]) == 0
    text = bench.read_text()
    assert "| 4.00 s | 2.00 s (0.50x) |" in text and text.startswith("# b\n") and "\ntext\n" in text
    assert report.main(["--check"]) == 0
    # a new row makes exactly the block that reads it stale
    _threads_rows(results / "threads.csv", 3.0, "2026-01-02T00:00:00+00:00")
    assert report.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "report:threads" in err and "report:mining" not in err
    report.main(["--update"])
    # a hand edit inside a generated block is stale too
    readme.write_text(readme.read_text().replace("| mine |", "| mined |"))
    assert report.main(["--check"]) == 1 and "README.md: report:mining" in capsys.readouterr().err


def test_check_does_not_depend_on_the_clock_or_the_machine(docs, monkeypatch):
    report.main(["--update"])
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(_results, "dt", None)  # a report that asked for the time would fail here
    assert report.main(["--check"]) == 0


def test_check_takes_no_report_name_and_unknown_blocks_are_errors(docs):
    _, bench, _ = docs
    with pytest.raises(SystemExit, match="take no report name"):
        report.main(["threads", "--check"])
    bench.write_text(bench.read_text() + "<!-- report:nosuch -->\n<!-- /report:nosuch -->\n")
    with pytest.raises(SystemExit, match="unknown report 'nosuch'"):
        report.main(["--check"])


def test_a_measurement_table_shows_the_latest_row_of_each_figure(tmp_path):
    path = tmp_path / "mining.csv"
    _results.append_result(path, **{**CORE, "value": 0.5}, runs=3, load="9.0")
    _results.append_result(path, **{**CORE, "value": 7.7e-05, "date": "2026-01-02T00:00:00+00:00"}, runs=5)
    _results.append_result(path, **{**CORE, "variant": "reference", "value": 18.5041}, runs=1)
    text = report.REPORTS["mining"](path, tmp_path)
    lines = [ln for ln in text.splitlines() if ln.startswith("| mine |")]
    assert len(lines) == 2  # the later fastregen row replaced the earlier one
    ours, ref = lines
    assert "| fastregen |" in ours and "| 77.0 µs |" in ours and "2026-01-02" in ours and "| 5 |" in ours
    assert "| reference |" in ref and "| 18.5 s |" in ref
    # the extras a shown row fills: "load" was only in the replaced row
    assert text.splitlines()[0].endswith("| date | runs |")
    assert report._value("0.0116226", "s") == "11.6 ms" and report._value("2.66", "x") == "2.66 x"
