"""``fastregen train``'s epoch-time estimate (issue 21: 200 epochs by default, no idea how long)."""

from __future__ import annotations

from fastregen.cli._train import EpochEstimate


def test_estimate_after_the_first_epoch_only():
    lines = []
    est = EpochEstimate(200, echo=lines.append)
    est({"epoch": 0, "loss": 1.0, "train_seconds": 10.0, "eval_seconds": 2.0})
    est({"epoch": 1, "loss": 0.9, "train_seconds": 10.0, "eval_seconds": 2.0})
    assert lines == [
        "epoch 0 (the first) took 12.0 s (10.0 s training, 2.0 s validation): 200 epochs at most would take about 40 min "
        "(early stopping usually ends sooner; --epochs sets the budget)"
    ]


def test_estimate_units():
    for per, expected in ((0.2, "about 40 s"), (3.0, "about 10 min"), (90.0, "about 5.0 h")):
        lines = []
        EpochEstimate(200, echo=lines.append)({"epoch": 0, "train_seconds": per})
        assert expected in lines[0], lines
