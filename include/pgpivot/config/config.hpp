// The whole configuration as one plain, immutable aggregate (STYLE.md 3.8). Every default
// lives here, in a member initializer, and nowhere else. Parsing and validation live in
// parser.hpp; this header only says what the settings are.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::config {

using Millis = std::chrono::milliseconds;

enum class PoolMode { kSession, kTransaction, kStatement };
enum class AuthType { kTrust, kAny, kPlain, kMd5, kScramSha256, kCert, kHba };
enum class FailoverMode { kFollow, kPromote, kManual };
// What pgpivot does to the root blocker of a lock pile-up once it has lasted
// lock_pileup_grace: only report it, cancel its query, or terminate its session.
enum class LockPileupAction { kAlert, kCancelBlocker, kTerminateBlocker };

std::string_view toString(PoolMode mode);
std::string_view toString(AuthType type);
std::string_view toString(FailoverMode mode);

// One line of [databases]: `name = host=... port=... dbname=...` in PgBouncer syntax, or
// `name = cluster=main dbname=...` to route through a failover cluster.
struct DatabaseEntry {
  std::string name;  // the name clients connect to; "*" is the fallback entry
  std::string host;  // empty: the unix socket in /var/run/postgresql (as libpq)
  uint16_t port = 5432;
  std::string dbname;  // empty: same as name
  std::string user;    // non-empty: every client of this database uses this server login
  std::string password;
  std::string auth_user;
  std::string cluster;  // non-empty: [cluster.<cluster>] decides host and port
  std::string connect_query;
  std::string client_encoding, datestyle, timezone, application_name;
  std::optional<int> pool_size, min_pool_size, reserve_pool_size, max_db_connections;
  std::optional<PoolMode> pool_mode;
  int line = 0;  // where it was defined, for diagnostics
};

// One line of [users]: `name = pool_mode=... max_user_connections=...`.
struct UserEntry {
  std::string name;
  std::optional<PoolMode> pool_mode;
  std::optional<int> pool_size;
  std::optional<int> max_user_connections;
  int line = 0;
};

// The detection thresholds a cluster's `profile` stands for (research §7.2). A threshold set
// explicitly in the section wins over its profile, wherever the two lines are.
struct DetectionProfile {
  Millis dead_after;          // refused/reset for this long: DOWN:DEAD
  Millis unresponsive_after;  // every probe timing out for this long: DOWN:UNRESPONSIVE
  Millis write_stuck_after;   // heartbeat writes failing (server-side cause) this long
};
// fast: unresponsive after 3 s (research §7.2 proposed 5 s), so that a frozen primary is
// replaced within issue 4's 4 s: with 1 s probes that is still three deadlines missed
// in a row by the kept connection and by fresh connections alike.
inline constexpr DetectionProfile kProfileFast{Millis{3000}, Millis{3000}, Millis{10000}};
// default: unresponsive after 8 s (research §7.2 proposed 10 s). Measured with 10 s, a
// frozen primary took 10.3 s to the first write on the promoted node, over issue 4's
// 10 s; the failure clock starts at the first missed probe, and the witness, pause,
// promotion and verification add 0.3-1 s after it. 8 s is still eight missed deadlines.
inline constexpr DetectionProfile kProfileDefault{Millis{5000}, Millis{8000}, Millis{20000}};
inline constexpr DetectionProfile kProfileSafe{Millis{10000}, Millis{30000}, Millis{60000}};

struct NodeAddress {
  std::string host;
  uint16_t port = 5432;
};

// [cluster.NAME]: a group of nodes with one primary, watched by the health monitor.
struct ClusterEntry {
  std::string name;
  std::vector<NodeAddress> nodes;
  std::string monitor_user;
  std::string monitor_password;
  std::string monitor_dbname = "postgres";
  FailoverMode failover_mode = FailoverMode::kFollow;
  std::string profile = "default";
  Millis probe_interval{1000};
  Millis probe_timeout{1000};
  std::string failover_log;  // empty: the main log
  std::string fence_command;
  Millis fence_timeout{5000};  // fence_command is killed after this; FENCING waits this long
  // The heartbeat write (W) on the primary: this table ("table" or "schema.table"); empty:
  // no heartbeat. With heartbeat_create, pgpivot creates the schema and the table itself
  // when the table is missing (the monitor user then needs CREATE on the database).
  std::string heartbeat_table = "pgpivot_heartbeat";
  bool heartbeat_create = false;

  // --- detection (the cluster module's NodeHealth) -----------------------------------
  Millis dead_after = kProfileDefault.dead_after;
  Millis unresponsive_after = kProfileDefault.unresponsive_after;
  Millis write_stuck_after = kProfileDefault.write_stuck_after;
  // A query through pgpivot with no byte back for this long is "stalled" (data-path
  // evidence, SHOW NODES stalled_queries). 0: unresponsive_after.
  Millis query_stall_timeout{0};
  Millis crash_recovery_grace{30000};  // 57P03 "starting up" pauses the failure clock this long
  int lock_waiters_warn = 10;          // DEGRADED:LOCKS at this many lock waiters...
  Millis oldest_lock_wait_warn{5000};  // ...or when the oldest lock wait is this old
  LockPileupAction lock_pileup_action = LockPileupAction::kAlert;
  Millis lock_pileup_grace{60000};  // how long a pile-up lasts before the action is taken

