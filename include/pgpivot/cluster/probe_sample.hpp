// What one probe of one node returned (research §7.1): L, the stats query on a kept
// monitor connection; C, a fresh connection; W, the heartbeat write on the primary. The
// I/O side (HealthMonitor) runs the probes with libpq and fills these; the classifier
// (node_health.hpp) reads them. parseStatsRow turns the L query's text columns
// (PQgetvalue) into a ProbeSample. No I/O here, and no judgement: that is NodeHealth's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/core/result.hpp"

namespace pgpivot::cluster {

// How a probe ended. kError carries the server's SQLSTATE (57P01 "terminating
// connection", 57P03 "the database system is starting up", 25006 read-only, ...).
enum class ProbeOutcome : uint8_t {
  kOk,
  kTimeout,     // no answer within the probe's client-side deadline (then cancelled)
  kRefused,     // ECONNREFUSED: nothing listens, the postmaster is gone
  kReset,       // the connection broke (ECONNRESET, EOF, "server closed the connection")
  kAuthFailed,  // the server answered and refused the monitor's login (28P01, 28000)
  kError,       // the server answered with an ErrorResponse: see sqlstate
};
std::string_view toString(ProbeOutcome outcome);

// Primary only: one row of its pg_stat_replication, as the L query aggregates them (the
// `replicas` column). Which configured node a row is comes from application_name: each
// standby's primary_conninfo must carry application_name=<its node name> ("host:port", as
// in [cluster] nodes) for the election's synchronous-standby rule to recognise it.
// client_addr/client_port cannot say it: the port is the standby's ephemeral one, and
// several nodes on one host (or behind NAT) share an address.
struct ReplicaRow {
  std::string application_name;
  std::string state;       // startup, catchup, streaming, backup, stopping; "" unknown
  std::string sync_state;  // async, potential, sync, quorum; "" unknown (no privilege)
  uint64_t write_lsn = 0;  // 0: NULL
  uint64_t flush_lsn = 0;
  uint64_t replay_lsn = 0;
};

// Primary only: what synchronous_standby_names says, as far as the election needs it.
struct SyncStandbyNames {
  enum class Method : uint8_t { kOff, kPriority, kQuorum, kUnknown };
  Method method = Method::kOff;  // kUnknown: the parser could not read it
  int32_t num = 0;               // FIRST num / ANY num (1 for a plain list)
  std::vector<std::string> names = {};
};
// PostgreSQL's grammar (syncrep_gram.y): "", "a, b", "2 (a, b)", "FIRST 2 (a, b)",
// "ANY 2 (a, b)"; names are identifiers, numbers, "*" or "double quoted". Anything else
// reads as kUnknown, which no rule trusts.
SyncStandbyNames parseSyncStandbyNames(std::string_view text);

// The `replicas` column: one line per pg_stat_replication row, "state sync_state write
// flush replay application_name", with "-" for NULL (application_name is last: it may
// hold spaces; PostgreSQL keeps it printable ASCII, so never a newline). Fails on a
// malformed line.
[[nodiscard]] Result<std::vector<ReplicaRow>> parseReplicaRows(std::string_view text);

// L: the stats query (probe_sql.hpp kStatsQuery), one row. The fields after `latency_ms`
// are meaningful only when outcome == kOk. LSNs are byte positions (0/0 = 0 = unknown).
struct ProbeSample {
  ProbeOutcome outcome = ProbeOutcome::kOk;
  std::string sqlstate;  // kError, kAuthFailed
  std::string error;     // the server's or libpq's message, for the event log
  uint64_t at_ms = 0;    // monotonic time the probe was *sent*
  uint32_t latency_ms = 0;

