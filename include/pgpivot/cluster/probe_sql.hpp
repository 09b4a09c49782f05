// Every SQL statement the cluster module's I/O side sends, in one place, so the event log
// can quote them and a reviewer can check them against research §1.2. Verified on
// PostgreSQL 15 as a role that is only a member of pg_monitor, on a primary and on a
// streaming standby. Not here: running them (HealthMonitor), or reading the answers
// (probe_sample.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::cluster::sql {

// application_name of every monitor connection (L, W, C and the action connection). The
// stats query leaves these sessions out of its counts: an abandoned heartbeat must not
// show up as a lock waiter (research finding 4).
inline constexpr std::string_view kMonitorApplicationName = "pgpivot-monitor";

// L: one statement, one row, on primary and standby alike (research §1.2 A+B+D+E+F+G in
// one round trip, 3–4 ms with ~100 backends). Functions that raise an error on the other
// role (pg_current_wal_lsn and pg_walfile_name during recovery, pg_is_wal_replay_paused
// outside it) sit in CASE branches, which PostgreSQL evaluates lazily for volatile
// calls. A node can only move out of recovery, never back, so reading the role first is
// race-free. Timeline:
//  - primary: from the current WAL file name; pg_control_checkpoint() lags right after a
//    promotion until the first checkpoint (research fault 13);
//  - standby: the WAL receiver's received_tli while streaming, otherwise the newest of
//    the last restartpoint's and the min-recovery-point's timelines.
// The heartbeat's own backend counts among the I/O and SyncRep waiters (it is the
// evidence that the write path, not the application, is stuck) but never among the
// active, blocked or idle-in-transaction sessions. pg_locks is read once, aggregated (never
// pg_blocking_pids() here: §1.5); waitstart is PG14+. recovery_end_lsn: on a primary that
// was promoted (and not restarted since), pg_last_wal_replay_lsn() stays at the end of the
// WAL it replayed as a standby, i.e. its timeline switch point; NULL on a primary that
// started without recovery. replicas: pg_stat_replication, one line per walsender (format
// in probe_sample.hpp parseReplicaRows), for the election's synchronous-standby rule.
// Without pg_read_all_stats (pg_monitor) the
// pg_stat_activity counts silently read 0, hence can_read_all_stats.
inline constexpr std::string_view kStatsQuery = R"SQL(
WITH role AS (SELECT pg_is_in_recovery() AS in_recovery),
act AS (
  SELECT count(*) FILTER (WHERE state = 'active' AND NOT mon) AS active_backends,
         count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock' AND NOT mon)
           AS blocked_backends,
         count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'IO') AS io_waiters,
         count(*) FILTER (WHERE wait_event = 'SyncRep') AS syncrep_waiters,
         count(*) FILTER (WHERE state LIKE 'idle in transaction%' AND NOT mon) AS idle_in_tx,
         coalesce(max(now() - xact_start)
                    FILTER (WHERE state LIKE 'idle in transaction%' AND NOT mon),
                  '0') AS oldest_idle_in_tx
  FROM (SELECT *, application_name IS NOT DISTINCT FROM 'pgpivot-monitor' AS mon
        FROM pg_stat_activity) a
  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),
lk AS (
  SELECT count(DISTINCT l.pid) AS lock_waiters,
         coalesce(now() - min(l.waitstart), '0') AS oldest_lock_wait
  FROM pg_locks l
  WHERE NOT l.granted AND l.pid <> pg_backend_pid()
    AND l.pid NOT IN (SELECT a.pid FROM pg_stat_activity a
                      WHERE a.application_name = 'pgpivot-monitor')),
db AS (
  SELECT deadlocks, xact_commit + xact_rollback AS xact_total
  FROM pg_stat_database WHERE datname = current_database()),
rep AS (
  SELECT count(*) FILTER (WHERE state = 'streaming') AS streaming_standbys,
         count(*) FILTER (WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))
           AS sync_standbys,
         string_agg(concat_ws(' ', coalesce(state, '-'), coalesce(sync_state, '-'),
                              coalesce(write_lsn::text, '-'), coalesce(flush_lsn::text, '-'),
                              coalesce(replay_lsn::text, '-'), coalesce(application_name, '')),
                    E'\n' ORDER BY pid) AS replicas
  FROM pg_stat_replication)
