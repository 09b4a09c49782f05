#!/usr/bin/env bash
# Failover benchmark (issue 4): scenarios 1 (frozen primary, SIGSTOP), 2 (kill -9 of the
# postmaster) and 5 (planned switchover) for the profiles fast and default, each on a fresh
# two-node PostgreSQL 15 cluster with pgpivot (failover_mode = promote) in front and a
# bounded writer that records every acknowledged write (bench/failover.py). Prints, per
# scenario and profile: fault -> detection, fault -> first write committed on the new
# primary, client errors by SQLSTATE, clients that had to reconnect, acknowledged writes
# lost (timings: medians of RUNS runs); and writes the table to
# bench/results/failover-<date>.md. Asserts nothing.
#
#   bench/failover.sh BUILD_DIR      (make bench-failover)
#
# Knobs (environment): SCENARIOS="sigstop kill9 switchover" PROFILES="fast default"
#   CLIENTS=4 RECOVERY_LIMIT=30 (s to wait for writes on the new primary per run)
#   RUNS=3 (per cell; medians reported) RUN_BUDGET=540 (s; no run starts after it).
# Bounded: the whole run is killed after 10 minutes (BENCH_LIMIT=600 s).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
[ -x "$build/src/pgpivot" ] || { echo "bench-failover: no $build/src/pgpivot (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-failover: run as root (PostgreSQL runs as postgres via runuser)" >&2; exit 1; }
/usr/bin/python3 -c 'import psycopg' 2>/dev/null ||
  { echo "bench-failover: python3-psycopg is missing (scripts/deps.sh)" >&2; exit 1; }
exec timeout --kill-after=10 "${BENCH_LIMIT:-600}" /usr/bin/python3 "$here/failover.py" \
  "$(cd "$build" && pwd)" "$here/results"
