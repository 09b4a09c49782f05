#!/usr/bin/env bash
# Side-by-side benchmark: PostgreSQL direct vs PgBouncer vs pgpivot, in ONE run, on loopback.
# Starts a private PostgreSQL 15 (tuned like ../shared research baseline: initdb defaults,
# fsync on, shared_buffers 256MB), PgBouncer and pgpivot in front of it, loads pgbench data,
# runs an interleaved pgbench matrix, and reports TPS, latency, proxy CPU and RSS as ratios
# against direct and against PgBouncer. Stops everything it started, even on failure.
# Does not assert anything about speed: it measures and reports (see bench/README.md).
#
#   bench/run.sh BUILD_DIR           results in BUILD_DIR/bench/ (results.csv, summary.md)
#   bench/run.sh --summary CSV       only rebuild the Markdown summary from a results.csv
#
# Knobs (environment): DURATION=8 ROUNDS=3 CLIENTS=16 THREADS=2 SCALE=10 POOL_SIZE=20
#   TESTS="sel_simple sel_extended sel_prepared sel_connect tpcb sel_simple_c200
#   sel_extended_c200 sel_prepared_c200" (a _cN suffix runs that workload with N clients;
#   session-mode targets sit out workloads with more clients than POOL_SIZE)  WARMUP=3 (s per target)
#   LATENCY_LOG=1 (pgbench -l per run into a temp dir for p50/p99 latency; 0: no percentiles)
#   SYSCALLS=0 (1: after the matrix, strace -c -f each transaction-mode proxy through
#   SYSCALL_TESTS="sel_simple sel_extended" for SYSCALL_DURATION=5 s: syscalls per transaction)
#   PGBOUNCER_MODES="session transaction"  PGPIVOT_MODES="session transaction"
#   ("" leaves pgpivot out)  PGPIVOT_BIN=BUILD_DIR/src/pgpivot
#   (a PgBouncer binary works as a stand-in)  PGBOUNCER_BIN=/usr/sbin/pgbouncer
#   PGPIVOT_EXTRA_INI="workers = 1" (lines added to pgpivot's [pgpivot] section)
#   QUIET_PCT=25 QUIET_WAIT=20 (wait up to QUIET_WAIT s before each run for the machine
#   to be below QUIET_PCT % busy)  KEEP_DATA=0 (1 keeps the PostgreSQL data directory)
#   FLOOR=1 (0: leave out the yardsticks: the `floor` target, bench/null_proxy.c: one thread
#   copying bytes between each client and its own PostgreSQL connection, no protocol work, no
#   pooling; what one more TCP hop costs on this machine, the least any user-space proxy
#   pays; and for sel_connect only, the `canned` target, bench/canned_server.c: answers
#   logins and queries itself, no PostgreSQL: the most `-C` TPS any pooler can reach here)
#   IDLE_COUNTS="1000 10000" (idle-client memory phase: RSS per idle client with that many
#   idle clients held on each proxy; the largest count also runs IDLE_ACTIVE=100 active
#   pgbench clients beside them; "" skips the phase)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

