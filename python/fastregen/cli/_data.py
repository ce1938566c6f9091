"""Data-layer subcommands: info, stats, convert, split, synth, demo.

Every command is a thin wrapper over `fastregen.data`; long steps show a
progress bar on stderr unless ``--quiet``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from . import app

_FORMAT_HELP = "auto, lines, pairs, csv, tsv, parquet or recbole (auto: by extension and content)."
_FormatOpt = typer.Option("auto", "--format", "-f", help=_FORMAT_HELP)
_UserOpt = typer.Option(None, "--user", help="User column of a csv/tsv/parquet table.")
_ItemOpt = typer.Option(None, "--item", help="Item column of a csv/tsv/parquet table.")
_TimeOpt = typer.Option(None, "--timestamp", help="Timestamp column of a table (sorts each user's items).")
_QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _load(path: Path, fmt: str, user, item, timestamp, quiet: bool, remap=None):
    from .. import data as fdata

    try:
        return fdata.load(path, format=fmt, user=user, item=item, timestamp=timestamp, remap=remap,
                          progress=not quiet)
    except (ValueError, FileNotFoundError, IsADirectoryError, ImportError) as e:
        raise _fail(e) from None


def _fail(e: Exception) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(code=2)


@app.command()
def info() -> None:
    """Print versions of fastregen, its core, torch, triton, OpenMP threads and backends."""
    from .. import show_config

    show_config()


@app.command()
def stats(
    data: Path = typer.Argument(..., help="Dataset file."),
    format: str = _FormatOpt,
    user: Optional[str] = _UserOpt,
    item: Optional[str] = _ItemOpt,
    timestamp: Optional[str] = _TimeOpt,
    json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    quiet: bool = _QuietOpt,
) -> None:
    """Users, items, interactions, lengths and sparsity of DATA (the DR4SR paper's Table 1)."""
    from .. import data as fdata

    ds = _load(data, format, user, item, timestamp, quiet)
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
    in_format: str = typer.Option("auto", "--in-format", help=_FORMAT_HELP),
    out_format: str = typer.Option("auto", "--out-format", help="lines, pairs, csv, tsv or parquet (auto: by extension, else lines)."),
    user: Optional[str] = _UserOpt,
    item: Optional[str] = _ItemOpt,
    timestamp: Optional[str] = _TimeOpt,
    remap: Optional[bool] = typer.Option(None, "--remap/--no-remap", help="Renumber items 1..N (default: only for tables)."),
    kcore: int = typer.Option(0, "--kcore", min=0, help="Iterative k-core filter on users and items (0: off); implies --remap."),
    max_len: int = typer.Option(0, "--max-len", min=0, help="Keep each user's last N items (0: all)."),
    quiet: bool = _QuietOpt,
) -> None:
    """Convert INPUT to OUTPUT, optionally k-core filtering and truncating on the way."""
    from .. import data as fdata

    ds = _load(input, in_format, user, item, timestamp, quiet, remap=remap)
    try:
        if kcore:
            ds = fdata.remap(fdata.kcore(ds, kcore))
            if len(ds) == 0:
                raise ValueError(f"the {kcore}-core of {input} is empty")
        if max_len:
            ds = ds.truncate(max_len)
        fdata.save(ds, output, format=out_format, progress=not quiet)
    except (ValueError, ImportError) as e:
        raise _fail(e) from None
    if not quiet:
        typer.echo(f"wrote {output}: {len(ds):,} users, {ds.num_interactions:,} interactions", err=True)


@app.command()
def split(
    data: Path = typer.Argument(..., help="Dataset file."),
    outdir: Path = typer.Argument(..., help="Folder for train.txt, valid.txt and test.txt."),
    format: str = _FormatOpt,
    user: Optional[str] = _UserOpt,
    item: Optional[str] = _ItemOpt,
    timestamp: Optional[str] = _TimeOpt,
    quiet: bool = _QuietOpt,
) -> None:
    """Leave-one-out split of DATA into OUTDIR (train: all but the last two items)."""
    from .. import data as fdata

    ds = _load(data, format, user, item, timestamp, quiet)
    try:
        sizes = fdata.save_split(fdata.leave_one_out(ds), outdir, progress=not quiet)
    except ValueError as e:
        raise _fail(e) from None
    typer.echo(" ".join(f"{k}={v}" for k, v in sizes.items()))


@app.command()
def synth(
    output: Path = typer.Argument(..., help="Output file (format by extension, else lines)."),
    preset: str = typer.Option("demo", "--preset", help="demo (small, strong patterns) or books (~700k items, ~10 M interactions)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    quiet: bool = _QuietOpt,
) -> None:
    """Generate a synthetic dataset with planted patterns into OUTPUT (patterns in OUTPUT.patterns.txt)."""
    from .. import data as fdata

    try:
        ds = fdata.synthetic(preset, seed=seed)
        fdata.save(ds, output, progress=not quiet)
    except (ValueError, TypeError) as e:
        raise _fail(e) from None
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


def register_demo_step(name: str, step: Callable[..., Any]) -> None:
    """Append a stage to ``fastregen demo`` (see `run_demo`); re-registering a name replaces it."""
    for i, (existing, _) in enumerate(DEMO_STEPS):
        if existing == name:
            DEMO_STEPS[i] = (name, step)
            return
    DEMO_STEPS.append((name, step))


def run_demo(out_dir: Path, seed: int = 0, quiet: bool = False, steps=None) -> dict:
    """The demo pipeline, step by step.

    The data steps: generate the ``"demo"`` synthetic dataset, write it to
    ``out_dir/demo.txt`` (with its planted patterns), print its statistics,
    split it leave-one-out into ``out_dir/split/``. Then each registered
    step of `DEMO_STEPS` (or of ``steps``, a list of (name, step) pairs) runs
    as ``step(result, quiet=quiet)`` and its return value is stored under
    its name.

    Returns
    -------
    dict
        ``dataset`` (SequenceDataset), ``stats`` (DatasetStats), ``split``
        (LeaveOneOutSplit), ``split_sizes`` (dict), ``out_dir`` (Path),
        ``seed`` (int), plus one entry per later step.
    """
    from .. import data as fdata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = fdata.synthetic("demo", seed=seed)
    fdata.save(ds, out_dir / "demo.txt", progress=not quiet)
    _save_patterns(ds, out_dir / "demo.txt.patterns.txt")
    st = fdata.stats(ds)
    typer.echo(f"demo dataset (seed {seed}) -> {out_dir / 'demo.txt'}")
    typer.echo(str(st))
    sp = fdata.leave_one_out(ds)
    sizes = fdata.save_split(sp, out_dir / "split", progress=not quiet)
    typer.echo("split: " + " ".join(f"{k}={v}" for k, v in sizes.items()))
    result = {"dataset": ds, "stats": st, "split": sp, "split_sizes": sizes, "out_dir": out_dir, "seed": seed}
    for name, step in DEMO_STEPS if steps is None else steps:
        result[name] = step(result, quiet=quiet)
    return result


@app.command()
def demo(
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: a fresh temporary folder)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    quiet: bool = _QuietOpt,
) -> None:
    """Run the pipeline on the built-in synthetic demo dataset."""
    out_dir = Path(tempfile.mkdtemp(prefix="fastregen-demo-")) if out is None else out
    run_demo(out_dir, seed=seed, quiet=quiet)
