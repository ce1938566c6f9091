"""``fastregen train``: a thin layer over `fastregen.training.fit_and_evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ._app import app
from ._options import (FormatOpt, ItemOpt, ModelOpt, QuietOpt, RemapOpt, TimeOpt, UserOpt, check_output_dir,
                       config_values, load_dataset)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class EpochEstimate:
    """Per-epoch record callback: after the first epoch, say what the epoch budget costs.

    ``fastregen train`` defaults to 200 epochs; without this a user cannot
    tell whether that means minutes or a day. Called with each epoch's record
    (``epoch``, ``train_seconds``, ``eval_seconds``), as `fastregen.training.fit_and_evaluate`
    calls its ``log``; prints one line to stderr (stdout is the JSON summary).
    """

    def __init__(self, max_epochs: int, echo=None):
        self.max_epochs = max_epochs
        self.echo = echo or (lambda line: typer.echo(line, err=True))
        self.line: str | None = None

    def __call__(self, record: dict) -> None:
        if record.get("epoch") != 0:
            return
        train = float(record.get("train_seconds", 0.0))
        valid = float(record.get("eval_seconds", 0.0))
        per = train + valid
        # Epochs are numbered from 0, as in metrics.jsonl and the JSON summary.
        self.line = (
            f"epoch 0 (the first) took {per:.1f} s ({train:.1f} s training, {valid:.1f} s validation): "
            f"{self.max_epochs} epochs at most would take about {_duration(per * self.max_epochs)} "
            "(early stopping usually ends sooner; --epochs sets the budget)"
        )
        self.echo(self.line)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset file (one user per line: user item item ...)."),
    model: str = ModelOpt,
    train_data: Optional[Path] = typer.Option(
        None, "--train-data",
        help="Train on this dataset instead of DATA's train split (e.g. a regenerated one); its item ids are "
             "those DATA is trained with (with --remap, the renumbered ones, as `regenerate --remap` writes them)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder: config.yaml, provenance.json, metrics.jsonl, result.json, model.pt."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TrainConfig YAML (fields overridden by the options below)."),
    seed: int = typer.Option(0, "--seed", min=0),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Maximum epochs (early stopping may end sooner)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="bce | sampled_softmax | softmax."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads (default: the cores no other process is busy on at the start)."),
    repeated_target: Optional[str] = typer.Option(
        None, "--repeated-target",
        help="keep | mask: rank a validation/test target that is also in the user's history (keep, default) or "
             "give it the worst rank (mask: DR4SR's evaluator, whose paper tables used it)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Per-epoch progress bar."),
    quiet: bool = QuietOpt,
    sets: List[str] = typer.Option([], "--set", help="Any other TrainConfig field, KEY=VALUE (YAML value); repeatable."),
) -> None:
    """Train MODEL on DATA (leave-one-out), early-stop on validation NDCG@20, print test metrics as JSON.

    Under ``torchrun --nproc-per-node N -m fastregen train ...`` the training is data-parallel over N
    processes (batch_size per process); rank 0 evaluates, writes OUT and prints.
    """
    from ..config import config_from_dict
    from ..training import TrainConfig, fit_and_evaluate

    values = config_values(TrainConfig, config, sets)
    for key, val in (("epochs", epochs), ("loss", loss), ("num_threads", threads),
                     ("repeated_target", repeated_target)):
        if val is not None:
            values[key] = val
    values["progress"] = progress and not quiet
    values.pop("seed", None)
    values.pop("model", None)
    config_from_dict(TrainConfig, {**values, "model": model})  # every option checked before any data is read
    check_output_dir(out, "--out")
    from .. import memory
    from ..training import distributed

    memory.limit_heap_retention()
    ds = load_dataset(data, format, user, item, timestamp, remap, quiet)
    # Regenerated sets are written in the ids DATA is trained with: read as they are.
    extra = load_dataset(train_data, quiet=quiet, remap=False) if train_data is not None else None
    with distributed.session(values.get("device", "cpu")) as world:
        if not quiet and (world is None or world.is_main):
            values["log"] = EpochEstimate(int(values.get("epochs", TrainConfig.epochs)))
        result = fit_and_evaluate(ds, model=model, seed=seed, train_data=extra, out_dir=out, **values)
    if world is not None and not world.is_main:
        return
    summary = {
        "model": model,
        "valid": result["valid"],
        "test": result["test"],
        "best_epoch": result["best_epoch"],
        "epochs": result["epochs"],
        "seconds_per_epoch": round(result["seconds_per_epoch"], 3),
        "seconds": round(result["seconds"], 1),
        "checkpoint": result["checkpoint"],
    }
    typer.echo(json.dumps(summary, indent=2))


@app.command("models")
def list_models(quiet: bool = QuietOpt) -> None:
    """List the registered target models."""
    from ..models import available_models

    typer.echo("\n".join(available_models()))
