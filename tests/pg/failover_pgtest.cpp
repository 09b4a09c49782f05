// Failover routing against a real primary + streaming standby: pgpivot finds the primary,
// notices when it dies, follows the node an external manager promotes, and keeps its
// clients connected through it.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "acked_writers.hpp"
#include "support/acked_failover.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

// pgpivotOn's fast-profile cluster in follow mode (an external manager promotes), in
// session mode (pool_mode's default) unless a test says otherwise.
Pgpivot::Options clusterOptions(const TwoNodeCluster& cluster, const std::string& log_path) {
  Pgpivot::Options options = pgpivotOn(cluster, OnCluster().withMode("follow").withLog(log_path));
  options.settings.erase("pool_mode");
  return options;
}

}  // namespace

TEST_CASE("pgpivot routes a cluster database to the node that is primary", "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("failover-events"));
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
  const ScratchFile events_file(scratchPath("failover-events"));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(clusterOptions(cluster, events));
  pgpivot.start();
  // Session pooling (the default): the client's startup parameters and a reported setting
  // it changed must follow it to the new primary.
  Conn conn = connect(pgpivot.conninfo() + " application_name=fo_session");
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SET DateStyle = 'SQL, DMY'").empty());
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
                       << readFile(events));
  REQUIRE(moved);
  CHECK(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT pg_is_in_recovery()") == "f");
  CHECK(scalar(conn.get(), "SHOW application_name") == "fo_session");
  CHECK(scalar(conn.get(), "SHOW DateStyle") == "SQL, DMY");
  // New clients go there too.
  Conn fresh = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
  CHECK(serverPort(fresh.get()) == std::to_string(cluster.standbyPort()));
  CHECK(scalar(fresh.get(), "SELECT count(DISTINCT id) FROM acked WHERE id IN (1, 2)") == "2");
  // Every step is in the event log, one JSON object per line.
  const std::string log = readFile(events);
  CHECK_THAT(log, Catch::Contains("\"event\""));
  CHECK_THAT(log, Catch::Contains(std::to_string(cluster.standbyPort())));
}

TEST_CASE(
    "a client idle inside a transaction when the primary changes is told at its next "
    "statement that the transaction was aborted",
    "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("failover-events"));
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
  // It provably did not commit: nothing was in flight when the primary was lost.
  CHECK(state == "40001");
  CHECK_THAT(std::string(PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY)),
             Catch::StartsWith("pgpivot: failover"));
  // The session goes on, outside any transaction, on the new primary.
  CHECK(PQtransactionStatus(conn.get()) == PQTRANS_IDLE);
  CHECK(serverPort(conn.get()) == std::to_string(cluster.standbyPort()));
}

