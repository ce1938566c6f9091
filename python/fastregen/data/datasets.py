"""Public datasets fetched on demand into a cache outside the repository (never committed).

``ml-100k``
    MovieLens 100K as RecBole ships it inside its wheel
    (``recbole/dataset_example/ml-100k/ml-100k.inter`` and ``.item``): 943
    users, 1,682 items, 100,000 ratings with timestamps, movie genres as the
    item category. Fetched with pip's ordinary client (``pip download
    recbole==1.2.1 --no-deps``), the two files unzipped and checked against
    their SHA-256.

>>> from fastregen.data import datasets                       # doctest: +SKIP
>>> ds = datasets.load("ml-100k")                               # doctest: +SKIP

The cache is ``$FASTREGEN_CACHE`` or ``~/.cache/fastregen``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .dataset import SequenceDataset

__all__ = ["DATASETS", "cache_dir", "fetch", "load", "FetchError"]

DATASETS = {
    "ml-100k": {
        "package": "recbole==1.2.1",
        "wheel": "recbole-1.2.1-py3-none-any.whl",
        "files": {
            "recbole/dataset_example/ml-100k/ml-100k.inter":
                "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            "recbole/dataset_example/ml-100k/ml-100k.item":
                "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        },
        "main": "ml-100k.inter",
    },
}


class FetchError(RuntimeError):
    """A dataset could not be fetched (offline, or the download did not match)."""


def cache_dir() -> Path:
    """``$FASTREGEN_CACHE`` or ``~/.cache/fastregen``."""
    return Path(os.environ.get("FASTREGEN_CACHE") or Path.home() / ".cache" / "fastregen")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(name: str, cache: str | os.PathLike | None = None, *, quiet: bool = True) -> Path:
    """The path of dataset ``name``'s main file, downloading it into the cache once.

    Parameters
    ----------
    name : {"ml-100k"}
    cache : path, optional
        Default `cache_dir()`; the files go to ``cache/name/``.
    quiet : bool, default True
        Hide pip's output.

    Raises
    ------
    ValueError
        Unknown ``name``.
    FetchError
        pip could not download the package (offline?), or a file's SHA-256
        differs from the recorded one.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = Path(cache or cache_dir()) / name
    targets = {member: folder / Path(member).name for member in spec["files"]}
    if all(p.exists() for p in targets.values()):
        return folder / spec["main"]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", spec["package"], "--no-deps", "-d", tmp]
        if quiet:
            cmd.append("-q")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheel = Path(tmp) / spec["wheel"]
        if proc.returncode != 0 or not wheel.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FetchError(f"could not download {spec['package']} for {name} with pip (offline?): {tail[0]}")
        with zipfile.ZipFile(wheel) as z:
            for member, want in spec["files"].items():
                data = z.read(member)
                if _sha256(data) != want:
                    raise FetchError(f"{member} in {spec['wheel']} has SHA-256 {_sha256(data)}, expected {want}")
                part = targets[member].with_suffix(targets[member].suffix + ".part")
                part.write_bytes(data)
                part.replace(targets[member])
    return folder / spec["main"]


def load(name: str, cache: str | os.PathLike | None = None) -> SequenceDataset:
    """Fetch (once) and read dataset ``name`` (``ml-100k``: `fastregen.data.load(..., format="recbole")`)."""
    from .io import load as load_file

    path = fetch(name, cache)
    ds = load_file(path, format="recbole")
    return ds.replace(name=name)
