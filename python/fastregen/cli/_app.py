"""The ``fastregen`` Typer app itself, which every topic module registers its commands on.

It lives apart from ``cli/__init__.py`` so that the topic modules import it
from here while the package ``__init__`` imports the topics: nothing imports
back into the module that imports it.
"""

from __future__ import annotations

import typer

from ._errors import FastregenGroup

__all__ = ["app"]

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
