"""benchmarks/peer.py: patches to a copy of the authors' code, their driver, result rows, the ratio table.

The parts that need the authors' checkout (USTC-StarTeam/DR4SR) run only where
``FASTREGEN_DR4SR_AUTHORS`` names one (or /work/peer-authors holds one);
the timing itself is the benchmark's, not a test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import authors  # noqa: E402
import peer  # noqa: E402
import report  # noqa: E402

AUTHORS_DIR = Path(os.environ.get("FASTREGEN_DR4SR_AUTHORS", "/work/peer-authors"))
needs_authors = pytest.mark.skipif(
    not (AUTHORS_DIR / "3.Hybrid_inference.py").is_file(),
    reason="no checkout of USTC-StarTeam/DR4SR (set FASTREGEN_DR4SR_AUTHORS to one)")


# ------------------------------------------------------------------ patches
def _tree(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "sub").mkdir(parents=True)
    (code / "a.py").write_text("x = 'cuda'\ny = torch.ones(2, device='cuda')\nbegin = args.begin * 5000\n")
    (code / "sub" / "b.py").write_text("z = 'cuda'\n")
    return code


def test_patches_replace_exactly_the_stated_text(tmp_path):
    code = _tree(tmp_path)
    peer.apply_patches(code, [peer.Patch("a.py", "'cuda'", "'cpu'", 2, "device"),
                              peer.Patch("a.py", "begin = args.begin * 5000", "begin = args.begin", 1, "prefix"),
                              peer.Patch("sub/b.py", "'cuda'", "'cpu'", 1, "device")])
    assert (code / "a.py").read_text() == "x = 'cpu'\ny = torch.ones(2, device='cpu')\nbegin = args.begin\n"
    assert (code / "sub" / "b.py").read_text() == "z = 'cpu'\n"


@pytest.mark.parametrize("count", [1, 3])
def test_a_patch_that_matches_another_number_of_times_stops_and_writes_nothing(tmp_path, count):
    code = _tree(tmp_path)
    before = (code / "sub" / "b.py").read_text()
    todo = [peer.Patch("sub/b.py", "'cuda'", "'cpu'", 1, "first"), peer.Patch("a.py", "'cuda'", "'cpu'", count, "dev")]
    with pytest.raises(ValueError, match=f"'cuda'.* occurs 2 times in a.py, expected {count}"):
        peer.apply_patches(code, todo)
    assert (code / "sub" / "b.py").read_text() == before  # all or nothing


def test_a_patch_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(ValueError, match="nope.py is not in the code copy"):
        peer.apply_patches(_tree(tmp_path), [peer.Patch("nope.py", "a", "b", 1, "x")])


def test_the_script_driver_applies_threads_and_anomaly_off_and_times_tqdm_loops(tmp_path):
    """A fake tree standing in for theirs: utils/utils.py turns anomaly detection on at import, as theirs does."""
    code = tmp_path / "code"
    (code / "utils").mkdir(parents=True)
    (code / "utils" / "__init__.py").write_text("from utils.utils import *\n")
    (code / "utils" / "utils.py").write_text("import torch\ntorch.autograd.set_detect_anomaly(True)\n")
    (code / "fake.py").write_text(
        "import sys, torch, utils\nfrom tqdm import tqdm\n"
        "assert not torch.is_anomaly_enabled() and torch.get_num_threads() == 1\n"
        "bar = tqdm(range(7)); bar.set_description('x')\n"
        "s = sum(i for i in bar)\nfor _ in tqdm([1, 2]): pass\n"
        "open('out.txt', 'w').write(f'{s} {sys.argv[1:]}')\n")
    (code / "drv.py").write_text(peer._driver_text(peer.SCRIPT_DRIVER))
    result = tmp_path / "r.json"
    subprocess.run([sys.executable, "drv.py", "1", str(result), "fake.py", "--flag", "3"], cwd=code, check=True,
                   env=dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1"))
    assert (code / "out.txt").read_text() == "21 ['--flag', '3']"
    res = json.loads(result.read_text())
    assert [lp["items"] for lp in res["loops"]] == [7, 2]
    assert res["seconds"] >= sum(lp["seconds"] for lp in res["loops"]) > 0
    assert res["cpu"] >= sum(lp["cpu"] for lp in res["loops"]) >= 0


@needs_authors
def test_the_patches_apply_to_the_authors_scripts_and_leave_no_cuda(tmp_path):
    code = tmp_path / "code"
    authors.Authors(AUTHORS_DIR).export_code(code)
    peer.apply_patches(code, peer.patches("200", "500"))
    for script in peer.SCRIPTS[1:]:
        text = (code / script).read_text()
        assert "'cuda'" not in text and "* 5000" not in text
        compile(text, script, "exec")
    assert "tqdm(seq_list_ori[:500])" in (code / peer.SCRIPTS[0]).read_text()
    assert (AUTHORS_DIR / peer.SCRIPTS[1]).read_text().count("'cuda'") == 8  # their checkout is untouched


# ------------------------------------------------------------------ rows and table
def _runs(a: float, f: float, stage: str = "pretrain_epoch") -> dict:
    """Wall seconds as given, CPU seconds half of them."""
    return {(stage, "authors"): [{"seconds": a * k, "cpu": a * k / 2, "work": "theirs"} for k in (1.0, 1.2, 0.9)],
            (stage, "fastregen"): [{"seconds": f * k, "cpu": f * k / 2, "work": "ours"} for k in (1.1, 1.0, 5.0)]}


def _rows(runs: dict, date: str = "2026-12-06T21:00:00+00:00") -> list[dict]:
    return peer.make_rows(runs, dataset="beauty", commit="abc1234", authors_commit="e25d0c3" + "0" * 33,
                          machine="2 cores", load="loadavg 2.0; 2 nice'd workers", date=date, sizes=peer.Sizes())


def test_rows_hold_the_median_and_every_repeat_and_round_trip_through_the_csv(tmp_path):
    rows = _rows(_runs(10.0, 2.0))
    path = tmp_path / "peer.csv"
    for r in rows:
        authors_row = r
        peer.append_row(path, r, peer.COLUMNS)
    back = peer_rows = report.read_rows(path, peer.COLUMNS)
    assert peer.COLUMNS[:12] == ["benchmark", "dataset", "variant", "stage", "metric", "value", "unit", "threads",
                                 "device", "machine", "commit", "date"]
    by = {(r["variant"], r["metric"]): r for r in back}
    assert len(back) == 4
    assert float(by["authors", "wall_seconds"]["value"]) == 10.0
    assert float(by["fastregen", "wall_seconds"]["value"]) == pytest.approx(2.2)
    assert float(by["fastregen", "cpu_seconds"]["value"]) == pytest.approx(1.1)
    wall = by["fastregen", "wall_seconds"]
    assert wall["values"] == "2.200 2.000 10.000" and wall["repeats"] == "3"
    assert authors_row["unit"] == "s" and peer_rows[0]["threads"] == "1"


def test_the_ratio_table_gives_each_stage_its_ratio_and_verdict_from_the_latest_rows():
    old = _rows(_runs(10.0, 1.0), date="2026-12-06T20:00:00+00:00")
    new = _rows(_runs(10.0, 2.5), date="2026-12-06T22:00:00+00:00") + _rows(_runs(30.0, 1.0, "sasrec_epoch"))
    rows = [{k: str(v) for k, v in r.items()} for r in old + new]
    table = peer.ratio_table(rows)
    lines = [ln for ln in table.splitlines() if ln.startswith("| beauty")]
    assert [ln.split(" | ")[1] for ln in lines] == ["pretrain_epoch", "sasrec_epoch"]  # stage order
    assert "| 10.00 | 2.75 | 3.6x | 5.00 | 1.38 | 3.6x | no |" in lines[0]  # the later rows, not the earlier 10x
    assert "| 30.00 | 1.10 | 27.3x | 15.00 | 0.55 | 27.3x | yes |" in lines[1]
    assert "row-step" not in table


def test_the_ratio_table_gives_the_time_per_decoder_step_where_both_sides_counted_them():
    runs = _runs(4.0, 1.0, "hybrid_inference")
    runs["hybrid_inference", "authors"][-1]["work"] = "200 sequences x K = 5, 1000 row-steps"
    runs["hybrid_inference", "fastregen"][-1]["work"] = "200 sequences x K = 5, 2000 row-steps"
    table = peer.ratio_table([{k: str(v) for k, v in r.items()} for r in _rows(runs)])
    # CPU medians 2.0 and 0.55 s: 2.00 ms and 0.275 ms per row-step
    assert "(1000 vs 2000 decoder row-steps); per row-step 2.00 vs 0.28 ms of CPU, 7.3x." in table


def test_report_peer_reads_the_csv(tmp_path):
    path = tmp_path / "peer.csv"
    assert "No peer rows yet" in report.peer_report(path, tmp_path)
    for r in _rows(_runs(6.0, 1.0)):
        peer.append_row(path, r, peer.COLUMNS)
    assert "| 6.00 | 1.10 | 5.5x | 3.00 | 0.55 | 5.5x | yes |" in report.peer_report(path, tmp_path)


# ------------------------------------------------------------------ bad input
def test_authors_pointing_elsewhere_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "run.py").write_text("")
    assert peer.main(["--authors", str(tmp_path), "--repeats", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the DR4SR authors' repository" in err[0]
    assert peer.main(["--authors", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
