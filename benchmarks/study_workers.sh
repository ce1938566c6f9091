#!/usr/bin/env bash
# Two one-thread, nice'd study workers in the background (DEVELOPERS.md's compute rule).
#
#   benchmarks/study_workers.sh [SCRIPT ARGS...]   # default: dr4sr_study.py queue
#
# Each worker takes one pending run at a time (`--max-runs 1`), so a new commit's code is
# picked up between runs. The interpreter is read anew before every run from
# benchmarks/runs/python (one line: a python whose fastregen is installed from a fixed
# commit; default `python`), so reinstalling a dev tree never changes a run in progress.
# The script exits 0 after a run, 3 when every pending run is held by another worker,
# 4 when none is pending. Logs: benchmarks/runs/logs/worker-K.log.
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p runs/logs
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(dr4sr_study.py queue)
for k in 0 1; do
  (
    failures=0
    while true; do
      py=$(cat runs/python 2>/dev/null || echo python)
      echo "[$(date -u +%FT%TZ)] worker $k: $py ${args[*]}"
      OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 "$py" "${args[@]}" --threads 1 --max-runs 1
      rc=$?
      case $rc in
        0) failures=0 ;;
        3) sleep 120 ;;
        4) echo "worker $k: nothing pending"; break ;;
        *) failures=$((failures + 1)); [ $failures -ge 3 ] && { echo "worker $k: 3 failures in a row"; break; }; sleep 60 ;;
      esac
    done
  ) >> "runs/logs/worker-$k.log" 2>&1 &
  echo "worker $k: pid $!, log benchmarks/runs/logs/worker-$k.log"
  sleep 20  # the first worker takes the head of the queue before the second looks
done
