"""The ``fastregen`` command line: a thin layer over the Python API.

Each topic registers its subcommands in its own module below; commands import
their heavy dependencies (torch, ...) lazily so that ``--help`` is instant.
User errors are reported as one ``error: FILE[:LINE]: ...`` line with exit
code 2 by the command group itself (`._errors.FastregenGroup`), so commands
do not catch them one by one.
"""

from __future__ import annotations

import sys


def _interrupted() -> None:
    # Ctrl-C while the CLI's modules load (typer, the topics): no traceback.
    sys.stderr.write("\ninterrupted\n")
    raise SystemExit(130)


try:
    import typer

    from ._errors import FastregenGroup
except KeyboardInterrupt:
    _interrupted()

app = typer.Typer(
    name="fastregen",
    help="Data-centric sequential recommendation: regenerate training data (DR4SR, UniDS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=FastregenGroup,
)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"fastregen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Data-centric sequential recommendation: regenerate training data (DR4SR, UniDS)."""


# Topic modules register their commands on `app` when imported.
try:
    from . import _data  # noqa: E402,F401
    from . import _entropy  # noqa: E402,F401
    from . import _mining  # noqa: E402,F401
    from . import _regen  # noqa: E402,F401
    from . import _train  # noqa: E402,F401
    from . import _personalize  # noqa: E402,F401
    from . import _unids  # noqa: E402,F401
    from . import _compare  # noqa: E402,F401
    from . import _plot  # noqa: E402,F401  (the `plot` sub-app)
    from . import _demo  # noqa: E402,F401  (registers the demo stages; after the topics)
except KeyboardInterrupt:
    _interrupted()


def main() -> None:
    """Entry point of the ``fastregen`` console script."""
    app()
