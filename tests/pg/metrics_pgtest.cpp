// The Prometheus endpoint (metrics_port) scraped before and after a bounded pgbench load
// through pgpivot in front of a real two-node cluster: counters grow with the load, client
// gauges follow the connections, and every node of the cluster has its gauges.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include "support/cluster_fixture.hpp"
#include "support/pgbench_load.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

// Sample lines ("name{labels} value") of a scrape, keyed by everything before the value.
std::map<std::string, double> samples(const std::string& response) {
  std::map<std::string, double> out;
  const auto body = response.find("\r\n\r\n");
  std::istringstream lines(body == std::string::npos ? response : response.substr(body + 4));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto space = line.rfind(' ');
    if (space == std::string::npos) {
      continue;
    }
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

double value(const std::map<std::string, double>& s, const std::string& key) {
  const auto it = s.find(key);
  return it == s.end() ? -1 : it->second;
}

}  // namespace

TEST_CASE("the metrics counters grow with a pgbench load and every cluster node has its gauges",
          "[pg][admin][metrics]") {
  TwoNodeCluster cluster;
  pgbenchInit(cluster.primaryPort());

  const int metrics_port = freePort();
  Pgpivot::Options options = pgpivotOn(cluster, OnCluster().withMode("follow"));
  options.settings["metrics_port"] = std::to_string(metrics_port);
  Pgpivot pgpivot(options);
  pgpivot.start();
  const auto scrape = [&] {
    RawClient http(metrics_port);
    REQUIRE(http.connected());
    http.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const std::string response = http.readAll(std::chrono::seconds(5));
    REQUIRE_THAT(response, Catch::StartsWith("HTTP/1.1 200"));
    return samples(response);
  };
  const std::string primary = nodeName(cluster.primaryPort());
  const std::string standby = nodeName(cluster.standbyPort());
  const auto node = [](const std::string& name, const std::string& n) {
    return name + "{cluster=\"main\",node=\"" + n + "\"}";
  };
  // The monitor has found the primary (and the pool its first server) before "before".
  Conn first = connect(pgpivot.conninfo());
  INFO(errorOf(first.get()) << "\nlog:\n" << pgpivot.logText());
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);
  REQUIRE(eventually(std::chrono::seconds(15), [&] {
    return scalar(first.get(), "SELECT inet_server_port()") ==
           std::to_string(cluster.primaryPort());
  }));
  const auto before = scrape();

  // Clients held open show up in the gauge.
  std::vector<Conn> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect(pgpivot.conninfo()));
    REQUIRE(PQstatus(held.back().get()) == CONNECTION_OK);
  }
  const auto holding = scrape();
  CHECK(value(holding, "pgpivot_client_connections") >=
        value(before, "pgpivot_client_connections") + 3);

  constexpr int kClients = 4;
  constexpr int kTransactions = 250;
  const PgbenchRun load =
      runPgbench(pgpivot.port(), "-n -S -c " + std::to_string(kClients) + " -j 2 -t " +
                                     std::to_string(kTransactions));
  INFO(load.output);
  REQUIRE(load.status == 0);
  CHECK(load.summary.processed == kClients * kTransactions);
  held.clear();
  const auto after = scrape();

  const std::string db = "{database=\"appdb\"}";
  const double done = kClients * kTransactions;
  for (const char* counter : {"pgpivot_transactions_total", "pgpivot_queries_total"}) {
    CAPTURE(counter);
    CHECK(value(before, counter + db) >= 0);
    CHECK(value(after, counter + db) - value(before, counter + db) >= done);
  }
  // Every select-only transaction sends a query and gets rows back.
  CHECK(value(after, "pgpivot_received_bytes_total" + db) -
            value(before, "pgpivot_received_bytes_total" + db) >=
        done * 20);
  CHECK(value(after, "pgpivot_sent_bytes_total" + db) -
            value(before, "pgpivot_sent_bytes_total" + db) >=
        done * 20);
  // Every query of the load was timed, and transactions cover their queries.
  const double query_s = value(after, "pgpivot_query_seconds_total" + db) -
                         value(before, "pgpivot_query_seconds_total" + db);
  CHECK(query_s > 0);
  CHECK(value(after, "pgpivot_transaction_seconds_total" + db) >=
        value(after, "pgpivot_query_seconds_total" + db));
  CHECK(value(after, "pgpivot_clients_accepted_total") -
            value(before, "pgpivot_clients_accepted_total") >=
        kClients + 3);
  // The held clients and pgbench's are gone again.
  CHECK(value(after, "pgpivot_client_connections") < value(holding, "pgpivot_client_connections"));
  CHECK(value(after, "pgpivot_client_failover_errors_total") == 0);

  // Node gauges for both nodes of the cluster.
  CHECK(value(after, node("pgpivot_node_up", primary)) == 1);
  CHECK(value(after, node("pgpivot_node_up", standby)) == 1);
  CHECK(value(after, node("pgpivot_node_is_primary", primary)) == 1);
  CHECK(value(after, node("pgpivot_node_is_primary", standby)) == 0);
  CHECK(value(after, node("pgpivot_node_timeline", primary)) == 1);
  CHECK(value(after, node("pgpivot_node_fenced", standby)) == 0);
  CHECK(value(after, node("pgpivot_node_replication_lag_bytes", standby)) >= 0);
  CHECK(value(after, node("pgpivot_node_probe_latency_seconds", primary)) >= 0);
  CHECK(value(after, "pgpivot_cluster_nodes{cluster=\"main\"}") == 2);
  CHECK(value(after, "pgpivot_cluster_failovers_total{cluster=\"main\"}") == 0);

  // The Grafana dashboard is valid JSON and plots only metrics this scrape has samples of.
  const std::string dashboard =
      std::string(PGPIVOT_SOURCE_DIR_FOR_TESTS) + "/packaging/grafana/pgpivot-dashboard.json";
  const ShellResult parsed = runShell("python3 -m json.tool " + dashboard + " > /dev/null");
  INFO(parsed.output);
  CHECK(parsed.status == 0);
  const std::string text = readFile(dashboard);
  const std::regex expr("\"expr\": \"([^\"\\\\]|\\\\.)*\"");
  const std::regex metric("pgpivot_[a-z_]+");
  std::set<std::string> plotted;
  for (auto e = std::sregex_iterator(text.begin(), text.end(), expr); e != std::sregex_iterator();
       ++e) {
    const std::string one = e->str();
    for (auto m = std::sregex_iterator(one.begin(), one.end(), metric); m != std::sregex_iterator();
         ++m) {
      plotted.insert(m->str());
    }
  }
  CHECK(plotted.size() >= 30);
  for (const std::string& name : plotted) {
    CAPTURE(name);
    const bool sampled = std::any_of(after.begin(), after.end(), [&](const auto& sample) {
      return sample.first == name || sample.first.rfind(name + "{", 0) == 0;
    });
    CHECK(sampled);
  }
}
