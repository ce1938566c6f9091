"""The ``fastregen`` command line: a thin layer over the Python API.

Each topic registers its subcommands in its own module below; commands import
their heavy dependencies (torch, ...) lazily so that ``--help`` is instant.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fastregen",
    help="Data-centric sequential recommendation: regenerate training data (DR4SR, UniDS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Topic modules register their commands on `app` when imported.
from . import _data  # noqa: E402,F401
from . import _entropy  # noqa: E402,F401
from . import _mining  # noqa: E402,F401
from . import _regen  # noqa: E402,F401
from . import _train  # noqa: E402,F401
from . import _unids  # noqa: E402,F401
from . import _plot  # noqa: E402,F401
from . import _demo  # noqa: E402,F401  (registers the demo stages; after the topics)


def main() -> None:
    """Entry point of the ``fastregen`` console script."""
    app()
