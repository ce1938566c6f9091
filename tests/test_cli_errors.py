"""Every ``fastregen`` subcommand, given bad input, prints one ``error:`` line and exits 2 (issue 21).

The walk covers each input a command reads (the dataset, a patterns file,
a config, a checkpoint) in each bad shape (missing, a folder, empty,
binary garbage, text that is not a dataset, broken gzip, not UTF-8) and
each output in each unwritable shape (a folder where a file goes, a file
where a folder goes, a path below a file, a FIFO).
"""

from __future__ import annotations

import gzip
import os
import re

import pytest
from typer.testing import CliRunner

from fastregen.cli import app

runner = CliRunner()

GOOD_DATA = "".join(f"{u} " + " ".join(str((u * k) % 9 + 1) for k in range(1, 7)) + "\n" for u in range(1, 21))

# name -> how to build it in tmp_path (None: do not create it)
BAD_INPUTS = {
    "missing": None,
    "folder": "dir",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "text": b"hello world\nthis is not a dataset\n",
    "header": b"user_id,item_id\n1,2\n",  # a table passed as a text file
    "bad_gzip": b"not gzip data at all\n",
    "truncated_gzip": gzip.compress(GOOD_DATA.encode() * 50)[:200],
    "latin1": "1 2 3\n2 caf\xe9\n".encode("latin-1"),
}


def _make(tmp_path, kind: str):
    suffix = ".txt.gz" if "gzip" in kind else ".txt"
    path = tmp_path / f"in-{kind}{suffix}"
    spec = BAD_INPUTS[kind]
    if spec == "dir":
        path.mkdir()
    elif spec is not None:
        path.write_bytes(spec)
    return path


def _good(tmp_path):
    path = tmp_path / "good.txt"
    path.write_text(GOOD_DATA)
    return path


def _patterns(tmp_path):
    path = tmp_path / "good.patterns.tsv"
    path.write_text("# fastregen patterns kind=span max_span=3 min_support=2 min_len=2 max_len=3 num_items=9\n"
                    "3\t1 2\n3\t2 3\n")
    return path


# Each command with the dataset argument in the slot DATA.
DATA_COMMANDS = {
    "stats": lambda tmp, d: ["stats", d, "-q"],
    "convert": lambda tmp, d: ["convert", d, tmp / "out.txt", "-q"],
    "split": lambda tmp, d: ["split", d, tmp / "split", "-q"],
    "mine": lambda tmp, d: ["mine", d, "-q"],
    "pairs": lambda tmp, d: ["pairs", d, "-p", _patterns(tmp), "-q"],
    "entropy": lambda tmp, d: ["entropy", d, "-q"],
    "segment": lambda tmp, d: ["segment", d, "-q"],
    "regenerate": lambda tmp, d: ["regenerate", d, "--out", tmp / "regen", "-q"],
    "train": lambda tmp, d: ["train", "--data", d, "-q", "--epochs", "1"],
    "personalize": lambda tmp, d: ["personalize", d, "--regen", tmp / "no-regen", "--out", tmp / "p", "-q"],
    "unids": lambda tmp, d: ["unids", d, "--out", tmp / "u", "-q"],
}


def _invoke(args):
    return runner.invoke(app, [os.fspath(a) for a in args])


def assert_one_line_error(res, *needles):
    out = res.output
    assert res.exit_code == 2, f"exit code {res.exit_code}:\n{out}"
    assert "Traceback" not in out and not isinstance(res.exception, (ValueError, OSError, TypeError)), out
    lines = [line for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], out
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    # the CLI names flags, not Python arguments
    assert not re.search(r"pass \w+=", errors[0]), errors[0]
    return errors[0]


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
@pytest.mark.parametrize("command", sorted(DATA_COMMANDS))
def test_bad_dataset_input(tmp_path, command, kind):
    bad = _make(tmp_path, kind)
    res = _invoke(DATA_COMMANDS[command](tmp_path, bad))
    assert_one_line_error(res, bad.name)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "binary", "latin1"])
