// failover_mode = promote: pgpivot itself fences the lost primary and promotes the most
// advanced standby; and the cases where it must NOT fail over.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "acked_writers.hpp"
#include "support/acked_failover.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/wal_disk.hpp"

using namespace pgpivot::test;

namespace {

// pgpivotOn's fast-profile cluster in session mode (pool_mode's default), which these
// tests were written for; a test that wants transaction mode sets it.
Pgpivot::Options promoteOptions(const TwoNodeCluster& cluster, const std::string& events,
                                const std::string& mode = "promote") {
  Pgpivot::Options options = pgpivotOn(cluster, OnCluster().withMode(mode).withLog(events));
  options.settings.erase("pool_mode");
  return options;
}

}  // namespace

TEST_CASE("in promote mode pgpivot promotes the standby itself when the primary is killed",
          "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-promote"));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(promoteOptions(cluster, events));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE acked (id int)").empty());
  CHECK(scalar(conn.get(), "INSERT INTO acked VALUES (1)").empty());
  cluster.waitReplayed();

  const auto killed_at = std::chrono::steady_clock::now();
  cluster.killPrimary();
  std::string last;
  // A backend orphaned by the postmaster's death can still commit for a moment (PostgreSQL
  // notices postmaster death only at some points): such a write is acknowledged on a node
  // that no longer replicates. So only a write the promoted node answered counts here.
  const bool moved = eventually(std::chrono::seconds(30), [&] {
    last = scalar(conn.get(), "INSERT INTO acked VALUES (2) RETURNING inet_server_port()");
    return last == std::to_string(cluster.standbyPort());
  });
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed_at);
  INFO("last result: " << last << "\nevents:\n"
                       << readFile(events) << "\nlog:\n"
                       << pgpivot.logText());
  REQUIRE(moved);
  WARN("kill -9 to the first write on the promoted node: " << took.count() << " ms");
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_is_in_recovery()") ==
        "f");
  // The write acknowledged before the kill (and replayed) survived; the new one is there.
  CHECK(scalar(conn.get(), "SELECT string_agg(DISTINCT id::text, ',') FROM acked") == "1,2");
  const std::string log = readFile(events);
  CHECK_THAT(log, Catch::Contains("PROMOTING"));
  // Asynchronous replication: what may have been lost is reported as an LSN range, from
  // the promoted node's position to the old primary's last one seen.
  std::string complete;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"failover_complete\"") != std::string::npos) {
      complete = line;
    }
  }
  CAPTURE(complete);
  CHECK_THAT(complete, Catch::Contains("\"old_primary_last_lsn\":\""));
  CHECK_THAT(complete, Catch::Contains("\"promoted_at_lsn\":\""));
  CHECK_THAT(complete, Catch::Contains("\"possibly_lost_bytes_at_least\":"));
}

TEST_CASE("a lock pile-up on the primary is reported but does not fail over", "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-locks"));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(promoteOptions(cluster, events));
  pgpivot.start();
  Conn holder = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(holder.get()) == CONNECTION_OK);
  CHECK(scalar(holder.get(), "CREATE TABLE hot (id int)").empty());
  CHECK(scalar(holder.get(), "BEGIN").empty());
  CHECK(scalar(holder.get(), "LOCK TABLE hot IN ACCESS EXCLUSIVE MODE").empty());
  std::vector<Conn> waiters;
  for (int i = 0; i < 12; ++i) {
    waiters.push_back(connect(pgpivot.conninfo()));
    REQUIRE(PQstatus(waiters.back().get()) == CONNECTION_OK);
    REQUIRE(PQsendQuery(waiters.back().get(), "SELECT count(*) FROM hot") == 1);
  }
  // Well past the fast profile's down thresholds.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Res nodes(PQexec(admin.get(), "SHOW NODES"));
  REQUIRE(PQresultStatus(nodes.get()) == PGRES_TUPLES_OK);
  INFO("events:\n" << readFile(events));
  // Still routed to the primary, which is still the primary.
  Conn fresh = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
  CHECK(serverPort(fresh.get()) == std::to_string(cluster.primaryPort()));
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_is_in_recovery()") ==
        "t");
  CHECK_THAT(readFile(events), !Catch::Contains("PROMOTING"));
  CHECK(scalar(holder.get(), "COMMIT").empty());
  for (auto& waiter : waiters) {
    Res result(PQgetResult(waiter.get()));
    CHECK(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    while (Res extra{PQgetResult(waiter.get())}) {
    }
  }
}

