"""benchmarks/pretrain_speed.py's ``--option``: RegenConfig options of the current side and their row label."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import pretrain_speed  # noqa: E402


def test_options_are_parsed_as_yaml_scalars_and_labelled_sorted():
    options = pretrain_speed.parse_options(["pack_targets=true", "dropout=0.3", "item_updates=lazy"])
    assert options == {"pack_targets": True, "dropout": 0.3, "item_updates": "lazy"}
    assert pretrain_speed.options_label(options) == "dropout=0.3,item_updates=lazy,pack_targets=true"
    assert pretrain_speed.parse_options(None) == {} and pretrain_speed.options_label({}) == ""


@pytest.mark.parametrize("items,error,match", [
    (["pack_targets"], ValueError, "NAME=VALUE"),
    (["bogus=1"], ValueError, "bogus"),
    (["dropout=1.5"], ValueError, "dropout"),
    (["pack_targets=maybe"], TypeError, "pack_targets"),
])
def test_bad_options_are_refused_by_name(items, error, match):
    with pytest.raises(error, match=match):
        pretrain_speed.parse_options(items)


def test_the_command_line_refuses_a_bad_option_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        pretrain_speed.main(["--data", "unused.txt", "--option", "bogus=1"])
    assert exit_.value.code == 2
    assert "unknown RegenConfig option(s): bogus" in capsys.readouterr().err