# ------------------------------------------------------------------------- summary
# CSV -> Markdown. Medians over the rounds that completed (status ok); ratios are ratios
# of medians. Plain awk (Debian's mawk): no Python needed.
summarize() {
  local csv=$1
  awk -F, '
    function med(key, field,   n, i, j, v, a) {
      n = 0
      for (i = 1; i <= cnt[key]; i++) {
        v = val[key, i, field]
        if (v != "") a[++n] = v + 0
      }
      if (n == 0) return ""
      for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function minmax(key, field,   i, v, lo, hi, seen) {
      seen = 0
      for (i = 1; i <= cnt[key]; i++) {
        v = val[key, i, field]; if (v == "") continue; v += 0
        if (!seen || v < lo) lo = v; if (!seen || v > hi) hi = v; seen = 1
      }
      return seen ? sprintf("%.0f–%.0f", lo, hi) : ""
    }
    function fmt(v, f) { return (v == "") ? "–" : sprintf(f, v) }
    function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "n/a" : sprintf("%.2f", a / b) }
    function mode_of(t) { sub(/^[^_]*_/, "", t); return t }
    # One row of the targets table: LABEL, measured ratio V ("" or "n/a": not measured),
    # OP ">=" or "<=", goal G.
    function goal(label, v, op, g,   met) {
      if (v == "" || v == "n/a") { printf "| %s | n/a | %s %s | – |\n", label, op, g; return }
      met = (op == ">=") ? (v + 0 >= g) : (v + 0 <= g)
      printf "| %s | %s | %s %s | %s |\n", label, v, op, g, met ? "yes" : "**no**"
    }
    function ref(label, v) { printf "| %s | %s | (reference) | – |\n", label, (v == "") ? "n/a" : v }
    function mr(t, a, b, f) { return ratio(med(t SUBSEP a, f), med(t SUBSEP b, f)) }
    # A column by name, "" when this CSV has no such column (an older results.csv).
    function get(name) { return (name in col) ? $col[name] : "" }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
      t = $col["test"]; g = $col["target"]
      if (!(t in tseen)) { tseen[t] = 1; tests[++ntests] = t }
      if (!(t in tclients) && get("clients") != "") tclients[t] = get("clients")
      if (!(g in gseen)) { gseen[g] = 1; targets[++ntargets] = g }
      key = t SUBSEP g
      all[key]++
      if ($col["status"] != "ok") { bad[key] = bad[key] " r" $col["round"] ":" $col["status"]; next }
      n = ++cnt[key]
      split("tps lat_ms lat_p50_ms lat_p99_ms conn_ms proxy_cpu_pct proxy_cpu_us_per_xact proxy_wait_us_per_xact proxy_rss_kb machine_busy_pct", fs, " ")
      for (f in fs) val[key, n, fs[f]] = get(fs[f])
    }
    END {
      # Column order: direct, then every proxy target in first-seen order.
      ncols = 0
      for (i = 1; i <= ntargets; i++) if (targets[i] != "direct") cols[++ncols] = targets[i]
      printf "## Ratios (median TPS: >1 means faster; median p99 latency: <1 means lower latency)\n\n| workload | clients |"
      for (i = 1; i <= ncols; i++) printf " %s / direct |", cols[i]
      for (i = 1; i <= ncols; i++) if (cols[i] ~ /^pgpivot_/) {
        pb = "pgbouncer_" mode_of(cols[i]); if (pb in gseen) printf " %s / %s |", cols[i], pb
      }
      for (i = 1; i <= ncols; i++) if (cols[i] ~ /^pgpivot_/) {
        pb = "pgbouncer_" mode_of(cols[i]); if (pb in gseen) printf " p99 %s / %s |", cols[i], pb
      }
      printf "\n|---|---|"
      for (i = 1; i <= ncols; i++) printf "---|"
      for (i = 1; i <= ncols; i++) if (cols[i] ~ /^pgpivot_/) { pb = "pgbouncer_" mode_of(cols[i]); if (pb in gseen) printf "---|---|" }
      printf "\n"
      for (k = 1; k <= ntests; k++) {
        t = tests[k]; d = med(t SUBSEP "direct", "tps")
        printf "| %s | %s |", t, (t in tclients) ? tclients[t] : "–"
        for (i = 1; i <= ncols; i++) printf " %s |", ratio(med(t SUBSEP cols[i], "tps"), d)
        for (i = 1; i <= ncols; i++) if (cols[i] ~ /^pgpivot_/) {
          pb = "pgbouncer_" mode_of(cols[i])
          if (pb in gseen) printf " **%s** |", ratio(med(t SUBSEP cols[i], "tps"), med(t SUBSEP pb, "tps"))
        }
        for (i = 1; i <= ncols; i++) if (cols[i] ~ /^pgpivot_/) {
          pb = "pgbouncer_" mode_of(cols[i])
          if (pb in gseen) printf " %s |", ratio(med(t SUBSEP cols[i], "lat_p99_ms"), med(t SUBSEP pb, "lat_p99_ms"))
        }
        printf "\n"
      }
      # -M prepared in transaction mode against PgBouncer in session mode, where it works
      # (the yardstick issue 3 sets for prepared statements).
      np = 0
      for (k = 1; k <= ntests; k++) {
        t = tests[k]
        if (t !~ /^sel_prepared/ || !((t SUBSEP "pgpivot_tx") in all) || !((t SUBSEP "pgbouncer_session") in all)) continue
        if (!np++) printf "\n"
        printf "%s: pgpivot_tx / pgbouncer_session (PgBouncer cannot run -M prepared in transaction mode) = **%s**\n", t,
          ratio(med(t SUBSEP "pgpivot_tx", "tps"), med(t SUBSEP "pgbouncer_session", "tps"))
      }
      # The targets of issue 3, where this run measured both sides (pgpivot and PgBouncer in
      # transaction mode). Ratios of medians, as in the tables.
      if (("pgpivot_tx" in gseen) && ("pgbouncer_tx" in gseen)) {
        printf "\n## Issue 3 targets (pgpivot_tx; medians; n/a: not measured or no completed round)\n\n"
        printf "| target | measured | goal | met |\n|---|---|---|---|\n"
        for (k = 1; k <= ntests; k++) {
          t = tests[k]
          if (t == "sel_simple" || t == "sel_extended") {
            goal(t " TPS / pgbouncer_tx", mr(t, "pgpivot_tx", "pgbouncer_tx", "tps"), ">=", 1.2)
            goal(t " p99 / pgbouncer_tx", mr(t, "pgpivot_tx", "pgbouncer_tx", "lat_p99_ms"), "<=", 1.0)
            goal(t " CPU µs/xact / pgbouncer_tx", mr(t, "pgpivot_tx", "pgbouncer_tx", "proxy_cpu_us_per_xact"), "<=", 0.75)
            if ((t SUBSEP "floor") in all) {
              # What a proxy doing no work at all reaches in the same run: no goal, the yardstick
              # for the goals above (no proxy can pass the ratio the floor reaches here).
              ref(t " floor TPS / pgbouncer_tx", mr(t, "floor", "pgbouncer_tx", "tps"))
              ref(t " floor CPU µs/xact / pgbouncer_tx", mr(t, "floor", "pgbouncer_tx", "proxy_cpu_us_per_xact"))
              ref(t " pgpivot_tx TPS / floor", mr(t, "pgpivot_tx", "floor", "tps"))
            }
          } else if (t == "tpcb") {
            goal(t " TPS / pgbouncer_tx", mr(t, "pgpivot_tx", "pgbouncer_tx", "tps"), ">=", 1.1)
          } else if (t == "sel_connect") {
            goal(t " TPS / pgbouncer_tx", mr(t, "pgpivot_tx", "pgbouncer_tx", "tps"), ">=", 1.2)
            if ((t SUBSEP "canned") in all) {
              # A server answering logins itself: no pooler logs clients in faster.
              ref(t " canned TPS / pgbouncer_tx", mr(t, "canned", "pgbouncer_tx", "tps"))
              ref(t " pgpivot_tx TPS / canned", mr(t, "pgpivot_tx", "canned", "tps"))
            }
          } else if (t ~ /^sel_prepared/ && ("pgbouncer_session" in gseen) && ((t SUBSEP "pgbouncer_session") in all)) {
            goal(t " TPS / pgbouncer_session", mr(t, "pgpivot_tx", "pgbouncer_session", "tps"), ">=", 1.5)
            if ((t SUBSEP "floor") in all) ref(t " floor TPS / pgbouncer_session", mr(t, "floor", "pgbouncer_session", "tps"))
          }
          if (t ~ /^sel_prepared/ && ((t SUBSEP "pgpivot_tx") in all)) {
            okr = cnt[t SUBSEP "pgpivot_tx"] + 0; allr = all[t SUBSEP "pgpivot_tx"]
            printf "| %s rounds completed (no aborted client) | %d/%d | all | %s |\n", t, okr, allr, (okr == allr) ? "yes" : "**no**"
          }
          if (t ~ /_c[0-9]+$/ && tclients[t] + 0 >= 200)
            goal(t " TPS / direct", mr(t, "pgpivot_tx", "direct", "tps"), ">=", 1.0)
        }
      }
      printf "\n## Details per workload (medians over the rounds that completed)\n"
      for (k = 1; k <= ntests; k++) {
        t = tests[k]; d = med(t SUBSEP "direct", "tps")
        printf "\n### %s%s\n\n", t, (t in tclients) ? " (" tclients[t] " clients)" : ""
        printf "| target | TPS | TPS min–max | vs direct | latency avg ms | p50 ms | p99 ms | connect ms | proxy CPU %% of a core | proxy CPU µs/xact | proxy run-queue wait µs/xact | proxy RSS kB | machine busy %% | rounds ok | problems |\n"
        printf "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for (i = 1; i <= ntargets; i++) {
          g = targets[i]; key = t SUBSEP g
          if (!(key in all)) continue
          tp = med(key, "tps")
          printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d | %s |\n", g, fmt(tp, "%.0f"), minmax(key, "tps"),
            (g == "direct") ? "1.00" : ratio(tp, d), fmt(med(key, "lat_ms"), "%.3f"),
            fmt(med(key, "lat_p50_ms"), "%.3f"), fmt(med(key, "lat_p99_ms"), "%.3f"), fmt(med(key, "conn_ms"), "%.3f"),
            fmt(med(key, "proxy_cpu_pct"), "%.1f"), fmt(med(key, "proxy_cpu_us_per_xact"), "%.1f"),
            fmt(med(key, "proxy_wait_us_per_xact"), "%.1f"), fmt(med(key, "proxy_rss_kb"), "%.0f"), fmt(med(key, "machine_busy_pct"), "%.0f"),
            cnt[key], all[key], (key in bad) ? bad[key] : ""
        }
      }
    }' "$csv"
}

# mem.csv -> Markdown (the idle-client phase).
mem_table() {
  echo
  echo "## Memory per idle client (proxy RSS while the clients sit idle)"
  echo
  echo "| target | idle clients | RSS before kB | RSS with idle clients kB | kB per idle client | login s | active clients beside them | active TPS | active run | idle clients kept |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  awk -F, 'NR > 1 { printf "| %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$1"
}

# syscalls.csv -> Markdown (SYSCALLS=1).
sys_table() {
  echo
  echo "## Proxy syscalls per transaction (strace -c -f on the proxy, every thread)"
  echo
  echo "Counted in a separate pgbench run under strace, which slows the proxy down a lot: the TPS here"
  echo "is not comparable with the tables above, the counts per transaction are. reads = read, readv,"
  echo "recvfrom, recvmsg; writes = write, writev, sendto, sendmsg; epoll_wait includes epoll_pwait."
  echo
  echo "| workload | target | clients | TPS under strace | reads | writes | epoll_wait | epoll_ctl | all syscalls | most frequent others | run |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, 'NR > 1 { printf "| %s | %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s |\n", $1, $2, $3,
    ($7 == "") ? "–" : sprintf("%.0f", $7), $8, $9, $10, $11, $12, $13, $5 }' "$1"
}

