// Faults that must NOT fail over (issue 4's negative tests, research §6.2 faults 1, 4, 6, 7
// and the §6.3 recipes): each runs against a real primary + streaming standby with pgpivot
// in promote mode, so that a wrong decision would show as a promotion, under a bounded
// write load through pgpivot. Each asserts what the client saw, that the primary stayed
// the primary and routed (sampled all along), that nothing failed over (SHOW CLUSTERS,
// SHOW FAILOVERS, the event log), and the classification SHOW NODES gives where one
// applies. The lock pile-up is in failover_promote_pgtest.cpp.
#include <poll.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <thread>

#include "support/cluster_fixture.hpp"
#include "support/pgbench_load.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/wal_disk.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

// A cluster with pgpivot in front (promote mode, the fast profile: DOWN after 3 s, the
// heartbeat write W on, its table created by pgpivot), its admin console and its event log.
struct Rig {
  static constexpr const char* kHeartbeat = "heartbeat_create = on\n";
  TwoNodeCluster cluster;
  ScratchFile events;
  Pgpivot pgpivot;
  Conn admin;

  explicit Rig(const std::string& tag, bool heartbeat = true)
      : events(scratchPath("events-" + tag)),
        pgpivot(pgpivotOn(
            cluster, OnCluster().withLog(events.path).withLines(heartbeat ? kHeartbeat : ""))) {
    start();
  }
  // For a test that changes the cluster before pgpivot starts.
  Rig(const std::string& tag, const std::function<void(TwoNodeCluster&)>& prepare)
      : events(scratchPath("events-" + tag)),
        pgpivot(pgpivotOn(cluster, OnCluster().withLog(events.path).withLines(kHeartbeat))) {
    prepare(cluster);
    start();
  }

  std::string primary() const { return nodeName(cluster.primaryPort()); }
  std::string health() { return nodeColumn(admin.get(), primary(), "health"); }
  WriteLoad::Options load(const std::string& table) const {
    WriteLoad::Options options;
    options.conninfo = pgpivot.conninfo();
    options.table = table;
    options.max_time = 50s;
    return options;
  }
  std::string primaryQuery(const std::string& sql) const {
    return cluster.query(cluster.primaryPort(), cluster.primaryData(), sql);
  }
  std::string standbyQuery(const std::string& sql) const {
    return cluster.query(cluster.standbyPort(), cluster.standbyData(), sql);
  }
  // Waits until SHOW NODES gives the primary `state`; returns whether it did.
  bool healthBecomes(const std::string& state, std::chrono::milliseconds timeout) {
    std::string last;
    const bool seen = eventually(timeout, [&] {
      last = health();
      return last == state;
    });
    UNSCOPED_INFO("primary's health, last seen: " << last);
    return seen;
  }

 private:
  void start() {
    pgpivot.start();
    admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
    REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
    waitSteady(admin.get());
  }
};

// Commits wait for their WAL to be flushed (and for a synchronous standby, if one is
// named): the fixture runs with synchronous_commit off, which acknowledges before that.
void synchronousCommit(const TwoNodeCluster& cluster) {
  REQUIRE(cluster.query(cluster.primaryPort(), cluster.primaryData(),
                        "ALTER SYSTEM SET synchronous_commit = on") == "ALTER SYSTEM");
  REQUIRE(cluster.query(cluster.primaryPort(), cluster.primaryData(), "SELECT pg_reload_conf()") ==
          "t");
}

// What watches a fault: a writer through pgpivot (writing before the constructor returns)
// and a sampler of the routed primary. finish() stops both.
struct Watched {
  WriteLoad load;
  RouteWatch routes;
  Watched(Rig& rig, const WriteLoad::Options& options) : load(options), routes(rig.pgpivot) {
    load.start();
    REQUIRE(load.waitForAcks(10, 10s));
  }
  void finish() {
    load.stop();
    routes.stop();
  }
};

// SHOW FAILOVERS rows that belong to a failover (ids "f-..."), as "step result: detail".
std::vector<std::string> failoverSteps(PGconn* admin) {
  std::vector<std::string> steps;
  Res rows(PQexec(admin, "SHOW FAILOVERS"));
  REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
  const int id = PQfnumber(rows.get(), "failover_id");
  const int step = PQfnumber(rows.get(), "step");
  const int result = PQfnumber(rows.get(), "result");
  const int detail = PQfnumber(rows.get(), "detail");
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    if (std::string(PQgetvalue(rows.get(), r, id)).rfind("f-", 0) == 0) {
      steps.push_back(std::string(PQgetvalue(rows.get(), r, step)) + " " +
                      PQgetvalue(rows.get(), r, result) + ": " + PQgetvalue(rows.get(), r, detail));
    }
  }
  return steps;
}

