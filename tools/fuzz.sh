#!/usr/bin/env bash
# Fuzz every entry point of the compiled core against fastregen.reference
# (tests/fuzz_core.py), in its own process so that a crash is a finding and
# not the end of the caller.
#
#   tools/fuzz.sh                 # 100,000 cases, seed 0 (about 4 minutes on 2 cores)
#   tools/fuzz.sh 20000 7         # 20,000 cases, seed 7
#
# The suite runs a bounded version (tests/test_fuzz_core.py, ~15,000 cases);
# tools/asan.sh runs this one under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
FUZZ_SEED="${2:-${FUZZ_SEED:-0}}" exec "${PYTHON:-python}" tests/fuzz_core.py --examples "${1:-100000}"