if [ "${1:-}" = --summary ]; then
  summarize "${2:?results.csv}"
  # The phases beside the matrix, when their CSVs sit next to it.
  d=$(dirname "$2")
  [ -f "$d/mem.csv" ] && [ "$(wc -l <"$d/mem.csv")" -gt 1 ] && mem_table "$d/mem.csv"
  [ -f "$d/syscalls.csv" ] && [ "$(wc -l <"$d/syscalls.csv")" -gt 1 ] && sys_table "$d/syscalls.csv"
  exit 0
fi

# shellcheck source=../tests/support/pg_common.sh
source "$root/tests/support/pg_common.sh"

# ------------------------------------------------------------------------- knobs
build=${1:-build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
out=$build/bench
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-20}
WARMUP=${WARMUP:-3}
TESTS=${TESTS-"sel_simple sel_extended sel_prepared sel_connect tpcb sel_simple_c200 sel_extended_c200 sel_prepared_c200"}
LATENCY_LOG=${LATENCY_LOG:-1}
SYSCALLS=${SYSCALLS:-0}
SYSCALL_TESTS=${SYSCALL_TESTS-"sel_simple sel_extended"}
SYSCALL_DURATION=${SYSCALL_DURATION:-5}
PGBOUNCER_MODES=${PGBOUNCER_MODES-"session transaction"}
PGPIVOT_MODES=${PGPIVOT_MODES-"session transaction"}
PGPIVOT_BIN=${PGPIVOT_BIN:-$build/src/pgpivot}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
PGPIVOT_EXTRA_INI=${PGPIVOT_EXTRA_INI:-}
QUIET_PCT=${QUIET_PCT:-25}
QUIET_WAIT=${QUIET_WAIT:-20}
KEEP_DATA=${KEEP_DATA:-0}
FLOOR=${FLOOR:-1}
IDLE_COUNTS=${IDLE_COUNTS-"1000 10000"}
IDLE_ACTIVE=${IDLE_ACTIVE:-100}
HOST=127.0.0.1 # loopback only, on purpose not a knob
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE || true

for v in DURATION ROUNDS CLIENTS THREADS SCALE POOL_SIZE WARMUP QUIET_PCT QUIET_WAIT LATENCY_LOG SYSCALLS SYSCALL_DURATION; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
((DURATION >= 1 && DURATION <= 600)) || { echo "bench: DURATION must be 1..600 s" >&2; exit 2; }
((ROUNDS >= 1 && ROUNDS <= 20)) || { echo "bench: ROUNDS must be 1..20" >&2; exit 2; }
((SYSCALL_DURATION >= 1 && SYSCALL_DURATION <= 600)) || { echo "bench: SYSCALL_DURATION must be 1..600 s" >&2; exit 2; }

# A workload is a base name (flags below) with an optional _cN suffix: N clients instead
# of CLIENTS, e.g. sel_simple_c200.
test_flags() {
  case ${1%_c[0-9]*} in
  sel_simple) echo "-S -M simple" ;;
  sel_extended) echo "-S -M extended" ;;
  sel_prepared) echo "-S -M prepared" ;;
  sel_connect) echo "-S -M simple -C" ;;
  tpcb) echo "-M simple" ;;
  *) return 1 ;;
  esac
}
test_clients() {
  case $1 in
  *_c[0-9]*) echo "${1##*_c}" ;;
  *) echo "$CLIENTS" ;;
  esac
}
max_clients=$CLIENTS
for t in $TESTS $([ "$SYSCALLS" = 1 ] && echo "$SYSCALL_TESTS"); do
  { test_flags "$t" >/dev/null && [[ $(test_clients "$t") =~ ^[0-9]+$ ]]; } ||
    { echo "bench: unknown test '$t' (known: sel_simple sel_extended sel_prepared sel_connect tpcb, each optionally with _cN for N clients)" >&2; exit 2; }
  c=$(test_clients "$t")
  ((c >= 1 && c <= 5000)) || { echo "bench: $t: 1..5000 clients" >&2; exit 2; }
  ((c > max_clients)) && max_clients=$c
done

