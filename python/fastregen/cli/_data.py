"""Data-layer subcommands: info, stats, convert, split, demo."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command()
def info() -> None:
    """Print versions of fastregen, its core, torch, triton, OpenMP threads and backends."""
    from .. import show_config

    show_config()


@app.command()
def stats(data: Path = typer.Argument(..., help="Dataset file.")) -> None:
    """Users, items, interactions, lengths and sparsity of DATA (the DR4SR paper's Table 1)."""
    from .. import data as fdata

    ds = fdata.load(data)
    typer.echo(str(fdata.stats(ds)))
