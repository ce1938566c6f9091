"""``fastregen train``: a thin layer over `fastregen.training.fit_and_evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from . import app


def _parse_sets(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def train(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset file (one user per line: user item item ...)."),
    model: str = typer.Option("sasrec", "--model", "-m", help="Target model (see `fastregen models`)."),
    train_data: Optional[Path] = typer.Option(None, "--train-data", help="Train on this dataset instead of DATA's train split (e.g. a regenerated one)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder: config.yaml, provenance.json, metrics.jsonl, result.json, model.pt."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TrainConfig YAML (fields overridden by the options below)."),
    seed: int = typer.Option(0, "--seed"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs (early stopping may end sooner)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="bce | sampled_softmax | softmax."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default 2)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Per-epoch progress bar."),
    sets: List[str] = typer.Option([], "--set", help="Any other TrainConfig field, KEY=VALUE (YAML value); repeatable."),
) -> None:
    """Train MODEL on DATA (leave-one-out), early-stop on validation NDCG@20, print test metrics as JSON.

    Under ``torchrun --nproc-per-node N -m fastregen train ...`` the training is data-parallel over N
    processes (batch_size per process); rank 0 evaluates, writes OUT and prints.
    """
    from ..config import config_to_dict, load_config
    from ..training import TrainConfig, fit_and_evaluate

    values: dict = {}
    if config is not None:
        values.update(config_to_dict(load_config(TrainConfig, config)))
    values.update(_parse_sets(sets))
    for key, val in (("epochs", epochs), ("loss", loss), ("num_threads", threads)):
        if val is not None:
            values[key] = val
    values["progress"] = progress
    values.pop("seed", None)
    values.pop("model", None)
    from .. import memory
    from ..training import distributed

    memory.limit_heap_retention()
    try:
        with distributed.session(values.get("device", "cpu")) as world:
            result = fit_and_evaluate(data, model=model, seed=seed, train_data=train_data, out_dir=out, **values)
    except (ValueError, TypeError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
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
def list_models() -> None:
    """List the registered target models."""
    from ..models import available_models

    typer.echo("\n".join(available_models()))