TEST_CASE(
    "queries stalled behind a lock show in SHOW NODES and make the primary DEGRADED:LOCKS "
    "without a failover",
    "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-stalled"));
  const std::string& events = events_file.path;
  Pgpivot::Options options = promoteOptions(cluster, events);
  // The lock statistics alone stay below their warnings here: only the data path (three
  // queries through pgpivot with no reply for over query_stall_timeout) can say it.
  options.extra_sections.front() +=
      "query_stall_timeout = 1\nlock_waiters_warn = 50\noldest_lock_wait_warn = 600\n";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn holder = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(holder.get()) == CONNECTION_OK);
  CHECK(scalar(holder.get(), "CREATE TABLE stalled (id int)").empty());
  CHECK(scalar(holder.get(), "BEGIN").empty());
  CHECK(scalar(holder.get(), "LOCK TABLE stalled IN ACCESS EXCLUSIVE MODE").empty());
  std::vector<Conn> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(connect(pgpivot.conninfo()));
    REQUIRE(PQstatus(waiters.back().get()) == CONNECTION_OK);
    REQUIRE(PQsendQuery(waiters.back().get(), "SELECT count(*) FROM stalled") == 1);
  }
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  const std::string primary = "127.0.0.1:" + std::to_string(cluster.primaryPort());
  std::string stalled_queries;
  std::string health;
  const bool seen = eventually(std::chrono::seconds(20), [&] {
    Res nodes(PQexec(admin.get(), "SHOW NODES"));
    if (PQresultStatus(nodes.get()) != PGRES_TUPLES_OK) {
      return false;
    }
    const int node = PQfnumber(nodes.get(), "node");
    const int stalled = PQfnumber(nodes.get(), "stalled_queries");
    const int state = PQfnumber(nodes.get(), "health");
    for (int row = 0; row < PQntuples(nodes.get()); ++row) {
      if (PQgetvalue(nodes.get(), row, node) == primary) {
        stalled_queries = PQgetvalue(nodes.get(), row, stalled);
        health = PQgetvalue(nodes.get(), row, state);
      }
    }
    return stalled_queries == "3" && health == "DEGRADED:LOCKS";
  });
  INFO("stalled_queries " << stalled_queries << ", health " << health << "\nevents:\n"
                          << readFile(events));
  CHECK(seen);
  // Past the fast profile's down thresholds: still the primary, still routed to.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  Conn fresh = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
  CHECK(serverPort(fresh.get()) == std::to_string(cluster.primaryPort()));
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_is_in_recovery()") ==
        "t");
  const std::string log = readFile(events);
  CHECK_THAT(log, !Catch::Contains("PROMOTING"));
  CHECK_THAT(log, Catch::Contains("lock_pileup") && Catch::Contains("stalled_queries") &&
                      Catch::Contains("queries through pgpivot without a reply"));
  CHECK(scalar(holder.get(), "COMMIT").empty());
  for (auto& waiter : waiters) {
    Res result(PQgetResult(waiter.get()));
    CHECK(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    while (Res extra{PQgetResult(waiter.get())}) {
    }
  }
  // Answered: nothing stalled any more.
  CHECK(eventually(std::chrono::seconds(10), [&] {
    Res nodes(PQexec(admin.get(), "SHOW NODES"));
    const int node = PQfnumber(nodes.get(), "node");
    const int stalled = PQfnumber(nodes.get(), "stalled_queries");
    for (int row = 0; row < PQntuples(nodes.get()); ++row) {
      if (PQgetvalue(nodes.get(), row, node) == primary) {
        return std::string(PQgetvalue(nodes.get(), row, stalled)) == "0";
      }
    }
    return false;
  }));
}

