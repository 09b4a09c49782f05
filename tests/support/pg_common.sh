#!/usr/bin/env bash
# Shell helpers shared by the test fixture, `make demo` and the benchmarks: run a private
# PostgreSQL 15 on loopback as the postgres user (initdb refuses root).
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_make_datadir() {
  local dir
  dir=$(mktemp -d /tmp/pgpivot-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  echo "$dir"
}

# A TCP port nobody listens on right now, from the ephemeral-free range 20000-29999.
pg_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 10000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

pg_init() {
  local data=$1
  as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --no-sync -E UTF8 --locale=C.UTF-8 >"$data.initdb.log" 2>&1 ||
    { cat "$data.initdb.log" >&2; return 1; }
}

# Loopback only, a private socket directory, and an hba that gives each test role the
# method it is named after.
pg_configure() {
  local data=$1 port=$2
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
hot_standby = on
logging_collector = off
log_min_messages = warning
CONF
  cat >"$data/pg_hba.conf" <<HBA
local   all             all                             trust
local   replication     all                             trust
host    all             pgpivot_trust   127.0.0.1/32    trust
host    all             pgpivot_md5     127.0.0.1/32    md5
host    all             all             127.0.0.1/32    scram-sha-256
host    replication     all             127.0.0.1/32    trust
HBA
}

pg_start() {
  local data=$1
  as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null ||
    { cat "$data/server.log" >&2; return 1; }
}

pg_stop() {
  local data=$1
  [ -d "$data" ] || return 0
  as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

# Roles used by the tests: one per authentication method, all with password 'secret'.
pg_create_test_roles() {
  local data=$1 port=$2
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -U postgres \
    -d postgres >/dev/null <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE pgpivot_scram LOGIN PASSWORD 'secret';
CREATE ROLE pgpivot_trust LOGIN SUPERUSER;
SET password_encryption = 'md5';
CREATE ROLE pgpivot_md5 LOGIN PASSWORD 'secret';
RESET password_encryption;
CREATE DATABASE appdb OWNER pgpivot_scram;
GRANT ALL ON DATABASE appdb TO PUBLIC;
SQL
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -U postgres \
    -d appdb >/dev/null <<'SQL'
GRANT ALL ON SCHEMA public TO PUBLIC;
SQL
}


# ---- Streaming replication (two-node clusters for `make demo` and the failover tests) ----
# Nodes set up by pg_init + pg_configure: the superuser `postgres` reaches a node over its
# private unix socket (the data directory), replication connections come over loopback TCP.

# psql as the superuser on a node: pg_psql DATA PORT [psql args...]
pg_psql() {
  local data=$1 port=$2
  shift 2
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -U postgres "$@"
}

# One value from one query: pg_query DATA PORT DBNAME SQL
pg_query() {
  pg_psql "$1" "$2" -d "$3" -Atc "$4"
}

# Wait until a node answers queries (a standby may accept connections only after it
# reached consistency): pg_wait_ready DATA PORT [SECONDS]
pg_wait_ready() {
  local data=$1 port=$2 secs=${3:-30} i
  for ((i = 0; i < secs * 5; i++)); do
    pg_query "$data" "$port" postgres 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "node $data (port $port) did not answer within ${secs}s" >&2
  return 1
}

# Settings a primary needs so standbys can stream from it and an old primary can be
# rewound after a failover (pg_rewind wants full_page_writes and wal_log_hints).
pg_configure_primary() {
  local data=$1
  cat >>"$data/postgresql.conf" <<CONF
# pg_configure_primary: streaming replication and pg_rewind
max_replication_slots = 10
full_page_writes = on
wal_log_hints = on
CONF
}

# Clone a running primary into a streaming standby: pg_basebackup -R with a physical
# replication slot (created here), then give the copy its own port and socket.
# pg_make_standby PRIMARY_PORT STANDBY_DATA STANDBY_PORT SLOT_NAME
pg_make_standby() {
  local pport=$1 data=$2 port=$3 slot=$4
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  chmod 700 "$data"
  as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$data" -R \
    -X stream -C -S "$slot" --checkpoint=fast --no-sync >"$data.basebackup.log" 2>&1 ||
    { cat "$data.basebackup.log" >&2; return 1; }
  # The copy carries the primary's server.log; start the standby with a log of its own.
  as_postgres truncate -s 0 "$data/server.log" 2>/dev/null || true
  cat >>"$data/postgresql.conf" <<CONF
# pg_make_standby: this node's own port and socket (the rest is the primary's)
port = $port
unix_socket_directories = '$data'
CONF
}

# Wait until the primary reports at least N streaming standbys:
# pg_wait_streaming PRIMARY_DATA PRIMARY_PORT [N] [SECONDS]
pg_wait_streaming() {
  local data=$1 port=$2 want=${3:-1} secs=${4:-30} i n
  for ((i = 0; i < secs * 5; i++)); do
    n=$(pg_query "$data" "$port" postgres \
      "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge "$want" ] && return 0
    sleep 0.2
  done
  echo "primary $data (port $port): fewer than $want streaming standbys after ${secs}s" >&2
  return 1
}

# Wait until a node's pg_is_in_recovery() is t (standby) or f (primary):
# pg_wait_recovery DATA PORT t|f [SECONDS]
pg_wait_recovery() {
  local data=$1 port=$2 want=$3 secs=${4:-30} i
  for ((i = 0; i < secs * 5; i++)); do
    [ "$(pg_query "$data" "$port" postgres 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "$want" ] &&
      return 0
    sleep 0.2
  done
  echo "node $data (port $port): pg_is_in_recovery() is not $want after ${secs}s" >&2
  return 1
}

# Wait until a standby has replayed everything committed on the primary so far:
# pg_wait_replayed PRIMARY_DATA PRIMARY_PORT STANDBY_DATA STANDBY_PORT [SECONDS]
# pg_configure turns synchronous_commit off, so an earlier commit may not be flushed (or
# sent) yet. A synchronous commit of a transaction that has an xid and wrote WAL (here a
# one-record logical message) flushes all WAL before it.
pg_wait_replayed() {
  local pdata=$1 pport=$2 sdata=$3 sport=$4 secs=${5:-30} lsn i
  lsn=$(pg_psql "$pdata" "$pport" -d postgres -At -c 'BEGIN' -c 'SET LOCAL synchronous_commit = on' \
    -c 'SELECT pg_current_xact_id()' -c "SELECT pg_logical_emit_message(true, 'pgpivot', 'sync')" \
    -c 'COMMIT' -c 'SELECT pg_current_wal_flush_lsn()' | tail -n 1) || return 1
  for ((i = 0; i < secs * 5; i++)); do
    [ "$(pg_query "$sdata" "$sport" postgres \
      "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" 2>/dev/null)" = t ] && return 0
    sleep 0.2
  done
  echo "standby $sdata has not replayed $lsn after ${secs}s" >&2
  return 1
}

# Promote a standby and wait until it runs as a primary: pg_promote DATA PORT
pg_promote() {
  local data=$1 port=$2
  as_postgres "$PG_BIN/pg_ctl" -D "$data" -w -t 60 promote >/dev/null || return 1
  pg_wait_recovery "$data" "$port" f 60
}

# A clean shutdown (checkpoint, standbys get everything), unlike pg_stop's immediate one;
# falls back to immediate when fast does not finish in time.
pg_stop_fast() {
  local data=$1
  [ -f "$data/postmaster.pid" ] || return 0
  as_postgres "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}