// How many of the writes `seen` acknowledged are in its table, read through pgpivot.
std::size_t ackedPresent(const Pgpivot& pgpivot, const WriteLoad::Seen& seen,
                         const std::string& table) {
  if (seen.acked.empty()) {
    return 0;
  }
  std::string ids;
  for (const WriteLoad::Ack& ack : seen.acked) {
    ids += (ids.empty() ? "" : ",") + std::to_string(ack.id);
  }
  Conn conn = connect(pgpivot.conninfo());
  const std::string count =
      scalar(conn.get(), "SELECT count(*) FROM " + table + " WHERE id IN (" + ids + ")");
  INFO(count);
  REQUIRE(!count.empty());
  REQUIRE(count[0] != 'E');
  return static_cast<std::size_t>(std::stoul(count));
}

// How the routed primary may have moved while the fault lasted.
enum class Routing {
  kSteady,  // always the primary
  // the primary, or no node while clients were held (crash recovery: the server
  // refuses connections for a moment), and the primary at the end
  kMayPause,
};

// Nothing failed over: no incident, no promotion, the primary routed all along (or, with
// Routing::kMayPause, no node for a moment) and still the primary, the standby still a
// standby, every acknowledged write the primary's.
void checkNoFailover(Rig& rig, Watched& watched, Routing routing = Routing::kSteady) {
  watched.finish();
  const WriteLoad& load = watched.load;
  const RouteWatch& routes = watched.routes;
  const WriteLoad::Seen seen = load.seen();
  const std::string& table = load.table();
  const std::string log = readFile(rig.events.path);
  INFO("load: " << seen.describe() << "\n" << routes.describe() << "\nevents:\n" << log);
  CHECK_THAT(log, !Catch::Contains("\"to\":\"PRIMARY_DOWN\""));
  CHECK_THAT(log, !Catch::Contains("\"to\":\"PROMOTING\""));
  CHECK(failoverSteps(rig.admin.get()).empty());
  CHECK(clusterColumn(rig.admin.get(), "failovers") == "0");
  CHECK(clusterColumn(rig.admin.get(), "state") != "WAIT_OPERATOR");
  CHECK(routes.samples() > 0);
  const std::vector<std::string> changes = routes.changes();
  if (routing == Routing::kSteady) {
    CHECK(changes == std::vector<std::string>{rig.primary()});
  } else {
    for (const std::string& routed : changes) {
      CHECK((routed == rig.primary() || routed.empty()));
    }
    CHECK(changes.front() == rig.primary());
    CHECK(changes.back() == rig.primary());
  }
  CHECK(rig.primaryQuery("SELECT pg_is_in_recovery()") == "f");
  CHECK(rig.standbyQuery("SELECT pg_is_in_recovery()") == "t");
  CHECK_FALSE(seen.acked.empty());
  for (const auto& [port, count] : seen.acked_by) {
    CHECK(port == rig.cluster.primaryPort());
  }
  // Every acknowledged write is there.
  CHECK(ackedPresent(rig.pgpivot, seen, table) == seen.acked.size());
}

// The outcome of a query sent with PQsendQuery: "ok", its SQLSTATE, or "no answer".
std::string awaitResult(PGconn* conn, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (PQisBusy(conn) == 1) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return "no answer";
    }
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    if (::poll(&pfd, 1, 100) < 0 || PQconsumeInput(conn) != 1) {
      return "connection lost";
    }
  }
  std::string outcome = "ok";
  while (PGresult* raw = PQgetResult(conn)) {
    Res result(raw);
    if (PQresultStatus(raw) == PGRES_FATAL_ERROR) {
      outcome = sqlstateOf(raw);
    }
  }
  return outcome;
}

}  // namespace

