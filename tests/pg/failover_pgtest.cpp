// Failover routing against a real primary + streaming standby: pgpivot finds the primary,
// notices when it dies, follows the node an external manager promotes, and keeps its
// clients connected through it.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

Pgpivot::Options clusterOptions(const TwoNodeCluster& cluster, const std::string& log_path,
                                const std::string& extra = "") {
  Pgpivot::Options options;
  options.databases = {{"appdb", "cluster=main dbname=appdb"}};
  options.extra_sections = {
      cluster.clusterSection("failover_mode = follow\nprofile = fast\n"
                             "probe_interval = 0.2\nprobe_timeout = 0.5\n"
                             "failover_log = " +
                             log_path + "\n" + extra)};
  options.settings["query_wait_timeout"] = "30";
  return options;
}

std::string serverPort(PGconn* conn) {
  return scalar(conn, "SELECT inet_server_port()");
}

// The whole file ("" when it cannot be read).
std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("pgpivot routes a cluster database to the node that is primary", "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file("/tmp/pgpivot-failover-events-" + std::to_string(::getpid()));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(clusterOptions(cluster, events));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(serverPort(conn.get()) == std::to_string(cluster.primaryPort()));
  CHECK(scalar(conn.get(), "SELECT pg_is_in_recovery()") == "f");
}

TEST_CASE(
    "after the primary is killed and the standby promoted, clients stay connected and "
    "write to the new primary",
    "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file("/tmp/pgpivot-failover-events-" + std::to_string(::getpid()));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(clusterOptions(cluster, events));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE acked (id int PRIMARY KEY)").empty());
  CHECK(scalar(conn.get(), "INSERT INTO acked VALUES (1)").empty());
  REQUIRE(serverPort(conn.get()) == std::to_string(cluster.primaryPort()));
  // Let the standby have the row before the primary dies (asynchronous replication).
  cluster.waitReplayed();

  cluster.killPrimary();
  cluster.promoteStandby();

  // The same client connection writes again, now on the promoted node.
  std::string last;
  const bool moved = eventually(std::chrono::seconds(20), [&] {
    // Only a write the promoted node answered counts (an orphaned backend of the killed
    // postmaster may still commit one on the old node).
    last = scalar(conn.get(), "INSERT INTO acked VALUES (2) RETURNING inet_server_port()");
    return last == std::to_string(cluster.standbyPort());
  });
  INFO("last result: " << last << "\npgpivot log:\n"
                       << pgpivot.logText() << "\nevent log:\n"
                       << readText(events));
  REQUIRE(moved);
  CHECK(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT pg_is_in_recovery()") == "f");
  // New clients go there too.
  Conn fresh = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
  CHECK(serverPort(fresh.get()) == std::to_string(cluster.standbyPort()));
  CHECK(scalar(fresh.get(), "SELECT count(DISTINCT id) FROM acked WHERE id IN (1, 2)") == "2");
  // Every step is in the event log, one JSON object per line.
  const std::string log = readText(events);
  CHECK_THAT(log, Catch::Contains("\"event\""));
  CHECK_THAT(log, Catch::Contains(std::to_string(cluster.standbyPort())));
}

TEST_CASE(
    "a client idle inside a transaction when the primary changes is told at its next "
    "statement that the transaction was aborted",
    "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file("/tmp/pgpivot-failover-events-" + std::to_string(::getpid()));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(clusterOptions(cluster, events));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE intx (id int)").empty());
  cluster.waitReplayed();
  CHECK(scalar(conn.get(), "BEGIN").empty());
  CHECK(scalar(conn.get(), "INSERT INTO intx VALUES (1)").empty());

  cluster.killPrimary();
  cluster.promoteStandby();
  // Wait until pgpivot routes new clients to the promoted node.
  REQUIRE(eventually(std::chrono::seconds(20), [&] {
    Conn probe = connect(pgpivot.conninfo());
    return PQstatus(probe.get()) == CONNECTION_OK &&
           serverPort(probe.get()) == std::to_string(cluster.standbyPort());
  }));
  Res result(PQexec(conn.get(), "INSERT INTO intx VALUES (2)"));
  CHECK(PQresultStatus(result.get()) == PGRES_FATAL_ERROR);
  const std::string state = sqlstateOf(result.get());
  CHECK((state == "40001" || state == "08006" || state == "40003"));
  CHECK_THAT(std::string(PQresultErrorMessage(result.get())), Catch::Contains("pgpivot:"));
  // The session goes on, outside any transaction, on the new primary.
  CHECK(PQtransactionStatus(conn.get()) == PQTRANS_IDLE);
  CHECK(serverPort(conn.get()) == std::to_string(cluster.standbyPort()));
}

TEST_CASE("an old primary that comes back after a failover is never routed to", "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file("/tmp/pgpivot-failover-events-" + std::to_string(::getpid()));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(clusterOptions(cluster, events));
  pgpivot.start();
  cluster.killPrimary();
  cluster.promoteStandby();
  REQUIRE(eventually(std::chrono::seconds(20), [&] {
    Conn probe = connect(pgpivot.conninfo());
    return PQstatus(probe.get()) == CONNECTION_OK &&
           serverPort(probe.get()) == std::to_string(cluster.standbyPort());
  }));
  // The old primary starts again, still thinking it is a primary (timeline 1).
  // Its orphaned backends must exit before the data directory can be started again.
  const bool started = eventually(std::chrono::seconds(30), [&] {
    return system(("runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D " +
                   cluster.primaryData() + " -w -t 60 start -l " + cluster.primaryData() +
                   "/restart.log >/dev/null 2>&1")
                      .c_str()) == 0;
  });
  INFO(readText(cluster.primaryData() + "/restart.log"));
  REQUIRE(started);
  REQUIRE(cluster.query(cluster.primaryPort(), cluster.primaryData(),
                        "SELECT pg_is_in_recovery()") == "f");
  // Two nodes claim to be primary: pgpivot must keep to the one on the newer timeline.
  for (int i = 0; i < 10; ++i) {
    Conn conn = connect(pgpivot.conninfo());
    if (PQstatus(conn.get()) == CONNECTION_OK) {
      CHECK(serverPort(conn.get()) != std::to_string(cluster.primaryPort()));
    }
  }
}
