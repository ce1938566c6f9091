"""The sdist holds exactly the tracked files of its allowlisted folders, however dirty the checkout (issue 29)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout (to know the tracked files)")
    return sorted(p for p in out.decode().split("\0") if p and (ROOT / p).is_file())


# What a build, a test run and the README's commands leave in the folders the sdist takes.
JUNK = [
    "python/fastregen/__pycache__/io.cpython-311.pyc",
    "python/fastregen/_core.cpython-311-x86_64-linux-gnu.so",
    "tests/__pycache__/test_x.cpython-311-pytest-8.0.pyc",
    "benchmarks/runs/beauty/metrics.jsonl",
    "benchmarks/fig.png",
    "tests/stray.tsv",
    "build/cp311/CMakeCache.txt",
    "entropy.png",
    "notes.txt",
]


def test_sdist_from_a_dirty_tree_holds_the_tracked_files_only(tmp_path):
    pytest.importorskip("scikit_build_core", reason="the [test] extra installs scikit-build-core")
    tracked = _tracked()
    src = tmp_path / "src"
    for rel in tracked:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    for rel in JUNK:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"junk")
    code = "from scikit_build_core.build import build_sdist; print(build_sdist('dist'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip().splitlines()[-1]
    with tarfile.open(src / "dist" / name) as tar:
        members = sorted(m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile())
    # the allowlisted top-level entries of pyproject.toml
    excludes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["sdist"]["exclude"]
    allowed = {e[2:].rstrip("/") for e in excludes if e.startswith("!/")}
    expected = sorted(p for p in tracked if p.split("/", 1)[0] in allowed)
    assert "python/fastregen/__init__.py" in expected and "csrc/bindings.cpp" in expected
    assert members == sorted(expected + ["PKG-INFO"]), sorted(set(members) ^ set(expected + ["PKG-INFO"]))


def test_the_test_extra_holds_what_tools_asan_needs():
    # tools/asan.sh's header says the .venv of `./run.sh test` is enough
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    names = {req.split(">")[0].split("=")[0].split(";")[0].strip() for req in extra}
    script = (ROOT / "tools" / "asan.sh").read_text()
    assert "-m pybind11 --cmakedir" in script and "pybind11" in names
    assert "hypothesis" in names


def test_wheels_exclude_libgomp_everywhere_they_are_repaired():
    # one OpenMP runtime per process: the system's, beside torch's own (README, "Wheels and platforms")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert "--exclude libgomp.so.1" in cfg["linux"]["repair-wheel-command"]
    run_sh = (ROOT / "run.sh").read_text()
    repairs = [line for line in run_sh.splitlines() if line.strip().startswith("auditwheel repair")]
    assert repairs and all("--exclude libgomp.so.1" in line for line in repairs), repairs