TEST_CASE("negative: a real deadlock reaches the client as 40P01 and nothing fails over",
          "[pg][failover][negative]") {
  Rig rig("negative-deadlock");
  Conn setup = connect(rig.pgpivot.conninfo());
  REQUIRE(PQstatus(setup.get()) == CONNECTION_OK);
  REQUIRE(scalar(setup.get(), "CREATE TABLE dl (id int PRIMARY KEY, v int NOT NULL)") == "");
  REQUIRE(scalar(setup.get(), "INSERT INTO dl VALUES (1, 0), (2, 0)") == "");
  const std::string deadlocks_before =
      rig.primaryQuery("SELECT deadlocks FROM pg_stat_database WHERE datname = 'appdb'");
  Watched watched(rig, rig.load("acks_deadlock"));
  WriteLoad& load = watched.load;

  // Three deadlocks in a row, each between two clients of pgpivot that update rows 1 and 2
  // in opposite orders; PostgreSQL breaks each one after deadlock_timeout (1 s).
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    Conn a = connect(rig.pgpivot.conninfo());
    Conn b = connect(rig.pgpivot.conninfo());
    REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
    REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
    REQUIRE(scalar(a.get(), "BEGIN") == "");
    REQUIRE(scalar(a.get(), "UPDATE dl SET v = v + 1 WHERE id = 1") == "");
    REQUIRE(scalar(b.get(), "BEGIN") == "");
    REQUIRE(scalar(b.get(), "UPDATE dl SET v = v + 1 WHERE id = 2") == "");
    REQUIRE(PQsendQuery(a.get(), "UPDATE dl SET v = v + 1 WHERE id = 2") == 1);
    REQUIRE(PQsendQuery(b.get(), "UPDATE dl SET v = v + 1 WHERE id = 1") == 1);
    const std::string outcome_a = awaitResult(a.get(), 20s);
    const std::string outcome_b = awaitResult(b.get(), 20s);
    INFO("a: " << outcome_a << ", b: " << outcome_b);
    // One is the victim, the other goes on and commits.
    CHECK(((outcome_a == "40P01" && outcome_b == "ok") ||
           (outcome_a == "ok" && outcome_b == "40P01")));
    CHECK(scalar(a.get(), outcome_a == "ok" ? "COMMIT" : "ROLLBACK") == "");
    CHECK(scalar(b.get(), outcome_b == "ok" ? "COMMIT" : "ROLLBACK") == "");
  }
  CHECK(std::stol(
            rig.primaryQuery("SELECT deadlocks FROM pg_stat_database WHERE datname = 'appdb'")) >=
        std::stol(deadlocks_before) + kRounds);
  // The writer went on through all of it and after it (past the fast profile's 3 s).
  CHECK(load.waitForAcks(100, 20s));
  watched.finish();
  const WriteLoad::Seen seen = load.seen();
  checkNoFailover(rig, watched);
  CHECK(seen.errorCount() == 0);
  CHECK(rig.healthBecomes("HEALTHY", 10s));
}

namespace {

// The synchronous-standby stall, with or without the heartbeat write (without it, only the
// stats probe and the data path can tell).
void syncRepStall(bool heartbeat) {
  Rig rig(heartbeat ? "negative-syncrep" : "negative-syncrep-nohb", heartbeat);
  // Every commit waits for the standby (the fixture runs with synchronous_commit off).
  REQUIRE(rig.primaryQuery("ALTER SYSTEM SET synchronous_standby_names = '*'") == "ALTER SYSTEM");
  synchronousCommit(rig.cluster);
  REQUIRE(eventually(10s, [&] {
    return rig.primaryQuery("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") ==
           "1";
  }));
  WriteLoad::Options options = rig.load("acks_syncrep");
  options.write_timeout = 40s;  // a commit waits for the standby: it must not be abandoned
  Watched watched(rig, options);
  WriteLoad& load = watched.load;

  // The standby hangs (every process of it stopped): commits wait in IPC/SyncRep.
  rig.cluster.freezeNode(rig.cluster.standbyData(), true);
  const auto frozen_at = std::chrono::steady_clock::now();
  const bool syncrep = rig.healthBecomes("DEGRADED:SYNCREP", 30s);
  const auto classified_after = std::chrono::steady_clock::now() - frozen_at;
  const int64_t acked_while_stalled = load.ackedCount();
  const std::string waiting = rig.primaryQuery(
      "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = 'appdb'");
  // Stalled well past the fast profile's DOWN thresholds (3 s, write-stuck 10 s).
  std::this_thread::sleep_for(3s);
  const std::string still = rig.health();
  rig.cluster.freezeNode(rig.cluster.standbyData(), false);
  INFO("sessions waiting in SyncRep: " << waiting << "; health after 3 s more: " << still);
  CHECK(syncrep);
  CHECK(still == "DEGRADED:SYNCREP");
  CHECK(std::stoi(waiting) >= 1);
  // The standby is back: the waiting commit completes and the writer goes on.
  CHECK(load.waitForAcks(20, 30s));
  watched.finish();
  const WriteLoad::Seen seen = load.seen();
  checkNoFailover(rig, watched);
  CHECK(seen.errorCount() == 0);
  CHECK(seen.acked.size() > static_cast<std::size_t>(acked_while_stalled));
  CHECK_THAT(readFile(rig.events.path), Catch::Contains("DEGRADED:SYNCREP"));
  WARN("synchronous standby frozen (heartbeat "
       << (heartbeat ? "on" : "off") << "): DEGRADED:SYNCREP after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(classified_after).count() << " ms; "
       << seen.describe());
}

}  // namespace

