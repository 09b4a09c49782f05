#!/usr/bin/env bash
# A two-node local PostgreSQL 15 cluster: a primary and a streaming standby (pg_basebackup
# -R, physical replication slot), both on loopback ports, run as the postgres user. Used by
# `make demo` and meant for the failover tests. It does not start pgpivot.
#
# As a command:
#   scripts/cluster.sh start DIR [PRIMARY_PORT [STANDBY_PORT]]
#                                 new cluster in DIR/primary + DIR/standby, writes DIR/cluster.env
#   scripts/cluster.sh stop DIR   clean (fast) shutdown of both nodes; keeps data and logs
#   scripts/cluster.sh restart DIR  start the nodes of an existing cluster again
#   scripts/cluster.sh status DIR   role, port and replication state of each node
#   scripts/cluster.sh check DIR    a row written on the primary must reach the standby
#   scripts/cluster.sh promote DIR  promote the standby (after the primary died or was stopped)
#   scripts/cluster.sh destroy DIR  stop both nodes and delete DIR
# As a library: `source scripts/cluster.sh` defines the cluster_* functions below and does
# nothing else. DIR must be one the postgres user can enter (not under /root).
#
# DIR/cluster.env holds CLUSTER_PRIMARY_DATA, CLUSTER_PRIMARY_PORT, CLUSTER_STANDBY_DATA,
# CLUSTER_STANDBY_PORT and CLUSTER_SLOT; source it to find the nodes. After `promote` the
# names keep meaning "the node first created as ..."; ask `status` who is primary now.

_cluster_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/support/pg_common.sh
source "$_cluster_here/../tests/support/pg_common.sh"

CLUSTER_SLOT_DEFAULT=pgpivot_standby

# A free loopback port different from every port given as an argument.
cluster_free_port() {
  local port p clash
  for _ in $(seq 1 50); do
    port=$(pg_free_port) || return 1
    clash=0
    for p in "$@"; do [ "$p" = "$port" ] && clash=1; done
    [ "$clash" = 0 ] && { echo "$port"; return 0; }
  done
  echo "no free port found" >&2
  return 1
}

# The postgres user must be able to create files in DIR (and so enter every parent).
cluster_dir_usable() {
  local dir=$1
  [ "$(id -u)" = 0 ] || { [ -w "$dir" ] && return 0; return 1; }
  chown postgres:postgres "$dir" 2>/dev/null || return 1
  runuser -u postgres -- test -w "$dir" -a -x "$dir" 2>/dev/null
}

# Unix socket paths are limited to 107 bytes; the nodes put theirs in the data directory.
cluster_path_fits_socket() {
  [ "${#1}" -le 80 ]
}

cluster_env_load() {
  local dir=$1
  [ -f "$dir/cluster.env" ] || { echo "no cluster in $dir (missing cluster.env)" >&2; return 1; }
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
}

# cluster_start DIR [PRIMARY_PORT [STANDBY_PORT]]: initdb, start the primary, clone the
# standby, wait for streaming. DIR must not hold a cluster already.
cluster_start() {
  local dir=$1 pport=${2:-} sport=${3:-}
  local primary=$dir/primary standby=$dir/standby slot=${CLUSTER_SLOT:-$CLUSTER_SLOT_DEFAULT}
  if [ -e "$primary" ] || [ -e "$standby" ]; then
    echo "$dir already holds a cluster; stop and remove it first (cluster.sh destroy $dir)" >&2
    return 1
  fi
  mkdir -p "$dir"
  cluster_dir_usable "$dir" || { echo "the postgres user cannot write to $dir" >&2; return 1; }
  cluster_path_fits_socket "$standby" || { echo "path too long for a unix socket: $dir" >&2; return 1; }
  [ -n "$pport" ] || pport=$(cluster_free_port) || return 1
  [ -n "$sport" ] || sport=$(cluster_free_port "$pport") || return 1
  # Written first, so that cluster_stop finds a half-started cluster too.
  cat >"$dir/cluster.env" <<ENV
CLUSTER_PRIMARY_DATA=$primary
CLUSTER_PRIMARY_PORT=$pport
CLUSTER_STANDBY_DATA=$standby
CLUSTER_STANDBY_PORT=$sport
CLUSTER_SLOT=$slot
ENV

  pg_init "$primary" || return 1
  pg_configure "$primary" "$pport"
  pg_configure_primary "$primary"
  pg_start "$primary" || return 1
  pg_wait_ready "$primary" "$pport" || return 1

  pg_make_standby "$pport" "$standby" "$sport" "$slot" || return 1
  pg_start "$standby" || return 1
  pg_wait_ready "$standby" "$sport" 60 || return 1
  pg_wait_streaming "$primary" "$pport" 1 60 || return 1
}

