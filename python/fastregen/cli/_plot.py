"""``fastregen plot ...``: figures from run folders and result files (needs the ``[plot]`` extra, matplotlib)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import List, Optional

import typer

from ._app import app
from ._options import QuietOpt

plot_app = typer.Typer(help=r"Figures from run folders and result files (needs matplotlib: pip install 'fastregen\[plot]').",
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


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        typer.echo("error: plotting needs matplotlib: pip install 'fastregen[plot]'", err=True)
        raise typer.Exit(2) from None
    return plt


def _save(fig, path: Path) -> None:
    from .._io import atomic_open

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=120)


THRESHOLD_METRICS = (("test_auc", "AUC (fine)"), ("test_ndcg@10", "NDCG@10 (coarse)"), ("test_mrr", "MRR (recall)"))


def threshold_series(rows: list[dict], dataset: Optional[str] = None, model: Optional[str] = None) -> dict:
    """``{(dataset, model): {metric: [(theta, mean, sd, runs), ...]}}`` from result rows of the theta sweep.

    Rows need ``experiment`` == ``"theta"``, ``dataset``, ``model``,
    ``theta`` and the `THRESHOLD_METRICS` columns; values are averaged over
    the rows (seeds) of one theta.
    """
    import numpy as np

    groups: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("experiment") != "theta":
            continue
        if (dataset and r["dataset"] != dataset) or (model and r["model"] != model):
            continue
        groups[(r["dataset"], r["model"])][float(r["theta"])].append(r)
    out = {}
    for key, by_theta in groups.items():
        series = {}
        for col, _ in THRESHOLD_METRICS:
            pts = []
            for theta in sorted(by_theta):
                v = np.array([float(r[col]) for r in by_theta[theta]])
                pts.append((theta, float(v.mean()), float(v.std()), int(v.size)))
            series[col] = pts
        out[key] = series
    return out


@plot_app.command("thresholds")
def thresholds(
    results: Path = typer.Argument(Path("benchmarks/results/unids.csv"), help="Result rows (benchmarks/unids.py)."),
    out: Path = typer.Option(Path("thresholds.png"), "--out", "-o", help="Image file (png, pdf, svg)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Only this dataset."),
    model: Optional[str] = typer.Option(None, "--model", help="Only this backbone."),
    quiet: bool = QuietOpt,
) -> None:
    """UniDS Fig. 2: AUC, NDCG@10 and MRR against the entropy threshold theta (mean +- sd over seeds)."""
    if not results.exists():
        typer.echo(f"error: no such file: {results}", err=True)
        raise typer.Exit(2)
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"experiment", "dataset", "model", "theta"} | {c for c, _ in THRESHOLD_METRICS}
    missing = sorted(needed - set(rows[0] if rows else needed))
    if missing:
        typer.echo(f"error: {results} lacks the columns {missing}", err=True)
        raise typer.Exit(2)
    series = threshold_series(rows, dataset, model)
    if not series:
        typer.echo(f"error: {results} holds no theta-sweep rows (experiment 'theta')"
                   + (f" for dataset {dataset!r}" if dataset else "") + (f" and model {model!r}" if model else ""),
                   err=True)
        raise typer.Exit(2)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(THRESHOLD_METRICS), figsize=(4 * len(THRESHOLD_METRICS), 3.4))
    for (ds, m), s in sorted(series.items()):
        for ax, (col, label) in zip(axes, THRESHOLD_METRICS):
            th, mean, sd, _ = zip(*s[col])
            ax.errorbar(th, mean, yerr=sd, marker="o", capsize=3, label=f"{m} on {ds}")
            ax.set_xlabel("theta (x mean seed entropy)")
            ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("UniDS Fig. 2: a higher theta should help AUC, a lower one NDCG and MRR")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    if quiet:
        return
    typer.echo(f"wrote {out}")
    for (ds, m), s in sorted(series.items()):
        for col, label in THRESHOLD_METRICS:
            pts = ", ".join(f"{t:g}: {mu:.4f}" for t, mu, _, _ in s[col])
            typer.echo(f"{ds} {m} {label}: {pts}")