  bool in_recovery = false;
  uint32_t timeline = 0;  // primary: from its WAL file name; standby: received/replayed TLI
  std::string system_identifier;
  int32_t server_version_num = 0;
  uint64_t current_lsn = 0;  // primary only
  // Primary only: how far its WAL is flushed, so how far a standby can have it (walsenders
  // send flushed WAL only). Behind current_lsn while the WAL writer has not caught up, and
  // with synchronous_commit = off that gap holds acknowledged commits.
  uint64_t flush_lsn = 0;
  uint64_t receive_lsn = 0;  // standby only
  uint64_t replay_lsn = 0;   // standby only
  // Primary only: where its recovery ended (pg_last_wal_replay_lsn() out of recovery), the
  // switch point of a promoted node; 0 when it started without recovery.
  uint64_t recovery_end_lsn = 0;
  bool replay_paused = false;
  bool wal_receiver_streaming = false;  // standby: pg_stat_wal_receiver.status = streaming
  std::optional<uint64_t> last_msg_receipt_age_ms;  // standby: now() - last_msg_receipt_time
  bool default_read_only = false;                   // default_transaction_read_only = on
  bool can_read_all_stats = true;  // without pg_read_all_stats the backend counts read 0
  int32_t max_connections = 0;
  int32_t active_backends = 0;     // client backends running a statement
  int32_t blocked_backends = 0;    // ...of which waiting on a heavyweight lock
  int32_t io_waiters = 0;          // ...of which waiting on I/O (WALWrite, DataFileSync, ...)
  int32_t syncrep_waiters = 0;     // commits waiting for a synchronous standby (IPC/SyncRep)
  int32_t idle_in_tx_holders = 0;  // sessions idle inside a transaction
  uint64_t oldest_idle_in_tx_ms = 0;
  int32_t lock_waiters = 0;  // backends with an ungranted lock (pg_locks)
  uint64_t oldest_lock_wait_ms = 0;
  int64_t deadlocks = 0;           // pg_stat_database, cumulative (resets after a crash!)
  int64_t xact_total = 0;          // commits + rollbacks, cumulative
  int32_t streaming_standbys = 0;  // primary: pg_stat_replication rows streaming
  int32_t sync_standbys = 0;       // ...of which sync or quorum
  // Primary only: every pg_stat_replication row, and synchronous_standby_names (the
  // election's synchronous-standby rule reads the old primary's last good sample).
  std::vector<ReplicaRow> replicas;
  SyncStandbyNames sync_names;

  [[nodiscard]] bool ok() const { return outcome == ProbeOutcome::kOk; }
  // When the answer arrived (monotonic).
  [[nodiscard]] uint64_t doneMs() const { return at_ms + latency_ms; }
};

// C: a fresh connection (startup, authentication, `SELECT 1`). 57P03 ("starting up",
// "in recovery mode", "not yet accepting connections") is the crash-recovery signal and
// 53300 (too many connections) a saturated node.
// What pgpivot's own server connections to a node showed (summed over the workers; the
// monitor's data_path.hpp): the data path's evidence, next to the probes' (DESIGN.md
// "Failover, in outline" step 2). Corroborates; never by itself a reason to fail over.
struct DataPathSample {
  uint64_t at_ms = 0;
  int64_t stalled_queries = 0;  // owing a reply, no byte back for stall_timeout_ms
  uint64_t oldest_stall_ms = 0;
  uint64_t stall_timeout_ms = 0;  // query_stall_timeout
  int64_t queries_in_flight = 0;  // connections owing a reply at all
  int64_t transactions_per_s = 0;
  int64_t server_errors = 0;  // 57P0x / 08xxx ErrorResponses in the last interval
};

struct ConnectSample {
  ProbeOutcome outcome = ProbeOutcome::kOk;
  std::string sqlstate;
  std::string error;
  uint64_t at_ms = 0;
  uint32_t latency_ms = 0;

  [[nodiscard]] bool ok() const { return outcome == ProbeOutcome::kOk; }
  [[nodiscard]] uint64_t doneMs() const { return at_ms + latency_ms; }
};

// W: the heartbeat write (probe_sql.hpp kHeartbeatUpsert) on the believed primary.
// 25006 means read-only (a standby, or fenced with default_transaction_read_only), 55P03
// our own lock_timeout (locks, not a stuck server), 53100 disk full.
struct WriteSample {
  ProbeOutcome outcome = ProbeOutcome::kOk;
  std::string sqlstate;
  std::string error;
  uint64_t at_ms = 0;
  uint32_t latency_ms = 0;

  [[nodiscard]] bool ok() const { return outcome == ProbeOutcome::kOk; }
  [[nodiscard]] uint64_t doneMs() const { return at_ms + latency_ms; }
};

// One result row by column name; a NULL is nullopt. Fill it from PQfname/PQgetisnull/
// PQgetvalue. Columns the parser does not know are ignored.
using ColumnRow = std::map<std::string, std::optional<std::string>, std::less<>>;

// The L query's row as a ProbeSample with outcome kOk. Fails, naming the column, when a
// column is missing or malformed; NULL is accepted where the query yields NULL on one of
// the two roles (LSNs, WAL receiver fields).
[[nodiscard]] Result<ProbeSample> parseStatsRow(const ColumnRow& row, uint64_t at_ms,
                                                uint32_t latency_ms);

// PostgreSQL's pg_lsn text form "16/B374D848" <-> a byte position.
[[nodiscard]] std::optional<uint64_t> parseLsn(std::string_view text);
std::string formatLsn(uint64_t lsn);

}  // namespace pgpivot::cluster
