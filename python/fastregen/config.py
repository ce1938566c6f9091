"""Config dataclasses <-> YAML, and the provenance every output records.

Every stage takes a dataclass config. `save_config` / `load_config` turn them
into YAML and back (validated: unknown keys are an error), and `provenance`
builds the record written beside each output (config, version, seed, inputs).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import platform
import stat
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ._version import __version__

__all__ = ["config_to_dict", "config_identity", "config_from_dict", "save_config", "load_config", "provenance",
           "file_sha256", "data_source", "check_int_fields"]

C = TypeVar("C")


def config_to_dict(config) -> dict:
    """A plain dict (YAML-safe: lists, not tuples) of a dataclass config."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a dataclass config, got {type(config).__name__}")

    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return os.fspath(v)
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def check_int_fields(config, bounds: dict) -> None:
    """Raise TypeError (not an int; a bool is not one) or ValueError (below its bound) naming the first
    field of ``bounds`` (``{field: lowest allowed}``) of ``config`` that fails: the configs' shared check."""
    for name, lo in bounds.items():
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {v!r}")
        if v < lo:
            raise ValueError(f"{name} must be >= {lo}, got {v}")


def config_identity(config) -> dict:
    """`config_to_dict` without the options a later version added while they keep the earlier behaviour.

    What fingerprints and run ids hash: a config class lists in its
    ``ADDED_OPTIONS`` (``{field: value}``) the fields added after stage
    records and run ids existed, each with the value that computes what the
    code did before the field existed. At that value the field stays out of
    the identity, so a stage finished or a run recorded before an upgrade is
    still found after it (as an epoch checkpoint matches a newer field at its
    default, `fastregen.training.checkpoint.fingerprint_diff`); set to
    anything else, it enters and makes a new fingerprint.
    """
    added = getattr(type(config), "ADDED_OPTIONS", {})
    return {k: v for k, v in config_to_dict(config).items() if not (k in added and v == added[k])}


def config_from_dict(cls: type[C], values: dict) -> C:
    """Build ``cls`` from a dict, rejecting unknown keys by name."""
    if not isinstance(values, dict):
        raise TypeError(f"a {cls.__name__} config must be a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        hint = hints.get(key)
        if (hint is tuple or typing.get_origin(hint) is tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def save_config(config, path) -> None:
    """Write a dataclass config as YAML (atomically)."""
    from ._io import atomic_write_text

    text = f"# {type(config).__name__}, fastregen {__version__}\n" + yaml.safe_dump(
        config_to_dict(config), sort_keys=False
    )
    atomic_write_text(path, text)


def load_config(cls: type[C], path) -> C:
    """Read a YAML file written by `save_config` (or by hand) into ``cls``.

    Errors name the file (and the line of a YAML syntax error): ValueError
    for bad YAML or values, TypeError for values of the wrong type.
    """
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else f"{path}"
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ValueError(f"{where}: not valid YAML ({problem}); fix the {cls.__name__} file") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text; is this a {cls.__name__} YAML file?") from None
    try:
        return config_from_dict(cls, values)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    except TypeError as e:
        raise TypeError(f"{path}: {e}") from None


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_source(data, path=None) -> dict:
    """Where a dataset came from, for a provenance record.

    ``path`` (else ``data.name``, the path a dataset was loaded from) as an
    absolute path with the file's size in bytes and SHA-256 when it names
    a regular file: a relative path means nothing once the run folder moves,
    and the hash tells whether the file changed since. Otherwise just the
    name (``{"path": "<in-memory>"}`` for a dataset built in memory).
    """
    name = os.fspath(path) if path is not None else (getattr(data, "name", "") or "<in-memory>")
    try:
        st = os.stat(name)
    except (OSError, ValueError):
        return {"path": name}
    if not stat.S_ISREG(st.st_mode):  # a pipe or device: no size or hash to record
        return {"path": os.path.abspath(name)}
    return {"path": os.path.abspath(name), "bytes": st.st_size, "file_sha256": file_sha256(name)}


def provenance(config=None, **extra: Any) -> dict:
    """What made an output: fastregen version, time, platform, config and any extra fields."""
    record = {
        "fastregen_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if config is not None:
        record["config_type"] = type(config).__name__
        record["config"] = config_to_dict(config)
    record.update(extra)
    return record
