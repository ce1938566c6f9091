"""Progress when stderr is not a terminal (issue 29): stage start/end lines and a plain progress line
every `LOG_INTERVAL` seconds instead of a silent bar; --quiet silences both."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from fastregen import _progress
from fastregen.cli import app
from fastregen.dr4sr import DR4SR, RegenConfig

from test_dr4sr_pipeline import TINY, planted_data


def test_a_bar_becomes_plain_lines_without_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "LOG_INTERVAL", 0.0)
    bar = _progress.progress_bar(range(5), desc="regenerator epoch 3", unit="batch")
    for _ in bar:
        bar.set_postfix(loss="0.5000", refresh=False)
    bar.close()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) >= 4, err
    assert lines[-1].startswith("regenerator epoch 3: 5/5 batch (100%), ") and "ETA" in lines[-1], lines
    assert "loss=0.5000" in lines[-1] and " batch/s," in lines[-1] and "  " not in lines[-1], lines[-1]


def test_no_line_before_the_interval_and_none_when_disabled(capsys):
    bar = _progress.progress_bar(total=10, desc="decode", unit="seq")  # LOG_INTERVAL: 30 s
    bar.update(10)
    bar.close()
    off = _progress.progress_bar(total=10, desc="decode", enabled=False)
    off.update(10)
    off.close()
    assert capsys.readouterr().err == ""


def test_pipeline_logs_each_stage_start_and_end():
    lines = []
    dr = DR4SR(RegenConfig(**TINY))
    dr.log = lines.append
    dr.fit(planted_data(n=40))
    dr.regenerate()
    for stage in ("patterns", "pairs", "regenerator", "inference"):
        i = lines.index(f"{stage}: started")
        assert lines[i + 1].startswith(f"{stage}: done in "), lines


def test_regenerate_prints_stage_lines_unless_quiet(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n"
                            for u, s in enumerate(planted_data(n=40).to_lists())))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k != "progress"}))
    runner = CliRunner()
    res = runner.invoke(app, ["regenerate", str(data), "--out", str(tmp_path / "a"), "--config", str(cfg),
                              "--threads", "1"])
    assert res.exit_code == 0, res.output
    for line in ("patterns: started", "pairs: started", "regenerator: started", "inference: started",
                 "write: started"):
        assert line in res.stderr, res.stderr
    assert "regenerator: done in " in res.stderr
    res = runner.invoke(app, ["regenerate", str(data), "--out", str(tmp_path / "b"), "--config", str(cfg),
                              "--threads", "1", "--quiet"])
    assert res.exit_code == 0 and res.stderr == "", res.stderr