TEST_CASE("an old primary that comes back after a failover is never routed to", "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("failover-events"));
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
  INFO(readFile(cluster.primaryData() + "/restart.log"));
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

namespace {

// A statement sent and left running: its connection and what the client finally got.
struct InFlight {
  Conn conn;
  std::string state;    // SQLSTATE of the error answering the statement, "" if none
  std::string message;  // its primary message
};

}  // namespace

TEST_CASE(
    "kill -9 of the primary: statements in flight get 40001 when their transaction cannot "
    "have committed, 40003 when a COMMIT or an autocommit statement was running",
    "[pg][failover]") {
  for (const std::string mode : {"session", "transaction"}) {
    DYNAMIC_SECTION("pool_mode = " << mode) {
      TwoNodeCluster cluster;
      const ScratchFile events_file(scratchPath("failover-events"));
      Pgpivot::Options options = clusterOptions(cluster, events_file.path);
      options.settings["pool_mode"] = mode;
      Pgpivot pgpivot(options);
      pgpivot.start();
      {
        Conn setup = connect(pgpivot.conninfo());
        REQUIRE(PQstatus(setup.get()) == CONNECTION_OK);
        CHECK(scalar(setup.get(), "CREATE TABLE inflight (id int)").empty());
      }
      cluster.waitReplayed();
      // Four clients, each with one statement running when the postmaster is killed:
      //  0: inside BEGIN, a simple query with no COMMIT           -> did not commit: 40001
      //  1: inside BEGIN, the same through the extended protocol  -> did not commit: 40001
      //  2: inside BEGIN, a simple query that ends with COMMIT    -> unknown: 40003
      //  3: no transaction block: an autocommit INSERT            -> unknown: 40003
      std::vector<InFlight> clients(4);
      for (std::size_t i = 0; i < clients.size(); ++i) {
        clients[i].conn =
            connect(pgpivot.conninfo() + " application_name=inflight" + std::to_string(i));
        REQUIRE(PQstatus(clients[i].conn.get()) == CONNECTION_OK);
        if (i < 3) {
          CHECK(scalar(clients[i].conn.get(), "BEGIN").empty());
          CHECK(scalar(clients[i].conn.get(),
                       "INSERT INTO inflight VALUES (" + std::to_string(i) + ")")
                    .empty());
        }
      }
      CHECK(PQsendQuery(clients[0].conn.get(), "SELECT pg_sleep(60)") == 1);
      const char* seconds[] = {"60"};
      CHECK(PQsendQueryParams(clients[1].conn.get(), "SELECT pg_sleep($1::float8)", 1, nullptr,
                              seconds, nullptr, nullptr, 0) == 1);
      CHECK(PQsendQuery(clients[2].conn.get(), "SELECT pg_sleep(60); COMMIT") == 1);
      CHECK(PQsendQuery(clients[3].conn.get(), "INSERT INTO inflight SELECT 3 FROM pg_sleep(60)") ==
            1);
      // All four are running on the primary before it is killed.
      REQUIRE(eventually(std::chrono::seconds(10), [&] {
        return cluster.query(cluster.primaryPort(), cluster.primaryData(),
                             "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                             "LIKE 'inflight%' AND state = 'active' AND wait_event = "
                             "'PgSleep'") == "4";
      }));
      cluster.killPrimary();
      // A broken server connection alone does not say "failover" (one backend may have
      // ended while the primary serves on): pgpivot answers the four once its pool moves to
      // a new primary, or at failover_pause_timeout (30 s) if none comes. So the external
      // manager promotes the standby now, once pgpivot has declared the primary down,
      // while the statements still wait for their answer.
      Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
      REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
      std::string state;
      const bool searching = eventually(std::chrono::seconds(15), [&] {
        state = clusterColumn(admin.get(), "state");
        return state == "SEARCHING_PRIMARY";
      });
      INFO("cluster state " << state);
      REQUIRE(searching);
      cluster.promoteStandby();
      const auto promoted_at = std::chrono::steady_clock::now();
      for (InFlight& client : clients) {
        // Every result until the end of the request.
        for (int n = 0; n < 10; ++n) {
          Res result(PQgetResult(client.conn.get()));
          if (result == nullptr) {
            break;
          }
          if (PQresultStatus(result.get()) == PGRES_FATAL_ERROR && client.state.empty()) {
            client.state = sqlstateOf(result.get());
            const char* primary = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
            client.message = primary != nullptr ? primary : "";
          }
        }
      }
      const auto answered_after = std::chrono::steady_clock::now() - promoted_at;
      INFO("pgpivot log:\n" << pgpivot.logText());
      // Answered when the new primary is routed, not held until failover_pause_timeout.
      CHECK(answered_after < std::chrono::seconds(10));
      CHECK(clients[0].state == "40001");
      CHECK(clients[1].state == "40001");
      CHECK(clients[2].state == "40003");
      CHECK(clients[3].state == "40003");
      for (const InFlight& client : clients) {
        CHECK_THAT(client.message, Catch::StartsWith("pgpivot: failover"));
        // Still connected, outside any transaction block, ready for the next one.
        CHECK(PQstatus(client.conn.get()) == CONNECTION_OK);
        CHECK(PQtransactionStatus(client.conn.get()) == PQTRANS_IDLE);
      }
      // The next transaction runs on the node the external manager promoted.
      for (std::size_t i = 0; i < clients.size(); ++i) {
        std::string port;
        const bool ran = eventually(std::chrono::seconds(20), [&] {
          Res result(PQexec(clients[i].conn.get(), "SELECT inet_server_port()"));
          if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
            return false;
          }
          port = PQgetvalue(result.get(), 0, 0);
          return port == std::to_string(cluster.standbyPort());
        });
        INFO("client " << i << " last port " << port);
        CHECK(ran);
        CHECK(PQstatus(clients[i].conn.get()) == CONNECTION_OK);
      }
      // Nothing that got 40001 committed: its rows are not on the new primary.
      Conn check = connect(pgpivot.conninfo());
      REQUIRE(PQstatus(check.get()) == CONNECTION_OK);
      CHECK(scalar(check.get(), "SELECT count(*) FROM inflight WHERE id IN (0, 1)") == "0");
    }
  }
}

TEST_CASE(
    "follow mode: a planned switchover by an external manager moves writers, no reconnect, no "
    "ack lost",
    "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("failover-events"));
  Pgpivot::Options options = clusterOptions(cluster, events_file.path);
  options.settings["pool_mode"] = "transaction";
  Pgpivot pgpivot(options);
  pgpivot.start();
  createAckedTable(pgpivot);
  cluster.waitReplayed();
  const std::string primary = std::to_string(cluster.primaryPort());
  const std::string standby = std::to_string(cluster.standbyPort());
  AckedWriters writers(pgpivot.conninfo(), "acked", 4);
  startWritersOn(writers, primary);

  // What Patroni does for a switchover: a clean (fast) shutdown of the primary, which
  // hands the standby every WAL record first, then pg_ctl promote on the standby.
  const std::string pg_ctl = "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D ";
  REQUIRE(std::system(
              (pg_ctl + cluster.primaryData() + " -m fast -w -t 30 stop >/dev/null").c_str()) == 0);
  cluster.promoteStandby();
  const bool moved = writersMovedTo(writers, standby, std::chrono::seconds(30));
  writers.stop();
  const std::string events = readFile(events_file.path);
  INFO("writers: " << writers.summary() << "\nevents:\n"
                   << events << "\nlog:\n"
                   << pgpivot.logText());
  REQUIRE(moved);
  WARN("follow mode, planned switchover: " << writers.summary());
  // Only statements in flight when the primary shut down can have failed, each told the
  // truth: an autocommit INSERT's outcome is unknown (40003).
  checkWritersMoved(writers, pgpivot, standby, 4);
  CHECK_THAT(events, Catch::Contains(standby));
}