@pytest.mark.parametrize("option", ["train", "regenerate", "segment"])
def test_bad_config_file(tmp_path, option, kind):
    bad = _make(tmp_path, kind)
    if kind == "empty":
        bad.write_text("epochs: [1, 2\n")  # an empty YAML file is a valid config (all defaults): break it
    data = _good(tmp_path)
    args = {
        "train": ["train", "--data", data, "--config", bad, "-q"],
        "regenerate": ["regenerate", data, "--out", tmp_path / "r", "--config", bad, "-q"],
        "segment": ["segment", data, "--config", bad],
    }[option]
    assert_one_line_error(_invoke(args), bad.name)


@pytest.mark.parametrize("content,needle", [
    ("epochs: 0\n", "epochs must be"),
    ("bogus_field: 1\n", "bogus_field"),
    ("- a list\n", "must be a mapping"),
])
def test_bad_config_values_name_the_file(tmp_path, content, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(content)
    assert_one_line_error(_invoke(["train", "--data", _good(tmp_path), "--config", cfg, "-q"]), "c.yaml", needle)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "binary", "text", "latin1"])
def test_bad_patterns_file(tmp_path, kind):
    bad = _make(tmp_path, kind)
    res = _invoke(["pairs", _good(tmp_path), "-p", bad, "-q"])
    assert_one_line_error(res, bad.name)
    if kind == "empty":  # no header: no span recorded
        assert "records no max_span" in res.output


def test_bad_embedding_checkpoint(tmp_path):
    for kind in ("missing", "folder", "binary"):
        bad = _make(tmp_path, kind)
        res = _invoke(["regenerate", _good(tmp_path), "--out", tmp_path / "r", "--embedding", bad, "-q",
                       "--epochs", "0"])
        assert_one_line_error(res, bad.name)


# Each command's outputs: (args with OUT in the output slot, whether OUT is a file or a folder).
OUTPUT_COMMANDS = {
    "convert": (lambda tmp, d, o: ["convert", d, o, "-q"], "file"),
    "synth": (lambda tmp, d, o: ["synth", o, "-q"], "file"),
    "mine --out": (lambda tmp, d, o: ["mine", d, "--out", o, "-q"], "file"),
    "pairs --out": (lambda tmp, d, o: ["pairs", d, "-p", _patterns(tmp), "--out", o, "-q"], "file"),
    "entropy --out": (lambda tmp, d, o: ["entropy", d, "--out", o], "file"),
    "entropy --plot": (lambda tmp, d, o: ["entropy", d, "--plot", o], "file"),
    "segment --out": (lambda tmp, d, o: ["segment", d, "--out", o], "file"),
    "segment --patterns-out": (lambda tmp, d, o: ["segment", d, "--patterns-out", o], "file"),
    "split": (lambda tmp, d, o: ["split", d, o, "-q"], "folder"),
    "demo --out": (lambda tmp, d, o: ["demo", "--out", o, "-q"], "folder"),
    "train --out": (lambda tmp, d, o: ["train", "--data", d, "--out", o, "-q", "--epochs", "1"], "folder"),
    "regenerate --out": (lambda tmp, d, o: ["regenerate", d, "--out", o, "-q", "--epochs", "0"], "folder"),
    "personalize --out": (lambda tmp, d, o: ["personalize", d, "--regen", tmp, "--out", o, "-q"], "folder"),
    "unids --out": (lambda tmp, d, o: ["unids", d, "--out", o, "-q"], "folder"),
}


def _bad_output(tmp_path, kind: str, wants: str):
    if kind == "wrong_kind":  # a folder where a file goes, a file where a folder goes
        path = tmp_path / "occupied"
        if wants == "file":
            path.mkdir()
        else:
            path.write_text("x")
        return path
    if kind == "below_a_file":
        (tmp_path / "plain").write_text("x")
        return tmp_path / "plain" / "out.txt"
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["wrong_kind", "below_a_file", "fifo"])
@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_unwritable_outputs_fail_before_any_work(tmp_path, command, kind, monkeypatch):
    build, wants = OUTPUT_COMMANDS[command]
    out = _bad_output(tmp_path, kind, wants)
    # nothing may be computed first: the loader must not even be reached
    import fastregen.data as fdata

    def no_load(*a, **k):
        raise AssertionError("the dataset was read before the output was checked")

    monkeypatch.setattr(fdata, "load", no_load)
    monkeypatch.setattr(fdata, "synthetic", no_load)
    res = _invoke(build(tmp_path, tmp_path / "unused.txt", out))
    assert_one_line_error(res, out.name if kind != "below_a_file" else "plain")


