"""The data-layer subcommands of the ``fastregen`` console script."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fastregen import data
from fastregen.cli import app
from fastregen.cli._data import run_demo

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("cmd", ["info", "stats", "convert", "split", "synth", "demo"])
def test_help(cmd):
    r = invoke(cmd, "--help")
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


@pytest.mark.data
def test_stats_beauty(beauty_path):
    r = invoke("stats", beauty_path, "--quiet")
    assert r.exit_code == 0, r.output
    assert "22,363" in r.output and "12,101" in r.output and "198,502" in r.output
    r = invoke("stats", beauty_path, "--json", "-q")
    st = json.loads(r.output)
    assert (st["users"], st["items"], st["interactions"]) == (22_363, 12_101, 198_502)


def test_stats_bad_file_is_a_clean_error(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("1 2\n2 x\n")
    r = invoke("stats", p, "-q")
    assert r.exit_code == 2
    assert f"{p}:2: 'x' is not an integer" in r.output
    assert "Traceback" not in r.output


def test_convert_split_synth(tmp_path):
    src = tmp_path / "demo.txt"
    r = invoke("synth", src, "--preset", "demo", "--seed", "3", "-q")
    assert r.exit_code == 0, r.output
    ds = data.load(src)
    assert len(ds) == data.PRESETS["demo"].n_users
    pats = (tmp_path / "demo.txt.patterns.txt").read_text().split("\n")
    assert len([p for p in pats if p]) == data.PRESETS["demo"].n_patterns

    out = tmp_path / "pairs.txt"
    r = invoke("convert", src, out, "--out-format", "pairs", "--max-len", "5", "-q")
    assert r.exit_code == 0, r.output
    back = data.load(out, format="pairs")
    assert back.to_lists() == ds.truncate(5).to_lists()

    r = invoke("convert", src, tmp_path / "core.txt", "--kcore", "10", "-q")
    assert r.exit_code == 0, r.output
    core = data.load(tmp_path / "core.txt")
    assert core.lengths.min() >= 10 and core.num_items <= ds.num_items

    r = invoke("split", src, tmp_path / "split", "-q")
    assert r.exit_code == 0, r.output
    n = len(ds)
    assert f"test={n}" in r.output
    test = data.load(tmp_path / "split" / "test.txt")
    assert test.to_lists() == ds.to_lists()


def test_synth_unknown_preset(tmp_path):
    r = invoke("synth", tmp_path / "x.txt", "--preset", "nope", "-q")
    assert r.exit_code == 2 and "unknown preset" in r.output


def test_demo(tmp_path, monkeypatch):
    import fastregen.cli._data as cli_data

    monkeypatch.setattr(cli_data, "DEMO_STEPS", [])  # the data steps only: later stages test their own
    r = invoke("demo", "--out", tmp_path, "--quiet")
    assert r.exit_code == 0, r.output
    assert "split: train=" in r.output
    assert (tmp_path / "split" / "train.txt").is_file()
    result = run_demo(tmp_path / "again", seed=1, quiet=True, steps=[])
    assert len(result["split"].test) == len(result["dataset"])
    assert result["stats"].users == len(result["dataset"])


def test_demo_runs_registered_steps(tmp_path):
    seen = []

    def step(result, quiet):
        seen.append((len(result["dataset"]), quiet))
        return "done"

    result = run_demo(tmp_path, seed=0, quiet=True, steps=[("extra", step)])
    assert result["extra"] == "done" and seen == [(len(result["dataset"]), True)]