TEST_CASE("in promote mode the fence_command runs against the old primary before the promotion",
          "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-fencecmd"));
  const ScratchFile marker(scratchPath("events-fence-marker"));
  const ScratchFile script(scratchPath("events-fence-script"));
  {
    std::ofstream out(script.path);
    out << "echo \"fenced $1:$2 ($PGPIVOT_NODE_HOST:$PGPIVOT_NODE_PORT $PGPIVOT_FAILOVER_ID)\" "
           ">> "
        << marker.path << "\necho \"stonith $1:$2 done\"\necho warming up >&2\nexit 0\n";
  }
  Pgpivot::Options options = promoteOptions(cluster, events_file.path);
  options.extra_sections.front() += "fence_command = /bin/sh " + script.path + " %h %p\n";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE fenced (id int)").empty());
  cluster.waitReplayed();
  cluster.killPrimary();
  const bool moved = eventually(std::chrono::seconds(30), [&] {
    return scalar(conn.get(), "INSERT INTO fenced VALUES (1) RETURNING inet_server_port()") ==
           std::to_string(cluster.standbyPort());
  });
  const std::string log = readFile(events_file.path);
  INFO("events:\n" << log << "\nlog:\n" << pgpivot.logText());
  REQUIRE(moved);
  const std::string old_primary = "127.0.0.1:" + std::to_string(cluster.primaryPort());
  // Run once, told which node by its arguments and its environment.
  CHECK(readFile(marker.path) == "fenced " + old_primary + " (" + old_primary + " f-1-1)\n");
  // Its output is in the event log line by line, and its exit status is the fence's
  // result, before the promotion.
  CHECK_THAT(log, Catch::Contains("\"event\":\"fence_command_output\"") &&
                      Catch::Contains("stonith " + old_primary + " done") &&
                      Catch::Contains("warming up"));
  const auto fence_ok = log.find("\"event\":\"fence\",");
  const auto promoting = log.find("\"to\":\"PROMOTING\"");
  REQUIRE(fence_ok != std::string::npos);
  REQUIRE(promoting != std::string::npos);
  CHECK(fence_ok < promoting);
  CHECK(log.find("\"result\":\"ok\"", fence_ok) < log.find('\n', fence_ok));
  CHECK_THAT(pgpivot.logText(), Catch::Contains("stonith " + old_primary + " done"));
}

TEST_CASE("SHOW NODES and SHOW CLUSTERS tell the operator who is primary and how it is",
          "[pg][failover][admin]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-show"));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(promoteOptions(cluster, events, "follow"));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    Res clusters(PQexec(admin.get(), "SHOW CLUSTERS"));
    if (PQresultStatus(clusters.get()) != PGRES_TUPLES_OK || PQntuples(clusters.get()) != 1) {
      return false;
    }
    const int primary = PQfnumber(clusters.get(), "primary");
    return primary >= 0 && std::string(PQgetvalue(clusters.get(), 0, primary)) ==
                               "127.0.0.1:" + std::to_string(cluster.primaryPort());
  }));
  Res nodes(PQexec(admin.get(), "SHOW NODES"));
  REQUIRE(PQresultStatus(nodes.get()) == PGRES_TUPLES_OK);
  REQUIRE(PQntuples(nodes.get()) == 2);
  const int node = PQfnumber(nodes.get(), "node");
  const int role = PQfnumber(nodes.get(), "role");
  REQUIRE(node >= 0);
  REQUIRE(role >= 0);
  for (int row = 0; row < 2; ++row) {
    const std::string name = PQgetvalue(nodes.get(), row, node);
    const std::string expected =
        name == "127.0.0.1:" + std::to_string(cluster.primaryPort()) ? "primary" : "standby";
    CHECK(std::string(PQgetvalue(nodes.get(), row, role)) == expected);
  }
}

TEST_CASE("SWITCHOVER moves the primary to the standby while clients stay connected",
          "[pg][failover][admin]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-switchover"));
  const std::string& events = events_file.path;
  auto options = promoteOptions(cluster, events);
  options.settings["pool_mode"] = "transaction";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE sw (id int)").empty());
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    return serverPort(conn.get()) == std::to_string(cluster.primaryPort());
  }));
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  // Wait until the machine is steady (it refuses a switchover while discovering). The
  // answer comes once the switchover has ended: its steps and verdict.
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    Res result(PQexec(admin.get(), "SWITCHOVER main"));
    return PQresultStatus(result.get()) == PGRES_TUPLES_OK;
  }));
  const bool moved = eventually(std::chrono::seconds(30), [&] {
    return scalar(conn.get(), "INSERT INTO sw VALUES (1)").empty() &&
           serverPort(conn.get()) == std::to_string(cluster.standbyPort());
  });
  INFO("events:\n" << readFile(events) << "\nlog:\n" << pgpivot.logText());
  CHECK(moved);
  CHECK(PQstatus(conn.get()) == CONNECTION_OK);
}

