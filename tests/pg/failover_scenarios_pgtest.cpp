// Failover scenarios of issue 4 on real PostgreSQL 15, in promote mode under a bounded
// write load through pgpivot:
//  - scenario 6: the only standby is too far behind when the primary dies (its WAL
//    receiver stopped, or its replay paused): no promotion, WAIT_OPERATOR with the reason
//    in SHOW CLUSTERS / SHOW FAILOVERS and the event log, clients told 57P03;
//  - three nodes: kill -9 of the primary promotes the most advanced standby, not the first
//    in config order; the other is reported and never routed for writes; never two
//    primaries routed.
#include <catch2/catch.hpp>
#include <cctype>
#include <set>
#include <thread>

#include "support/cluster_fixture.hpp"
#include "support/pgbench_load.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

WriteLoad::Options loadThrough(const Pgpivot& pgpivot, const std::string& table) {
  WriteLoad::Options options;
  options.conninfo = pgpivot.conninfo();
  options.table = table;
  options.max_time = 50s;
  options.write_timeout = 10s;
  return options;
}

std::string standbyQuery(const TwoNodeCluster& cluster, const std::string& sql) {
  return cluster.query(cluster.standbyPort(), cluster.standbyData(), sql);
}

std::string primaryQuery(const TwoNodeCluster& cluster, const std::string& sql) {
  return cluster.query(cluster.primaryPort(), cluster.primaryData(), sql);
}

// Stops a standby's WAL receiver for good (it keeps running, in recovery, answering).
void stopWalReceiver(const TwoNodeCluster& cluster, int port, const std::string& data) {
  REQUIRE(cluster.query(port, data, "ALTER SYSTEM SET primary_conninfo = ''") == "ALTER SYSTEM");
  REQUIRE(cluster.query(port, data, "SELECT pg_reload_conf()") == "t");
  REQUIRE(eventually(15s, [&] {
    return cluster.query(port, data, "SELECT count(*) FROM pg_stat_wal_receiver") == "0";
  }));
}

// About 2.5 MB of WAL written on the primary directly.
void writeWal(const TwoNodeCluster& cluster, const std::string& table) {
  REQUIRE(primaryQuery(cluster, "CREATE TABLE " + table +
                                    " AS SELECT g, repeat('x', 500) AS pad "
                                    "FROM generate_series(1, 4000) g") == "SELECT 4000");
}

// What the incident left in SHOW FAILOVERS, one "step result: detail" line per row.
std::string failoverRows(PGconn* admin) {
  Res rows(PQexec(admin, "SHOW FAILOVERS"));
  REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
  std::string out;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    out += std::string(PQgetvalue(rows.get(), r, PQfnumber(rows.get(), "failover_id"))) + " " +
           PQgetvalue(rows.get(), r, PQfnumber(rows.get(), "step")) + " " +
           PQgetvalue(rows.get(), r, PQfnumber(rows.get(), "result")) + ": " +
           PQgetvalue(rows.get(), r, PQfnumber(rows.get(), "detail")) + "\n";
  }
  return out;
}

enum class Lag { kReceiverStopped, kReplayPaused };

