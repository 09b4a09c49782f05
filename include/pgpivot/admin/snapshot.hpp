// What the admin console and the metrics endpoint show: plain rows, copied out of the
// workers and the cluster monitor at one moment (a snapshot), so the console and the
// metrics renderer never touch live pools or sessions. The rows hold values, not
// formatting: times are Unix microseconds, durations microseconds, sizes bytes; the
// renderers turn them into PgBouncer's columns or Prometheus base units.
//
// Filling rows is the backend's job (backend.hpp); this header only says what they mean.
// Where a field matches a PgBouncer 1.18 column, the comment names that column.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/config/config.hpp"

namespace pgpivot::admin {

// One (database, user) pool summed over every worker: SHOW POOLS.
struct PoolRow {
  std::string database;
  std::string user;
  int64_t cl_active = 0;              // clients linked to a server, or idle and logged in
  int64_t cl_waiting = 0;             // clients queued for a server
  int64_t cl_active_cancel_req = 0;   // cancel requests forwarded, not yet answered
  int64_t cl_waiting_cancel_req = 0;  // cancel requests not yet forwarded
  int64_t sv_active = 0;              // servers linked to a client
  int64_t sv_active_cancel = 0;       // connections carrying a cancel to PostgreSQL
  int64_t sv_being_canceled = 0;      // servers with a cancel in flight
  int64_t sv_idle = 0;                // ready for a client
  int64_t sv_used = 0;                // idle, but need server_check_query before use
  int64_t sv_tested = 0;              // running server_reset_query or server_check_query
  int64_t sv_login = 0;               // connecting or logging in
  int64_t max_wait_us = 0;            // age of the oldest waiting client (maxwait, maxwait_us)
  std::string pool_mode;              // "session", "transaction", "statement"
};

// One client or server connection: SHOW CLIENTS, SHOW SERVERS, SHOW SOCKETS. Columns whose
// value is an empty string are shown as NULL where PgBouncer shows NULL (link, tls).
struct ConnRow {
  uint64_t id = 0;  // pgpivot's connection id (the `id` column; KILL_CLIENT takes it)
  // The worker (thread) it is on now: a transaction-mode client may move between them.
  int64_t worker = 0;
  std::string user;
  std::string database;
  // Clients: "active", "waiting", "idle", "login", "active_cancel_req", ...
  // Servers: "active", "idle", "used", "tested", "login", "new", ...
  std::string state;
  std::string addr;  // peer address; for unix sockets "unix"
  int64_t port = 0;
  std::string local_addr;
  int64_t local_port = 0;
  int64_t connect_time_us = 0;  // Unix time the connection was made (connect_time)
  int64_t request_time_us = 0;  // Unix time of the last request (request_time)
  int64_t wait_us = 0;          // how long a waiting client has waited so far (wait, wait_us)
  bool close_needed = false;    // will be closed when released (RECONNECT, reload)
  uint64_t link_id = 0;         // the id of the linked peer, 0 if none (ptr/link columns)
  int64_t remote_pid = 0;       // servers: PostgreSQL backend pid; clients: 0
  std::string tls;              // e.g. "TLSv1.3/TLS_AES_256_GCM_SHA384", empty: plain
  std::string application_name;
  // Buffer positions, only shown by SHOW SOCKETS; 0 where not tracked.
  int64_t recv_pos = 0;
  int64_t pkt_pos = 0;
  int64_t pkt_remain = 0;
  int64_t send_pos = 0;
  int64_t send_remain = 0;
  int64_t pkt_avail = 0;
  int64_t send_avail = 0;
};

// Counters of one database since start (they only grow).
struct StatTotals {
  int64_t xact_count = 0;      // transactions pooled (in session mode: server releases)
  int64_t query_count = 0;     // queries pooled
  int64_t bytes_received = 0;  // from clients
  int64_t bytes_sent = 0;      // to clients
  int64_t xact_time_us = 0;    // time spent in transactions, linked to a server
  int64_t query_time_us = 0;   // time spent running queries
  int64_t wait_time_us = 0;    // time clients spent waiting for a server
};

// Rates over the last stats period, as PgBouncer's avg_* columns (see computeAverages()).
struct StatAverages {
  int64_t xact_count = 0;      // transactions per second
  int64_t query_count = 0;     // queries per second
  int64_t bytes_received = 0;  // bytes per second
  int64_t bytes_sent = 0;      // bytes per second
  int64_t xact_time_us = 0;    // mean transaction duration
  int64_t query_time_us = 0;   // mean query duration
  int64_t wait_time_us = 0;    // mean wait for a server, per transaction
};

struct StatsRow {
  std::string database;
  StatTotals totals;
  StatAverages averages;
};

// The averages between two samples of the same database's totals taken `seconds` apart.
// Counts and bytes become per-second rates; times become means per transaction or query
// (0 when nothing completed). A counter that went backwards (reset) gives 0, not a
// negative rate.
StatAverages computeAverages(const StatTotals& earlier, const StatTotals& later, double seconds);

// One [databases] entry with its runtime state: SHOW DATABASES. Empty strings are shown
// as NULL for host, force_user, pool_mode and cluster.
struct DatabaseRow {
  std::string name;
  std::string host;  // for a cluster entry: the current primary's host
  int64_t port = 0;
  std::string database;    // dbname on the server
  std::string force_user;  // user= of the entry
  int64_t pool_size = 0;
  int64_t min_pool_size = 0;
  int64_t reserve_pool = 0;
  std::string pool_mode;        // only when the entry overrides it
  int64_t max_connections = 0;  // max_db_connections, 0 = unlimited
  int64_t current_connections = 0;
  bool paused = false;
  bool disabled = false;
  std::string cluster;  // pgpivot: the [cluster.NAME] it routes through
};

struct UserRow {
  std::string name;
  std::string pool_mode;  // empty: not overridden (NULL)
};

// SHOW LISTS: internal list sizes ("databases", "users", "pools", "free_clients", ...).
struct ListRow {
  std::string name;
  int64_t items = 0;
};

// SHOW MEM: one object cache.
struct MemRow {
  std::string name;
  int64_t size = 0;  // bytes per object
  int64_t used = 0;
  int64_t free = 0;
  int64_t memtotal = 0;  // bytes
};

// SHOW CONFIG: one [pgpivot] key. configRows() builds these from a Config.
struct ConfigRow {
  std::string key;
  std::string value;
  std::string default_value;
  bool changeable = false;  // SET and RELOAD may change it without a restart
};

// Every supported [pgpivot] key of `config` with its default (from a default Config) and
// whether it can change at runtime (everything but the listening sockets, pidfile,
// pkt_buf and workers, which a running process cannot change).
std::vector<ConfigRow> configRows(const config::Config& config);
// Whether SET and RELOAD may change `key` (lower case) without a restart.
bool changeableAtRuntime(std::string_view key);

// --- Failover (pgpivot's own) ----------------------------------------------------------

// One [cluster.NAME] and its failover state machine: SHOW CLUSTERS.
struct ClusterRow {
  std::string name;
  std::string state;          // e.g. "STEADY", "SUSPECT", "WAIT_OPERATOR", "SPLIT_BRAIN"
  std::string reason;         // why it is in that state (the reason of the last state change)
  std::string primary;        // "host:port" of the node traffic goes to, empty if none
  std::string failover_mode;  // "follow", "promote", "manual"
  std::string profile;        // "fast", "default", "safe"
  int64_t nodes = 0;
  int64_t healthy_nodes = 0;
  bool paused = false;                // new transactions are held (failover in progress or PAUSE)
  int64_t failovers = 0;              // completed failovers and switchovers since start
  int64_t failover_time_us = 0;       // total time spent failing over since start
  int64_t last_failover_time_us = 0;  // Unix time the last one started, 0 if never
};

// One node of a cluster, as the health monitor last saw it: SHOW NODES.
struct NodeRow {
  std::string cluster;
  std::string node;    // "host:port"
  std::string role;    // "primary", "standby", "unknown"
  std::string health;  // "healthy", "suspect", "stuck", "down"
  bool fenced = false;
  int64_t timeline = 0;
  std::string lsn;                   // e.g. "0/3000148"; empty if unknown
  std::optional<int64_t> lag_bytes;  // behind the primary; unknown for a node that is down
  int64_t last_probe_time_us = 0;    // Unix time of the last completed probe
  int64_t probe_latency_us = 0;      // duration of that probe
  int64_t lock_waiters = 0;          // sessions waiting on a lock
  int64_t oldest_lock_wait_us = 0;   // age of the oldest of those waits
  int64_t blocked_backends = 0;
  int64_t active_backends = 0;
  int64_t stalled_queries = 0;  // pgpivot's queries with no reply for query_stall_timeout
  std::string server_version;   // e.g. "15.5"
};

// One step of a failover, switchover or drill: SHOW FAILOVERS lists the history, and
// SWITCHOVER/FAILOVER/DRILL report the steps of their own run.
struct FailoverStepRow {
  std::string failover_id;  // names one run; every step of the run carries it
  std::string cluster;
  std::string kind;        // "failover", "switchover", "drill"
  int64_t time_us = 0;     // Unix time of the step
  int64_t elapsed_us = 0;  // since the run started
  std::string step;        // e.g. "detect", "pause", "fence", "promote", "verify", "resume"
  std::string result;      // "ok", "failed", "skipped", "running"
  std::string detail;      // reason and evidence, one line
  // The step that completed a failover: the WAL of the old primary past the new primary's
  // switch point, "LSN 0/3000148 .. 0/3001000 (3768 bytes)", "none (...)" or
  // "unknown (...)"; empty on every other step (NULL).
  std::string possibly_lost;
};

// --- Process ---------------------------------------------------------------------------

// Process-wide counters, for the metrics endpoint.
struct ProcessRow {
  int64_t start_time_us = 0;
  int64_t workers = 0;
  int64_t clients_accepted = 0;  // counter
  int64_t login_failures = 0;    // counter
  int64_t cancel_requests = 0;   // counter: cancels forwarded to PostgreSQL
  int64_t failover_errors = 0;   // counter: 40001/40003/57P03 sent to clients by failovers
  // counter: client transactions failovers failed, counted when failed (not when told)
  int64_t failover_failed_transactions = 0;
  // gauge: transactions on a lost server not yet known to be a failover's (they count in
  // failover_failed_transactions once they are)
  int64_t lost_transactions_undecided = 0;
  int64_t client_connections = 0;
  int64_t server_connections = 0;
};

// Which parts of a Snapshot a caller needs; a backend may fill more, never less.
struct Parts {
  bool pools = false;
  bool clients = false;
  bool servers = false;
  bool stats = false;
  bool databases = false;
  bool users = false;
  bool lists = false;
  bool mem = false;
  bool config = false;
  bool clusters = false;
  bool nodes = false;
  bool failovers = false;
  bool process = false;

  static Parts all() {
    return {true, true, true, true, true, true, true, true, true, true, true, true, true};
  }
};

struct Snapshot {
  std::vector<PoolRow> pools;
  std::vector<ConnRow> clients;
  std::vector<ConnRow> servers;
  std::vector<StatsRow> stats;
  std::vector<DatabaseRow> databases;
  std::vector<UserRow> users;
  std::vector<ListRow> lists;
  std::vector<MemRow> mem;
  std::vector<ConfigRow> config;
  std::vector<ClusterRow> clusters;
  std::vector<NodeRow> nodes;
  std::vector<FailoverStepRow> failovers;  // oldest first
  ProcessRow process;
};

}  // namespace pgpivot::admin