SELECT role.in_recovery,
       (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
       current_setting('server_version_num')::int AS server_version_num,
       CASE WHEN role.in_recovery
            THEN coalesce(w.received_tli,
                          greatest((SELECT timeline_id FROM pg_control_checkpoint()),
                                   (SELECT min_recovery_end_timeline FROM pg_control_recovery())))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS timeline,
       CASE WHEN NOT role.in_recovery THEN pg_current_wal_lsn() END AS current_lsn,
       CASE WHEN NOT role.in_recovery THEN pg_current_wal_flush_lsn() END AS flush_lsn,
       CASE WHEN role.in_recovery THEN pg_last_wal_receive_lsn() END AS receive_lsn,
       CASE WHEN role.in_recovery THEN pg_last_wal_replay_lsn() END AS replay_lsn,
       CASE WHEN role.in_recovery THEN pg_is_wal_replay_paused() END AS replay_paused,
       CASE WHEN NOT role.in_recovery THEN pg_last_wal_replay_lsn() END AS recovery_end_lsn,
       w.status AS wal_receiver_status,
       (extract(epoch FROM now() - w.last_msg_receipt_time) * 1000)::bigint
         AS last_msg_receipt_age_ms,
       current_setting('default_transaction_read_only') = 'on' AS default_read_only,
       pg_has_role('pg_read_all_stats', 'USAGE') AS can_read_all_stats,
       current_setting('max_connections')::int AS max_connections,
       act.active_backends, act.blocked_backends, act.io_waiters, act.syncrep_waiters,
       act.idle_in_tx,
       (extract(epoch FROM act.oldest_idle_in_tx) * 1000)::bigint AS oldest_idle_in_tx_ms,
       lk.lock_waiters,
       (extract(epoch FROM lk.oldest_lock_wait) * 1000)::bigint AS oldest_lock_wait_ms,
       db.deadlocks, db.xact_total,
       rep.streaming_standbys, rep.sync_standbys, rep.replicas,
       current_setting('synchronous_standby_names') AS sync_standby_names
FROM role CROSS JOIN act CROSS JOIN lk CROSS JOIN rep
     LEFT JOIN db ON true
     LEFT JOIN pg_stat_wal_receiver w ON true
)SQL";

// C: after the fresh connection's startup and authentication.
inline constexpr std::string_view kConnectProbe = "SELECT 1";

// W, once per heartbeat connection: never queue behind our own abandoned write (research
// finding 4), and never keep a transaction open if the connection is left idle.
inline constexpr std::string_view kHeartbeatSession =
    "SET lock_timeout = '500ms'; SET idle_in_transaction_session_timeout = '5s'";

// W: the heartbeat table (heartbeat_table, default pgpivot_heartbeat). Created by the
// operator once, on the primary (it replicates):
//   CREATE TABLE pgpivot_heartbeat (proxy_id text PRIMARY KEY, epoch bigint NOT NULL,
//                                   node text NOT NULL, ts timestamptz NOT NULL);
//   GRANT SELECT, INSERT, UPDATE ON pgpivot_heartbeat TO <monitor_user>;
// or by pgpivot itself with heartbeat_create = on (the monitor user needs CREATE). `table`
// is checked by the config parser: identifiers only, so it goes into the SQL unquoted.
inline std::string heartbeatCreate(std::string_view table) {
  std::string sql;
  if (const auto dot = table.find('.'); dot != std::string_view::npos) {
    sql += "CREATE SCHEMA IF NOT EXISTS " + std::string(table.substr(0, dot)) + "; ";
  }
  sql += "CREATE TABLE IF NOT EXISTS " + std::string(table) +
         " (proxy_id text PRIMARY KEY, epoch bigint NOT NULL, node text NOT NULL, "
         "ts timestamptz NOT NULL)";
  return sql;
}