@pytest.mark.parametrize("args,needle", [
    (["stats"], "missing argument"),
    (["train"], "missing option '--data'"),
    (["bogus"], "no such command"),
    (["--bogus"], "no such option"),
    (["mine", "x.txt", "--max-span", "1"], "--max-span"),
    (["pairs", "x.txt", "-p", "p.tsv", "--span", "wide"], "--span"),
    (["train", "--data", "x.txt", "--set", "epochs"], "--set expects KEY=VALUE"),
    (["train", "--data", "x.txt", "--model", "nope"], "valid"),
    (["train", "--data", "x.txt", "--repeated-target", "drop"], "repeated_target must be one of keep, mask, got 'drop'"),
    (["regenerate", "x.txt", "--out", "o", "--gamma", "1.5"], "gamma"),
])
def test_usage_errors_are_one_line(args, needle):
    assert_one_line_error(_invoke(args), needle)


def test_python_argument_names_become_flags(tmp_path):
    sparse = tmp_path / "sparse.txt"
    sparse.write_text("1 2\n2 2147483647\n")  # issue 21: 'mine' asked for GiBs, 'train' for 512 GiB
    for args in (["stats", sparse], ["mine", sparse], ["train", "--data", sparse, "-q"],
                 ["regenerate", sparse, "--out", tmp_path / "r", "-q"]):
        assert_one_line_error(_invoke(args), "sparse.txt", "item ids are sparse", "pass --remap")
    res = _invoke(["stats", sparse, "--remap", "-q"])
    assert res.exit_code == 0 and "items         2" in res.output
    table = tmp_path / "t.csv"
    table.write_text("who,what\n1,2\n")
    assert_one_line_error(_invoke(["stats", table]), "t.csv", "pass --user <column>")
    header = tmp_path / "h.txt"
    header.write_text("user item\n1 2\n")
    assert_one_line_error(_invoke(["stats", header]), "h.txt:1", "pass --format csv or --format tsv")
    strings = tmp_path / "s.csv"
    strings.write_text("user_id,item_id\n1,abc\n")
    assert_one_line_error(_invoke(["stats", strings, "--no-remap"]), "s.csv", "pass --remap")
    assert_one_line_error(_invoke(["stats", _good(tmp_path), "--user", "u"]), "--user only apply")


def test_every_command_takes_quiet_and_the_version_flag():
    from typer.main import get_command

    def leaves(group, prefix=""):  # sub-apps (`plot`) hold commands of their own
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from leaves(cmd, f"{prefix}{name} ")
            else:
                yield prefix + name, cmd

    for name, cmd in leaves(get_command(app)):
        flags = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
        assert "--quiet" in flags, f"{name} has no --quiet"
    res = _invoke(["--version"])
    assert res.exit_code == 0 and re.fullmatch(r"fastregen \d+\.\d+\.\d+\S*\n", res.output)


def test_remap_is_offered_wherever_a_dataset_is_read():
    from typer.main import get_command

    group = get_command(app)
    for name in sorted(DATA_COMMANDS):  # every command that reads a dataset, as the README says
        flags = {opt for p in group.commands[name].params for opt in getattr(p, "opts", [])}
        assert {"--remap", "--format", "--user", "--item", "--timestamp"} <= flags, name


def test_debug_env_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREGEN_DEBUG", "1")
    res = _invoke(["stats", tmp_path / "missing.txt"])
    assert isinstance(res.exception, FileNotFoundError)


def test_console_script_prints_no_traceback(tmp_path):
    # The installed entry point, not the test runner: what a user sees.
    import subprocess
    import sys

    bad = tmp_path / "t.txt.gz"
    bad.write_bytes(gzip.compress(GOOD_DATA.encode() * 50)[:200])
    r = subprocess.run([sys.executable, "-m", "fastregen", "stats", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"error: {bad}: the gzip data ends early") and r.stderr.count("\n") == 1, r.stderr
    # before: a pipe lost its first 64 KiB
    many = "".join(f"{u} 1 2 3\n" for u in range(1, 20_001))  # 200 KB
    r = subprocess.run([sys.executable, "-m", "fastregen", "stats", "/dev/stdin", "--json"], input=many,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"users": 20000' in r.stdout