TEST_CASE("in promote mode a frozen primary (SIGSTOP) is detected as unresponsive and replaced",
          "[pg][failover]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-frozen"));
  const std::string& events = events_file.path;
  Pgpivot pgpivot(promoteOptions(cluster, events));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE frozen (id int)").empty());
  cluster.waitReplayed();
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    return serverPort(conn.get()) == std::to_string(cluster.primaryPort());
  }));

  // Alive on TCP, answering nothing: the "stuck" primary of the incident.
  const auto frozen_at = std::chrono::steady_clock::now();
  cluster.freezePrimary(true);
  std::string last;
  const bool moved = eventually(std::chrono::seconds(40), [&] {
    last = scalar(conn.get(), "INSERT INTO frozen VALUES (1) RETURNING inet_server_port()");
    return last == std::to_string(cluster.standbyPort());
  });
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - frozen_at);
  cluster.freezePrimary(false);
  INFO("last result: " << last << "\nevents:\n" << readFile(events));
  REQUIRE(moved);
  WARN("frozen primary to the first write on the promoted node: " << took.count() << " ms");
  const std::string log = readFile(events);
  CHECK_THAT(log, Catch::Contains("UNRESPONSIVE"));
  CHECK_THAT(log, Catch::Contains("PROMOTING"));
  // Thawed, the old primary is fenced: never routed to again.
  for (int i = 0; i < 5; ++i) {
    Conn fresh = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
    CHECK(serverPort(fresh.get()) == std::to_string(cluster.standbyPort()));
  }
}

TEST_CASE(
    "pgpivot --check --connect reports each node's role, timeline and replication, and refuses "
    "a cluster whose monitor lacks rights",
    "[pg][failover][check]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-check"));
  const std::string& events = events_file.path;
  Pgpivot healthy(promoteOptions(cluster, events));
  const CommandResult good = runPgpivotCommand({"--check", "--connect", healthy.configPath()});
  INFO("stdout: " << good.out << "\nstderr: " << good.err);
  CHECK(good.status == 0);
  CHECK_THAT(good.out, Catch::Contains("failover possible"));
  CHECK_THAT(good.out, Catch::Contains("streaming") && Catch::Contains("pg_promote"));

  // A monitor role without pg_monitor or pg_promote: the check must say so and fail.
  REQUIRE(cluster.query(cluster.primaryPort(), cluster.primaryData(),
                        "CREATE ROLE plainmon LOGIN PASSWORD 'secret'") != "ERROR");
  cluster.waitReplayed();
  Pgpivot::Options options = promoteOptions(cluster, events);
  options.extra_sections = {
      "[cluster.main]\nnodes = 127.0.0.1:" + std::to_string(cluster.primaryPort()) +
      ", 127.0.0.1:" + std::to_string(cluster.standbyPort()) +
      "\nmonitor_user = plainmon\nmonitor_password = secret\n"
      "monitor_dbname = postgres\nfailover_mode = promote\n"};
  Pgpivot weak(options);
  const CommandResult bad = runPgpivotCommand({"--check", "--connect", weak.configPath()});
  INFO("stdout: " << bad.out << "\nstderr: " << bad.err);
  CHECK(bad.status == 1);
  CHECK_THAT(bad.out, Catch::Contains("MISSING pg_monitor"));
  CHECK_THAT(bad.out, Catch::Contains("may not run pg_promote"));
}