// W: one statement batch per tick, on the heartbeat's own kept connection: never queue
// behind a lock (lock_timeout, research finding 4), never keep a transaction open, then
// one WAL record and one commit (flush, and a synchronous-standby wait where configured:
// that is the point). The replicated row also tells anyone reading a standby which epoch
// wrote last. `proxy_id` and `node` are quoted here; they come from the host name and the
// config.
inline std::string quoteLiteral(std::string_view text) {
  std::string out = "'";
  for (const char ch : text) {
    if (ch == '\\' || static_cast<unsigned char>(ch) < 0x20) {
      continue;  // standard_conforming_strings may be off: no backslash reaches the SQL
    }
    out += ch;
    if (ch == '\'') {
      out += '\'';
    }
  }
  return out + "'";
}

inline std::string heartbeatUpsert(std::string_view table, std::string_view proxy_id,
                                   uint64_t epoch, std::string_view node) {
  return "SET lock_timeout = '500ms'; SET idle_in_transaction_session_timeout = '5s'; "
         "INSERT INTO " +
         std::string(table) + " (proxy_id, epoch, node, ts) VALUES (" + quoteLiteral(proxy_id) +
         ", " + std::to_string(epoch) + ", " + quoteLiteral(node) +
         ", clock_timestamp()) ON CONFLICT (proxy_id) DO UPDATE SET epoch = EXCLUDED.epoch, "
         "node = EXCLUDED.node, ts = EXCLUDED.ts";
}

// T: the blocker tree (research §1.2 C), only while lock_waiters > 0 and at most every
// few seconds: pg_blocking_pids() takes every lock-manager partition lock.
inline constexpr std::string_view kBlockerTree = R"SQL(
WITH waiting AS (
  SELECT pid, pg_blocking_pids(pid) AS blockers, now() - query_start AS waiting_for,
         left(query, 200) AS query
  FROM pg_stat_activity
  WHERE wait_event_type = 'Lock')
SELECT w.pid, w.waiting_for, w.query,
       b.pid AS blocker_pid, b.state AS blocker_state, b.wait_event_type AS blocker_wait,
       now() - b.xact_start AS blocker_xact_age, now() - b.state_change AS blocker_state_age,
       b.usename, b.application_name, b.client_addr, left(b.query, 200) AS blocker_query,
       NOT EXISTS (SELECT 1 FROM waiting w2 WHERE w2.pid = b.pid) AS is_root_blocker
FROM waiting w
CROSS JOIN LATERAL unnest(w.blockers) AS bp(pid)
JOIN pg_stat_activity b ON b.pid = bp.pid
ORDER BY w.waiting_for DESC
)SQL";

// lock_pileup_action: the root blockers (blocking someone, waiting on nobody), never a
// pgpivot session. Needs pg_signal_backend; superuser sessions cannot be signalled by a
// non-superuser and are left out rather than failing the whole statement.
inline constexpr std::string_view kCancelRootBlockers = R"SQL(
WITH waiting AS (
  SELECT pid, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity
  WHERE wait_event_type = 'Lock'),
roots AS (
  SELECT DISTINCT b.pid FROM waiting w
  CROSS JOIN LATERAL unnest(w.blockers) AS bp(pid)
  JOIN pg_stat_activity b ON b.pid = bp.pid
  JOIN pg_roles r ON r.oid = b.usesysid
  WHERE NOT EXISTS (SELECT 1 FROM waiting w2 WHERE w2.pid = b.pid)
    AND b.application_name IS DISTINCT FROM 'pgpivot-monitor'
    AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)))
SELECT pid, pg_cancel_backend(pid) AS signalled FROM roots
)SQL";

inline constexpr std::string_view kTerminateRootBlockers = R"SQL(
WITH waiting AS (
  SELECT pid, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity
  WHERE wait_event_type = 'Lock'),
roots AS (
  SELECT DISTINCT b.pid FROM waiting w
  CROSS JOIN LATERAL unnest(w.blockers) AS bp(pid)
  JOIN pg_stat_activity b ON b.pid = bp.pid
  JOIN pg_roles r ON r.oid = b.usesysid
  WHERE NOT EXISTS (SELECT 1 FROM waiting w2 WHERE w2.pid = b.pid)
    AND b.application_name IS DISTINCT FROM 'pgpivot-monitor'
    AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)))
SELECT pid, pg_terminate_backend(pid) AS signalled FROM roots
)SQL";

