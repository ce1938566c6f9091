#!/usr/bin/env bash
# Build the compiled core with AddressSanitizer + UndefinedBehaviorSanitizer
# and run under it the fuzz tests of every _core entry point (tests/fuzz_core.py)
# and the test files of the kernels (no torch: it is not instrumented).
#
#   tools/asan.sh                 # 100,000 fuzz cases + the kernel tests
#   tools/asan.sh 5000            # fewer
#   FUZZ_SEED=7 tools/asan.sh     # another random stream
#
# Run it before each release. It is not part of CI: it needs its own
# instrumented build, and 100,000 cases took 15 minutes on the 2-core VM
# (with another job running; BENCHMARKS.md, "Hardening (issue 21)"). Needs
# the dev environment (.venv from ./run.sh test: numpy, hypothesis,
# pybind11) and gcc or clang.
#
# The sanitized module is built beside the source (build/asan) and imported
# from a scratch copy of the package, so the installed fastregen is left
# alone. Python itself is not instrumented: with gcc the ASan runtime must be
# loaded first, hence LD_PRELOAD; libstdc++ is preloaded with it, since ASan
# intercepts __cxa_throw only in a C++ runtime loaded at start-up (else the
# first C++ exception, every ValueError of the core, aborts the run with
# "CHECK failed: real___cxa_throw"). Leak detection is off (detect_leaks=0):
# CPython keeps interned objects and module state alive until exit by
# design, which LeakSanitizer would report as leaks of the interpreter, not
# of the core. Any ASan or UBSan report aborts the run (halt_on_error,
# -fno-sanitize-recover) with a non-zero exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-100000}"
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
PY="${PYTHON:-python}"
CXX="${CXX:-g++}"

build=build/asan
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cmake -S . -B "$build" -DFASTREGEN_BUILD_PYTHON=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$PY")" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp -r python/fastregen "$scratch/fastregen"
rm -f "$scratch"/fastregen/_core*.so
cp "$build"/_core*.so "$scratch/fastregen/"

case "$CXX" in
  *clang*) runtime="$("$CXX" -print-file-name=libclang_rt.asan-x86_64.so)" ;;
  *) runtime="$("$CXX" -print-file-name=libasan.so)" ;;
esac
runtime="$runtime $("$CXX" -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# An editable install puts an import hook ahead of sys.path: drop it, so that
# `import fastregen` finds the scratch copy with the sanitized core.
bootstrap='
import sys
scratch = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, scratch)
sys.path.insert(0, "tests")
import fastregen._core as core
assert core.__file__.startswith(scratch), core.__file__
print(f"sanitized core: {core.__file__}", flush=True)
'
sanitized() {  # python code to run after the bootstrap, then its arguments
  local code="$1"; shift
  # Subprocesses the tests start (conftest.run_python) import the scratch copy too.
  FASTREGEN_IMPORT_FROM="$scratch" LD_PRELOAD="$runtime" "$PY" -c "$bootstrap$code" "$scratch" "$@"
}
# 1. the fuzzer
sanitized '
import runpy
sys.argv = ["fuzz_core.py", "--examples", sys.argv[2]]
runpy.run_path("tests/fuzz_core.py", run_name="__main__")
' "$examples"
# 2. the kernel tests, in a fresh interpreter (pytest must import hypothesis itself)
sanitized '
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_core_safety.py", "tests/test_mining.py",
                      "tests/test_data_textio.py", "tests/test_data_io.py", "tests/test_dataset.py",
                      "tests/test_entropy.py"]))
'