mkdir -p "$out/raw" "$out/logs"
rm -f "$out"/raw/* "$out/results.csv" "$out/summary.md"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/run.log" >&2; }
die() {
  log "FATAL: $*"
  exit 1
}
: >"$out/run.log"

for b in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pgbench" "$PG_BIN/psql"; do
  [ -x "$b" ] || die "missing $b (run scripts/deps.sh)"
done
if [ -n "$PGBOUNCER_MODES" ]; then
  [ -x "$PGBOUNCER_BIN" ] || die "missing $PGBOUNCER_BIN (run scripts/deps.sh), or PGBOUNCER_MODES=''"
fi
if [ -n "$PGPIVOT_MODES" ]; then
  [ -x "$PGPIVOT_BIN" ] || die "no pgpivot binary at $PGPIVOT_BIN (make build), or set PGPIVOT_BIN / PGPIVOT_MODES=''"
  PGPIVOT_BIN=$(cd "$(dirname "$PGPIVOT_BIN")" && pwd)/$(basename "$PGPIVOT_BIN")
fi
pivot_flavor=pgpivot
case $(basename "$PGPIVOT_BIN") in pgbouncer*) pivot_flavor=pgbouncer ;; esac

# PgBouncer refuses root; PostgreSQL too. pgpivot runs as whoever runs this script.
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
# 10,000 idle clients need 10,000 descriptors in the client and in each proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------------- process control
work=""
data=""
pg_started=0
pgbench_pid=""
declare -A proxy_pid=() # pgbouncer / pgpivot -> PID (the proxy itself, not a wrapper)

alive() {
  local st
  st=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]
}

stop_proxy() { # NAME
  local pid=${proxy_pid[$1]:-}
  [ -n "$pid" ] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  proxy_pid[$1]=""
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$pgbench_pid" ]; then # the timeout wrapping pgbench passes TERM on
    kill -TERM "$pgbench_pid" 2>/dev/null
    wait "$pgbench_pid" 2>/dev/null
  fi
  if [ -n "${strace_pid:-}" ]; then # detaches from the proxy
    kill -INT "$strace_pid" 2>/dev/null
    wait "$strace_pid" 2>/dev/null
  fi
  if [ -n "${idle_pid:-}" ]; then
    kill -TERM "$idle_pid" 2>/dev/null
    wait "$idle_pid" 2>/dev/null
  fi
  stop_proxy pgpivot
  stop_proxy pgbouncer
  stop_proxy floor
  stop_proxy canned
  if [ "$pg_started" = 1 ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi
  if [ -n "$work" ] && [ -d "$work" ]; then
    cp -f "$data/server.log" "$out/logs/postgres.log" 2>/dev/null
    cp -f "$work"/*.log "$work"/*.ini "$out/logs/" 2>/dev/null
    if [ "$KEEP_DATA" = 1 ]; then
      log "PostgreSQL data kept in $data"
    else
      rm -rf "$work"
    fi
  fi
  log "stopped everything this script started (exit status $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------------- PostgreSQL
work=$(mktemp -d /tmp/pgpivot-bench.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work"
chmod 755 "$work"
cd "$work"
data=$work/data
pg_port=$(pg_free_port)
log "initdb in $data (PostgreSQL on $HOST:$pg_port)"
pg_init "$data" || die "initdb failed"
# Room for the largest direct run and, beside it, every proxy pool held open (each pool
# mode of each proxy is one pool of POOL_SIZE), plus psql housekeeping and superusers.
n_pools=$(($(wc -w <<<"$PGBOUNCER_MODES") + $(wc -w <<<"$PGPIVOT_MODES")))
pg_max_conn=$((max_clients + n_pools * POOL_SIZE + 40))
((pg_max_conn < 300)) && pg_max_conn=300
# Like the baseline: initdb defaults (fsync on, synchronous_commit on) plus these.
cat >>"$data/postgresql.conf" <<CONF

# ---- bench/run.sh (everything else is initdb's default, as in the research baseline) ----
listen_addresses = '$HOST'
port = $pg_port
unix_socket_directories = '$data'
max_connections = $pg_max_conn
shared_buffers = 256MB
CONF
cat >"$data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
HBA
pg_started=1 # before starting: a half-started server is stopped too
pg_start "$data" || die "PostgreSQL did not start (log: $data/server.log)"

sql() { timeout 600 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$pg_port" -U postgres -d "${2:-bench}" -Atc "$1"; }
sql "CREATE DATABASE bench" postgres
log "pgbench -i -s $SCALE"
timeout 900 "$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$HOST" -p "$pg_port" -U postgres bench \
  >"$out/raw/pgbench-init.log" 2>&1 || die "pgbench -i failed (see $out/raw/pgbench-init.log)"

# ------------------------------------------------------------------------- proxies
printf '"postgres" ""\n' >"$work/userlist.txt"

mode_alias() { case $1 in session) echo session ;; transaction) echo tx ;; statement) echo stmt ;; *) return 1 ;; esac; }

# write_ini FILE SECTION PORT ADMIN_PORT LOGNAME MODES...
write_ini() {
  local file=$1 section=$2 port=$3 admin=$4 name=$5 m
  shift 5
  {
    echo ";; generated by bench/run.sh"
    echo "[databases]"
    for m in "$@"; do
      echo "bench_$(mode_alias "$m") = host=$HOST port=$pg_port dbname=bench pool_mode=$m"
    done
    echo
    echo "[$section]"
    echo "listen_addr = $HOST"
    echo "listen_port = $port"
    echo "unix_socket_dir ="
    [ -n "$admin" ] && echo "admin_port = $admin"
    echo "auth_type = trust"
    echo "auth_file = $work/userlist.txt"
    echo "admin_users = postgres"
    echo "pool_mode = session"
    echo "default_pool_size = $POOL_SIZE"
    echo "max_client_conn = 12000"
    echo "logfile = $work/$name.log"
    echo "pidfile = $work/$name.pid"
    # PostgreSQL does not log connections by default either; matters for -C.
    echo "log_connections = 0"
    echo "log_disconnections = 0"
    if [ "$section" = pgpivot ] && [ -n "$PGPIVOT_EXTRA_INI" ]; then printf '%s\n' "$PGPIVOT_EXTRA_INI"; fi
  } >"$file"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$file" "$work/userlist.txt"
  return 0
}

# start_proxy NAME BIN INI PORT (PgBouncer-flavoured binaries run as postgres)
# Every proxy and yardstick runs in a session of its own, as a systemd service or a
# daemonised PgBouncer does (PostgreSQL's backends each start one too). With the kernel's
# autogroup scheduling (kernel.sched_autogroup_enabled=1, Debian's default) a session is
# one scheduling group: a proxy left in this script's session shares one group's CPU share
# with pgbench, and the backends, each a group of its own, then wait runnable for up to
# seconds. Measured here at stop 15: 0.6–4.7 s worst-case latencies through PgBouncer and
# pgpivot alike in the shared session, 8–26 ms in their own. setsid keeps the PID (exec,
# and the subshell is not a group leader), so the bookkeeping below is unchanged.
start_proxy() {
  local name=$1 bin=$2 ini=$3 port=$4 pid
  local -a run_as=()
  case $(basename "$bin") in pgbouncer*) run_as=("${as_pg[@]}") ;; esac
  # Each server in a session of its own (as a service runs): see own_session.
  (exec setsid "${run_as[@]}" "$bin" "$ini") >>"$work/$name.stderr.log" 2>&1 </dev/null &
  pid=$!
  proxy_pid[$name]=$pid
  local db
  db=$(sed -n 's/^\(bench_[a-z]*\) =.*/\1/p' "$ini" | head -1)
  for _ in $(seq 1 100); do
    alive "$pid" || die "$name exited during start-up: $(tail -n 5 "$work/$name.stderr.log" "$work/$name.log" 2>/dev/null)"
    timeout 5 "$PG_BIN/psql" -X -h "$HOST" -p "$port" -U postgres -d "$db" -Atc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  timeout 5 "$PG_BIN/psql" -X -h "$HOST" -p "$port" -U postgres -d "$db" -Atc 'SELECT 1' >/dev/null 2>&1 ||
    die "$name does not answer on $HOST:$port"
  log "$name started: PID $pid ($(cat "/proc/$pid/comm")), $HOST:$port, config $ini"
}

# Sets NEW_PORT to a free port not handed out before (a global, not $(...): the list of
# ports already given out must survive the call).
used_ports=("$pg_port")
NEW_PORT=""
new_port() {
  local p c q
  for _ in $(seq 1 50); do
    p=$(pg_free_port)
    c=0
    for q in "${used_ports[@]}"; do [ "$q" = "$p" ] && c=1; done
    if [ "$c" = 0 ]; then
      used_ports+=("$p")
      NEW_PORT=$p
      return 0
    fi
  done
  die "no free port found"
}

declare -A target_port=() target_db=() target_proxy=()
targets=(direct)
target_port[direct]=$pg_port target_db[direct]=bench target_proxy[direct]=""

read -r -a pgb_modes <<<"$PGBOUNCER_MODES"
read -r -a piv_modes <<<"$PGPIVOT_MODES"
for m in "${pgb_modes[@]}" "${piv_modes[@]}"; do mode_alias "$m" >/dev/null || die "unknown pool mode '$m'"; done

