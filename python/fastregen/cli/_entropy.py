"""Entropy subcommands: ``entropy`` (real entropy, predictability) and ``segment`` (UniDS patterns)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import app
from ._options import (
    FormatOpt,
    ItemOpt,
    QuietOpt,
    RemapOpt,
    TimeOpt,
    UserOpt,
    check_output_file,
    load_dataset,
)


def _require_matplotlib():
    """pyplot, or an ImportError saying how to install it (checked before any work)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib: pip install 'fastregen[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def _histogram(report, path: Path, bins: int) -> None:
    plt = _require_matplotlib()
    import numpy as np

    keep = report.lengths > 0
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    unit = "bits" if report.base == 2.0 else f"log base {report.base:g}"
    for ax, values, label in (
        (axes[0], report.entropy[keep], f"real entropy ({unit})"),
        (axes[1], report.predictability[keep], "predictability $\\Pi_{max}$"),
    ):
        values = values[np.isfinite(values)]
        ax.hist(values, bins=bins, color="#3b6ea5")
        ax.axvline(float(np.median(values)) if values.size else 0.0, color="k", ls="--", lw=1, label="median")
        ax.set_xlabel(label)
        ax.set_ylabel("sequences")
        ax.legend()
    fig.suptitle(f"{int(keep.sum()):,} sequences")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # savefig picks the format from the suffix; write beside and rename for atomicity.
    from .._io import atomic_open

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


@app.command("entropy")
def entropy_cmd(
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    base: float = typer.Option(2.0, help="Logarithm base of the entropy (2: bits)."),
    out: Optional[Path] = typer.Option(None, help="Write per-sequence values as TSV here."),
    plot: Optional[Path] = typer.Option(None, help="Write a histogram of entropy and predictability here (needs matplotlib)."),
    bins: int = typer.Option(50, min=1, help="Histogram bins."),
    threads: int = typer.Option(0, min=0, help="OpenMP threads (0: default)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Per-sequence Lempel-Ziv real entropy and predictability of DATA: summary, TSV, histogram."""
    from .. import entropy as fent
    from .._io import atomic_open

    if not base > 1:
        raise typer.BadParameter(f"must be > 1 (2: bits, e: nats), got {base}", param_hint="'--base'")
    check_output_file(out, "--out")
    check_output_file(plot, "--plot")
    if plot is not None:
        _require_matplotlib()
    ds = load_dataset(data, format, user, item, timestamp, remap, quiet)
    report = fent.entropy_report(ds, base, threads=threads)
    if as_json:
        typer.echo(json.dumps(report.summary(), indent=2))
    else:
        typer.echo(str(report))
    if out is not None:
        users = ds.user_ids if ds.user_ids is not None else range(len(ds))
        with atomic_open(out, "w") as f:
            f.write("user\tlength\tn_distinct\tentropy\tpredictability\n")
            for u, n, d, s, p in zip(users, report.lengths, report.n_distinct, report.entropy, report.predictability):
                f.write(f"{u}\t{n}\t{d}\t{s:.10g}\t{p:.10g}\n")
        typer.echo(f"wrote {out}")
    if plot is not None:
        _histogram(report, plot, bins)
        typer.echo(f"wrote {plot}")


@app.command("segment")
def segment_cmd(
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    theta: Optional[float] = typer.Option(None, help="Entropy threshold in bits (default: scale x mean seed entropy)."),
    theta_scale: float = typer.Option(1.0, help="Scale of the mean seed entropy when --theta is not given."),
    stage: Optional[str] = typer.Option(None, help="Preset theta scale: recall, coarse or fine."),
    min_count: int = typer.Option(2, help="Least occurrences of a pattern (c)."),
    max_len: int = typer.Option(8, help="Longest pattern (L_max)."),
    order: int = typer.Option(2, help="Order k of the Markov model p_m."),
    out: Optional[Path] = typer.Option(None, help="Write the segmented sequences here: 'user seg | seg | ...' per line."),
    patterns_out: Optional[Path] = typer.Option(None, help="Write the patterns here: 'entropy count item item ...' per line."),
    config: Optional[Path] = typer.Option(None, help="YAML EntropyMinerConfig (overrides the options above)."),
    threads: int = typer.Option(0, min=0, help="OpenMP threads (0: default)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Mine UniDS low-entropy patterns of DATA and cut every sequence into them."""
    from .. import entropy as fent
    from .. import patterns as fpat
    from .._io import atomic_open
    from ..config import load_config, provenance

    if config is not None:
        cfg = load_config(fpat.EntropyMinerConfig, config)
    else:
        cfg = fpat.EntropyMinerConfig(
            theta=theta, theta_scale=theta_scale, stage=stage, min_count=min_count, max_len=max_len, order=order
        )
    check_output_file(out, "--out")
    check_output_file(patterns_out, "--patterns-out")
    ds = load_dataset(data, format, user, item, timestamp, remap, quiet)
    patterns = fpat.mine_entropy_patterns(
        ds,
        fent.MarkovModel(cfg.order).fit(ds),
        cfg.theta,
        theta_scale=cfg.theta_scale,
        stage=cfg.stage,
        min_count=cfg.min_count,
        max_len=cfg.max_len,
        threads=threads,
    )
    seg = fpat.segment(ds, patterns, threads=threads)

    def ids(arr):
        # Write the ids of the input file, not the internal ones.
        return (arr if ds.item_ids is None else ds.item_ids[arr]).tolist()

    lens = patterns.lengths
    typer.echo(f"theta         {patterns.theta:.4f} bits")
    by_len = ", ".join(f"{k}: {int((lens == k).sum())}" for k in range(1, int(lens.max(initial=0)) + 1))
    typer.echo(f"patterns      {len(patterns):,}" + (f" (by length: {by_len})" if by_len else ""))
    covered = int((seg.pattern_id >= 0).sum())
    multi = int(((seg.bounds[1:] - seg.bounds[:-1]) > 1).sum())
    typer.echo(f"segments      {seg.num_segments:,} ({covered:,} from patterns, {multi:,} longer than one item)")
    if patterns_out is not None:
        with atomic_open(patterns_out, "w") as f:
            f.write("# " + json.dumps(provenance(cfg, data=str(data), theta=patterns.theta)) + "\n")
            for p in range(len(patterns)):
                items = " ".join(map(str, ids(patterns[p])))
                f.write(f"{patterns.entropy[p]:.10g} {int(patterns.count[p])} {items}\n")
        typer.echo(f"wrote {patterns_out}")
    if out is not None:
        users = ds.user_ids if ds.user_ids is not None else range(len(ds))
        with atomic_open(out, "w") as f:
            for u, user in enumerate(users):
                segs = " | ".join(" ".join(map(str, ids(s))) for s in seg.segments(u))
                f.write(f"{user} {segs}\n")
        typer.echo(f"wrote {out}")
