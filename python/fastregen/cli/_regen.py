"""``fastregen regenerate``: the whole DR4SR pipeline, resumable stage by stage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ._app import app
from ._options import FormatOpt, ItemOpt, RemapOpt, TimeOpt, UserOpt, check_output_dir, config_values, load_dataset


def _echo_stats(stats: dict) -> None:
    w = max([len("training set")] + [len(name) for name in stats]) + 2
    typer.echo(f"{'training set':<{w}}{'users':>10}{'items':>8}{'interactions':>14}{'avg len':>9}")
    for name, s in stats.items():
        typer.echo(f"{name:<{w}}{s['users']:>10,}{s['items']:>8,}{s['interactions']:>14,}{s['avg_length']:>9.2f}")


def _load_embedding(path: Path):
    """An item table from a `fastregen.models.save_model` checkpoint or a saved tensor."""
    import torch

    import errno
    import os
    import stat

    mode = os.stat(path).st_mode  # FileNotFoundError naming the path
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a checkpoint", os.fspath(path))
    if not stat.S_ISREG(mode):  # a FIFO would block torch.load
        raise ValueError(f"{path}: is not a regular file; pass the model.pt of a `fastregen train --out` run")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors for a file that is not a checkpoint
        raise ValueError(f"{path}: not a torch checkpoint or tensor ({type(e).__name__}: {e}); pass the model.pt "
                         "of a `fastregen train --out` run") from None
    if isinstance(obj, torch.Tensor):
        return obj
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if isinstance(state, dict) and "item_embedding.weight" in state:
        return state["item_embedding.weight"]
    raise ValueError(f"{path}: holds neither a tensor nor a state dict with item_embedding.weight")


def run_regenerate(data, out: Path, config, embedding: Optional[Path] = None, quiet: bool = False) -> dict:
    """Run (or resume) the pipeline on ``data`` (a dataset or a path) into ``out``;
    print stage times and Table-2 statistics (rank 0 only)."""
    from ..dr4sr import DR4SR
    from ..training import distributed

    t0 = time.perf_counter()
    table = None if embedding is None else _load_embedding(embedding)
    dr = DR4SR(config)
    dr.measure_memory = True
    if not quiet:  # where the run is, in a log too (bars are lines there: fastregen._progress)
        dr.log = lambda line: typer.echo(line, err=True)
    dr.fit(data, out_dir=out, item_embedding=table)
    dr.regenerate()
    if not distributed.is_main():
        return {"dr4sr": dr, "statistics": None}
    for stage in ("patterns", "pairs", "regenerator", "inference", "write"):
        s = dr.stage_seconds.get(stage)
        state = "reused" if s == 0.0 else (f"{s:8.2f} s" if s is not None else "-")
        peak = dr.stage_peak_rss.get(stage)
        typer.echo(f"  {stage:<12}{state}" + ("" if peak is None or s == 0.0 else f"   peak RSS {peak / 2**30:.2f} GiB"))
    typer.echo(f"done in {time.perf_counter() - t0:.1f} s -> {out / 'regenerated.txt'} ({config.training_set})")
    stats = dr.statistics()
    _echo_stats(stats)
    return {"dr4sr": dr, "statistics": stats}


@app.command()
def regenerate(
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (stage artifacts; a rerun resumes)."),
    config: Optional[Path] = typer.Option(None, "--config", help="RegenConfig YAML (options below override it)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Pre-training epochs [20]."),
    K: Optional[int] = typer.Option(None, "--K", help="Memories of the diversity promoter [5]; 1 = no diversity."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="Probability of a generative step [0.1]."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="paper (per-step gamma) or released (authors' code: steps 0-1 restrictive, then gamma)."),
    restrict: Optional[str] = typer.Option(None, "--restrict",
                                           help="What a restrictive step may choose: items (paper), ordered or span."),
    training_set: Optional[str] = typer.Option(None, "--training-set",
                                               help="combined (original + patterns + regenerated), combined_authors (original twice, as the authors' file) or regenerated."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed [0]."),
    embedding: Optional[Path] = typer.Option(None, "--embedding",
                                             help="Target-model checkpoint (model.pt) whose item table initialises the regenerator."),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto, torch or triton."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads (default: the cores no other process is busy on at the start)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the estimated peak memory of every stage and stop."),
    force: bool = typer.Option(False, "--force", help="Run even when the estimated peak memory exceeds what the machine has."),
) -> None:
    """Regenerate DATA with DR4SR (mine, pairs, pre-train, hybrid inference) into OUT/regenerated.txt.

    Under ``torchrun --nproc-per-node N -m fastregen regenerate ...`` pre-training is data-parallel and
    hybrid inference sharded over N processes; rank 0 writes OUT (same regenerated data as one process).
    """
    from ..config import config_from_dict
    from ..dr4sr import RegenConfig

    overrides = {k: v for k, v in dict(epochs=epochs, K=K, gamma=gamma, schedule=schedule, restrict=restrict,
                                         training_set=training_set, seed=seed, backend=backend).items()
                 if v is not None}
    if quiet:
        overrides["progress"] = False
    values = config_values(RegenConfig, config)
    values.update(overrides)
    cfg = config_from_dict(RegenConfig, values)
    check_output_dir(out, "--out")
    from .._threads import apply_threads

    apply_threads("auto" if threads is None else threads)
    from .. import memory
    from ..training import distributed

    memory.limit_heap_retention()
    # Read here, with the command's reading options; the pipeline records the
    # dataset's name (the path) and content hash.
    ds = load_dataset(data, format, user, item, timestamp, remap, quiet)
    if check_memory(ds, cfg, dry_run=dry_run, force=force):
        return
    with distributed.session(cfg.device):
        run_regenerate(ds, out, cfg, embedding=embedding, quiet=quiet)


# The demo's regenerator: a quarter-width, one-layer encoder and decoder,
# pre-trained for one epoch on 3 pairs per sequence (12k pairs), in a few
# seconds on one core. A demonstration of the pipeline, not a setting to
# reproduce the paper with (BENCHMARKS.md has those).
DEMO_REGEN = dict(d_model=16, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_pairs_per_sequence=3)


def check_memory(ds, config, *, dry_run: bool, force: bool) -> bool:
    """Estimate every stage's peak memory (`fastregen.memory.pipeline_estimates`) before a run.

    Prints the estimates with ``dry_run`` (and returns True: nothing is to
    run); raises ValueError with them when the largest exceeds the memory
    available to this run (``MemAvailable`` shared by the processes of this
    node under torchrun), unless ``force``.
    """
    import os

    from .. import memory

    if not dry_run and force:
        return False
    procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    est = memory.pipeline_estimates(len(ds), ds.num_interactions, ds.num_items, config, base=memory.current_rss(),
                                    lengths=ds.lengths, threads=1)
    est = {k: v for k, v in est.items() if k not in ("train", "evaluate")}  # not run by `regenerate`
    available = memory.machine_memory()
    stage, worst = max(((k, v.total) for k, v in est.items()), key=lambda kv: kv[1])
    if dry_run:
        typer.echo(f"{ds.name or 'data'}: {len(ds):,} sequences, {ds.num_interactions:,} interactions, {ds.num_items:,} items; "
                   f"estimated peak memory per stage (pairs: the upper bound of {config.max_pairs_per_sequence} "
                   f"per sequence){'' if procs == 1 else f', per process ({procs} on this node)'}:")
        typer.echo(memory.format_estimates(est, available))
        return True
    if worst * procs > available:
        raise ValueError(
            f"the estimated peak memory is {worst / 2**30:.1f} GiB (stage {stage}"
            f"{'' if procs == 1 else f', x {procs} processes'}), more than the {available / 2**30:.1f} GiB available; "
            "see --dry-run, or pass --force to run anyway")
    return False


def demo_step(demo: dict, quiet: bool = False, epochs: int = 1) -> dict:
    """The DR4SR step of ``fastregen demo``: regenerate the demo data and print a before/after table.

    ``demo`` is what `fastregen.cli._data.run_demo` returns (its ``dataset``
    and ``out_dir`` are used). The regenerator is `DEMO_REGEN`, run on one
    torch thread (see `fastregen.cli._demo.DEMO_TRAIN` for why).
    """
    import torch

    from ..dr4sr import RegenConfig

    cfg = RegenConfig(epochs=epochs, progress=not quiet, **DEMO_REGEN)
    typer.echo("DR4SR regeneration of the demo data:")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_regenerate(demo["dataset"], Path(demo["out_dir"]) / "regen", cfg, quiet=quiet)
    finally:
        torch.set_num_threads(threads)
