#!/usr/bin/env bash
# Runs the test suite (or the tests named) several times in a row with every CPU core kept busy, to show
# that no test depends on timing. Each run must pass; the first failure stops it.
#   scripts/stress_suite.sh                      the whole suite, 3 runs
#   RUNS=5 scripts/stress_suite.sh tests/test_x.py -k name
# The load: stress-ng (Debian package, installed by scripts/install.sh --test), else one busy loop a core.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
cores=$(nproc)
hogs=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_hogs EXIT

if command -v stress-ng >/dev/null; then
  stress-ng --cpu "$cores" --quiet &
  hogs+=($!)
  load="stress-ng --cpu $cores"
else
  for _ in $(seq "$cores"); do
    python3 -c 'while True: pass' &
    hogs+=($!)
  done
  load="$cores busy loops"
fi

export QT_QPA_PLATFORM=offscreen
for run in $(seq "$runs"); do
  echo "stress_suite: run $run of $runs under $load"
  started=$(date +%s)
  .venv/bin/python -m pytest -q "$@"
  echo "stress_suite: run $run passed in $(( $(date +%s) - started )) s"
done
echo "stress_suite: $runs of $runs runs passed under $load"
