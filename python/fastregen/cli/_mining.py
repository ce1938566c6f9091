"""Mining subcommands: ``mine`` (span-constrained patterns) and ``pairs`` (pre-training pairs)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from typing import Optional

from ._app import app
from ._options import (
    FormatOpt,
    ItemOpt,
    RemapOpt,
    TimeOpt,
    UserOpt,
    check_output_file,
    load_dataset,
)

# Every data command turns its progress bars off with --quiet; --no-progress
# is the older spelling of the same switch.
_QUIET_HELP = "No progress bars (same as --no-progress)."

_DROP_LAST_HELP = (
    "Items dropped from the end of each sequence before use: 2 = the leave-one-out "
    "validation and test targets, as DR4SR does; 0 = use the sequences whole."
)


def _load_input(data: Path, drop_last: int, progress: bool, fmt="auto", user=None, item=None, timestamp=None,
                remap=None):
    # Same reader and options as the data commands.
    ds = load_dataset(data, fmt, user, item, timestamp, remap, quiet=not progress)
    if not drop_last:
        return ds
    cut = ds.slice_sequences(0, -drop_last)
    if len(ds) and cut.num_interactions == 0:
        raise ValueError(f"{data}: --drop-last {drop_last} leaves no item: its {len(ds):,} sequences hold at most "
                         f"{int(ds.lengths.max())} items; pass a smaller --drop-last (0 uses them whole)")
    return cut


@app.command()
def mine(
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    max_span: int = typer.Option(5, "--max-span", min=2, help="alpha: an occurrence fits in this many consecutive positions."),
    min_support: int = typer.Option(2, "--min-support", min=1, help="beta: minimum number of sequences containing a pattern."),
    min_len: int = typer.Option(2, "--min-len", min=1, help="Shortest pattern kept."),
    max_len: int = typer.Option(None, "--max-len", min=1, help="Longest pattern kept (default: --max-span)."),
    drop_last: int = typer.Option(2, "--drop-last", min=0, help=_DROP_LAST_HELP),
    threads: int = typer.Option(None, "--threads", min=1, help="OpenMP threads (default: all cores)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write patterns here (support<TAB>items per line)."),
    top: int = typer.Option(10, "--top", min=0, help="Print the N most supported patterns."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=_QUIET_HELP),
    max_patterns: int = typer.Option(
        20_000_000, "--max-patterns", min=0, help="Stop with an error past this many patterns (0: no limit)."
    ),
) -> None:
    """Mine span-constrained sequential patterns (DR4SR §4.2.1; same result as Seq2Pat)."""
    from .. import patterns as mining

    progress = progress and not quiet
    check_output_file(out, "--out")
    ds = _load_input(data, drop_last, progress, format, user, item, timestamp, remap)
    t0 = time.perf_counter()
    pats = mining.mine_patterns(
        ds, max_span=max_span, min_support=min_support, min_len=min_len, max_len=max_len,
        threads=threads, progress=progress, max_patterns=max_patterns or None,
    )
    seconds = time.perf_counter() - t0
    if out is not None:  # written before anything is printed: a closed stdout (`| head`) must not lose it
        pats.save(out)
    typer.echo(
        f"{len(pats):,} patterns from {len(ds):,} sequences ({ds.num_interactions:,} interactions) "
        f"in {seconds:.2f} s (max_span={max_span}, min_support={min_support})"
    )
    for length, count in pats.counts_by_length().items():
        typer.echo(f"  length {length}: {count:,}")
    if top > 0 and len(pats):
        typer.echo(f"top {min(top, len(pats))} by support:")
        for pattern, support in pats.top(top):
            typer.echo(f"  {support:>8,}  {' '.join(map(str, pattern))}")
    if out is not None:
        typer.echo(f"wrote {out}")


@app.command()
def pairs(
    data: Path = typer.Argument(..., help="Dataset file (one user per line: user item item ...)."),
    patterns: Path = typer.Option(..., "--patterns", "-p", help="Patterns file written by `fastregen mine`."),
    out: Path = typer.Option(None, "--out", "-o", help="Write pairs: .npz (arrays) or text (source<TAB>sequence<TAB>pattern)."),
    max_per_sequence: int = typer.Option(10, "--max-per-sequence", min=1, help="At most this many patterns per sequence."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**64 - 1, help="Seed of the random choice among a sequence's patterns."),
    max_len: int = typer.Option(50, "--max-len", min=1, help="Keep the last N items of each sequence."),
    span: str = typer.Option(
        "alpha", "--span",
        help="Containment test: 'alpha' (within the mined span), 'none' (plain subsequence, as the DR4SR script), or an int.",
    ),
    drop_last: int = typer.Option(2, "--drop-last", min=0, help=_DROP_LAST_HELP),
    threads: int = typer.Option(None, "--threads", min=1, help="OpenMP threads (default: all cores)."),
    format: str = FormatOpt,
    user: Optional[str] = UserOpt,
    item: Optional[str] = ItemOpt,
    timestamp: Optional[str] = TimeOpt,
    remap: Optional[bool] = RemapOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=_QUIET_HELP),
) -> None:
    """Build the (sequence, pattern) pairs the DR4SR regenerator is pre-trained on."""
    import numpy as np

    from .. import patterns as mining
    from .._io import atomic_open

    progress = progress and not quiet
    span_arg: str | int | None
    if span.lower() == "alpha":
        span_arg = "alpha"
    elif span.lower() == "none":
        span_arg = None
    else:
        try:
            span_arg = int(span)
        except ValueError:
            raise typer.BadParameter(f"--span must be 'alpha', 'none' or an int, got {span!r}") from None
        if span_arg < 2:
            raise typer.BadParameter(f"--span must be 'alpha', 'none' or an int >= 2, got {span_arg}")
    check_output_file(out, "--out")
    pats = mining.Patterns.load(patterns)
    if span_arg == "alpha" and pats.max_span is None:
        raise ValueError(f"{patterns}: records no max_span (the '# fastregen patterns' header line `fastregen mine` "
                         "writes), so --span alpha has no span; pass --span <int> or --span none")
    ds = _load_input(data, drop_last, progress, format, user, item, timestamp, remap)
    result = mining.pretrain_pairs(
        ds, pats, max_per_sequence=max_per_sequence, seed=seed, max_len=max_len,
        span=span_arg, threads=threads, progress=progress,
    )
    if out is not None:  # written before anything is printed (see `mine`)
        if out.suffix == ".npz":
            with atomic_open(out, "wb") as f:
                np.savez(
                    f,
                    sequence_offsets=result.sequences.offsets,
                    sequence_items=result.sequences.items,
                    pattern_offsets=result.patterns.offsets,
                    pattern_items=result.patterns.items,
                    source=result.source,
                    pattern_index=result.pattern_index,
                )
        else:
            with atomic_open(out, "w") as f:
                for r in range(len(result)):
                    seq = " ".join(map(str, result.sequences[r].tolist()))
                    pat = " ".join(map(str, result.patterns[r].tolist()))
                    f.write(f"{int(result.source[r])}\t{seq}\t{pat}\n")
    covered = int(np.unique(result.source).size)
    typer.echo(
        f"{len(result):,} pairs from {covered:,} of {len(ds):,} sequences "
        f"({len(result) / max(covered, 1):.2f} per covered sequence), {len(pats):,} patterns, span={span}"
    )
    if out is None:
        return
    typer.echo(f"wrote {out}")
