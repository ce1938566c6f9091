"""Helpers shared by the benchmark scripts: the machine and commit every result row records,
and the ``KEY=VALUE`` config overrides of their command lines.

The scripts run as ``python benchmarks/<topic>.py``, so this folder is on
``sys.path`` and they import it as ``from _harness import ...``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["baseline_tree", "config_overrides", "cpu_model", "git_commit", "regenerated_sha256", "save_pairs",
           "load_pairs"]


def cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo ("unknown CPU" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def regenerated_sha256(folder) -> str:
    """The sha256 of a finished `fastregen regenerate` folder's regenerated set (its ``regenerated.json``),
    what the studies name a regenerator's output by."""
    import json

    return json.loads((Path(folder) / "regenerated.json").read_text())["output"]["sha256"]


def git_commit(cwd: Path) -> str:
    """Short hash of HEAD of the checkout holding ``cwd`` ("unknown" outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def config_overrides(pairs: list[str], flag: str) -> dict:
    """``["key=value", ...]`` from a repeatable ``flag`` -> ``{key: YAML value}``."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def save_pairs(pairs, num_items: int, path) -> None:
    """Write `fastregen.patterns.PretrainPairs` to ``path`` (.npz) for a worker process (`load_pairs`)."""
    import numpy as np

    np.savez(path, seq_offsets=pairs.sequences.offsets, seq_items=pairs.sequences.items,
             pat_offsets=pairs.patterns.offsets, pat_items=pairs.patterns.items, source=pairs.source,
             num_items=np.int64(num_items))


def load_pairs(path):
    """``(pairs, num_items)`` from `save_pairs`' file: pairs as `fastregen.generator.pretrain` takes them.

    Imports ``fastregen`` when called, so a worker that put another version
    of the package first on ``sys.path`` gets that version's datasets.
    """
    import numpy as np

    from fastregen.data import SequenceDataset

    z = np.load(path)
    n = int(z["num_items"])

    class Pairs:
        sequences = SequenceDataset(z["seq_offsets"], z["seq_items"], num_items=n)
        patterns = SequenceDataset(z["pat_offsets"], z["pat_items"], num_items=n)
        source = z["source"]

        def __len__(self):
            return len(self.source)

    return Pairs(), n


def baseline_tree(commit: str, into: Path) -> Path:
    """``python/`` of ``commit`` (``git archive``) under ``into``, with this checkout's compiled core
    copied in, for a worker that compares an earlier version's Python code with this one's.

    Refuses (SystemExit) when ``csrc/`` differs between ``commit`` and HEAD:
    the copied core would then not be the baseline's.
    """
    import tarfile

    import fastregen._core as core

    root = Path(__file__).resolve().parent.parent
    diff = subprocess.run(["git", "diff", "--quiet", commit, "HEAD", "--", "csrc"], cwd=root)
    if diff.returncode:
        raise SystemExit(f"csrc/ differs between {commit} and HEAD (or {commit} is unknown): "
                         "install the baseline in its own environment instead")
    archive = into / "src.tar"
    subprocess.run(["git", "archive", "-o", str(archive), commit, "python/fastregen"], cwd=root, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    pkg = into / "python" / "fastregen"
    (pkg / Path(core.__file__).name).write_bytes(Path(core.__file__).read_bytes())
    return into / "python"
