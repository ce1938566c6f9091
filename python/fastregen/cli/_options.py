"""Options and checks every subcommand shares.

Every command that reads a dataset takes the same reading options
(``--format``, ``--user``, ``--item``, ``--timestamp``, ``--remap``) and
every command takes ``--quiet``; outputs are checked before any work starts,
so a run never computes for an hour and then fails to write. Errors are
plain exceptions: `._errors.FastregenGroup` reports them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import typer

__all__ = [
    "FormatOpt", "UserOpt", "ItemOpt", "TimeOpt", "RemapOpt", "QuietOpt", "ModelOpt", "MODEL_NAMES",
    "load_dataset", "check_output_file", "check_output_dir",
]

_FORMAT_HELP = "auto, lines, pairs, csv, tsv, parquet or recbole (auto: by extension and content)."
FormatOpt = typer.Option("auto", "--format", "-f", help=_FORMAT_HELP)
UserOpt = typer.Option(None, "--user", help="User column of a csv/tsv/parquet table.")
ItemOpt = typer.Option(None, "--item", help="Item column of a csv/tsv/parquet table.")
TimeOpt = typer.Option(None, "--timestamp", help="Timestamp column of a table (sorts each user's items).")
RemapOpt = typer.Option(
    None, "--remap/--no-remap",
    help="Renumber the items 1..N in increasing order of their id (for sparse, huge or string ids; "
         "outputs then use the new ids). Default: only for tables.",
)
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")

#: The registered target models (`fastregen.models.available_models`), spelled
#: out so that ``--help`` needs no torch import; a test keeps them equal.
MODEL_NAMES = ("cl4srec", "fmlp", "gnn", "gru4rec", "hstu", "llama", "sasrec")
ModelOpt = typer.Option("sasrec", "--model", "-m",
                        help=f"Target model: {', '.join(MODEL_NAMES)} (`fastregen models` lists them).")


def parse_sets(pairs: list[str]) -> dict:
    """``KEY=VALUE`` options (``--set`` and its kin) -> ``{key: YAML value}``; BadParameter names a bad pair."""
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise typer.BadParameter(f"--set {key.strip()}: {value!r} is not a YAML value") from None
    return out


def config_values(cls, path: Path | None, pairs: list[str] = ()) -> dict:
    """The fields of a config file of dataclass ``cls`` (``--config``; none when ``path`` is None),
    then the ``KEY=VALUE`` pairs over them (unchecked: `fastregen.config.config_from_dict` names
    unknown keys)."""
    from ..config import config_to_dict, load_config

    values = config_to_dict(load_config(cls, path)) if path is not None else {}
    values.update(parse_sets(list(pairs)))
    return values


def load_dataset(path: Path, fmt: str = "auto", user=None, item=None, timestamp=None, remap=None,
                 quiet: bool = False):
    """`fastregen.data.load` with the command's reading options."""
    from .. import data

    return data.load(path, format=fmt, user=user, item=item, timestamp=timestamp, remap=remap,
                     progress=not quiet)


def _check_can_create(path: Path, flag: str) -> None:
    """``path`` (missing folders included) can be created: its nearest existing ancestor is a writable folder."""
    p = Path(os.path.abspath(path)).parent
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot create {flag} {path} below it: it is a file, not a folder",
                                 os.fspath(p))
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot create {flag} {path} in it", os.fspath(p))


def check_output_file(path: Path | None, flag: str) -> None:
    """Fail now if ``path`` cannot be written as a file: a folder, a FIFO or device, below a file, unwritable."""
    if path is None:
        return
    from .._io import output_target

    target, existing = output_target(path)  # refuses folders and nodes that are not regular files
    if existing is not None and not os.access(target, os.W_OK) and not os.access(target.parent, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot replace {flag}", os.fspath(path))
    _check_can_create(target, flag)


def check_output_dir(path: Path | None, flag: str) -> None:
    """Fail now if ``path`` cannot be used as an output folder (it is a file, or cannot be created)."""
    if path is None:
        return
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(errno.EEXIST, f"{flag} must name a folder, and this is a file", os.fspath(path))
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, f"cannot write in the {flag} folder", os.fspath(path))
        return
    _check_can_create(path, flag)