// Scenario 6: the primary dies while its only standby lags; pgpivot must not promote it.
void lagAtFailover(Lag lag) {
  TwoNodeCluster cluster;
  const ScratchFile events(scratchPath("events-lag"));
  // 64 kB of lag allowed; clients wait 3 s for a primary, then get 57P03.
  Pgpivot pgpivot(
      pgpivotOn(cluster, OnCluster()
                             .withLog(events.path)
                             .withLines("max_lag_on_failover = 64kB\n"
                                        "failover_pause_timeout = 3\nheartbeat_create = on\n")));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  WriteLoad load(loadThrough(pgpivot, "acks_lag"));
  load.start();
  REQUIRE(load.waitForAcks(10, 10s));
  const std::string standby = nodeName(cluster.standbyPort());

  std::string expected_reason;
  if (lag == Lag::kReceiverStopped) {
    // The standby stops receiving; the primary writes 2.5 MB more that it never gets.
    stopWalReceiver(cluster, cluster.standbyPort(), cluster.standbyData());
    writeWal(cluster, "lag_filler");
    // pgpivot has seen the primary that far ahead (SHOW NODES' lag is against it).
    std::string lag_bytes;
    const bool behind = eventually(10s, [&] {
      lag_bytes = nodeColumn(admin.get(), standby, "lag_bytes");
      return !lag_bytes.empty() && std::isdigit(static_cast<unsigned char>(lag_bytes[0])) &&
             std::stol(lag_bytes) > 1024 * 1024;
    });
    INFO("standby lag_bytes: " << lag_bytes);
    REQUIRE(behind);
    expected_reason = "over max_lag_on_failover";
  } else {
    // The standby receives everything but replays nothing: promoting it would mean
    // waiting an unknown time for the replay (or promoting an older state).
    REQUIRE(standbyQuery(cluster, "SELECT pg_wal_replay_pause()") == "");
    REQUIRE(eventually(10s, [&] {
      return standbyQuery(cluster, "SELECT pg_get_wal_replay_pause_state()") == "paused";
    }));
    writeWal(cluster, "lag_filler");
    expected_reason = "replay is paused";
  }
  REQUIRE(load.waitForAcks(10, 10s));
  RouteWatch routes(pgpivot);

  cluster.killPrimary();
  std::string state;
  const bool waits = eventually(30s, [&] {
    state = clusterColumn(admin.get(), "state");
    return state == "WAIT_OPERATOR";
  });
  // Clients wait for a primary, then are told none is coming (57P03).
  const bool told = eventually(20s, [&] { return load.seen().errors.count("57P03") > 0; });
  load.stop();
  routes.stop();
  const WriteLoad::Seen seen = load.seen();
  const std::string log = readFile(events.path);
  const std::string rows = failoverRows(admin.get());
  INFO("state: " << state << "\nload: " << seen.describe() << "\n"
                 << routes.describe() << "\nSHOW FAILOVERS:\n"
                 << rows << "\nevents:\n"
                 << log);
  REQUIRE(waits);
  CHECK(told);
  // Not promoted, and nothing else routed.
  CHECK(standbyQuery(cluster, "SELECT pg_is_in_recovery()") == "t");
  CHECK_THAT(log, !Catch::Contains("\"to\":\"PROMOTING\""));
  CHECK_THAT(log, Catch::Contains("\"to\":\"WAIT_OPERATOR\""));
  for (const std::string& routed : routes.changes()) {
    CHECK(routed != standby);
  }
  for (const auto& [port, count] : seen.acked_by) {
    CHECK(port == cluster.primaryPort());
  }
  // The reason, where an operator looks: SHOW CLUSTERS, SHOW FAILOVERS, the event log.
  CHECK(clusterColumn(admin.get(), "state") == "WAIT_OPERATOR");
  CHECK(rows.rfind("f-", 0) == 0);  // the rows carry the failover's id
  CHECK_THAT(rows, Catch::Contains(expected_reason));
  CHECK_THAT(rows, Catch::Contains(standby));
  CHECK_THAT(log, Catch::Contains(expected_reason));
}

}  // namespace

TEST_CASE(
    "scenario 6: a standby lagging past max_lag_on_failover when the primary dies is not "
    "promoted: WAIT_OPERATOR, and why",
    "[pg][failover][scenario]") {
  lagAtFailover(Lag::kReceiverStopped);
}

TEST_CASE(
    "scenario 6: a standby whose replay is paused when the primary dies is not promoted: "
    "WAIT_OPERATOR, and why",
    "[pg][failover][scenario]") {
  lagAtFailover(Lag::kReplayPaused);
}

