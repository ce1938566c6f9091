#!/usr/bin/env bash
# The two commands that do everything on a fresh machine:
#   ./run.sh demo   install into .venv, then run the main job on the built-in synthetic data
#   ./run.sh test   install into .venv (with test extras), then run the test suite
# Extra arguments go to `fastregen demo` / `pytest`.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-}"; shift || true
case "$what" in demo|test) ;; *) echo "usage: ./run.sh demo|test [args...]" >&2; exit 2;; esac

PY="${PYTHON:-python3}"
# Progress lines on stderr: pip runs quietly, and building the core takes a
# minute on two cores, which would otherwise look like a hang.
say() { echo "run.sh: $*" >&2; }
if [ ! -x .venv/bin/python ]; then say "creating .venv"; "$PY" -m venv .venv; fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# CPU build of torch first (from local disk here): an unpinned `torch` resolved
# on a fresh machine would pull a multi-GB CUDA build. numpy is not in that wheel.
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