if ((${#pgb_modes[@]})); then
  new_port
  pgb_port=$NEW_PORT
  write_ini "$work/pgbouncer.ini" pgbouncer "$pgb_port" "" pgbouncer "${pgb_modes[@]}"
  start_proxy pgbouncer "$PGBOUNCER_BIN" "$work/pgbouncer.ini" "$pgb_port"
  for m in "${pgb_modes[@]}"; do
    t=pgbouncer_$(mode_alias "$m")
    targets+=("$t")
    target_port[$t]=$pgb_port target_db[$t]=bench_$(mode_alias "$m") target_proxy[$t]=pgbouncer
  done
fi
if ((${#piv_modes[@]})); then
  new_port
  piv_port=$NEW_PORT
  if [ "$pivot_flavor" = pgbouncer ]; then
    log "pgpivot stand-in: $PGPIVOT_BIN (results in the pgpivot_* columns come from it)"
    write_ini "$work/pgpivot.ini" pgbouncer "$piv_port" "" pgpivot "${piv_modes[@]}"
  else
    new_port
    piv_admin=$NEW_PORT
    write_ini "$work/pgpivot.ini" pgpivot "$piv_port" "$piv_admin" pgpivot "${piv_modes[@]}"
  fi
  start_proxy pgpivot "$PGPIVOT_BIN" "$work/pgpivot.ini" "$piv_port"
  for m in "${piv_modes[@]}"; do
    t=pgpivot_$(mode_alias "$m")
    targets+=("$t")
    target_port[$t]=$piv_port target_db[$t]=bench_$(mode_alias "$m") target_proxy[$t]=pgpivot
  done
fi

# start_yardstick TARGET TOOL DESCRIPTION [ARGS...]: builds bench/TOOL.c, runs it on a new
# port (its first argument, then ARGS) and adds TARGET, which pgbench reaches as "bench".
start_yardstick() {
  local target=$1 tool=$2 what=$3 port
  shift 3
  cc -O2 -o "$work/$tool" "$here/$tool.c" || die "bench/$tool.c does not compile"
  new_port
  port=$NEW_PORT
  (exec setsid "$work/$tool" "$port" "$@") >>"$work/$target.stderr.log" 2>&1 </dev/null &
  proxy_pid[$target]=$!
  for _ in $(seq 1 50); do
    timeout 5 "$PG_BIN/psql" -X -h "$HOST" -p "$port" -U postgres -d bench -Atc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  timeout 5 "$PG_BIN/psql" -X -h "$HOST" -p "$port" -U postgres -d bench -Atc 'SELECT 1' >/dev/null 2>&1 ||
    die "$tool does not answer on $HOST:$port"
  log "$target ($tool) started: PID ${proxy_pid[$target]}, $HOST:$port, $what"
  targets+=("$target")
  target_port[$target]=$port target_db[$target]=bench target_proxy[$target]=$target
}
if [ "$FLOOR" = 1 ]; then
  command -v cc >/dev/null || die "FLOOR=1 needs a C compiler (cc), or FLOOR=0"
  start_yardstick floor null_proxy "copying to PostgreSQL" "$pg_port"
  start_yardstick canned canned_server "no PostgreSQL behind it"
fi

# ------------------------------------------------------------------------- environment
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo) x $(nproc)"
  echo "postgres: $("$PG_BIN/postgres" --version)"
  echo "pgbench: $("$PG_BIN/pgbench" --version)"
  [ -n "$PGBOUNCER_MODES" ] && echo "pgbouncer: $(timeout 5 "$PGBOUNCER_BIN" --version 2>&1 | head -1)"
  [ -n "$PGPIVOT_MODES" ] && echo "pgpivot: $PGPIVOT_BIN ($(timeout 5 "$PGPIVOT_BIN" --version 2>&1 </dev/null | head -1))"
  echo "knobs: DURATION=$DURATION ROUNDS=$ROUNDS CLIENTS=$CLIENTS THREADS=$THREADS SCALE=$SCALE" \
    "POOL_SIZE=$POOL_SIZE TESTS='$TESTS' PGBOUNCER_MODES='$PGBOUNCER_MODES' PGPIVOT_MODES='$PGPIVOT_MODES'"
  echo "targets: ${targets[*]}"
} >"$out/env.txt"

# ------------------------------------------------------------------------- measuring
# jiffies utime+stime of a process (fields 14 and 15 of /proc/PID/stat, after the comm).
proc_ticks() { awk '{sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13]}' "/proc/$1/stat" 2>/dev/null || echo ""; }
proc_rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo ""; }
# ns the process's threads spent runnable but waiting for a CPU (schedstat's second field,
# summed over its threads): what a busy machine costs a proxy in latency, thread by thread.
proc_wait_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {if (NR) print s}'; }
sys_cpu() { awk '/^cpu /{t=0; for(i=2;i<=9;i++) t+=$i; print t, $5+$6}' /proc/stat; }
busy_pct() { echo "$1 $2" | awk '{dt=$3-$1; if (dt<=0) dt=1; printf "%.1f", 100*(dt-($4-$2))/dt}'; }

# Before a run: pgbench's own housekeeping (we run it with -n so every target starts
# alike), a checkpoint, then a bounded wait for the machine to be quiet.
pre_run() {
  sql 'VACUUM pgbench_branches' >/dev/null
  sql 'VACUUM pgbench_tellers' >/dev/null
  sql 'TRUNCATE pgbench_history' >/dev/null
  sql 'CHECKPOINT' >/dev/null
  sleep 1
  local a b waited=0
  while :; do
    a=$(sys_cpu)
    sleep 1
    b=$(sys_cpu)
    PRE_BUSY=$(busy_pct "$a" "$b")
    awk -v b="$PRE_BUSY" -v q="$QUIET_PCT" 'BEGIN{exit !(b < q)}' && return 0
    waited=$((waited + 1))
    if ((waited >= QUIET_WAIT)); then
      log "machine still ${PRE_BUSY}% busy after ${QUIET_WAIT}s; running anyway"
      # Busy all the time (another job on the machine): waiting more buys nothing.
      busy_timeouts=$((busy_timeouts + 1))
      if ((busy_timeouts == 3 && QUIET_WAIT > 2)); then
        log "the machine stays busy; waiting at most 2s from now on (results will be noisy)"
        QUIET_WAIT=2
      fi
      return 0
    fi
  done
}
busy_timeouts=0


csv=$out/results.csv
echo "test,target,round,seq,status,rc,clients,duration_s,tps,lat_ms,lat_std_ms,lat_p50_ms,lat_p99_ms,lat_max_ms,conn_ms,xacts,failed,aborted_clients,proxy_cpu_pct,proxy_cpu_us_per_xact,proxy_rss_kb,machine_busy_pct,prerun_busy_pct,proxy_wait_us_per_xact" >"$csv"
seq_no=0
proxy_died=0
lat_dir=$work/latency # pgbench's per-transaction logs of the current run only
declare -A skip_logged=()

# A session-mode pool serves at most POOL_SIZE clients; the others would wait for the whole
# run (and pgbench with them), so such a target sits out workloads with more clients.
skip_reason() { # TEST TARGET, for a pair runs_target refuses
  case $2 in
  *_session) echo "$(test_clients "$1") clients > POOL_SIZE=$POOL_SIZE in session mode" ;;
  canned) echo "canned stands in for a pooler on sel_connect only" ;;
  floor) echo "floor does not pool: -C through it forks a backend per login, as direct" ;;
  esac
}
runs_target() { # TEST TARGET
  case $2 in
  *_session) (($(test_clients "$1") <= POOL_SIZE)) ;;
  canned) [[ $1 == sel_connect* ]] ;; # no PostgreSQL behind it: only a login ceiling
  floor) [[ $1 != sel_connect* ]] ;;  # no pooling: -C through it is direct's fork per login
  *) return 0 ;;
  esac
}

# p50 and p99 latency in ms from pgbench's per-transaction logs (3rd field: µs), nearest
# rank, the standard deviation (pgbench 15 prints it only with -P or a rate limit) and the
# maximum (a stall shows there first); prints "P50 P99 STDDEV MAX", or nothing without log
# lines. Sorting a few hundred thousand
# numbers takes well under a second.
latency_pcts() { # DIR
  local sorted=$1/sorted n
  cat "$1"/lat.* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ { print $3 }' | LC_ALL=C sort -n -S 64M >"$sorted"
  n=$(wc -l <"$sorted")
  ((n > 0)) || return 0
  awk -v n="$n" 'function rank(p,   r) { r = int(p * n); if (r < p * n) r++; return r < 1 ? 1 : r }
    BEGIN { r50 = rank(0.50); r99 = rank(0.99) }
    { s += $1; ss += $1 * $1 } NR == r50 { p50 = $1 } NR == r99 { p99 = $1 }
    END { v = ss / n - (s / n) ^ 2; printf "%.3f %.3f %.3f %.3f\n", p50 / 1000, p99 / 1000, sqrt(v > 0 ? v : 0) / 1000, $1 / 1000 }' "$sorted"
}

