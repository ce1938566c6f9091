"""Data-layer subcommands: info, stats, convert, split, synth, demo.

Every command is a thin wrapper over `fastregen.data`; long steps show a
progress bar on stderr unless ``--quiet``. User errors are reported by the
command group (`._errors`): commands raise, they do not catch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ._app import app
from ._options import (
    FormatOpt,
    ItemOpt,
    QuietOpt,
    RemapOpt,
    TimeOpt,
    UserOpt,
    check_output_dir,
    check_output_file,
    load_dataset,
)


def _load(path: Path, fmt: str, user, item, timestamp, quiet: bool, remap=None):
    """`load_dataset`, with the argument order the topic modules use."""
    return load_dataset(path, fmt, user, item, timestamp, remap, quiet)


@app.command()
def info(quiet: bool = QuietOpt) -> None:
    """Print versions of fastregen, its core, torch, triton, OpenMP threads and backends."""
    from .. import show_config

    show_config()


@app.command()
def stats(
    data: Path = typer.Argument(..., help="Dataset file."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    quiet: bool = QuietOpt,
) -> None:
    """Users, items, interactions, lengths and sparsity of DATA (the DR4SR paper's Table 1)."""
    from .. import data as fdata

    ds = _load(data, format, user, item, timestamp, quiet, remap=remap)
    st = fdata.stats(ds)
    if json:
        import json as _json

        typer.echo(_json.dumps(st.to_dict()))
    else:
        typer.echo(str(st))


@app.command()
def convert(
    input: Path = typer.Argument(..., help="Input dataset file."),
    output: Path = typer.Argument(..., help="Output file (written atomically)."),
    in_format: str = typer.Option("auto", "--in-format", "--format", "-f",
                                  help="Format of INPUT: auto, lines, pairs, csv, tsv or parquet."),
    out_format: str = typer.Option("auto", "--out-format", help="lines, pairs, csv, tsv or parquet (auto: by extension, else lines)."),
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    kcore: int = typer.Option(0, "--kcore", min=0, help="Iterative k-core filter on users and items (0: off); implies --remap."),
    max_len: int = typer.Option(0, "--max-len", min=0, help="Keep each user's last N items (0: all)."),
    quiet: bool = QuietOpt,
) -> None:
    """Convert INPUT to OUTPUT, optionally k-core filtering and truncating on the way."""
    from .. import data as fdata

    check_output_file(output, "OUTPUT")
    ds = _load(input, in_format, user, item, timestamp, quiet, remap=remap)
    if kcore:
        ds = fdata.remap(fdata.kcore(ds, kcore))
        if len(ds) == 0:
            raise ValueError(f"{input}: its {kcore}-core is empty; lower --kcore")
    if max_len:
        ds = ds.truncate(max_len)
    fdata.save(ds, output, format=out_format, progress=not quiet)
    if not quiet:
        typer.echo(f"wrote {output}: {len(ds):,} users, {ds.num_interactions:,} interactions", err=True)


@app.command()
def split(
    data: Path = typer.Argument(..., help="Dataset file."),
    outdir: Path = typer.Argument(..., help="Folder for train.txt, valid.txt and test.txt."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Leave-one-out split of DATA into OUTDIR (train: all but the last two items)."""
    from .. import data as fdata

    check_output_dir(outdir, "OUTDIR")
    ds = _load(data, format, user, item, timestamp, quiet, remap=remap)
    sizes = fdata.save_split(fdata.leave_one_out(ds), outdir, progress=not quiet)
    typer.echo(" ".join(f"{k}={v}" for k, v in sizes.items()))


@app.command()
def synth(
    output: Path = typer.Argument(..., help="Output file (format by extension, else lines)."),
    preset: str = typer.Option("demo", "--preset", help="demo (small, strong patterns) or books (~700k items, ~10 M interactions)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    quiet: bool = QuietOpt,
) -> None:
    """Generate a synthetic dataset with planted patterns into OUTPUT (patterns in OUTPUT.patterns.txt)."""
    from .. import data as fdata

    check_output_file(output, "OUTPUT")
    check_output_file(Path(str(output) + ".patterns.txt"), "OUTPUT.patterns.txt")
    ds = fdata.synthetic(preset, seed=seed)
    fdata.save(ds, output, progress=not quiet)
    _save_patterns(ds, Path(str(output) + ".patterns.txt"))
    typer.echo(str(fdata.stats(ds)))


def _save_patterns(ds, path: Path) -> None:
    from .._io import atomic_write_text

    pats = ds.meta["patterns"]
    atomic_write_text(path, "".join(" ".join(map(str, p)) + "\n" for p in pats.tolist()))


# Later stages of the pipeline: (name, step) pairs run in order by run_demo
# after the data steps; step(result: dict, quiet: bool) -> value stored as
# result[name]. Topic modules add theirs with register_demo_step.
DEMO_STEPS: list[tuple[str, Callable[..., Any]]] = []
# What each stage's progress line calls it (default: its name).
DEMO_TITLES: dict[str, str] = {}


def register_demo_step(name: str, step: Callable[..., Any], title: str | None = None) -> None:
    """Append a stage to ``fastregen demo`` (see `run_demo`); re-registering a name replaces it.

    ``title`` names the stage in its progress lines (default: ``name``).
    """
    if title is not None:
        DEMO_TITLES[name] = title
    for i, (existing, _) in enumerate(DEMO_STEPS):
        if existing == name:
            DEMO_STEPS[i] = (name, step)
            return
    DEMO_STEPS.append((name, step))


def _data_step(result: dict, quiet: bool = False) -> dict:
    """Generate the demo dataset, save it with its planted patterns, print its statistics, split it."""
    from .. import data as fdata

    out_dir, seed = result["out_dir"], result["seed"]
    ds = fdata.synthetic("demo", seed=seed)
    fdata.save(ds, out_dir / "demo.txt", progress=not quiet)
    _save_patterns(ds, out_dir / "demo.txt.patterns.txt")
    st = fdata.stats(ds)
    typer.echo(f"demo dataset (seed {seed}) -> {out_dir / 'demo.txt'}")
    typer.echo(str(st))
    sp = fdata.leave_one_out(ds)
    sizes = fdata.save_split(sp, out_dir / "split", progress=not quiet)
    typer.echo("split: " + " ".join(f"{k}={v}" for k, v in sizes.items()))
    result.update(dataset=ds, stats=st, split=sp, split_sizes=sizes)
    return sizes


def run_demo(out_dir: Path, seed: int = 0, quiet: bool = False, steps=None) -> dict:
    """The demo pipeline, stage by stage.

    Stage 1, the data: generate the ``"demo"`` synthetic dataset, write it
    to ``out_dir/demo.txt`` (with its planted patterns), print its
    statistics, split it leave-one-out into ``out_dir/split/``. Then each
    registered step of `DEMO_STEPS` (or of ``steps``, a list of (name, step)
    pairs) runs as ``step(result, quiet=quiet)`` and its return value is
    stored under its name.

    Every stage prints ``stage k/n: title ...`` when it starts and ``stage
    k/n: title done in X s`` when it ends, to stdout and flushed, also when
    stdout is not a terminal (where the progress bars stay silent), so a log
    shows where a run is and where its time went.

    Returns
    -------
    dict
        ``dataset`` (SequenceDataset), ``stats`` (DatasetStats), ``split``
        (LeaveOneOutSplit), ``split_sizes`` (dict), ``out_dir`` (Path),
        ``seed`` (int), ``stage_seconds`` (dict), plus one entry per later step.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    later = list(DEMO_STEPS if steps is None else steps)
    stages = [("data", _data_step)] + later
    titles = {"data": "data (generate, save, split)", **DEMO_TITLES}
    result: dict = {"out_dir": out_dir, "seed": seed, "stage_seconds": {}}
    t_all = time.perf_counter()
    for k, (name, step) in enumerate(stages, 1):
        title = titles.get(name, name)
        typer.echo(f"stage {k}/{len(stages)}: {title} ...")
        t0 = time.perf_counter()
        value = step(result, quiet=quiet)
        if name != "data":
            result[name] = value
        seconds = time.perf_counter() - t0
        result["stage_seconds"][name] = seconds
        typer.echo(f"stage {k}/{len(stages)}: {title} done in {seconds:.1f} s")
    typer.echo(f"demo done in {time.perf_counter() - t_all:.1f} s -> {out_dir}")
    return result


@app.command()
def demo(
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: a fresh temporary folder)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    quiet: bool = QuietOpt,
) -> None:
    """Run the pipeline on the built-in synthetic demo dataset."""
    check_output_dir(out, "--out")
    out_dir = Path(tempfile.mkdtemp(prefix="fastregen-demo-")) if out is None else out
    run_demo(out_dir, seed=seed, quiet=quiet)
