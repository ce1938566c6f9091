"""Shared fixtures: seeds, the shared benchmark data, small synthetic datasets."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

# ../shared/data beside the repository (CI layout); overridable for other layouts.
SHARED_DATA = Path(
    os.environ.get("FASTREGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def shared_file(name: str) -> Path:
    """Path of a file in ../shared/data, skipping the test with a reason if it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"needs {path} (the shared benchmark data is not beside this checkout)")
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture
def beauty_path() -> Path:
    return shared_file("beauty.txt")


def run_python(code: str, timeout: float = 120, env: dict | None = None, input: str | None = None):
    """Run ``code`` in a fresh interpreter; return the CompletedProcess (text output).

    For tests whose failure mode is a crash (a segfault would end the whole
    test session) or a hang (the timeout turns it into a failure). Under
    tools/asan.sh (FASTREGEN_IMPORT_FROM set) the child imports the same
    sanitized copy of the package as the parent, not an editable install's.
    """
    import subprocess
    import sys

    scratch = os.environ.get("FASTREGEN_IMPORT_FROM")
    if scratch:
        code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
                f"sys.path.insert(0, {scratch!r})\n") + code
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, input=input,
        env=None if env is None else {**os.environ, **env},
    )
