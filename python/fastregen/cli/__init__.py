"""The ``fastregen`` command line: a thin layer over the Python API.

The app is `._app.app`; each topic registers its subcommands on it in its own
module below (importing it from `._app`, never from here); commands import
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
    from ._app import app
except KeyboardInterrupt:
    _interrupted()

__all__ = ["app", "main"]

# Topic modules register their commands on `app` (`._app`) when imported.
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