  // --- failover decision (the cluster module's FailoverMachine) -----------------------
  int64_t max_lag_on_failover = 1024 * 1024;  // bytes of WAL a candidate may miss (Patroni's)
  Millis failover_cooldown{600000};           // no automatic failover this soon after one
  int max_failovers_per_hour = 2;
  Millis search_primary_timeout{60000};  // follow mode: wait this long for a new primary
  Millis failover_pause_timeout{30000};  // clients wait this long for a primary, then 57P03
  // SWITCHOVER / DRILL: transactions open when clients are paused get this long to end on
  // the old primary; then the switchover goes on and the fence aborts them (40001).
  Millis drain_timeout{10000};
  std::string state_file;  // epoch, timeline, fenced nodes; empty: kept in memory only
  int line = 0;
};

// query_stall_timeout, or unresponsive_after where it is not set.
inline Millis queryStallTimeout(const ClusterEntry& cluster) {
  return cluster.query_stall_timeout.count() > 0 ? cluster.query_stall_timeout
                                                 : cluster.unresponsive_after;
}

inline std::string_view toString(LockPileupAction action) {
  switch (action) {
    case LockPileupAction::kAlert:
      return "alert";
    case LockPileupAction::kCancelBlocker:
      return "cancel_blocker";
    case LockPileupAction::kTerminateBlocker:
      return "terminate_blocker";
  }
  return "alert";
}

// Where a setting was written, so validate() and reload can name file:line. Keys of
// Config::sources: "listen_port" for [pgpivot] keys, "databases.NAME", "users.NAME",
// "cluster.NAME" (the section header) and "cluster.NAME.KEY".
struct SourceLine {
  std::string file;
  int line = 0;
};

struct Config {
  std::string path;  // the file this came from; reload reads it again

  // --- where to listen -------------------------------------------------------------
  std::vector<std::string> listen_addr{"127.0.0.1"};  // "*" means every address
  uint16_t listen_port = 6432;
  std::string unix_socket_dir = "/tmp";  // empty: no unix socket
  int listen_backlog = 128;
  std::string admin_listen_addr = "127.0.0.1";
  uint16_t admin_port = 6433;  // 0: only the virtual database on the data port
  uint16_t metrics_port = 0;   // 0: metrics off

  // --- authentication ----------------------------------------------------------------
  AuthType auth_type = AuthType::kMd5;
  std::string auth_file;
  std::string auth_user;
  std::string auth_query = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";
  std::string auth_dbname;
  std::vector<std::string> admin_users;
  std::vector<std::string> stats_users;

  // --- pooling -------------------------------------------------------------------------
  PoolMode pool_mode = PoolMode::kSession;
  int max_client_conn = 100;
  int default_pool_size = 20;
  int min_pool_size = 0;
  int reserve_pool_size = 0;
  Millis reserve_pool_timeout{5000};
  int max_db_connections = 0;    // 0: unlimited
  int max_user_connections = 0;  // 0: unlimited
  std::string server_reset_query = "DISCARD ALL";
  bool server_reset_query_always = false;
  std::string server_check_query = "select 1";
  Millis server_check_delay{30000};
  Millis server_lifetime{3600 * 1000};
  Millis server_idle_timeout{600 * 1000};
  Millis server_connect_timeout{15000};
  Millis server_login_retry{15000};
  // TCP keepalives and TCP_USER_TIMEOUT on server sockets (PgBouncer's keys and units:
  // seconds, a count, milliseconds; 0: the operating system's default).
  bool tcp_keepalive = true;
  // TCP_DEFER_ACCEPT on the listening sockets, as PgBouncer on Linux: a connection is
  // handed over only once its first packet has arrived, so a new client costs one wake-up,
  // not two (one for the handshake, one for the startup packet).
  bool tcp_defer_accept = true;
  int tcp_keepidle = 0;
  int tcp_keepintvl = 0;
  int tcp_keepcnt = 0;
  int tcp_user_timeout = 0;
  Millis client_login_timeout{60000};
  Millis client_idle_timeout{0};  // 0: off
  Millis query_timeout{0};
  Millis query_wait_timeout{120000};
  Millis idle_transaction_timeout{0};
  std::vector<std::string> ignore_startup_parameters;
  // PgBouncer 1.20+: parameters PostgreSQL reports with ParameterStatus (GUC_REPORT) that
  // pgpivot carries from a client to every server connection it lands on, beside the
  // built-in ones (client_encoding, DateStyle, TimeZone, IntervalStyle, application_name,
  // standard_conforming_strings): accepted as startup parameters, followed when the
  // server reports a change, SET again on another server. As the config spells them.
  // A RELOAD applies to clients that log in after it. PgBouncer's default (built in here).
  std::vector<std::string> track_extra_parameters{"IntervalStyle"};
  // Named prepared statements kept on each server connection in transaction and
  // statement mode (least recently used closed first); 0: passed through unchanged.
  int max_prepared_statements = 200;
  // SHOW STATS' avg_* columns are the rates and means of the last complete period of this
  // length (PgBouncer's stats_period).
  Millis stats_period{60000};

  // --- process -----------------------------------------------------------------------
  std::string logfile;  // empty: stderr
  std::string pidfile;
  int verbose = 0;
  bool log_connections = true;
  bool log_disconnections = true;
  bool log_pooler_errors = true;
  int workers = 0;  // 0: one per core
  // A worker using more than this share of one core (percent) hands transaction-mode
  // clients to a worker using less than half of it (app/client_moves.hpp); 0: never.
  int worker_spill_load = 80;
  int64_t max_packet_size = 1024LL * 1024 * 1024;  // PostgreSQL's own limit: 1 GB
  int pkt_buf = 32768;                             // bytes of receive buffer per connection

  std::map<std::string, DatabaseEntry> databases;
  std::map<std::string, UserEntry> users;
  std::map<std::string, ClusterEntry> clusters;

  std::map<std::string, SourceLine> sources;  // not a setting: diagnostics only
};

}  // namespace pgpivot::config
