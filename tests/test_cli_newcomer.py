"""A newcomer's first run, second round (issue 29): one test per item of the list."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from fastregen import data
from fastregen.cli import app

from test_cli_errors import GOOD_DATA, assert_one_line_error

runner = CliRunner()


def _invoke(args, **kw):
    return runner.invoke(app, [os.fspath(a) for a in args], **kw)


def _good(tmp_path):
    path = tmp_path / "good.txt"
    path.write_text(GOOD_DATA)
    return path


def _cli(*args, stdin=None, stdout=subprocess.PIPE):
    return subprocess.Popen([sys.executable, "-m", "fastregen", *map(os.fspath, args)], stdin=stdin, stdout=stdout,
                            stderr=subprocess.PIPE)


# 1. every option checked before any work
def test_unids_refuses_an_unknown_backbone_before_reading_data(tmp_path):
    # the data file does not exist: the backbone must be refused first
    res = _invoke(["unids", tmp_path / "missing.txt", "--backbone", "nosuchmodel", "--out", tmp_path / "u"])
    assert_one_line_error(res, "unknown model 'nosuchmodel'", "valid models: ")
    res = _invoke(["unids", _good(tmp_path), "--backbone", "sasrec", "--backbone-epochs", "0", "--out", tmp_path / "u"])
    assert_one_line_error(res, "epochs must be a positive int, got 0")
    assert not (tmp_path / "u").exists()


# 2. outputs written before stdout; a closed stdout ends the run quietly
@pytest.mark.parametrize("command", ["mine", "pairs"])
def test_a_closed_stdout_loses_no_output_file(tmp_path, command):
    good = _good(tmp_path)
    pats = tmp_path / "p.tsv"
    assert _invoke(["mine", good, "--out", pats, "--drop-last", "0", "-q"]).exit_code == 0
    out = tmp_path / ("closed.tsv" if command == "mine" else "closed.txt")
    args = ["mine", good, "--drop-last", "0"] if command == "mine" else ["pairs", good, "-p", pats]
    p = _cli(*args, "--out", out, "-q")
    p.stdout.close()  # the reader is gone before the command prints (`| head -0`)
    err = p.stderr.read().decode()
    p.stderr.close()
    p.wait(timeout=120)
    assert p.returncode == 1 and err == "", (p.returncode, err)
    ref = tmp_path / ("ref.tsv" if command == "mine" else "ref.txt")
    assert _invoke([*args, "--out", ref, "-q"]).exit_code == 0
    assert out.read_bytes() == ref.read_bytes()


# 5. a RecBole atomic file under --format auto has its header checked
def test_auto_format_reads_inter_files_as_recbole(tmp_path):
    weird = tmp_path / "w.inter"
    weird.write_text("user_id:token\titem_id:weird\n1\t2\n")
    with pytest.raises(ValueError, match=r"w.inter: header column 'item_id:weird' has type 'weird'"):
        data.load(weird)
    assert_one_line_error(_invoke(["stats", weird]), "w.inter", "'weird'")
    ok = tmp_path / "ok.inter"
    ok.write_text("user_id:token\titem_id:token\ttimestamp:float\n7\ta\t2\n7\tb\t1\n8\ta\t5\n")
    assert data.load(ok).to_lists() == data.load(ok, format="recbole").to_lists()


# 6. --plus names unknown keys like --plus-config
def test_personalize_plus_unknown_key_is_named(tmp_path):
    res = _invoke(["personalize", _good(tmp_path), "--regen", tmp_path, "--out", tmp_path / "p", "--plus", "nosuch=1"])
    assert_one_line_error(res, "unknown PlusConfig option(s): nosuch; valid: ")
    res = _invoke(["personalize", _good(tmp_path), "--regen", tmp_path, "--out", tmp_path / "p", "--set", "lr=-1"])
    assert_one_line_error(res, "lr must be > 0")


# 9. the help lists what is accepted
def test_model_help_lists_every_registered_model():
    from fastregen.cli._options import MODEL_NAMES
    from fastregen.models import available_models

    assert list(MODEL_NAMES) == available_models()
    for command in ("personalize", "train"):
        res = _invoke([command, "--help"], env={"COLUMNS": "400"})
        assert res.exit_code == 0
        text = " ".join(res.output.split())
        assert ", ".join(MODEL_NAMES) in text, text


# 10. "-" is standard input; gzip is recognised on a pipe
def test_stats_reads_stdin_and_gzip_pipes(tmp_path):
    for payload in (GOOD_DATA.encode(), gzip.compress(GOOD_DATA.encode())):
        p = _cli("stats", "-", "--json", stdin=subprocess.PIPE)
        out, err = p.communicate(payload, timeout=120)  # closes the pipes
        assert p.returncode == 0, err
        assert b'"users": 20' in out
    gz_no_suffix = tmp_path / "plain-name.txt"
    gz_no_suffix.write_bytes(gzip.compress(GOOD_DATA.encode()))
    assert data.load(gz_no_suffix).to_lists() == data.load(_good(tmp_path)).to_lists()


# 11. minor
def test_drop_last_that_empties_everything_names_file_and_option(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("1 2 3\n2 4 5 6\n")
    assert_one_line_error(_invoke(["mine", short, "--drop-last", "4"]), "short.txt: --drop-last 4 leaves no item",
                          "at most 3 items")


def test_column_count_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1,2\n1,3,4\n")
    assert_one_line_error(_invoke(["stats", bad]), "bad.csv: line 3: expected 2 columns, got 3")


def test_ctrl_c_while_the_cli_loads_prints_no_traceback():
    code = textwrap.dedent("""
        import builtins, sys
        real = builtins.__import__
        def interrupting(name, globals=None, locals=None, fromlist=(), level=0):
            if fromlist and "_mining" in fromlist:
                raise KeyboardInterrupt
            return real(name, globals, locals, fromlist, level)
        builtins.__import__ = interrupting
        sys.argv = ["fastregen", "--help"]
        from fastregen.cli import main
        main()
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 130 and r.stderr.strip() == "interrupted" and r.stdout == "", r.stderr


def test_provenance_records_absolute_path_size_and_hash(tmp_path, monkeypatch):
    from fastregen.config import data_source

    monkeypatch.chdir(tmp_path)
    _good(tmp_path)
    ds = data.load("good.txt")
    src = data_source(ds)
    assert src == {"path": os.fspath(tmp_path / "good.txt"), "bytes": len(GOOD_DATA),
                   "file_sha256": hashlib.sha256(GOOD_DATA.encode()).hexdigest()}
    assert data_source(data.SequenceDataset.from_lists([[1, 2]])) == {"path": "<in-memory>"}