TEST_CASE(
    "negative: a synchronous standby that stops answering makes the primary DEGRADED:SYNCREP, "
    "not a failover",
    "[pg][failover][negative]") {
  syncRepStall(true);
}

TEST_CASE(
    "negative: without a heartbeat table a synchronous standby that stops answering is still "
    "DEGRADED:SYNCREP, not a failover",
    "[pg][failover][negative]") {
  syncRepStall(false);
}

TEST_CASE(
    "negative: a frozen postmaster with live backends is DEGRADED:NO_NEW_CONN while the pooled "
    "sessions keep working, not a failover",
    "[pg][failover][negative]") {
  Rig rig("negative-postmaster");
  Watched watched(rig, rig.load("acks_postmaster"));
  WriteLoad& load = watched.load;

  // SIGSTOP of the postmaster only: its backends (pgpivot's pooled server connections, the
  // monitor's sessions, the WAL sender) keep running, new connections hang.
  rig.cluster.freezeNode(rig.cluster.primaryData(), true, /*postmaster_only=*/true);
  const auto frozen_at = std::chrono::steady_clock::now();
  const bool no_new_conn = rig.healthBecomes("DEGRADED:NO_NEW_CONN", 20s);
  const auto classified_after = std::chrono::steady_clock::now() - frozen_at;
  // Existing sessions keep working: the writer through pgpivot's pool...
  const bool writes_go_on = load.waitForAcks(50, 15s);
  // ...while a new connection to the server itself does not get through.
  Conn direct = connect("host=127.0.0.1 port=" + std::to_string(rig.cluster.primaryPort()) +
                        " dbname=postgres user=" + kTrustUser + " connect_timeout=2");
  const bool direct_refused = PQstatus(direct.get()) != CONNECTION_OK;
  const std::string still = rig.health();
  rig.cluster.freezeNode(rig.cluster.primaryData(), false, /*postmaster_only=*/true);
  INFO("health at the end of the freeze: " << still);
  CHECK(no_new_conn);
  CHECK(writes_go_on);
  CHECK(direct_refused);
  CHECK(still == "DEGRADED:NO_NEW_CONN");
  CHECK(load.waitForAcks(10, 15s));
  watched.finish();
  const WriteLoad::Seen seen = load.seen();
  checkNoFailover(rig, watched);
  CHECK(seen.errorCount() == 0);
  CHECK_THAT(readFile(rig.events.path), Catch::Contains("DEGRADED:NO_NEW_CONN"));
  WARN("postmaster frozen: DEGRADED:NO_NEW_CONN after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(classified_after).count() << " ms; "
       << seen.describe());
}

TEST_CASE(
    "negative: backends killed with -9 again and again make PostgreSQL restart them all, and "
    "nothing fails over",
    "[pg][failover][negative]") {
  Rig rig("negative-crash");
  // Acknowledged means flushed, so that crash recovery keeps it (the fixture runs with
  // synchronous_commit off, which loses the last commits in a crash).
  synchronousCommit(rig.cluster);
  Watched watched(rig, rig.load("acks_crash"));
  WriteLoad& load = watched.load;

  // kill -9 of one client backend, three times: each time the postmaster terminates every
  // backend (57P02), runs crash recovery (57P03 meanwhile) and accepts connections again.
  constexpr int kCrashes = 3;
  for (int crash = 0; crash < kCrashes; ++crash) {
    CAPTURE(crash);
    const std::string pid = rig.primaryQuery(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = "
        "'appdb' AND pid <> pg_backend_pid() ORDER BY backend_start LIMIT 1");
    INFO("backend: " << pid);
    REQUIRE(std::atoi(pid.c_str()) > 0);
    REQUIRE(::kill(std::atoi(pid.c_str()), SIGKILL) == 0);
    // Back, and writing through pgpivot again, before the next crash.
    const bool back = load.waitForAcks(10, 20s);
    INFO("load: " << load.seen().describe() << "\nhealth: " << rig.health() << "\nevents:\n"
                  << readFile(rig.events.path));
    REQUIRE(back);
  }
  // Healthy again, past the fast profile's 3 s.
  CHECK(rig.healthBecomes("HEALTHY", 20s));
  CHECK(load.waitForAcks(20, 10s));
  watched.finish();
  const WriteLoad::Seen seen = load.seen();
  // Clients are held while the server refuses connections (57P03), so the routed primary
  // may be no node for a moment; never another node.
  checkNoFailover(rig, watched, Routing::kMayPause);
  // Statements in flight when the backends died get an error, but nobody is disconnected:
  // pgpivot holds new work while the server answers 57P03 and retries.
  CHECK(seen.reconnects == 0);
  // The restarts were real: PostgreSQL said so in its log.
  CHECK(std::stoi(rig.primaryQuery("SELECT count(*) FROM regexp_matches(pg_read_file('" +
                                   rig.cluster.primaryData() +
                                   "/server.log'), 'terminated by signal 9', 'g')")) >= kCrashes);
  WARN("backend crash loop (" << kCrashes << " kill -9): " << seen.describe()
                              << "; CRASH_RECOVERY seen by the probes: "
                              << (readFile(rig.events.path).find("\"to\":\"CRASH_RECOVERY\"") !=
                                          std::string::npos
                                      ? "yes"
                                      : "no"));
}