# Start the nodes of an existing cluster (after cluster_stop), primary first.
cluster_restart() {
  local dir=$1
  cluster_env_load "$dir" || return 1
  pg_start "$CLUSTER_PRIMARY_DATA" || return 1
  pg_start "$CLUSTER_STANDBY_DATA" || return 1
  pg_wait_ready "$CLUSTER_PRIMARY_DATA" "$CLUSTER_PRIMARY_PORT" &&
    pg_wait_ready "$CLUSTER_STANDBY_DATA" "$CLUSTER_STANDBY_PORT" 60
}

# Standby first, so the primary's shutdown checkpoint is not waiting on a walsender.
cluster_stop() {
  local dir=$1
  cluster_env_load "$dir" 2>/dev/null || return 0
  pg_stop_fast "$CLUSTER_STANDBY_DATA"
  pg_stop_fast "$CLUSTER_PRIMARY_DATA"
}

cluster_destroy() {
  local dir=$1
  cluster_stop "$dir"
  rm -rf "$dir"
}

# "primary", "standby" or "down" for one node.
cluster_node_role() {
  local data=$1 port=$2 r
  r=$(pg_query "$data" "$port" postgres 'SELECT pg_is_in_recovery()' 2>/dev/null) || { echo down; return 0; }
  case $r in
  t) echo standby ;;
  f) echo primary ;;
  *) echo down ;;
  esac
}

cluster_status() {
  local dir=$1 name data port role
  cluster_env_load "$dir" || return 1
  for name in primary standby; do
    if [ "$name" = primary ]; then
      data=$CLUSTER_PRIMARY_DATA port=$CLUSTER_PRIMARY_PORT
    else
      data=$CLUSTER_STANDBY_DATA port=$CLUSTER_STANDBY_PORT
    fi
    role=$(cluster_node_role "$data" "$port")
    printf '%-8s 127.0.0.1:%-5s %-8s %s\n' "$name" "$port" "$role" "$data"
    if [ "$role" = primary ]; then
      pg_query "$data" "$port" postgres "SELECT '  streaming to ' || client_addr || ' state=' || state ||
        ' replay_lag=' || coalesce(replay_lag::text, '0') FROM pg_stat_replication" 2>/dev/null || true
    elif [ "$role" = standby ]; then
      pg_query "$data" "$port" postgres "SELECT '  receiving: ' || status || ' from ' || sender_host ||
        ':' || sender_port || ' slot=' || coalesce(slot_name, '-') FROM pg_stat_wal_receiver" 2>/dev/null || true
    fi
  done
}

# A row written on the primary must be visible on the standby, which must be in recovery.
# cluster_check_replication DIR [DBNAME]
cluster_check_replication() {
  local dir=$1 db=${2:-postgres} token
  cluster_env_load "$dir" || return 1
  local p=$CLUSTER_PRIMARY_DATA pp=$CLUSTER_PRIMARY_PORT s=$CLUSTER_STANDBY_DATA sp=$CLUSTER_STANDBY_PORT
  [ "$(pg_query "$s" "$sp" postgres 'SELECT pg_is_in_recovery()')" = t ] ||
    { echo "standby is not in recovery" >&2; return 1; }
  [ "$(pg_query "$p" "$pp" postgres 'SELECT pg_is_in_recovery()')" = f ] ||
    { echo "primary is in recovery" >&2; return 1; }
  token="check-$$-$RANDOM-$(date +%s%N)"
  pg_psql "$p" "$pp" -d "$db" >/dev/null <<SQL || return 1
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS pgpivot_replication_check (id bigserial PRIMARY KEY, token text NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now());
INSERT INTO pgpivot_replication_check (token) VALUES ('$token');
SQL
  # Waiting on the LSN first also covers a database created just before this check.
  pg_wait_replayed "$p" "$pp" "$s" "$sp" 10 || return 1
  [ "$(pg_query "$s" "$sp" "$db" \
    "SELECT count(*) FROM pgpivot_replication_check WHERE token = '$token'")" = 1 ] && return 0
  echo "the standby replayed the primary's WAL but does not see the row written there" >&2
  return 1
}

# Promote the standby (the node first created as standby).
cluster_promote() {
  local dir=$1
  cluster_env_load "$dir" || return 1
  pg_promote "$CLUSTER_STANDBY_DATA" "$CLUSTER_STANDBY_PORT"
}

_cluster_main() {
  set -euo pipefail
  local cmd=${1:-} dir=${2:-}
  if [ -z "$cmd" ] || [ -z "$dir" ]; then
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  cd /  # the postgres user may not be able to enter the caller's directory
  case $cmd in
  start)
    cluster_start "$dir" "${3:-}" "${4:-}" || { cluster_stop "$dir"; exit 1; }
    cluster_status "$dir"
    ;;
  stop) cluster_stop "$dir" ;;
  restart) cluster_restart "$dir" ;;
  status) cluster_status "$dir" ;;
  check) cluster_check_replication "$dir" && echo "replication ok: the standby sees a row written on the primary" ;;
  promote) cluster_promote "$dir" && echo "promoted $CLUSTER_STANDBY_DATA" ;;
  destroy) cluster_destroy "$dir" ;;
  *)
    echo "unknown command: $cmd" >&2
    exit 2
    ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _cluster_main "$@"
fi
