// The Prometheus renderer: exposition format 0.0.4 rules (one HELP and TYPE per family,
// contiguous samples, escaped label values, _total counters, base units) and the values
// taken from a snapshot.
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pgpivot/admin/metrics.hpp"

namespace pgpivot::admin {
namespace {

Snapshot metricsSnapshot() {
  Snapshot s;
  s.process.start_time_us = 1'700'000'000'500'000;
  s.process.workers = 2;
  s.process.clients_accepted = 17;
  s.process.client_connections = 5;
  PoolRow pool;
  pool.database = "appdb";
  pool.user = "al\"ice\\\n";
  pool.cl_active = 3;
  pool.cl_waiting = 1;
  pool.sv_idle = 2;
  pool.max_wait_us = 1'500'000;
  s.pools.push_back(pool);
  PoolRow other = pool;
  other.user = "bob";
  s.pools.push_back(other);
  StatsRow stats;
  stats.database = "appdb";
  stats.totals.xact_count = 100;
  stats.totals.bytes_received = 4096;
  stats.totals.wait_time_us = 2'250'000;
  s.stats.push_back(stats);
  DatabaseRow db;
  db.name = "appdb";
  db.pool_size = 20;
  db.paused = true;
  s.databases.push_back(db);
  ClusterRow cluster;
  cluster.name = "main";
  cluster.state = "healthy";
  cluster.failovers = 2;
  cluster.failover_time_us = 4'000'000;
  s.clusters.push_back(cluster);
  NodeRow primary;
  primary.cluster = "main";
  primary.node = "10.0.0.1:5432";
  primary.role = "primary";
  primary.health = "healthy";
  primary.lag_bytes = 0;
  primary.probe_latency_us = 1200;
  primary.lock_waiters = 4;
  s.nodes.push_back(primary);
  NodeRow down = primary;
  down.node = "10.0.0.2:5432";
  down.role = "standby";
  down.health = "down";
  down.lag_bytes.reset();
  s.nodes.push_back(down);
  return s;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

// The metric name of a sample line.
std::string nameOf(const std::string& line) {
  return line.substr(0, line.find_first_of("{ "));
}

// sample line (name + labels) -> value
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const auto& line : lines(text)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

TEST_CASE("every family has one HELP and one TYPE before its contiguous samples",
          "[unit][admin][metrics]") {
  const std::string text = renderMetrics(metricsSnapshot());
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  std::set<std::string> seen;
  std::string current;
  std::string expect_type_for;
  for (const auto& line : lines(text)) {
    CAPTURE(line);
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      CHECK(seen.insert(name).second);
      current = name;
      expect_type_for = name;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      CHECK(line.substr(7, line.find(' ', 7) - 7) == expect_type_for);
      const std::string type = line.substr(line.rfind(' ') + 1);
      CHECK((type == "counter" || type == "gauge"));
      CHECK((type == "counter") ==
            (current.size() > 6 && current.compare(current.size() - 6, 6, "_total") == 0));
      continue;
    }
    CHECK(nameOf(line) == current);
    CHECK(line.rfind("pgpivot_", 0) == 0);
  }
}

TEST_CASE("pool, stats and database values appear with their labels in base units",
          "[unit][admin][metrics]") {
  const auto s = samples(renderMetrics(metricsSnapshot()));
  CHECK(s.at(R"(pgpivot_pool_client_connections{database="appdb",user="bob",state="active"})") ==
        "3");
  CHECK(s.at(R"(pgpivot_pool_client_connections{database="appdb",user="bob",state="waiting"})") ==
        "1");
  CHECK(s.at(R"(pgpivot_pool_server_connections{database="appdb",user="bob",state="idle"})") ==
        "2");
  CHECK(s.at(R"(pgpivot_pool_max_wait_seconds{database="appdb",user="bob"})") == "1.5");
  CHECK(s.at(R"(pgpivot_transactions_total{database="appdb"})") == "100");
  CHECK(s.at(R"(pgpivot_received_bytes_total{database="appdb"})") == "4096");
  CHECK(s.at(R"(pgpivot_client_wait_seconds_total{database="appdb"})") == "2.25");
  CHECK(s.at(R"(pgpivot_database_paused{database="appdb"})") == "1");
  CHECK(s.at("pgpivot_clients_accepted_total") == "17");
  CHECK(s.at("pgpivot_start_time_seconds") == "1700000000.5");
}

TEST_CASE("label values are escaped", "[unit][admin][metrics]") {
  const std::string text = renderMetrics(metricsSnapshot());
  CHECK(text.find(R"(user="al\"ice\\\n")") != std::string::npos);
  for (const auto& line : lines(text)) {
    CHECK(line.find('\r') == std::string::npos);
  }
}

TEST_CASE("cluster and node metrics follow the monitor's rows", "[unit][admin][metrics]") {
  const auto s = samples(renderMetrics(metricsSnapshot()));
  CHECK(s.at(R"(pgpivot_cluster_failovers_total{cluster="main"})") == "2");
  CHECK(s.at(R"(pgpivot_cluster_failover_seconds_total{cluster="main"})") == "4");
  CHECK(s.at(R"(pgpivot_cluster_state{cluster="main",state="healthy",primary=""})") == "1");
  CHECK(s.at(R"(pgpivot_node_up{cluster="main",node="10.0.0.1:5432"})") == "1");
  CHECK(s.at(R"(pgpivot_node_up{cluster="main",node="10.0.0.2:5432"})") == "0");
  CHECK(s.at(R"(pgpivot_node_is_primary{cluster="main",node="10.0.0.1:5432"})") == "1");
  CHECK(s.at(R"(pgpivot_node_role{cluster="main",node="10.0.0.2:5432",role="standby"})") == "1");
  CHECK(s.at(R"(pgpivot_node_probe_latency_seconds{cluster="main",node="10.0.0.1:5432"})") ==
        "0.0012");
  CHECK(s.at(R"(pgpivot_node_lock_waiters{cluster="main",node="10.0.0.1:5432"})") == "4");
  CHECK(s.at(R"(pgpivot_node_replication_lag_bytes{cluster="main",node="10.0.0.1:5432"})") == "0");
  // Unknown lag is left out rather than reported as 0.
  CHECK(s.count(R"(pgpivot_node_replication_lag_bytes{cluster="main",node="10.0.0.2:5432"})") == 0);
}

TEST_CASE("families without rows are left out entirely", "[unit][admin][metrics]") {
  const std::string text = renderMetrics(Snapshot{});
  CHECK(text.find("pgpivot_info{version=") != std::string::npos);
  CHECK(text.find("pgpivot_pool_") == std::string::npos);
  CHECK(text.find("pgpivot_node_") == std::string::npos);
  CHECK(text.find("pgpivot_cluster_") == std::string::npos);
}

TEST_CASE("metricsParts asks for what the renderer reads", "[unit][admin][metrics]") {
  const Parts p = metricsParts();
  CHECK(p.pools);
  CHECK(p.stats);
  CHECK(p.databases);
  CHECK(p.clusters);
  CHECK(p.nodes);
  CHECK(p.process);
  CHECK_FALSE(p.clients);
  CHECK_FALSE(p.servers);
}

}  // namespace
}  // namespace pgpivot::admin