run_one() { # TEST TARGET ROUND [SECONDS]
  local test=$1 target=$2 round=$3 dur=${4:-$DURATION}
  local port=${target_port[$target]} db=${target_db[$target]} proxy=${target_proxy[$target]}
  local pid="" id="$test.$target.r$round" clients
  local -a flags
  clients=$(test_clients "$test")
  if ! runs_target "$test" "$target"; then
    if [ -z "${skip_logged[$test.$target]:-}" ]; then
      log "$(printf '%-12s %-18s skipped: %s' "$test" "$target" "$(skip_reason "$test" "$target")")"
      skip_logged[$test.$target]=1
    fi
    return 0
  fi
  read -r -a flags <<<"$(test_flags "$test")"
  rm -rf "$lat_dir"
  if [ "$LATENCY_LOG" = 1 ] && [ "$round" != warmup ]; then
    mkdir -p "$lat_dir"
    flags+=(-l "--log-prefix=$lat_dir/lat")
  fi
  [ -n "$proxy" ] && pid=${proxy_pid[$proxy]:-}
  if [ -n "$proxy" ] && { [ -z "$pid" ] || ! alive "$pid"; }; then
    [ "$round" = warmup ] && return 0
    seq_no=$((seq_no + 1))
    echo "$test,$target,$round,$seq_no,proxy_dead,,$clients,$dur,,,,,,,,,,,,,,,," >>"$csv"
    log "$(printf '%-12s %-18s r%-6s proxy_dead' "$test" "$target" "$round")"
    proxy_died=1
    return 0
  fi
  pre_run
  local c0 c1 p0="" p1="" w0="" w1="" t0 t1 rc=0
  c0=$(sys_cpu)
  [ -n "$pid" ] && p0=$(proc_ticks "$pid") && w0=$(proc_wait_ns "$pid")
  t0=$(date +%s.%N)
  # In the background + wait: a signal to this script then interrupts the wait at once
  # (bash defers traps while a foreground child runs) and the trap stops pgbench.
  timeout --kill-after=5 $((dur + 60)) "$PG_BIN/pgbench" -h "$HOST" -p "$port" -U postgres -n \
    -T "$dur" -c "$clients" -j "$THREADS" "${flags[@]}" "$db" \
    >"$out/raw/$id.out" 2>"$out/raw/$id.err" </dev/null &
  pgbench_pid=$!
  wait "$pgbench_pid" || rc=$?
  pgbench_pid=""
  t1=$(date +%s.%N)
  [ -n "$pid" ] && p1=$(proc_ticks "$pid") && w1=$(proc_wait_ns "$pid")
  c1=$(sys_cpu)
  [ "$round" = warmup ] && return 0

  local o="$out/raw/$id.out" e="$out/raw/$id.err"
  local tps lat std conn xacts failed aborted status cpu="" us="" wait_us="" rss="" busy p50="" p99="" lstd="" lmax="" pcts=""
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$o" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$o" | head -1)
  std=$(sed -n 's/^latency stddev = \([0-9.]*\) ms.*/\1/p' "$o" | head -1)
  conn=$(sed -n 's/^average connection time = \([0-9.]*\) ms.*/\1/p' "$o" | head -1)
  xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$o" | head -1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$o" | head -1)
  aborted=$(cat "$o" "$e" | grep -c 'aborted in command' || true)
  if [ "$LATENCY_LOG" = 1 ]; then
    pcts=$(latency_pcts "$lat_dir")
    rm -rf "$lat_dir"
    [ -n "$pcts" ] && read -r p50 p99 lstd lmax <<<"$pcts"
    [ -z "$std" ] && std=$lstd
  fi
  busy=$(busy_pct "$c0" "$c1")
  if [ -n "$pid" ] && [ -n "$p0" ] && [ -n "$p1" ]; then
    cpu=$(awk -v a="$p0" -v b="$p1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.1f", 100*(b-a)/hz/(t1-t0)}')
    [ -n "$xacts" ] && [ "$xacts" -gt 0 ] &&
      us=$(awk -v a="$p0" -v b="$p1" -v hz="$CLK_TCK" -v x="$xacts" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/x}')
    [ -n "$xacts" ] && [ "$xacts" -gt 0 ] && [ -n "$w0" ] && [ -n "$w1" ] &&
      wait_us=$(awk -v a="$w0" -v b="$w1" -v x="$xacts" 'BEGIN{printf "%.1f", (b-a)/1e3/x}')
    rss=$(proc_rss_kb "$pid")
  fi
  if [ -z "$tps" ]; then
    status=failed
  elif [ "$rc" != 0 ] || [ "${aborted:-0}" != 0 ]; then
    status=aborted # some clients gave up: the TPS of the survivors is not comparable
  else
    status=ok
  fi
  if [ -n "$pid" ] && ! alive "$pid"; then
    status=proxy_died
    proxy_died=1
    log "$proxy (PID $pid) died during $id"
  fi
  seq_no=$((seq_no + 1))
  echo "$test,$target,$round,$seq_no,$status,$rc,$clients,$dur,$tps,$lat,$std,$p50,$p99,$lmax,$conn,$xacts,$failed,$aborted,$cpu,$us,$rss,$busy,$PRE_BUSY,$wait_us" >>"$csv"
  log "$(printf '%-12s %-18s r%-2s %-10s tps=%-9s lat=%-7s p99=%-7s proxy_cpu=%-5s us/xact=%-6s wait=%-6s rss=%-6s busy=%s' \
    "$test" "$target" "$round" "$status" "${tps:--}" "${lat:--}" "${p99:--}" "${cpu:--}" "${us:--}" "${wait_us:--}" "${rss:--}" "$busy")"
  if [ "$status" != ok ]; then
    grep -m 3 -h -E 'error|FATAL' "$e" "$o" 2>/dev/null | sed 's/^/      /' >&2 || true
  fi
}

