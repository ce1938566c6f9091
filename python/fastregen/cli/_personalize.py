"""``fastregen personalize``: a target model trained with the DR4SR+ personalizer on a regenerated training set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ._app import app
from ._options import (FormatOpt, ItemOpt, ModelOpt, RemapOpt, TimeOpt, UserOpt, check_output_dir, config_values,
                       load_dataset)


def _epoch_line(record: dict) -> str:
    parts = [f"epoch {record['epoch']:>3}", f"loss {record['loss']:.4f}", f"{record['train_seconds']:.1f} s"]
    if "weight_mean" in record:
        parts.append(f"w {record['weight_mean']:.3f}±{record.get('weight_var', 0.0) ** 0.5:.3f}")
    if "upper_steps" in record:
        skipped = f" ({record['upper_skipped']} skipped)" if record.get("upper_skipped") else ""
        parts.append(f"upper {record['upper_steps']}{skipped} in {record['upper_seconds']:.1f} s")
    if "valid_ndcg@20" in record:
        parts.append(f"valid N@20 {record['valid_ndcg@20']:.4f}")
    return "  ".join(parts)


@app.command()
def personalize(
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    regen: Path = typer.Option(..., "--regen", help="A finished `fastregen regenerate` output folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (a finished run there is reused)."),
    model: str = ModelOpt,
    training_set: Optional[str] = typer.Option(None, "--training-set",
                                               help="Training set of the folder (default: the one it wrote)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="bilevel, end_to_end (ablation C) or off."),
    plus_config: Optional[Path] = typer.Option(None, "--plus-config", help="PlusConfig YAML."),
    plus_sets: List[str] = typer.Option([], "--plus", help="A PlusConfig field, KEY=VALUE (YAML value); repeatable."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TrainConfig YAML of the target model."),
    sets: List[str] = typer.Option([], "--set", help="A TrainConfig field, KEY=VALUE (YAML value); repeatable."),
    seed: int = typer.Option(0, "--seed", help="Target-model seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs (early stopping may end sooner)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: the cores no other process is busy on at the start)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (the epoch lines stay)."),
) -> None:
    """Train MODEL on a regenerated training set with the DR4SR+ personalizer; print test metrics as JSON."""
    from ..config import config_from_dict
    from ..dr4sr.plus import PlusConfig, load_training_set, personalize as run
    from ..training import TrainConfig

    plus_values = config_values(PlusConfig, plus_config, plus_sets)
    if mode is not None:
        plus_values["mode"] = mode
    plus = config_from_dict(PlusConfig, plus_values)  # unknown keys named, as --plus-config's
    values = config_values(TrainConfig, config, sets)
    for key, val in (("epochs", epochs), ("num_threads", threads)):
        if val is not None:
            values[key] = val
    values["progress"] = not quiet
    values.pop("seed", None)
    values.pop("model", None)
    config_from_dict(TrainConfig, {**values, "model": model})  # every option checked before any data is read
    check_output_dir(out, "--out")
    # Read DATA here so its errors name the file, as every command's do.
    dataset, train, name = load_training_set(
        load_dataset(data, format, user, item, timestamp, remap, quiet), regen, training_set)

    def log(record):
        typer.echo(_epoch_line(record))
    result = run(dataset, train, model, seed, plus=plus, out_dir=out, log=log, **values)
    if result.get("resumed"):
        typer.echo(f"{out} holds this finished run: reused", err=True)
    summary = {
        "model": model,
        "training_set": name,
        "mode": plus.mode,
        "valid": result["valid"],
        "test": result["test"],
        "best_epoch": result["best_epoch"],
        "epochs": result["epochs"],
        "upper_steps": result["upper_steps"],
        "upper_skipped": result["upper_skipped"],
        "seconds_per_epoch": round(result["seconds_per_epoch"], 3),
        "out": str(out),
    }
    typer.echo(json.dumps(summary, indent=2))
