"""``fastregen compare``: train every (method, seed) on a dataset and report paired gains over the original.

A thin layer over `fastregen.study.compare`: options become a
`fastregen.study.CompareConfig`, checked (with the data, the ``--regen``
folder and the results CSV) before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import app
from ._options import (
    FormatOpt,
    ItemOpt,
    RemapOpt,
    TimeOpt,
    UserOpt,
    check_output_dir,
    config_values,
    load_dataset,
)


def _parse_grid(pairs: list[str]) -> dict:
    """``["dr4sr.gamma=0.1,0.3", ...]`` -> ``{"dr4sr": {"gamma": [0.1, 0.3]}}`` (YAML values)."""
    import yaml

    grid: dict = {}
    for pair in pairs:
        key, eq, values = pair.partition("=")
        method, dot, field = key.strip().partition(".")
        if not (eq and dot and method and field and values.strip()):
            raise typer.BadParameter(f"--grid expects METHOD.FIELD=V1,V2,..., got {pair!r}")
        try:
            parsed = [yaml.safe_load(v) for v in values.split(",")]
        except yaml.YAMLError:
            raise typer.BadParameter(f"--grid {key}: {values!r} is not a list of YAML values") from None
        grid.setdefault(method, {})[field] = parsed
    return grid


def _methods(names: list[str]) -> tuple:
    return tuple(m for name in names for m in name.split(",") if m)


@app.command(context_settings={"allow_extra_args": True})
def compare(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Comparison folder: results.csv, ranks/, runs/, report.md, "
                                                     "compare.png (a rerun trains only the missing runs)."),
    methods: List[str] = typer.Option(["original", "dr4sr"], "--methods",
                                      help="Methods to compare: original dr4sr dr4sr+ unids reppad (space or comma "
                                           "separated; original is always added: every gain is against it)."),
    model: str = typer.Option("sasrec", "--model", "-m", help="Target model (see `fastregen models`)."),
    seeds: int = typer.Option(3, "--seeds", help="Target seeds 0..SEEDS-1 per method and setting."),
    regen: Optional[Path] = typer.Option(None, "--regen", help="A finished `fastregen regenerate` folder of DATA "
                                                               "for dr4sr and dr4sr+ (else one is built in OUT)."),
    workers: int = typer.Option(1, "--workers", help="Runs trained at once (one process each)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (every worker on it)."),
    threads: int = typer.Option(1, "--threads", help="torch threads per worker on CPU."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum target-model epochs (TrainConfig.epochs)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TrainConfig YAML of every run."),
    sets: List[str] = typer.Option([], "--set", help="A TrainConfig field, KEY=VALUE (YAML); repeatable."),
    regen_config: Optional[Path] = typer.Option(None, "--regen-config", help="RegenConfig YAML (dr4sr, dr4sr+)."),
    regen_sets: List[str] = typer.Option([], "--regen-set", help="A RegenConfig field, KEY=VALUE; repeatable."),
    plus_config: Optional[Path] = typer.Option(None, "--plus-config", help="PlusConfig YAML (dr4sr+)."),
    plus_sets: List[str] = typer.Option([], "--plus", help="A PlusConfig field, KEY=VALUE; repeatable."),
    unids_config: Optional[Path] = typer.Option(None, "--unids-config", help="UniDSConfig YAML (unids)."),
    unids_sets: List[str] = typer.Option([], "--unids", help="A UniDSConfig field, KEY=VALUE; repeatable."),
    reppad: int = typer.Option(2, "--reppad", help="RepPad mode: 1 (copies) or 2 (copies with a delimiter)."),
    grid: List[str] = typer.Option([], "--grid", help="Settings to select among by validation, METHOD.FIELD=V1,V2 "
                                                      "(e.g. dr4sr.gamma=0.1,0.3); repeatable."),
    stop_after: Optional[float] = typer.Option(None, "--stop-after", help="Start no run after this many seconds "
                                                                          "(the report covers what is done)."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write compare.png (needs matplotlib)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Train MODEL on DATA with every method and seed; write OUT/results.csv, OUT/report.md and OUT/compare.png.

    The report gives each method's test metrics (mean ± sd over seeds) and its gain over original with a paired two-sided Wilcoxon p over test users and a bootstrap 95% interval. Validation selects among --grid settings; test metrics are only read for the report. A rerun trains only the runs without a row.
    """
    from ..dr4sr import RegenConfig
    from ..dr4sr.plus import PlusConfig
    from ..study import CompareConfig
    from ..study import compare as run_compare
    from ..training import TrainConfig
    from ..unids import UniDSConfig

    train = config_values(TrainConfig, config, sets)
    for k in ("model", "seed", "device", "num_threads", "progress"):  # the command's own options decide these
        train.pop(k, None)
    if epochs is not None:
        train["epochs"] = epochs
    # Every option is checked here, before DATA is read or OUT written.
    cfg = CompareConfig(methods=_methods(list(methods) + list(ctx.args)), model=model, seeds=seeds, train=train,
                        regen=config_values(RegenConfig, regen_config, regen_sets),
                        plus=config_values(PlusConfig, plus_config, plus_sets),
                        unids=config_values(UniDSConfig, unids_config, unids_sets), reppad=reppad, grid=_parse_grid(grid))
    check_output_dir(out, "--out")
    ds = load_dataset(data, format, user, item, timestamp, remap, quiet=True)
    result = run_compare(ds, out, cfg, workers=workers, device=device, threads=threads, regen_dir=regen,
                         stop_after=stop_after, figure=plot, quiet=quiet)
    summary = result["report"]
    for g in summary["gains"]:
        if g["seeds"]:
            typer.echo(f"{g['method']:<8} {g['metric']:<10} gain {100 * g['relative']:+.1f}% "
                       f"[{100 * g['relative_lo']:+.1f}%, {100 * g['relative_hi']:+.1f}%]  p={g['p']:.3g}  "
                       f"({g['n_users']:,} users, seeds {','.join(map(str, g['seeds']))})")
    pending = len(result["pending"])
    typer.echo(f"{result['trained']} run(s) trained, {summary['done']}/{summary['declared']} done"
               + (f", {pending} pending" if pending else "") + f"; report: {out / 'report.md'}")
