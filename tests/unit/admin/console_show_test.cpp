// Every SHOW of the admin console, decoded back with the proto views: PgBouncer 1.18's
// column names in PgBouncer's order (pgpivot's additions only at the end), int8 for
// numbers and text for names, and the snapshot's values in the cells.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "admin_fakes.hpp"
#include "pgpivot/admin/console.hpp"

namespace pgpivot::admin::test {
namespace {

using Names = std::vector<std::string>;

Snapshot sampleSnapshot() {
  Snapshot s;
  PoolRow pool;
  pool.database = "appdb";
  pool.user = "alice";
  pool.cl_active = 3;
  pool.cl_waiting = 2;
  pool.sv_active = 3;
  pool.sv_idle = 1;
  pool.sv_login = 1;
  pool.max_wait_us = 2'500'000;
  pool.pool_mode = "transaction";
  s.pools.push_back(pool);

  ConnRow client;
  client.id = 42;
  client.user = "alice";
  client.database = "appdb";
  client.state = "active";
  client.addr = "127.0.0.1";
  client.port = 51234;
  client.local_addr = "127.0.0.1";
  client.local_port = 6432;
  client.connect_time_us = 1'700'000'000'000'000;
  client.request_time_us = 1'700'000'001'000'000;
  client.link_id = 7;
  client.application_name = "psql";
  client.send_remain = 10;
  s.clients.push_back(client);
  ConnRow idle_client = client;
  idle_client.id = 43;
  idle_client.state = "waiting";
  idle_client.wait_us = 1'000'123;
  idle_client.link_id = 0;
  idle_client.send_remain = 0;
  s.clients.push_back(idle_client);

  ConnRow server;
  server.id = 7;
  server.user = "alice";
  server.database = "appdb";
  server.state = "active";
  server.addr = "10.0.0.1";
  server.port = 5432;
  server.link_id = 42;
  server.remote_pid = 4242;
  s.servers.push_back(server);

  StatsRow stats;
  stats.database = "appdb";
  stats.totals = {100, 250, 4096, 8192, 5'000'000, 4'000'000, 1'000'000};
  stats.averages = {10, 25, 409, 819, 50'000, 16'000, 100};
  s.stats.push_back(stats);
  StatsRow other = stats;
  other.database = "legacy";
  other.averages.xact_count = 30;
  other.averages.xact_time_us = 10'000;
  s.stats.push_back(other);

  DatabaseRow db;
  db.name = "appdb";
  db.host = "10.0.0.1";
  db.port = 5432;
  db.database = "appdb";
  db.pool_size = 20;
  db.max_connections = 0;
  db.current_connections = 4;
  db.cluster = "main";
  db.paused = true;
  s.databases.push_back(db);

  s.users.push_back(UserRow{"alice", "session"});
  s.users.push_back(UserRow{"bob", ""});
  s.lists.push_back(ListRow{"databases", 2});
  s.mem.push_back(MemRow{"client_cache", 600, 5, 45, 30000});
  s.config.push_back(ConfigRow{"listen_port", "6432", "6432", false});
  s.config.push_back(ConfigRow{"verbose", "1", "0", true});

  ClusterRow cluster;
  cluster.name = "main";
  cluster.state = "STEADY";
  cluster.reason = "primary healthy";
  cluster.primary = "10.0.0.1:5432";
  cluster.failover_mode = "promote";
  cluster.profile = "default";
  cluster.nodes = 2;
  cluster.healthy_nodes = 2;
  cluster.failovers = 1;
  cluster.failover_time_us = 3'200'000;
  cluster.last_failover_time_us = 1'700'000'000'000'000;
  s.clusters.push_back(cluster);

  NodeRow node;
  node.cluster = "main";
  node.node = "10.0.0.2:5432";
  node.role = "standby";
  node.health = "healthy";
  node.timeline = 3;
  node.lsn = "0/3000148";
  node.lag_bytes = 128;
  node.probe_latency_us = 850;
  node.oldest_lock_wait_us = 2'000'000;
  s.nodes.push_back(node);
  NodeRow down = node;
  down.node = "10.0.0.3:5432";
  down.health = "down";
  down.lag_bytes.reset();
  s.nodes.push_back(down);

  FailoverStepRow step;
  step.failover_id = "f-0001";
  step.cluster = "main";
  step.kind = "switchover";
  step.time_us = 1'700'000'000'000'000;
  step.elapsed_us = 1'500'000;
  step.step = "promote";
  step.result = "ok";
  step.detail = "pg_promote() on 10.0.0.2:5432";
  s.failovers.push_back(step);
  step.step = "failover_complete";
  step.detail = "clients resumed";
  step.possibly_lost = "LSN 0/3000148 .. 0/3001000 (3768 bytes)";
  s.failovers.push_back(step);
  return s;
}

struct Fixture {
  FakeBackend backend;
  Console console{backend};
  Fixture() { backend.data = sampleSnapshot(); }
};

void requireTypes(const Answer& a, const Names& text_columns) {
  for (const auto& column : a.columns) {
    CAPTURE(column.name);
    const bool is_text =
        std::find(text_columns.begin(), text_columns.end(), column.name) != text_columns.end();
    CHECK(column.type_oid == (is_text ? kText : kInt8));
  }
}

TEST_CASE("SHOW POOLS has PgBouncer's columns and splits maxwait into s and us", "[unit][admin]") {
  Fixture f;
  const Answer a = runOne(f.console, "SHOW POOLS");
  CHECK(a.tag == "SHOW");
  CHECK(a.columnNames() == Names{"database", "user", "cl_active", "cl_waiting",
                                 "cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active",
                                 "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used",
                                 "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode"});
  requireTypes(a, {"database", "user", "pool_mode"});
  REQUIRE(a.rows.size() == 1);
  CHECK(a.cell(0, "database") == "appdb");
  CHECK(a.cell(0, "cl_waiting") == "2");
  CHECK(a.cell(0, "maxwait") == "2");
  CHECK(a.cell(0, "maxwait_us") == "500000");
  CHECK(a.cell(0, "pool_mode") == "transaction");
  REQUIRE(f.backend.snapshot_requests.size() == 1);
  CHECK(f.backend.snapshot_requests[0].pools);
  CHECK_FALSE(f.backend.snapshot_requests[0].clients);
}

const Names kConnNames{
    "type",       "user",       "database",         "state",        "addr",
    "port",       "local_addr", "local_port",       "connect_time", "request_time",
    "wait",       "wait_us",    "close_needed",     "ptr",          "link",
    "remote_pid", "tls",        "application_name", "id",           "worker"};
const Names kConnText{"type", "user",       "database",     "state",
                      "addr", "local_addr", "connect_time", "request_time",
                      "ptr",  "link",       "tls",          "application_name"};

TEST_CASE("SHOW CLIENTS and SHOW SERVERS list connections with ids KILL_CLIENT takes",
          "[unit][admin]") {
  Fixture f;
  const Answer clients = runOne(f.console, "SHOW CLIENTS");
  CHECK(clients.columnNames() == kConnNames);
  requireTypes(clients, kConnText);
  REQUIRE(clients.rows.size() == 2);
  CHECK(clients.cell(0, "type") == "C");
  CHECK(clients.cell(0, "ptr") == "0x2a");
  CHECK(clients.cell(0, "link") == "0x7");
  CHECK(clients.cell(0, "id") == "42");
  CHECK(clients.cell(0, "connect_time") == "2023-11-14 22:13:20 UTC");
  CHECK(clients.cell(1, "state") == "waiting");
  CHECK(clients.cell(1, "wait") == "1");
  CHECK(clients.cell(1, "wait_us") == "123");
  CHECK(clients.cell(1, "link") == "");

  const Answer servers = runOne(f.console, "SHOW SERVERS");
  CHECK(servers.columnNames() == kConnNames);
  REQUIRE(servers.rows.size() == 1);
  CHECK(servers.cell(0, "type") == "S");
  CHECK(servers.cell(0, "remote_pid") == "4242");
  CHECK(servers.cell(0, "link") == "0x2a");
}

TEST_CASE(
    "SHOW SOCKETS lists clients then servers with buffer columns, ACTIVE_SOCKETS "
    "only busy ones",
    "[unit][admin]") {
  Fixture f;
  Names names(kConnNames.begin(), kConnNames.end() - 2);
  for (const char* extra : {"recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain",
                            "pkt_avail", "send_avail", "id"}) {
    names.emplace_back(extra);
  }
  const Answer all = runOne(f.console, "SHOW SOCKETS");
  CHECK(all.columnNames() == names);
  REQUIRE(all.rows.size() == 3);
  CHECK(all.cell(0, "state") == "cl_active");
  CHECK(all.cell(2, "state") == "sv_active");
  CHECK(all.cell(0, "send_remain") == "10");
  const Answer active = runOne(f.console, "SHOW ACTIVE_SOCKETS");
  CHECK(active.columnNames() == names);
  REQUIRE(active.rows.size() == 1);
  CHECK(active.cell(0, "id") == "42");
}

TEST_CASE("SHOW STATS, STATS_TOTALS, STATS_AVERAGES and TOTALS use PgBouncer's names",
          "[unit][admin]") {
  Fixture f;
  const Answer stats = runOne(f.console, "SHOW STATS");
  CHECK(stats.columnNames() == Names{"database", "total_xact_count", "total_query_count",
                                     "total_received", "total_sent", "total_xact_time",
                                     "total_query_time", "total_wait_time", "avg_xact_count",
                                     "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time",
                                     "avg_query_time", "avg_wait_time"});
  requireTypes(stats, {"database"});
  REQUIRE(stats.rows.size() == 2);
  CHECK(stats.cell(0, "total_received") == "4096");
  CHECK(stats.cell(0, "avg_query_time") == "16000");

  const Names part{"database",   "xact_count", "query_count", "bytes_received",
                   "bytes_sent", "xact_time",  "query_time",  "wait_time"};
  const Answer totals = runOne(f.console, "SHOW STATS_TOTALS");
  CHECK(totals.columnNames() == part);
  CHECK(totals.cell(0, "xact_time") == "5000000");
  const Answer averages = runOne(f.console, "SHOW STATS_AVERAGES");
  CHECK(averages.columnNames() == part);
  CHECK(averages.cell(0, "xact_time") == "50000");

  const Answer sum = runOne(f.console, "SHOW TOTALS");
  CHECK(sum.columnNames() == Names{"name", "value"});
  REQUIRE(sum.rows.size() == 14);
  CHECK(sum.rows[0][0] == "total_xact_count");
  CHECK(sum.rows[0][1] == "200");
  // Weighted by transactions: (10 * 50000 + 30 * 10000) / 40.
  CHECK(sum.rows[11][0] == "avg_xact_time");
  CHECK(sum.rows[11][1] == "20000");
}

TEST_CASE(
    "SHOW DATABASES has PgBouncer's columns, NULL where PgBouncer has NULL, and the "
    "cluster",
    "[unit][admin]") {
  Fixture f;
  const Answer a = runOne(f.console, "SHOW DATABASES");
  CHECK(a.columnNames() == Names{"name", "host", "port", "database", "force_user", "pool_size",
                                 "min_pool_size", "reserve_pool", "pool_mode", "max_connections",
                                 "current_connections", "paused", "disabled", "cluster"});
  requireTypes(a, {"name", "host", "database", "force_user", "pool_mode", "cluster"});
  REQUIRE(a.rows.size() == 1);
  CHECK(a.cell(0, "force_user") == std::nullopt);
  CHECK(a.cell(0, "pool_mode") == std::nullopt);
  CHECK(a.cell(0, "paused") == "1");
  CHECK(a.cell(0, "cluster") == "main");
}

TEST_CASE("SHOW USERS, LISTS, MEM and CONFIG", "[unit][admin]") {
  Fixture f;
  const Answer users = runOne(f.console, "SHOW USERS");
  CHECK(users.columnNames() == Names{"name", "pool_mode"});
  REQUIRE(users.rows.size() == 2);
  CHECK(users.cell(1, "pool_mode") == std::nullopt);

  const Answer lists = runOne(f.console, "SHOW LISTS");
  CHECK(lists.columnNames() == Names{"list", "items"});
  requireTypes(lists, {"list"});
  CHECK(lists.rows.at(0) == std::vector<std::optional<std::string>>{"databases", "2"});

  const Answer mem = runOne(f.console, "SHOW MEM");
  CHECK(mem.columnNames() == Names{"name", "size", "used", "free", "memtotal"});
  requireTypes(mem, {"name"});

  const Answer config = runOne(f.console, "SHOW CONFIG");
  CHECK(config.columnNames() == Names{"key", "value", "default", "changeable"});
  requireTypes(config, {"key", "value", "default", "changeable"});
  CHECK(config.cell(0, "changeable") == "no");
  CHECK(config.cell(1, "changeable") == "yes");
}

TEST_CASE("SHOW VERSION and SHOW HELP need no backend", "[unit][admin]") {
  Fixture f;
  const Answer version = runOne(f.console, "SHOW VERSION");
  CHECK(version.columnNames() == Names{"version"});
  REQUIRE(version.rows.size() == 1);
  CHECK(version.rows[0][0]->rfind("pgpivot ", 0) == 0);
  CHECK(version.rows[0][0]->find("PgBouncer 1.18.0") != std::string::npos);

  const Answer help = runOne(f.console, "SHOW HELP");
  CHECK(help.tag == "SHOW");
  CHECK(help.columns.empty());
  REQUIRE(help.notices.size() == 1);
  CHECK(help.notices[0].rfind("Console usage|", 0) == 0);
  CHECK(help.notices[0].find("DRILL <cluster>") != std::string::npos);
  CHECK(f.backend.snapshot_requests.empty());
}

TEST_CASE("SHOW CLUSTERS, NODES and FAILOVERS show the failover state", "[unit][admin]") {
  Fixture f;
  const Answer clusters = runOne(f.console, "SHOW CLUSTERS");
  CHECK(clusters.columnNames() == Names{"cluster", "state", "reason", "primary", "failover_mode",
                                        "profile", "nodes", "healthy_nodes", "paused", "failovers",
                                        "failover_time_ms", "last_failover"});
  CHECK(clusters.cell(0, "failover_time_ms") == "3200");
  CHECK(clusters.cell(0, "reason") == "primary healthy");
  CHECK(clusters.cell(0, "primary") == "10.0.0.1:5432");

  const Answer nodes = runOne(f.console, "SHOW NODES");
  CHECK(nodes.columnNames() == Names{"cluster", "node", "role", "health", "fenced", "timeline",
                                     "lsn", "lag_bytes", "last_probe", "probe_latency_us",
                                     "lock_waiters", "oldest_lock_wait_ms", "blocked_backends",
                                     "active_backends", "stalled_queries", "server_version"});
  requireTypes(nodes, {"cluster", "node", "role", "health", "lsn", "last_probe", "server_version"});
  REQUIRE(nodes.rows.size() == 2);
  CHECK(nodes.cell(0, "lag_bytes") == "128");
  CHECK(nodes.cell(1, "lag_bytes") == std::nullopt);
  CHECK(nodes.cell(0, "oldest_lock_wait_ms") == "2000");

  const Answer failovers = runOne(f.console, "SHOW FAILOVERS");
  CHECK(failovers.columnNames() == Names{"failover_id", "cluster", "kind", "time", "elapsed_ms",
                                         "step", "result", "detail", "possibly_lost"});
  CHECK(failovers.cell(0, "elapsed_ms") == "1500");
  CHECK(failovers.cell(0, "step") == "promote");
  CHECK(failovers.cell(0, "possibly_lost") == std::nullopt);
  REQUIRE(failovers.rows.size() == 2);
  CHECK(failovers.cell(1, "possibly_lost") == "LSN 0/3000148 .. 0/3001000 (3768 bytes)");
}

TEST_CASE("SHOW DNS_HOSTS and DNS_ZONES answer empty tables", "[unit][admin]") {
  Fixture f;
  CHECK(runOne(f.console, "SHOW DNS_HOSTS").columnNames() == Names{"hostname", "ttl", "addrs"});
  CHECK(runOne(f.console, "SHOW DNS_ZONES").columnNames() == Names{"zonename", "serial", "count"});
}

TEST_CASE("every SHOW asks the backend only for what it shows", "[unit][admin]") {
  Fixture f;
  (void)run(f.console, "SHOW CLIENTS; SHOW STATS; SHOW NODES");
  REQUIRE(f.backend.snapshot_requests.size() == 3);
  CHECK(f.backend.snapshot_requests[0].clients);
  CHECK_FALSE(f.backend.snapshot_requests[0].servers);
  CHECK(f.backend.snapshot_requests[1].stats);
  CHECK_FALSE(f.backend.snapshot_requests[1].pools);
  CHECK(f.backend.snapshot_requests[2].nodes);
  CHECK_FALSE(f.backend.snapshot_requests[2].clusters);
}

}  // namespace
}  // namespace pgpivot::admin::test
