#!/usr/bin/env bash
# Run every cansync benchmark, each inside the loopback-only namespace (tests/isolate.sh), one after
# the other (never in parallel: they share 2 cores and would skew each other).
#
#   bash bench/run_all.sh            # the issue's sizes and repeats (long: an hour or more)
#   bash bench/run_all.sh --quick    # small sizes, one run each (a few minutes)
#
# Each bench prints its table and writes bench/results/<name>.json; the whole output is also kept in
# bench/results/run_all.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
quick=()
raw_args=()
journal_args=()
inspect_args=()  # the 5M-event journal is built once (minutes) and kept in bench/cache/
reunion_args=()
simulate_args=(--seeds 2000)
if [ "${1:-}" = "--quick" ]; then
    reunion_args=(--runs 2)
    simulate_args=(--seeds 200)
    quick=(--quick)
    raw_args=(--size-mib 64 --unpatched-mib 16 --runs 1)
    journal_args=(--events 50000)
    inspect_args=(--events 200000 --runs 3)
fi
mkdir -p bench/results
log=bench/results/run_all.log
: >"$log"

run() {
    echo "=== $* (load $(cut -d' ' -f1-3 /proc/loadavg)) ===" | tee -a "$log"
    bash tests/isolate.sh "$PY" "$@" 2>&1 | tee -a "$log"
}

run bench/iroh_raw_bench.py "${raw_args[@]}"
run bench/journal_bench.py "${journal_args[@]}"
run bench/inspect_bench.py "${inspect_args[@]}"
run bench/sync_bench.py "${quick[@]}"
run bench/reconnect_bench.py "${quick[@]}"
run bench/resume_bench.py "${quick[@]}"
run bench/memory_bench.py "${quick[@]}"
run bench/scale_bench.py "${quick[@]}"
run bench/bandwidth_bench.py "${quick[@]}"
run bench/reconcile_bench.py "${quick[@]}"
run bench/reunion_bench.py "${reunion_args[@]}"
run bench/status_bench.py "${quick[@]}"
run bench/stop_bench.py "${quick[@]}"
run bench/idle_log_bench.py "${quick[@]}"
run bench/simulate.py "${simulate_args[@]}"
echo "all benchmarks done; results in bench/results/, log in $log"
