"""``fastregen plot ...``: figures from run folders (needs the ``[plot]`` extra, matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from ._options import QuietOpt

plot_app = typer.Typer(help=r"Figures from run folders (needs matplotlib: pip install 'fastregen\[plot]').",
                       no_args_is_help=True)
app.add_typer(plot_app, name="plot")


@plot_app.command("weights")
def weights(
    run_dirs: List[Path] = typer.Argument(..., help="`fastregen personalize` run folders, or folders holding them."),
    out: Path = typer.Option(..., "--out", "-o", help="Figure file (.png, .pdf, .svg)."),
    n: int = typer.Option(25, "--n", help="Random sequences per panel."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sequences drawn."),
    kind: str = typer.Option("sampled", "--kind", help="sampled (with Gumbel noise, as trained) or noise_free."),
    max_positions: int = typer.Option(50, "--max-positions", help="Positions shown at most."),
    source: Optional[str] = typer.Option(None, "--source", help="Draw only sequences of this source (e.g. original)."),
    min_length: int = typer.Option(2, "--min-length", help="Draw only sequences with at least this many items."),
    quiet: bool = QuietOpt,
) -> None:
    """DR4SR Fig. 4: heatmap of the personalizer's weights, one panel per target model, variance in each title."""
    from ..dr4sr.plus import plot_weights

    panels = plot_weights(run_dirs, out, n=n, seed=seed, kind=kind, max_positions=max_positions, source=source,
                          min_length=min_length)
    if quiet:
        return
    for p in panels:
        typer.echo(f"{p['model']:<10} variance {p['variance']:.4f}  ({p['path']})")
    typer.echo(f"wrote {out}")
