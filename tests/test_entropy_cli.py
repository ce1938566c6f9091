"""`fastregen entropy` and `fastregen segment` end to end on a small file."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from fastregen import entropy as E
from fastregen import patterns as P
from fastregen.cli import app
from fastregen.reference import entropy as R

SEQS = {10: [1, 2, 3, 1, 2, 3, 1, 2, 4], 11: [1, 2, 3, 5], 12: [6], 13: [1, 2, 3, 1, 2]}


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u} {' '.join(map(str, s))}\n" for u, s in SEQS.items()))
    return path


def test_entropy_cli(data_file, tmp_path):
    out, plot = tmp_path / "ent.tsv", tmp_path / "hist.png"
    res = CliRunner().invoke(app, ["entropy", str(data_file), "--out", str(out), "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    assert "predictability" in res.output
    rows = out.read_text().splitlines()
    assert rows[0].split("\t") == ["user", "length", "n_distinct", "entropy", "predictability"]
    for row, (u, s) in zip(rows[1:], SEQS.items()):
        user, n, d, ent, pi = row.split("\t")
        assert (int(user), int(n), int(d)) == (u, len(s), len(set(s)))
        assert math.isclose(float(ent), R.real_entropy([s])[0], rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(float(pi), R.predictability(R.real_entropy([s])[0], len(set(s))), rel_tol=1e-9)
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_entropy_cli_json(data_file):
    res = CliRunner().invoke(app, ["entropy", str(data_file), "--json"])
    assert res.exit_code == 0, res.output
    assert '"sequences": 4' in res.output


def test_segment_cli(data_file, tmp_path):
    out, pats = tmp_path / "seg.txt", tmp_path / "pat.txt"
    res = CliRunner().invoke(
        app, ["segment", str(data_file), "--theta", "3.0", "--order", "1", "--out", str(out), "--patterns-out", str(pats)]
    )
    assert res.exit_code == 0, res.output
    seqs = list(SEQS.values())
    mined = P.mine_entropy_patterns(seqs, E.MarkovModel(1).fit(seqs), 3.0)
    lines = pats.read_text().splitlines()
    assert lines[0].startswith("# ") and len(lines) - 1 == len(mined)
    assert [list(map(int, ln.split()[2:])) for ln in lines[1:]] == mined.to_lists()
    ref = R.segment(seqs, mined.to_lists())
    for line, (u, _), segs in zip(out.read_text().splitlines(), SEQS.items(), ref):
        user, rest = line.split(" ", 1)
        assert int(user) == u
        assert [list(map(int, part.split())) for part in rest.split(" | ")] == [s for s, _ in segs]


def test_segment_cli_bad_theta(data_file):
    res = CliRunner().invoke(app, ["segment", str(data_file), "--theta", "-2"])
    assert res.exit_code != 0
    assert "theta" in res.output


def test_segment_cli_config(data_file, tmp_path):
    from fastregen.config import save_config

    cfg = tmp_path / "miner.yaml"
    save_config(P.EntropyMinerConfig(stage="recall", order=1, max_len=3), cfg)
    res = CliRunner().invoke(app, ["segment", str(data_file), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "patterns" in res.output


def test_entropy_cli_plot_without_matplotlib(data_file, tmp_path, monkeypatch):
    import sys

    # A None entry in sys.modules makes `import matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = CliRunner().invoke(app, ["entropy", str(data_file), "--plot", str(tmp_path / "h.png")])
    assert res.exit_code != 0
    assert "matplotlib" in res.output and not (tmp_path / "h.png").exists()


def test_segment_cli_bad_config(data_file, tmp_path):
    cfg = tmp_path / "miner.yaml"
    cfg.write_text("theta: 3.0\nbeta: 1\n")
    res = CliRunner().invoke(app, ["segment", str(data_file), "--config", str(cfg)])
    assert res.exit_code != 0
    assert "beta" in res.output


def test_entropy_cli_bad_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n1 4\n")  # user 1 twice
    for cmd in (["entropy", str(bad)], ["segment", str(bad)]):
        res = CliRunner().invoke(app, cmd)
        assert res.exit_code == 2, res.output
        assert "bad.txt:2" in res.output and "already has a line" in res.output
        assert isinstance(res.exception, SystemExit)  # not a traceback