// Fence (research §4.3), each its own statement: ALTER SYSTEM refuses to run inside the
// implicit transaction of a multi-statement query. The read-only setting is a soft fence
// only (BEGIN READ WRITE bypasses it); pgpivot's routing and fence_command are the hard
// ones.
inline constexpr std::string_view kFenceTerminateSessions = R"SQL(
SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) AS terminated
FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
  AND a.application_name IS DISTINCT FROM 'pgpivot-monitor'
  AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
)SQL";
inline constexpr std::string_view kFenceReadOnly =
    "ALTER SYSTEM SET default_transaction_read_only = on";
inline constexpr std::string_view kUnfenceReadOnly =
    "ALTER SYSTEM RESET default_transaction_read_only";
inline constexpr std::string_view kReloadConf = "SELECT pg_reload_conf()";

// A switchover's fence, last: flush the old primary's WAL. With synchronous_commit = off
// a primary acknowledges commits whose WAL still sits in its buffers, beyond
// pg_current_wal_lsn(), until the WAL writer gets to it (wal_writer_delay, up to three
// times that): a standby that replayed up to pg_current_wal_lsn() can lack them, and a CI
// run here lost 73 of 190 acknowledged commits that way. Committing a transactional
// logical message with synchronous_commit = local flushes all the WAL before it, so the
// message's end (flushed_lsn, a record boundary, unlike a flush position that may cut a
// record in two) is the final catch-up's target: every acknowledged commit is before it. One
// statement (no explicit block to leave aborted on the action connection); it needs no
// table and no right beyond PUBLIC's, runs under default_transaction_read_only, at any
// wal_level, and does not wait for a synchronous standby. The message marks the switch
// in the WAL for whoever reads it with pg_waldump.
inline constexpr std::string_view kFlushWal =
    "SELECT set_config('synchronous_commit', 'local', true), "
    "pg_logical_emit_message(true, 'pgpivot', 'switchover fence: WAL flushed') AS flushed_lsn";

// The fence's statements in the order they run, each its own Query (ALTER SYSTEM refuses
// a multi-statement Query's implicit transaction); a switchover's ends with kFlushWal.
// The I/O side runs them; the event log quotes fenceSql().
inline std::vector<std::string_view> fenceStatements(bool flush_wal) {
  std::vector<std::string_view> statements{kFenceTerminateSessions, kFenceReadOnly, kReloadConf};
  if (flush_wal) {
    statements.push_back(kFlushWal);
  }
  return statements;
}
inline std::string fenceSql(bool flush_wal) {
  std::string sql;
  for (const std::string_view statement : fenceStatements(flush_wal)) {
    sql += (sql.empty() ? "" : "; ") + std::string(statement);
  }
  return sql;
}

// Promotion: signal it, then wait until the server is out of recovery, at most 60 s, in one
// statement that succeeds only then. pg_promote(true, 60) would do the waiting itself, but it
// checks every 100 ms (PG15 WAITS_PER_SECOND = 10): a promotion the server finishes in a few
// ms still cost 100 ms of paused writes, half of a planned switchover's pause. Here the check
// runs every 1-2 ms (pg_sleep(0.001)); pg_is_in_recovery() re-reads the shared recovery
// state on each call, so it sees the end of recovery inside this one transaction. An error
// (pg_promote() refused or returned false, or recovery still running after 60 s) means an
// unknown outcome. Needs USAGE on plpgsql, which PUBLIC has by default, besides EXECUTE on
// pg_promote.
inline constexpr std::string_view kPromote = R"SQL(
DO $pgpivot_promote$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
  IF NOT pg_promote(false) THEN
    RAISE EXCEPTION 'pg_promote(false) returned false: the promotion was not signalled';
  END IF;
  WHILE pg_is_in_recovery() LOOP
    IF clock_timestamp() >= deadline THEN
      RAISE EXCEPTION 'still in recovery 60 s after pg_promote(false)';
    END IF;
    PERFORM pg_sleep(0.001);
  END LOOP;
END
$pgpivot_promote$
)SQL";

// After a promotion, so pg_rewind of the old primary reads the new timeline (§4.3 4).
// Needs pg_checkpoint (PG15) or superuser.
inline constexpr std::string_view kCheckpoint = "CHECKPOINT";

}  // namespace pgpivot::cluster::sql
