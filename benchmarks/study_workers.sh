#!/usr/bin/env bash
# Two one-thread, nice'd study workers in the background (DEVELOPERS.md's compute rule).
#
#   benchmarks/study_workers.sh
#
# Each worker takes one pending run at a time from the first queue below that has one, in
# issue 26's order: first stage 2's two runs of the authors' own trainer (`authors.py queue`, on the
# original split and on fastregen's DR4SR set; their checkout is named in benchmarks/runs/authors.path;
# first because stage 1 is complete and the core queue behind it holds ~30 h, which would leave
# stage 2 unanswered for sessions), then DR4SR stages 1-4 (`--core-only`: Beauty SASRec seeds, the
# authors' training scheme, Beauty GRU4Rec, Toys/Sports), then DR4SR+ (stage 5), then UniDS on ml-100k (stage 6), then
# DR4SR+'s exploratory runs (`dr4srplus.py explore`, post hoc, outside the verdict), then the rest of the DR4SR plan.
# A queue script exits 0 after a run, 3 when every pending run is held by the other worker (or not ready), 4 when it
# has none pending. After every run the worker starts again from the first queue, so new
# commits' code and declarations are picked up between runs. The interpreter is read anew
# before every run from benchmarks/runs/python (one line: a python whose fastregen is installed
# from a fixed commit; default `python`; for `authors.py` it must also have the authors' extra
# packages, pandas, torchmetrics and matplotlib), so reinstalling a dev tree never changes a run in
# progress. A killed run resumes from its last epoch: fastregen's runs from fit_and_evaluate's
# checkpoint, the authors' trainer from authors.py's (patch 10, runs/authors/resume/).
# Logs: benchmarks/runs/logs/worker-K.log.
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p runs/logs
QUEUES=(
  "authors.py queue"
  "dr4sr_study.py queue --core-only"
  "dr4srplus.py queue"
  "unids.py queue"
  "dr4srplus.py explore"
  "dr4sr_study.py queue"
)
for k in 0 1; do
  (
    failures=0
    while true; do
      py=$(cat runs/python 2>/dev/null || echo python)
      ran=0; waiting=0; failed=0
      for q in "${QUEUES[@]}"; do
        echo "[$(date -u +%FT%TZ)] worker $k: $py $q"
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 "$py" $q --threads 1 --max-runs 1
        case $? in
          0) ran=1; break ;;
          3) waiting=1 ;;
          4) ;;
          *) failed=1 ;;
        esac
      done
      if [ $ran = 1 ]; then failures=0; continue; fi
      if [ $failed = 1 ]; then
        failures=$((failures + 1))
        [ $failures -ge 3 ] && { echo "worker $k: 3 failing rounds in a row, stopping"; break; }
        sleep 60
      elif [ $waiting = 1 ]; then sleep 120
      else echo "worker $k: nothing pending"; break
      fi
    done
  ) >> "runs/logs/worker-$k.log" 2>&1 &
  echo "worker $k: pid $!, log benchmarks/runs/logs/worker-$k.log"
  sleep 20  # the first worker takes the head of the queue before the second looks
done
