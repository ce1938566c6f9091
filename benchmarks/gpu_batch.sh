#!/usr/bin/env bash
# Run the pending runs of a `fastregen compare` study on a lent GPU machine, for at most 12 minutes,
# and leave their rows and ranks in $OUT (the device tool's output folder).
#
#   OUT=... benchmarks/gpu_batch.sh DATA --out DIR [other `fastregen compare` options]
#
# e.g. through the device tool, from the repository root (DATA and DIR travel with the working tree):
#   benchmarks/gpu_batch.sh benchmarks/results/compare/beauty.txt --out benchmarks/results/compare/beauty \
#       --methods original dr4sr --seeds 3
#
# Environment:
#   OUT        required: where results.csv, ranks.tar.gz (DIR/ranks), report.md, compare.png, study.json
#              and log.txt are copied (the device tool brings back at most 8 files, two folders deep)
#   BUDGET_S   hard wall-clock cap of the training, default 720 (12 min): `timeout` stops every worker
#   MARGIN_S   no run starts in the last MARGIN_S seconds of the budget, default 240 (--stop-after)
#   WORKERS    runs at once on the one GPU (one process each), default 4
#   DRY_RUN=1  plumbing check on this machine: no install, --device cpu --workers 1 (tests/test_compare.py)
#
# The GPU image's python3 holds torch, scikit-build-core, pybind11, cmake and scipy, and nothing can be
# fetched there, so fastregen is built from this tree into a venv that sees the image's packages
# (--system-site-packages, --no-deps --no-build-isolation --no-index). Rows record the device (the CUDA
# device's name), so `fastregen compare` pairs a GPU run only with a GPU run of the same kind; a run
# cut by the budget leaves no row and is trained again by the next batch.
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
BUDGET_S=${BUDGET_S:-720}
MARGIN_S=${MARGIN_S:-240}
WORKERS=${WORKERS:-4}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1

dir=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --out | -o) dir="${args[$((i + 1))]:-}" ;;
    --out=*) dir="${args[$i]#--out=}" ;;
  esac
done
[ -n "$dir" ] || { echo "gpu_batch.sh: pass --out DIR (the comparison folder)"; exit 2; }

if [ "${DRY_RUN:-0}" = 1 ]; then
  py=${PYTHON:-python}
  run_opts=(--device cpu --workers 1)
else
  py=python3
  "$py" -c "import torch; assert torch.cuda.is_available()" ||
    { echo "gpu_batch.sh: $py has no torch seeing a GPU; nothing can be installed here"; exit 2; }
  if ! "$py" -c "import fastregen._core" 2>/dev/null; then
    echo "[$(date -u +%T)] building fastregen into /tmp/fastregen-venv"
    "$py" -m venv --system-site-packages /tmp/fastregen-venv &&
      CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) /tmp/fastregen-venv/bin/pip install -q --no-deps --no-build-isolation \
        --no-index . || { echo "gpu_batch.sh: building fastregen failed"; exit 2; }
    py=/tmp/fastregen-venv/bin/python
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  run_opts=(--device cuda --workers "$WORKERS")
fi
"$py" -c "import torch, fastregen; print('torch', torch.__version__, 'fastregen', fastregen.__version__)"

echo "[$(date -u +%T)] training pending runs for at most ${BUDGET_S} s (none starts after $((BUDGET_S - MARGIN_S)) s)"
timeout -k 20 "$BUDGET_S" "$py" -m fastregen compare "$@" "${run_opts[@]}" --stop-after "$((BUDGET_S - MARGIN_S))"
rc=$?
[ $rc = 124 ] && echo "gpu_batch.sh: the budget ran out: the runs in progress were stopped (no row)"
# The report of whatever is done (no run starts: --stop-after 0).
"$py" -m fastregen compare "$@" "${run_opts[@]}" --workers 1 --stop-after 0 --quiet ||
  { r=$?; if [ $rc = 0 ] || [ $rc = 124 ]; then rc=$r; fi; }

for f in results.csv report.md compare.png study.json; do
  [ -f "$dir/$f" ] && cp "$dir/$f" "$OUT/"
done
[ -d "$dir/ranks" ] && tar -czf "$OUT/ranks.tar.gz" -C "$dir" ranks
echo "[$(date -u +%T)] rows: $(($(wc -l < "$dir/results.csv" 2>/dev/null || echo 1) - 1)); copied to $OUT"
[ $rc = 124 ] && exit 0  # a cut budget is the normal end of a batch
exit $rc
