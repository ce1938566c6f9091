"""``fastregen unids``: the UniDS pipeline, resumable stage by stage, optionally with a backbone."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from ._app import app
from ._options import FormatOpt, ItemOpt, RemapOpt, TimeOpt, UserOpt, check_output_dir, config_values


def _dataset(data: str, fmt: str, quiet: bool, user=None, item=None, timestamp=None, remap=None):
    """A file, or the name of a dataset `fastregen.data.datasets` can fetch (``ml-100k``)."""
    from ..data import datasets
    from ._data import _load

    path = Path(data)
    if not path.exists() and data in datasets.DATASETS:
        try:
            return datasets.load(data)
        except datasets.FetchError as err:
            raise typer.BadParameter(str(err)) from None
    return _load(path, fmt, user, item, timestamp, quiet=quiet, remap=remap)


@app.command("unids")
def unids_cmd(
    data: str = typer.Argument(..., help="Dataset file, or a dataset name to fetch (ml-100k)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (stage artifacts; a rerun resumes)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    config: Optional[Path] = typer.Option(None, "--config", help="UniDSConfig YAML (the options below override it)."),
    no_tc: bool = typer.Option(False, "--no-tc", help="Ablation w/o TC: one theta for every stage."),
    no_uf: bool = typer.Option(False, "--no-uf", help="Ablation w/o UF: no T or stage tokens."),
    no_ug: bool = typer.Option(False, "--no-ug", help="Ablation w/o UG: the mined segments are the generated data."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Generator pre-training epochs [20]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed [0]."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Then train this model (hstu, llama, ...) on "
                                           "original + generated and print the stage metrics on test."),
    backbone_epochs: int = typer.Option(200, "--backbone-epochs", help="Backbone epochs (early stopping on valid)."),
    max_len: int = typer.Option(200, "--backbone-max-len", help="Backbone's longest history."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: the cores no other process is busy on at the start)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Synthesise training data for the recall, coarse and fine stages of DATA with UniDS into OUT."""
    from ..config import config_from_dict
    from ..unids import UniDS, UniDSConfig

    values = config_values(UniDSConfig, config)
    if no_tc:
        values["threshold_control"] = False
    if no_uf:
        values["uniform_format"] = False
    if no_ug:
        values["uniform_generation"] = False
    if epochs is not None:
        values["generator"] = {**values.get("generator", {}), "epochs": epochs}
    if seed is not None:
        values["seed"] = seed
    if quiet:
        values["progress"] = False
    cfg = config_from_dict(UniDSConfig, values)
    if backbone is not None:  # checked now, not after the generator's hours of pre-training
        from ..training import TrainConfig

        TrainConfig(model=backbone, epochs=backbone_epochs, max_len=max_len, valid_metric="ndcg@10")
    from .._threads import apply_threads

    apply_threads("auto" if threads is None else threads)
    check_output_dir(out, "--out")
    ds = _dataset(data, format, quiet, user, item, timestamp, remap)
    t0 = time.perf_counter()
    run = UniDS(cfg, log=typer.echo).fit(ds, out_dir=out)
    train_set = run.generate()
    for stage in ("mine", "generator", "generate"):
        s = run.stage_seconds.get(stage)
        state = "reused" if s == 0.0 else (f"{s:8.2f} s" if s is not None else "-")
        typer.echo(f"  {stage:<10}{state}")
    typer.echo(f"done in {time.perf_counter() - t0:.1f} s -> {out / 'train.txt'}")
    typer.echo(f"{'training set':<20}{'sequences':>10}{'items':>8}{'interactions':>14}{'avg len':>9}")
    for name, s in run.statistics().items():
        typer.echo(f"{name:<20}{s['users']:>10,}{s['items']:>8,}{s['interactions']:>14,}{s['avg_length']:>9.2f}")
    if backbone is None:
        return
    from ..data import leave_one_out
    from ..evaluation import evaluate_stages
    from ..training import fit_and_evaluate

    res = fit_and_evaluate(run.data, model=backbone, seed=cfg.seed, train_data=train_set,
                           out_dir=out / f"backbone-{backbone}", epochs=backbone_epochs, max_len=max_len,
                           valid_metric="ndcg@10", progress=not quiet, num_threads=threads or "auto")
    metrics = evaluate_stages(res["model"], leave_one_out(run.data).test)
    typer.echo(json.dumps({"backbone": backbone, "best_epoch": res["best_epoch"], "test": metrics}, indent=2))
