// Scenario 4 of issue 4, the disk-full half (the stall half is the DOWN:WRITE_STUCK test
// in failover_promote_pgtest.cpp): the primary's pg_wal lives on a small loop-mounted
// file system that fills up under the write workload through pgpivot, with synchronous
// replication to the standby and pgpivot in promote mode.
//
// Why a failover is the right answer here, unlike for a full data disk (research fault 10:
// the statement fails with 53100 and the server stays up, so nothing to fail over): on
// PostgreSQL 15 a WAL write that hits ENOSPC happens inside a critical section, so it is a
// PANIC; the crash restart's recovery must write WAL again (a new segment for its
// end-of-recovery record), fails with FATAL 53100, and the postmaster exits. Nothing
// brings it back by itself, not even freed space (fault 11): the node refuses connections
// until an operator intervenes, and its standby has every acknowledged commit.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "acked_writers.hpp"
#include "support/acked_failover.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/wal_disk.hpp"

using namespace pgpivot::test;

namespace {

// The first line of `text` that contains `what`, "" when none does.
std::string lineWith(const std::string& text, const std::string& what) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(what) != std::string::npos) {
      return line;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("in promote mode a primary whose WAL disk fills up is replaced, no ack lost",
          "[pg][failover][waldisk]") {
  WalDisk disk;  // outlives the cluster: unmounted after the nodes have stopped
  if (!disk.error().empty()) {
    WARN("SKIPPED: the WAL-disk-full test needs a loop-mounted file system: " << disk.error());
    return;
  }
  TwoNodeCluster cluster;
  const std::string adopted = disk.adopt(cluster.primaryData());
  INFO(adopted);
  REQUIRE(adopted.empty());
  cluster.waitReplayed();
  makeSynchronous(cluster);
  const ScratchFile events(scratchPath("events-walfull"));
  Pgpivot pgpivot(
      pgpivotOn(cluster, OnCluster().withLog(events.path).withLines("heartbeat_create = on\n")));
  pgpivot.start();
  createAckedTable(pgpivot);
  Conn bulk = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(bulk.get()) == CONNECTION_OK);
  CHECK(scalar(bulk.get(), "CREATE TABLE wal_fill (id int, pad text)").empty());
  const std::string primary = std::to_string(cluster.primaryPort());
  const std::string standby = std::to_string(cluster.standbyPort());
  AckedWriters writers(pgpivot.conninfo(), "acked", 4);
  startWritersOn(writers, primary);
  RouteWatch route(pgpivot);

  // The fault: 24 MB left for WAL (one and a half segments), then a bulk writer through
  // pgpivot, about 190 kB of WAL a commit, until a statement fails. Small commits on
  // purpose: with synchronous replication the standby then trails the primary by at most
  // one such statement. A single transaction of more than max_lag_on_failover (1 MB in
  // the fast profile) in flight at the PANIC is counted as lag by the election (against
  // the primary's last pg_current_wal_lsn(), which includes WAL nobody acknowledged), so
  // pgpivot refuses the promotion and waits for an operator (WAIT_OPERATOR, seen here
  // with 10 MB statements): safe, though over-cautious with a synchronous standby.
  const std::string filled = disk.fill(24LL << 20);
  INFO(filled);
  REQUIRE(filled.empty());
  std::string bulk_state;
  std::string bulk_message;
  int statements = 0;
  const auto bulk_until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (statements < 3000 && bulk_state.empty() && std::chrono::steady_clock::now() < bulk_until) {
    ++statements;
    Res result(PQexec(bulk.get(),
                      "INSERT INTO wal_fill SELECT g, repeat('x', 900) FROM "
                      "generate_series(1, 200) g"));
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      bulk_state = sqlstateOf(result.get());
      bulk_message = PQresultErrorMessage(result.get());
      if (bulk_state.empty()) {
        bulk_state = "none";
      }
    }
  }
  CHECK(!bulk_state.empty());
  const bool moved = writersMovedTo(writers, standby, std::chrono::seconds(60));
  writers.stop();
  const std::string log = readFile(events.path);
  const std::string server_log = readFile(cluster.primaryData() + "/server.log");
  INFO("bulk statements: " << statements << ", the last failed with " << bulk_state << ": "
                           << bulk_message << "\nwriters: " << writers.summary()
                           << "\nroute: " << route.describe() << "\nevents:\n"
                           << log << "\nold primary's log:\n"
                           << server_log);
  REQUIRE(moved);
  WARN("WAL disk full: " << statements << " bulk statements (the last got " << bulk_state
                         << "); writers " << writers.summary());

  // What PostgreSQL 15 did (research fault 11): a WAL write hit ENOSPC inside a critical
  // section (PANIC), the crash restart's recovery could not write its end-of-recovery WAL
  // either, and the postmaster gave up. It stays down even once space is freed: failing
  // over is the only way back to writes, and no lock or synchronous standby is involved.
  CHECK_THAT(server_log, Catch::Contains("PANIC:  could not write to file \"pg_wal/xlogtemp"));
  CHECK_THAT(server_log, Catch::Contains("No space left on device"));
  CHECK_THAT(server_log, Catch::Contains("shutting down due to startup process failure"));

  // Clients: the statement each had in flight when the backends were terminated was told
  // the truth (40003, outcome unknown, for an autocommit statement; 40001 if it cannot have
  // committed), at most one per client, and nobody had to reconnect; no ack lost.
  checkWritersMoved(writers, pgpivot, standby, 4);
  CHECK((bulk_state == "40001" || bulk_state == "40003"));
  CHECK(PQstatus(bulk.get()) == CONNECTION_OK);
  CHECK(serverPort(bulk.get()) == standby);

  // The event log: refused connections once the postmaster had exited (not a timeout, not
  // a write stall), confirmed by the standby whose WAL receiver lost the primary, so no
  // timer had to run out; then the promotion.
  const std::string old_node = nodeName(cluster.primaryPort());
  const std::string down = lineWith(log, "\"to\":\"PRIMARY_DOWN\"");
  CHECK_THAT(down, Catch::Contains("DOWN:DEAD: connections refused"));
  CHECK_THAT(lineWith(log, "\"event\":\"witness\""),
             Catch::Contains("WAL receiver not streaming") &&
                 Catch::Contains("\"result\":\"primary_lost\""));
  CHECK_THAT(log, Catch::Contains("\"to\":\"PROMOTING\""));
  CHECK_THAT(log, !Catch::Contains("DOWN:UNRESPONSIVE") && !Catch::Contains("DOWN:WRITE_STUCK"));
  WARN("failover: " << lineWith(log, "\"event\":\"failover_complete\""));
  CHECK_THAT(lineWith(log, "\"event\":\"failover_complete\""),
             Catch::Contains("\"old_primary\":\"" + old_node + "\"") &&
                 Catch::Contains("\"primary\":\"" + nodeName(cluster.standbyPort()) + "\""));

  // The operator frees the space and starts the old primary by hand: it comes back
  // writable on the old timeline, and pgpivot never routes to it again.
  REQUIRE(disk.unfill());
  const ShellResult restarted = runShell(
      "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D " + cluster.primaryData() +
      " -l " + cluster.primaryData() + "/server.log -w -t 60 start");
  INFO(restarted.output);
  REQUIRE(restarted.status == 0);
  CHECK(cluster.query(cluster.primaryPort(), cluster.primaryData(), "SELECT pg_is_in_recovery()") ==
        "f");
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  for (int i = 0; i < 10; ++i) {
    Conn fresh = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
    CHECK(serverPort(fresh.get()) == standby);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  CHECK(nodeColumn(admin.get(), old_node, "fenced") == "1");
  route.stop();
  const std::vector<std::string> changes = route.changes();
  CAPTURE(route.describe());
  REQUIRE(!changes.empty());
  CHECK(changes.front() == old_node);
  CHECK(changes.back() == nodeName(cluster.standbyPort()));
  CHECK(std::count(changes.begin(), changes.end(), old_node) == 1);
}
