#!/usr/bin/env bash
# `make demo`: a two-node local PostgreSQL 15 cluster (primary + streaming standby) with
# pgpivot in front of the primary, all on loopback. Prints how to connect, then waits;
# Ctrl-C stops pgpivot and both servers and keeps data and logs for a look afterwards.
# The next run starts a fresh cluster (the previous one's data is replaced).
#
#   scripts/demo.sh BUILD_DIR        data, config and logs under BUILD_DIR/demo/
#
# Environment:
#   DEMO_SMOKE=1     start everything, run one query through pgpivot, stop; exit 0 or 1 (CI)
#   PGPIVOT_BIN=...  the proxy to run (default BUILD_DIR/src/pgpivot); a PgBouncer binary is
#                    accepted as a stand-in: it gets a [pgbouncer] config and runs as postgres
#   DEMO_PORT=...    pgpivot's port (default 6432 when free, otherwise a free one)
#   DEMO_AUTH_TYPE=  client authentication (default scram-sha-256; md5, trust)
#   DEMO_FAILOVER=1  route `demo` through a [cluster.demo] section (pgpivot's failover
#                    monitor) instead of a plain host=/port= line
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=cluster.sh
source "$here/cluster.sh"

build=${1:-build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
smoke=${DEMO_SMOKE:-0}
auth_type=${DEMO_AUTH_TYPE:-scram-sha-256}
bin=${PGPIVOT_BIN:-$build/src/pgpivot}
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE || true

say() { printf 'demo: %s\n' "$*"; }
die() {
  printf 'demo: error: %s\n' "$*" >&2
  exit 1
}

if [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_basebackup" ]; then
  die "PostgreSQL 15 server binaries not found in $PG_BIN (run scripts/deps.sh)"
fi
command -v psql >/dev/null || die "psql not found (run scripts/deps.sh)"
[ -x "$bin" ] || die "no pgpivot binary at $bin (build it first: make build), or set PGPIVOT_BIN"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# PgBouncer refuses to run as root and rejects pgpivot's own keys; pgpivot needs neither.
flavor=pgpivot
case $(basename "$bin") in pgbouncer*) flavor=pgbouncer ;; esac
run_as=()
if [ "$flavor" = pgbouncer ] && [ "$(id -u)" = 0 ]; then
  run_as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

# ------------------------------------------------------------------------- where
dir=$build/demo
mkdir -p "$dir"
if ! cluster_dir_usable "$dir" || ! cluster_path_fits_socket "$dir/standby"; then
  # One fixed place per build directory, so the next run finds (and replaces) this one.
  fallback=/tmp/pgpivot-demo-$(printf '%s' "$build" | cksum | cut -d' ' -f1)
  if [ -L "$fallback" ] || { [ -e "$fallback" ] && [ "$(stat -c %U "$fallback")" != postgres ] &&
    [ "$(stat -c %u "$fallback")" != "$(id -u)" ]; }; then
    die "$fallback exists and is not the demo's; remove it or use another BUILD_DIR"
  fi
  mkdir -p "$fallback"
  say "the postgres user cannot use $dir (a path under /root, or too long for a"
  say "unix socket), so the demo lives in $fallback instead"
  echo "$fallback" >"$dir/LOCATION"
  dir=$fallback
  cluster_dir_usable "$dir" || die "the postgres user cannot write to $dir either"
fi
cd "$dir"
mkdir -p "$dir/logs"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/logs"

# A previous demo that was killed without its clean-up: stop what it left running (only
# processes whose pidfile lives in this directory), keep its logs, replace its data.
if [ -f "$dir/pgpivot.pid" ]; then
  old=$(head -1 "$dir/pgpivot.pid" 2>/dev/null || true)
  if [ -n "$old" ] && [ -r "/proc/$old/cmdline" ] && tr '\0' ' ' <"/proc/$old/cmdline" | grep -qF "$dir/pgpivot.ini"; then
    say "stopping pgpivot left running by a previous demo (PID $old)"
    kill -TERM "$old" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/pgpivot.pid"
fi
if [ -e "$dir/primary" ] || [ -e "$dir/standby" ]; then
  cluster_stop "$dir"
  stamp=$(date +%Y%m%d-%H%M%S)
  for node in primary standby; do
    [ -f "$dir/$node/server.log" ] && mv "$dir/$node/server.log" "$dir/logs/$node.$stamp.log"
  done
  rm -rf "$dir/primary" "$dir/standby" "$dir"/primary.* "$dir"/standby.* "$dir/cluster.env"
  say "replaced the previous demo cluster (its server logs are in $dir/logs/*.$stamp.log)"
fi

# ------------------------------------------------------------------------- clean-up
pivot_pid=""
cluster_up=0
stop_pivot() {
  [ -n "$pivot_pid" ] || return 0
  if kill -0 "$pivot_pid" 2>/dev/null; then
    # SIGINT is pgpivot's safe shutdown; a background job of a script may have it ignored,
    # and a connected psql would keep it waiting, so SIGTERM (immediate) follows.
    local sigign
    sigign=$(awk '/^SigIgn:/{print $2}' "/proc/$pivot_pid/status" 2>/dev/null || echo 0)
    if (((16#${sigign:-0} & 2) == 0)); then
      kill -INT "$pivot_pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pivot_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    kill -TERM "$pivot_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pivot_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pivot_pid" 2>/dev/null || true
  fi
  wait "$pivot_pid" 2>/dev/null || true
  pivot_pid=""
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$pivot_pid" ] || [ "$cluster_up" = 1 ]; then
    say "stopping $flavor and both PostgreSQL servers"
    stop_pivot
    [ "$cluster_up" = 1 ] && cluster_stop "$dir"
    say "stopped; data and logs kept in $dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 0' INT TERM

# ------------------------------------------------------------------------- cluster
say "starting PostgreSQL 15 primary + streaming standby in $dir"
cluster_up=1 # set before starting: a half-started cluster is stopped too
CLUSTER_SLOT=demo_standby cluster_start "$dir" || die "the cluster did not start (logs: $dir/*/server.log)"
cluster_env_load "$dir"
p_data=$CLUSTER_PRIMARY_DATA p_port=$CLUSTER_PRIMARY_PORT
s_data=$CLUSTER_STANDBY_DATA s_port=$CLUSTER_STANDBY_PORT

pg_psql "$p_data" "$p_port" -d postgres >/dev/null <<'SQL' || die "could not create the demo role and database"
SET password_encryption = 'scram-sha-256';
CREATE ROLE demo LOGIN PASSWORD 'demo';
CREATE DATABASE demo OWNER demo;
-- what pgpivot's failover monitor logs in as (DEMO_FAILOVER=1)
CREATE ROLE pgpivot_monitor LOGIN PASSWORD 'monitor' IN ROLE pg_monitor;
GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgpivot_monitor;
SQL
pg_psql "$p_data" "$p_port" -d demo >/dev/null <<'SQL' || die "could not create the demo table"
SET ROLE demo;
CREATE TABLE greetings (id bigserial PRIMARY KEY, note text NOT NULL,
                        written_at timestamptz NOT NULL DEFAULT now());
INSERT INTO greetings (note) VALUES ('hello from the demo primary');
SQL
cluster_check_replication "$dir" demo || die "replication does not work (logs: $dir/*/server.log)"
say "replication ok: the standby is in recovery and sees a row written on the primary"

# ------------------------------------------------------------------------- pgpivot
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${DEMO_PORT:-}
if [ -z "$port" ]; then
  if port_free 6432; then port=6432; else port=$(cluster_free_port "$p_port" "$s_port"); fi
fi
admin_port=""
if [ "$flavor" = pgpivot ]; then
  if port_free 6433 && [ "$port" != 6433 ]; then
    admin_port=6433
  else
    admin_port=$(cluster_free_port "$p_port" "$s_port" "$port")
  fi
fi

ini=$dir/pgpivot.ini
userlist=$dir/userlist.txt
printf '"demo" "demo"\n' >"$userlist"
chmod 600 "$userlist"
{
  echo ";; pgpivot in front of the demo cluster, written by scripts/demo.sh"
  echo ";; primary 127.0.0.1:$p_port ($p_data), standby 127.0.0.1:$s_port ($s_data)"
  echo "[databases]"
  if [ "${DEMO_FAILOVER:-0}" = 1 ] && [ "$flavor" = pgpivot ]; then
    echo "demo = cluster=demo dbname=demo"
  else
    echo "demo = host=127.0.0.1 port=$p_port dbname=demo"
  fi
  echo "; read-only queries on the streaming standby"
  echo "demo_standby = host=127.0.0.1 port=$s_port dbname=demo"
  echo
  if [ "$flavor" = pgpivot ]; then echo "[pgpivot]"; else echo "[pgbouncer]"; fi
  echo "listen_addr = 127.0.0.1"
  echo "listen_port = $port"
  echo "unix_socket_dir ="
  [ -n "$admin_port" ] && echo "admin_port = $admin_port"
  echo "auth_type = $auth_type"
  echo "auth_file = $userlist"
  echo "admin_users = demo"
  echo "pool_mode = session"
  echo "default_pool_size = 10"
  echo "max_client_conn = 100"
  echo "logfile = $dir/logs/$flavor.log"
  echo "pidfile = $dir/pgpivot.pid"
  if [ "${DEMO_FAILOVER:-0}" = 1 ] && [ "$flavor" = pgpivot ]; then
    echo
    echo "[cluster.demo]"
    echo "nodes = 127.0.0.1:$p_port, 127.0.0.1:$s_port"
    echo "monitor_user = pgpivot_monitor"
    echo "monitor_password = monitor"
    echo "failover_mode = manual"
    echo "failover_log = $dir/logs/failover.jsonl"
  fi
} >"$ini"
[ "$(id -u)" = 0 ] && [ "$flavor" = pgbouncer ] && chown postgres:postgres "$ini" "$userlist"

say "starting $flavor ($bin) on 127.0.0.1:$port"
echo "=== $(date -u +%FT%TZ) scripts/demo.sh starts $bin $ini" >>"$dir/logs/$flavor.stderr"
# Its own session: Ctrl-C reaches only this script, which then stops everything in order.
(exec setsid "${run_as[@]}" "$bin" "$ini") >>"$dir/logs/$flavor.stderr" 2>&1 </dev/null &
pivot_pid=$!

conn="host=127.0.0.1 port=$port user=demo dbname=demo password=demo"
through() { timeout 15 psql -X -v ON_ERROR_STOP=1 "$conn connect_timeout=5" -Atc "$1"; }
# An exited child stays a zombie until waited for, and kill -0 still succeeds on it.
alive() {
  local st
  st=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]
}
show_logs() { tail -n 20 "$dir/logs/$flavor.stderr" "$dir/logs/$flavor.log" >&2 2>/dev/null || true; }
up=0
for _ in $(seq 1 100); do
  if ! alive "$pivot_pid"; then
    rc=0
    wait "$pivot_pid" || rc=$?
    pivot_pid=""
    show_logs
    die "$flavor exited during start-up (status $rc); logs in $dir/logs/"
  fi
  if through 'SELECT 1' >/dev/null 2>&1; then
    up=1
    break
  fi
  sleep 0.2
done
if [ "$up" != 1 ]; then
  show_logs
  die "$flavor did not accept a query within 20s (logs: $dir/logs/)"
fi

if [ "$smoke" = 1 ]; then
  # One round trip through the proxy that proves it reached the primary as `demo`, then a
  # write through it that must show up on the standby.
  got=$(through "SELECT current_user || ' ' || current_database() || ' ' || pg_is_in_recovery()") ||
    die "query through $flavor failed"
  [ "$got" = "demo demo false" ] || die "unexpected answer through $flavor: '$got'"
  through "INSERT INTO greetings (note) VALUES ('smoke test through $flavor')" >/dev/null ||
    die "write through $flavor failed"
  pg_wait_replayed "$p_data" "$p_port" "$s_data" "$s_port" 10 ||
    die "the write through $flavor did not reach the standby"
  n=$(pg_query "$s_data" "$s_port" demo "SELECT count(*) FROM greetings WHERE note LIKE 'smoke test%'")
  [ "$n" = 1 ] || die "the standby sees $n smoke rows, expected 1"
  say "smoke test passed: query and write through $flavor on 127.0.0.1:$port, replicated to the standby"
  exit 0
fi

if [ -n "$admin_port" ]; then
  admin_line="psql \"host=127.0.0.1 port=$admin_port user=demo dbname=pgpivot password=demo\""
else
  admin_line="psql \"host=127.0.0.1 port=$port user=demo dbname=pgbouncer password=demo\""
fi
cat <<EOF

  pgpivot demo is running (Ctrl-C stops it).

    primary    127.0.0.1:$p_port   $p_data
    standby    127.0.0.1:$s_port   $s_data   (streaming, slot demo_standby)
    $(printf '%-10s' "$flavor") 127.0.0.1:$port   config $ini

  Connect through pgpivot:
    psql "$conn"

  Admin console (try SHOW POOLS; SHOW SERVERS;):
    $admin_line

  The standby, read-only, through pgpivot:
    psql "host=127.0.0.1 port=$port user=demo dbname=demo_standby password=demo"

  Logs: $dir/logs/ and $dir/{primary,standby}/server.log
  Cluster state: scripts/cluster.sh status $dir

EOF

# Foreground-ish: wait for pgpivot; a signal interrupts `wait` and runs the trap.
rc=0
wait "$pivot_pid" || rc=$?
pivot_pid=""
show_logs
die "$flavor exited by itself (status $rc); logs in $dir/logs/"