// Issue 4's stuck primary with the thresholds an operator gets without tuning anything:
// profile = default, probes every second with 1 s deadlines. Correctness only (the time
// is bench/failover.sh's business): the failover happens, no acknowledged write is lost
// (synchronous replication), and no client has to reconnect.
TEST_CASE("with the default profile a frozen primary is replaced, no ack lost, clients stay",
          "[pg][failover]") {
  TwoNodeCluster cluster;
  makeSynchronous(cluster);
  const ScratchFile events_file(scratchPath("events-frozen-default"));
  const std::string& events = events_file.path;
  Pgpivot::Options options;
  options.databases = {{"appdb", "cluster=main dbname=appdb"}};
  options.extra_sections = {
      cluster.clusterSection("failover_mode = promote\nprofile = default\nfailover_cooldown = 0\n"
                             "heartbeat_create = on\nfailover_log = " +
                             events + "\n")};
  options.settings["query_wait_timeout"] = "60";
  options.settings["pool_mode"] = "transaction";
  Pgpivot pgpivot(options);
  pgpivot.start();
  createAckedTable(pgpivot);
  const std::string primary = std::to_string(cluster.primaryPort());
  const std::string standby = std::to_string(cluster.standbyPort());

  AckedWriters writers(pgpivot.conninfo(), "acked", 4);
  startWritersOn(writers, primary);
  waitHeartbeatRow(cluster);

  cluster.freezePrimary(true);
  const bool moved = writersMovedTo(writers, standby, std::chrono::seconds(45));
  cluster.freezePrimary(false);
  writers.stop();
  INFO("writers: " << writers.summary() << "\nevents:\n" << readFile(events));
  REQUIRE(moved);
  WARN("default profile, frozen primary: " << writers.summary());
  const std::string log = readFile(events);
  CHECK_THAT(log, Catch::Contains("DOWN:UNRESPONSIVE"));
  CHECK_THAT(log, Catch::Contains("PROMOTING"));
  // Errors, if any, only for statements in flight when the primary froze: each client had
  // at most one, and it says the truth: not run (40001) or outcome unknown (40003).
  checkWritersMoved(writers, pgpivot, standby, 4);
}

// DOWN:WRITE_STUCK on a real server: the primary's WAL file system is frozen, so every
// commit (the heartbeat's included) hangs in IO/WALWrite while the stats probe and fresh
// connections keep answering. Locks and a synchronous standby are not the cause, so after
// write_stuck_after pgpivot fails over (no witness needed: the primary answers, it just
// cannot write), and the writers carry on on the promoted standby without reconnecting.
TEST_CASE("in promote mode a primary whose WAL writes hang is DOWN:WRITE_STUCK and replaced",
          "[pg][failover]") {
  WalDisk wal;  // outlives the cluster: thawed before the nodes are stopped
  if (!wal.error().empty()) {
    WARN("SKIPPED: no loop-mounted file system here, so WAL writes cannot be frozen: "
         << wal.error());
    return;
  }
  TwoNodeCluster cluster;
  const std::string adopted = wal.adopt(cluster.primaryData());
  INFO(adopted);
  REQUIRE(adopted.empty());
  cluster.waitReplayed();
  makeSynchronous(cluster);
  const ScratchFile events_file(scratchPath("events-write-stuck"));
  const std::string& events = events_file.path;
  Pgpivot::Options options = promoteOptions(cluster, events);
  options.extra_sections.front() += "write_stuck_after = 2\nheartbeat_create = on\n";
  options.settings["pool_mode"] = "transaction";
  Pgpivot pgpivot(options);
  pgpivot.start();
  createAckedTable(pgpivot);
  const std::string primary = std::to_string(cluster.primaryPort());
  const std::string standby = std::to_string(cluster.standbyPort());
  AckedWriters writers(pgpivot.conninfo(), "acked", 2);
  startWritersOn(writers, primary);
  waitHeartbeatRow(cluster);

  REQUIRE(wal.freeze(true));
  // Reads still answer on the frozen primary: this is not an unreachable node.
  const std::string reads = cluster.query(cluster.primaryPort(), cluster.primaryData(),
                                          "SELECT count(*) > 0 FROM pg_stat_activity");
  const bool moved = writersMovedTo(writers, standby, std::chrono::seconds(40));
  wal.freeze(false);
  writers.stop();
  const std::string log = readFile(events);
  INFO("writers: " << writers.summary() << "\nevents:\n" << log);
  CHECK(reads == "t");
  REQUIRE(moved);
  CHECK_THAT(log, Catch::Contains("DOWN:WRITE_STUCK"));
  CHECK_THAT(log, Catch::Contains("backends waiting on I/O"));
  CHECK_THAT(log, Catch::Contains("PROMOTING"));
  CHECK_THAT(log, !Catch::Contains("DOWN:UNRESPONSIVE"));
  checkWritersMoved(writers, pgpivot, standby);
}