# ------------------------------------------------------------------------- matrix
# About 4 s per run besides pgbench's -T: housekeeping, the quiet check, logins, percentiles.
n_runs=0
for t in $TESTS; do for tg in "${targets[@]}"; do runs_target "$t" "$tg" && n_runs=$((n_runs + ROUNDS)); done; done
estimate=$((n_runs * (DURATION + 4) + ${#targets[@]} * (WARMUP + 4)))
if [ "$SYSCALLS" = 1 ]; then # one run per SYSCALL_TESTS workload and transaction-mode proxy
  n_sys=0
  for tg in "${targets[@]}"; do case $tg in *_tx | floor) n_sys=$((n_sys + 1)) ;; esac; done
  ((n_sys == 0)) && n_sys=$((${#targets[@]} - 1))
  estimate=$((estimate + n_sys * $(wc -w <<<"$SYSCALL_TESTS") * (SYSCALL_DURATION + 5)))
fi
[ -n "$IDLE_COUNTS" ] && estimate=$((estimate + 40)) # the default counts, on a quiet machine
estimate=$((estimate / 60 + 1))
log "targets: ${targets[*]}; tests: $TESTS; $ROUNDS round(s) of ${DURATION}s; about $estimate min"
if ((WARMUP > 0)) && [ -n "$TESTS" ]; then
  log "warm-up: ${WARMUP}s select-only per target"
  for tg in "${targets[@]}"; do run_one sel_simple "$tg" warmup "$WARMUP"; done
fi
for test in $TESTS; do
  for r in $(seq 1 "$ROUNDS"); do
    # Serpentine order (A B C, C B A, ...) so slow drift hits every target alike.
    order=()
    if ((r % 2 == 1)); then
      order=("${targets[@]}")
    else
      for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
    fi
    for tg in "${order[@]}"; do run_one "$test" "$tg" "$r"; done
  done
done

# ------------------------------------------------------------------------- syscalls
# SYSCALLS=1: for each SYSCALL_TESTS workload and each transaction-mode proxy target, attach
# strace -c -f to the proxy (with -p, -f attaches every thread), run pgbench for
# SYSCALL_DURATION s, detach, and divide the proxy's syscall counts by pgbench's transactions.
sys_csv=$out/syscalls.csv
rm -f "$sys_csv"
strace_pid=""
syscall_run() { # TEST TARGET
  local test=$1 target=$2 port=${target_port[$2]} db=${target_db[$2]} clients pid rc=0 st=ok
  local trace=$out/raw/strace.$1.$2.txt o=$out/raw/strace.$1.$2.pgbench xacts tps counts
  local -a flags
  pid=${proxy_pid[${target_proxy[$target]}]:-}
  [ -n "$pid" ] && alive "$pid" || return 0
  runs_target "$test" "$target" || return 0
  clients=$(test_clients "$test")
  read -r -a flags <<<"$(test_flags "$test")"
  pre_run
  strace -c -f -qq -o "$trace" -p "$pid" 2>"$trace.err" &
  strace_pid=$!
  # Attached once the proxy's TracerPid is strace's.
  for _ in $(seq 1 100); do
    [ "$(awk '/^TracerPid:/{print $2}' "/proc/$pid/status" 2>/dev/null)" = "$strace_pid" ] && break
    alive "$strace_pid" || break
    sleep 0.1
  done
  if ! alive "$strace_pid"; then
    log "strace could not attach to $target (PID $pid): $(head -c 300 "$trace.err")"
    wait "$strace_pid" 2>/dev/null || true
    strace_pid=""
    echo "$test,$target,$clients,$SYSCALL_DURATION,strace_failed,,,,,,,," >>"$sys_csv"
    return 0
  fi
  sleep 0.5 # -f attaches the other threads just after the first
  timeout --kill-after=5 $((SYSCALL_DURATION + 60)) "$PG_BIN/pgbench" -h "$HOST" -p "$port" -U postgres -n \
    -T "$SYSCALL_DURATION" -c "$clients" -j "$THREADS" "${flags[@]}" "$db" >"$o" 2>&1 </dev/null &
  pgbench_pid=$!
  wait "$pgbench_pid" || rc=$?
  pgbench_pid=""
  kill -INT "$strace_pid" 2>/dev/null || true # detaches and writes the summary
  for _ in $(seq 1 100); do alive "$strace_pid" || break; sleep 0.1; done
  kill -KILL "$strace_pid" 2>/dev/null || true
  wait "$strace_pid" 2>/dev/null || true
  strace_pid=""
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$o" | head -1)
  xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$o" | head -1)
  if [ "$rc" != 0 ] || [ -z "$xacts" ] || [ "$xacts" = 0 ] || grep -q 'aborted in command' "$o"; then
    st=failed
  fi
  counts=""
  if [ -n "$xacts" ] && [ "$xacts" != 0 ] && [ -s "$trace" ]; then
    # strace -c: "% time seconds usecs/call calls [errors] syscall"; calls is field 4.
    counts=$(awk -v x="$xacts" '
      $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { c[$NF] += $4; all += $4 }
      END {
        split("read readv recvfrom recvmsg recvmmsg", R, " "); split("write writev sendto sendmsg sendmmsg", W, " ")
        split("epoll_wait epoll_pwait epoll_pwait2", E, " ")
        for (i in R) { r += c[R[i]]; known[R[i]] = 1 }
        for (i in W) { w += c[W[i]]; known[W[i]] = 1 }
        for (i in E) { e += c[E[i]]; known[E[i]] = 1 }
        known["epoll_ctl"] = 1
        top = ""
        for (k = 0; k < 3; k++) {
          best = ""; for (n in c) if (!(n in known) && !(n in used) && (best == "" || c[n] > c[best])) best = n
          if (best == "" || c[best] / x < 0.005) break
          used[best] = 1; top = top (top == "" ? "" : " ") sprintf("%s %.2f", best, c[best] / x)
        }
        printf "%.2f,%.2f,%.2f,%.2f,%.2f,%s", r / x, w / x, e / x, c["epoll_ctl"] / x, all / x, top
      }' "$trace")
  else
    st=failed
  fi
  echo "$test,$target,$clients,$SYSCALL_DURATION,$st,$xacts,$tps,${counts:-,,,,,}" >>"$sys_csv"
  log "$(printf 'syscalls %-12s %-18s %s tps=%s per xact (reads,writes,epoll_wait,epoll_ctl,all,others): %s' \
    "$test" "$target" "$st" "${tps:--}" "${counts:--}")"
}
if [ "$SYSCALLS" = 1 ] && [ -n "$SYSCALL_TESTS" ]; then
  command -v strace >/dev/null || die "SYSCALLS=1 needs strace (scripts/deps.sh installs it)"
  echo "test,target,clients,duration_s,status,xacts,tps_traced,reads_per_xact,writes_per_xact,epoll_wait_per_xact,epoll_ctl_per_xact,syscalls_per_xact,top_others_per_xact" >"$sys_csv"
  sys_targets=()
  for tg in "${targets[@]}"; do case $tg in *_tx | floor) sys_targets+=("$tg") ;; esac; done
  if ((${#sys_targets[@]} == 0)); then
    for tg in "${targets[@]}"; do case $tg in direct | canned) ;; *) sys_targets+=("$tg") ;; esac; done
  fi
  log "syscalls: strace -c -f, ${SYSCALL_DURATION}s per run: ${sys_targets[*]}"
  for t in $SYSCALL_TESTS; do
    for tg in "${sys_targets[@]}"; do syscall_run "$t" "$tg"; done
  done
fi

# ------------------------------------------------------------------------- idle clients
# Memory per idle client: RSS of the proxy before and while IDLE_COUNTS clients sit idle
# (logged in, nothing sent), in transaction mode where the proxy has one. With the largest
# count held, IDLE_ACTIVE pgbench clients run select-only beside them: the idle ones must
# not slow the active ones down or be dropped.
mem_csv=$out/mem.csv
echo "target,idle_clients,rss_before_kb,rss_idle_kb,kb_per_idle_client,login_s,active_clients,active_tps,active_status,idle_kept" >"$mem_csv"
idle_pid=""
idle_phase() { # TARGET COUNT RUN_ACTIVE
  local target=$1 count=$2 active=$3
  local port=${target_port[$target]} db=${target_db[$target]} pid=${proxy_pid[${target_proxy[$target]}]:-}
  [ -n "$pid" ] && alive "$pid" || return 0
  local fifo=$work/idle.fifo ready="" before after tps="" st="-" kept=no
  sql 'SELECT 1' >/dev/null
  timeout 10 "$PG_BIN/psql" -X -h "$HOST" -p "$port" -U postgres -d "$db" -Atc 'SELECT 1' >/dev/null
  sleep 1
  before=$(proc_rss_kb "$pid")
  rm -f "$fifo" && mkfifo "$fifo"
  # The clients hold until the FIFO's writer (fd 7 here) closes.
  python3 "$here/idle_clients.py" --host "$HOST" --port "$port" --db "$db" --count "$count" \
    --hold 600 <"$fifo" >"$out/raw/idle.$target.$count.out" 2>&1 &
  idle_pid=$!
  exec 7>"$fifo"
  for _ in $(seq 1 1200); do
    ready=$(sed -n 's/^READY \([0-9]*\) \([0-9.]*\)/\1 \2/p' "$out/raw/idle.$target.$count.out")
    [ -n "$ready" ] && break
    alive "$idle_pid" || break
    sleep 0.1
  done
  if [ -z "$ready" ]; then
    log "idle clients on $target did not all log in: $(tail -n 2 "$out/raw/idle.$target.$count.out")"
    exec 7>&-
    wait "$idle_pid" 2>/dev/null || true
    idle_pid=""
    echo "$target,$count,$before,,,,,,login_failed," >>"$mem_csv"
    return 0
  fi
  sleep 2
  after=$(proc_rss_kb "$pid")
  if [ "$active" = 1 ]; then
    local o="$out/raw/idle.$target.$count.pgbench"
    if timeout 120 "$PG_BIN/pgbench" -h "$HOST" -p "$port" -U postgres -n -S -T 5 \
      -c "$IDLE_ACTIVE" -j "$THREADS" "$db" >"$o" 2>&1 </dev/null; then
      st=ok
    else
      st=failed
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$o" | head -1)
  fi
  # Every idle client is still there if the process has not exited (it exits on a lost one
  # only at the end) and the proxy still counts them: ask it to finish now.
  exec 7>&-
  wait "$idle_pid" && kept=yes
  idle_pid=""
  echo "$target,$count,$before,$after,$(awk -v a="$before" -v b="$after" -v n="$count" 'BEGIN{printf "%.2f", (b-a)/n}'),${ready#* },$([ "$active" = 1 ] && echo "$IDLE_ACTIVE"),$tps,$st,$kept" >>"$mem_csv"
  log "$(printf 'idle %-18s %6d clients: RSS %s -> %s kB (%s kB/client)%s' "$target" "$count" "$before" "$after" \
    "$(awk -v a="$before" -v b="$after" -v n="$count" 'BEGIN{printf "%.2f", (b-a)/n}')" \
    "$([ "$active" = 1 ] && echo ", $IDLE_ACTIVE active: ${tps:--} TPS $st")")"
}
if [ -n "$IDLE_COUNTS" ]; then
  idle_targets=()
  for tg in "${targets[@]}"; do
    case $tg in *_tx) idle_targets+=("$tg") ;; esac
  done
  if ((${#idle_targets[@]} == 0)); then
    # not floor (it opens a PostgreSQL connection per idle client), nor canned (no proxy)
    for tg in "${targets[@]}"; do case $tg in direct | floor | canned) ;; *) idle_targets+=("$tg") ;; esac; done
  fi
  largest=$(tr ' ' '\n' <<<"$IDLE_COUNTS" | sort -n | tail -1)
  for n in $IDLE_COUNTS; do
    for tg in "${idle_targets[@]}"; do
      idle_phase "$tg" "$n" "$([ "$n" = "$largest" ] && echo 1 || echo 0)"
    done
  done
fi

# ------------------------------------------------------------------------- summary
for name in pgbouncer pgpivot; do
  pid=${proxy_pid[$name]:-}
  [ -n "$pid" ] && alive "$pid" && echo "$name final RSS: $(proc_rss_kb "$pid") kB, peak (VmHWM): $(awk '/^VmHWM:/{print $2}' "/proc/$pid/status") kB" >>"$out/env.txt"
done
{
  echo "# pgpivot benchmark: direct vs PgBouncer vs pgpivot"
  echo
  echo "One run, interleaved, on this machine: $(nproc) cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)."
  echo "pgbench $CLIENTS clients (a workload named _cN: N clients), $THREADS threads, ${DURATION}s per run, $ROUNDS round(s), scale $SCALE;"
  echo "pool size $POOL_SIZE on both proxies, PostgreSQL max_connections $pg_max_conn; TCP loopback on both hops."
  echo "$("$PG_BIN/postgres" --version); $([ -n "$PGBOUNCER_MODES" ] && timeout 5 "$PGBOUNCER_BIN" --version 2>&1 | head -1)."
  if [ -n "$PGPIVOT_MODES" ]; then
    if [ "$pivot_flavor" = pgbouncer ]; then
      echo "**pgpivot_* columns come from a stand-in: $PGPIVOT_BIN**, not pgpivot."
    else
      echo "pgpivot: $PGPIVOT_BIN."
    fi
  fi
  echo "Workloads: sel_simple = \`-S -M simple\`, sel_extended = \`-S -M extended\`, sel_prepared = \`-S -M prepared\`,"
  echo "sel_connect = \`-S -C\` (new connection per transaction), tpcb = default TPC-B-like script."
  echo "Session-mode targets sit out workloads with more clients than the pool size."
  [ "$FLOOR" = 1 ] && echo "floor = bench/null_proxy.c: one thread copying bytes between each client and its own" \
    "PostgreSQL connection (no parsing, no pooling); the cost of one more TCP hop, which every proxy pays." \
    "canned = bench/canned_server.c, sel_connect only: answers logins and queries itself, no PostgreSQL;" \
    "no pooler can log clients in faster."
  if [ "$LATENCY_LOG" = 1 ]; then
    echo "p50/p99: percentiles of every transaction's latency in pgbench's per-transaction log (-l) of a run;"
    echo "the tables give the median over the rounds."
  fi
  echo "Proxy CPU = utime+stime of the proxy process over the run (100 = one core). Generated $(date -u +%FT%TZ)."
  echo
  summarize "$csv"
  if [ -s "$mem_csv" ] && [ "$(wc -l <"$mem_csv")" -gt 1 ]; then mem_table "$mem_csv"; fi
  if [ -s "$sys_csv" ] && [ "$(wc -l <"$sys_csv")" -gt 1 ]; then sys_table "$sys_csv"; fi
  noisy=$(awk -F, -v q="$QUIET_PCT" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "prerun_busy_pct") c = i; next }
    $c != "" { n++; if ($c + 0 >= q) b++ }
    END { if (n && b / n > 0.2) printf "%d of %d", b, n }' "$csv")
  if [ -n "$noisy" ]; then
    echo
    echo "**Warning: the machine was already busy (≥ ${QUIET_PCT}% of all cores) before $noisy runs:"
    echo "other load skews these figures. Rerun on a quiet machine before drawing conclusions.**"
  fi
  if [ "$proxy_died" = 1 ]; then
    echo
    echo "**A proxy process died during the run; its later runs are marked proxy_dead.**"
  fi
} >"$out/summary.md"
echo
cat "$out/summary.md"
echo
log "results: $csv, $out/summary.md, raw pgbench output in $out/raw/, logs in $out/logs/"
[ "$proxy_died" = 0 ] || exit 1