TEST_CASE(
    "three nodes: kill -9 of the primary promotes the most advanced standby, the other is "
    "reported and never routed, and two primaries are never routed",
    "[pg][failover][scenario]") {
  ThreeNodeCluster cluster;
  const ScratchFile events(scratchPath("events-three"));
  Pgpivot pgpivot(
      pgpivotOn(cluster, OnCluster().withLog(events.path).withLines("heartbeat_create = on\n")));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  const std::string primary = nodeName(cluster.primaryPort());
  const std::string behind = nodeName(cluster.standbyPort());       // first in config order
  const std::string ahead = nodeName(cluster.secondStandbyPort());  // the one to promote
  WriteLoad load(loadThrough(pgpivot, "acks_three"));
  load.start();
  REQUIRE(load.waitForAcks(10, 10s));

  // The first standby (first in config order, so the winner of a tie) stops receiving,
  // and the primary writes on: the second one is now the most advanced, both are within
  // max_lag_on_failover (1 MB).
  stopWalReceiver(cluster, cluster.standbyPort(), cluster.standbyData());
  REQUIRE(load.waitForAcks(25, 10s));
  const std::string lsn = primaryQuery(cluster, "SELECT pg_current_wal_lsn()");
  REQUIRE(eventually(10s, [&] {
    return cluster.query(cluster.secondStandbyPort(), cluster.secondStandbyData(),
                         "SELECT pg_last_wal_receive_lsn() >= '" + lsn + "'") == "t";
  }));
  std::string behind_lag;
  REQUIRE(eventually(10s, [&] {
    behind_lag = nodeColumn(admin.get(), behind, "lag_bytes");
    return !behind_lag.empty() && std::isdigit(static_cast<unsigned char>(behind_lag[0])) &&
           std::stol(behind_lag) > 0;
  }));
  RouteWatch routes(pgpivot);

  cluster.killPrimary();
  const bool moved =
      eventually(30s, [&] { return load.seen().acked_by.count(cluster.secondStandbyPort()) > 0; });
  // A while on the new primary, so a second primary would have had time to show.
  const bool writing = moved && load.waitForAcks(30, 15s);
  load.stop();
  routes.stop();
  const WriteLoad::Seen seen = load.seen();
  const std::string log = readFile(events.path);
  INFO("lag of " << behind << " before the kill: " << behind_lag << "\nload: " << seen.describe()
                 << "\n"
                 << routes.describe() << "\nSHOW FAILOVERS:\n"
                 << failoverRows(admin.get()) << "\nevents:\n"
                 << log);
  REQUIRE(moved);
  CHECK(writing);
  // The most advanced standby is the primary; the other is still a standby.
  CHECK(cluster.query(cluster.secondStandbyPort(), cluster.secondStandbyData(),
                      "SELECT pg_is_in_recovery()") == "f");
  CHECK(standbyQuery(cluster, "SELECT pg_is_in_recovery()") == "t");
  CHECK(clusterColumn(admin.get(), "primary") == ahead);
  // The election in the event log: both candidates, the advanced one chosen.
  const auto election = log.find("\"event\":\"election\"");
  REQUIRE(election != std::string::npos);
  const std::string election_line = log.substr(election, log.find('\n', election) - election);
  CHECK_THAT(election_line, Catch::Contains("\"chosen\":\"" + ahead + "\""));
  CHECK_THAT(election_line, Catch::Contains(behind));
  // The other standby is reported, as a standby.
  CHECK(nodeColumn(admin.get(), behind, "role") == "standby");
  // Routed: the old primary, perhaps no node while clients were held, then the new one;
  // never the lagging standby, never back.
  const std::vector<std::string> changes = routes.changes();
  REQUIRE_FALSE(changes.empty());
  CHECK(changes.front() == primary);
  CHECK(changes.back() == ahead);
  bool promoted_seen = false;
  for (const std::string& routed : changes) {
    CHECK(routed != behind);
    if (routed == ahead) {
      promoted_seen = true;
    } else if (promoted_seen) {
      CHECK(routed.empty());  // after the new primary, never the old one again
    }
  }
  // Every write acknowledged by one node at a time: the old primary's first, then only the
  // new primary's.
  bool on_new = false;
  for (const WriteLoad::Ack& ack : seen.acked) {
    CAPTURE(ack.id, ack.port);
    if (ack.port == cluster.secondStandbyPort()) {
      on_new = true;
    } else {
      CHECK(ack.port == cluster.primaryPort());
      CHECK_FALSE(on_new);
    }
  }
  // Asynchronous replication: writes the old primary acknowledged after the new one last
  // received are lost. Reported, not asserted.
  Conn conn = connect(pgpivot.conninfo());
  std::set<int64_t> present;
  Res rows(PQexec(conn.get(), "SELECT id FROM acks_three"));
  REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    present.insert(std::stoll(PQgetvalue(rows.get(), r, 0)));
  }
  int lost = 0;
  for (const WriteLoad::Ack& ack : seen.acked) {
    if (present.count(ack.id) == 0) {
      ++lost;
    }
  }
  for (const WriteLoad::Ack& ack : seen.acked) {
    if (ack.port == cluster.secondStandbyPort()) {
      CHECK(present.count(ack.id) == 1);  // nothing the new primary acknowledged is lost
    }
  }
  WARN("three nodes, kill -9 of the primary: " << seen.describe() << "; acknowledged writes lost "
                                               << "(asynchronous replication): " << lost);
}