TEST_CASE(
    "negative: a standby stopped and started every second neither fails over nor moves the "
    "primary's routing",
    "[pg][failover][negative]") {
  Rig rig("negative-flap");
  Watched watched(rig, rig.load("acks_flap"));
  WriteLoad& load = watched.load;

  constexpr int kFlaps = 5;
  for (int flap = 0; flap < kFlaps; ++flap) {
    rig.cluster.stopNode(rig.cluster.standbyData());
    std::this_thread::sleep_for(1s);
    rig.cluster.startNode(rig.cluster.standbyData());
    std::this_thread::sleep_for(1s);
  }
  // It settles and streams again; the writer never noticed.
  CHECK(eventually(30s, [&] {
    return rig.primaryQuery("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") ==
           "1";
  }));
  CHECK(load.waitForAcks(20, 10s));
  watched.finish();
  const WriteLoad::Seen seen = load.seen();
  checkNoFailover(rig, watched);
  CHECK(seen.errorCount() == 0);
  CHECK(seen.reconnects == 0);
}

TEST_CASE(
    "negative: a slow but progressing WAL disk (frozen 1.2 s of every 1.5 s) does not fail over",
    "[pg][failover][negative]") {
  WalDisk disk;  // declared first: unmounted last, after the primary has stopped
  if (!disk.error().empty()) {
    WARN("SKIPPED: the slow-disk test needs a loop-mounted file system: " << disk.error());
    return;
  }
  // The primary's WAL moves to the loop disk (stopped cleanly, then started again), and
  // commits wait for their WAL write (the fixture runs with synchronous_commit off).
  Rig rig("negative-slowdisk", [&](TwoNodeCluster& cluster) {
    const std::string adopted = disk.adopt(cluster.primaryData());
    INFO(adopted);
    REQUIRE(adopted.empty());
    synchronousCommit(cluster);
    cluster.waitReplayed();
  });
  Watched watched(rig, rig.load("acks_slowdisk"));
  WriteLoad& load = watched.load;

  // 12 s of a disk that stalls every write for up to 1.2 s: longer than the fast profile's
  // write_stuck_after (10 s), with writes completing in every thaw.
  const int64_t before = load.ackedCount();
  std::string worst = rig.health();
  for (int cycle = 0; cycle < 8; ++cycle) {
    REQUIRE(disk.freeze(true));
    std::this_thread::sleep_for(1200ms);
    REQUIRE(disk.freeze(false));
    std::this_thread::sleep_for(300ms);
    const std::string h = rig.health();
    if (h != "HEALTHY") {
      worst = h;
    }
  }
  const int64_t during = load.ackedCount() - before;
  CHECK(load.waitForAcks(20, 15s));
  watched.finish();
  const WriteLoad::Seen seen = load.seen();
  INFO("writes acknowledged during the slow phase: " << during << "; primary's health other "
                                                     << "than HEALTHY last seen: " << worst);
  // Slow, not stuck: writes went on during the slow phase.
  CHECK(during >= 8);
  checkNoFailover(rig, watched);
  CHECK(seen.errorCount() == 0);
  CHECK_THAT(readFile(rig.events.path), !Catch::Contains("DOWN:WRITE_STUCK"));
  WARN("slow WAL disk: " << during << " writes acknowledged in 12 s of 1.2 s stalls; "
                         << seen.describe()
                         << "; primary's health other than HEALTHY last seen: " << worst);
}
