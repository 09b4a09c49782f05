#!/usr/bin/env bash
# Starts (or stops) the throwaway PostgreSQL 15 that the [pg] tests talk to.
#   pg_fixture.sh start STATE_DIR   initdb into a temp dir, start on a free loopback port,
#                                   create the test roles, write STATE_DIR/env
#   pg_fixture.sh stop STATE_DIR    stop that server and remove its data
# The data directory lives under /tmp because initdb refuses root and the postgres user
# may not be able to enter the build tree (a clone under /root, say).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pg_common.sh
source "$here/pg_common.sh"

cmd=${1:?start|stop}
state=${2:?state dir}
mkdir -p "$state"

case "$cmd" in
start)
  if [ -f "$state/env" ]; then
    # A previous run died without cleaning up: stop what it left behind.
    "$0" stop "$state" || true
  fi
  data=$(pg_make_datadir)
  port=$(pg_free_port)
  pg_init "$data"
  pg_configure "$data" "$port"
  pg_start "$data"
  pg_create_test_roles "$data" "$port"
  {
    echo "PGPIVOT_TEST_PGDATA=$data"
    echo "PGPIVOT_TEST_PGHOST=127.0.0.1"
    echo "PGPIVOT_TEST_PGPORT=$port"
  } >"$state/env"
  echo "PostgreSQL 15 test server on 127.0.0.1:$port, data in $data"
  ;;
stop)
  [ -f "$state/env" ] || exit 0
  data=$(sed -n 's/^PGPIVOT_TEST_PGDATA=//p' "$state/env")
  pg_stop "$data"
  rm -rf "$data" "$data.initdb.log"
  rm -f "$state/env"
  ;;
*)
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
  ;;
esac
