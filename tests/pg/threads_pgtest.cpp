// Every thread pgpivot runs, busy at the same time: four workers under a transaction-mode
// load while the admin console fans out to all of them and cancels cross between them, and
// a failover that the health monitor's thread drives while clients on every worker write.
// `make test-tsan` runs these under ThreadSanitizer (their names say "four workers"), so a
// data race between the workers, the monitor and the main thread fails the run.
// Catch2 v2's assertions are not thread-safe: the client threads only count, in atomics,
// and the test's own thread asserts.
#include <poll.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "acked_writers.hpp"
#include "support/acked_failover.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

constexpr int kWorkers = 4;

// The first thing that went wrong on any thread, for the failure message.
class FirstProblem {
 public:
  void note(const std::string& what) {
    std::lock_guard lock(mutex_);
    if (first_.empty()) {
      first_ = what;
    }
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    return first_.empty() ? "none" : first_;
  }

 private:
  mutable std::mutex mutex_;
  std::string first_;
};

// Rows of an admin SHOW whose `column` starts with `prefix`; -1 if the SHOW failed.
int rowsWithPrefix(PGconn* admin, const std::string& show, const std::string& column,
                   const std::string& prefix) {
  Res result(PQexec(admin, show.c_str()));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return -1;
  }
  const int field = PQfnumber(result.get(), column.c_str());
  if (field < 0) {
    return -1;
  }
  int n = 0;
  for (int row = 0; row < PQntuples(result.get()); ++row) {
    n += std::string(PQgetvalue(result.get(), row, field)).rfind(prefix, 0) == 0 ? 1 : 0;
  }
  return n;
}

// The `id` of SHOW CLIENTS' row whose application_name is `name`, "" if there is none.
std::string clientId(PGconn* admin, const std::string& name) {
  Res result(PQexec(admin, "SHOW CLIENTS"));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return "";
  }
  const int id = PQfnumber(result.get(), "id");
  const int app = PQfnumber(result.get(), "application_name");
  if (id < 0 || app < 0) {
    return "";
  }
  for (int row = 0; row < PQntuples(result.get()); ++row) {
    if (name == PQgetvalue(result.get(), row, app)) {
      return PQgetvalue(result.get(), row, id);
    }
  }
  return "";
}

// Runs `pg_sleep(30)` and cancels it (a new connection each time, so on any worker) until
// the query ends; bounded by 60 cancels. Returns the query's SQLSTATE ("" for success).
std::string sleepAndCancel(PGconn* conn) {
  if (PQsendQuery(conn, "SELECT pg_sleep(30)") != 1) {
    return "send failed";
  }
  PGcancel* cancel = PQgetCancel(conn);
  if (cancel == nullptr) {
    return "no cancel key";
  }
  // A cancel that arrives before the query has a server (a PAUSE holds it) finds nothing
  // to cancel; the next one does.
  for (int attempt = 0; attempt < 60 && PQisBusy(conn) == 1; ++attempt) {
    std::this_thread::sleep_for(100ms);
    char error[256];
    PQcancel(cancel, error, sizeof(error));
    pollfd readable{PQsocket(conn), POLLIN, 0};
    ::poll(&readable, 1, 400);
    PQconsumeInput(conn);
  }
  PQfreeCancel(cancel);
  if (PQisBusy(conn) == 1) {
    return "not cancelled";
  }
  std::string state;
  while (Res result{PQgetResult(conn)}) {
    if (PQresultStatus(result.get()) == PGRES_FATAL_ERROR && state.empty()) {
      state = sqlstateOf(result.get());
    }
  }
  return state;
}

}  // namespace

TEST_CASE("with four workers under transaction-mode load the admin console reaches every worker",
          "[pg][workers][admin]") {
  const int metrics_port = freePort();
  const int admin_port = freePort();
  Pgpivot::Options options;
  options.settings = {{"workers", std::to_string(kWorkers)},
                      {"pool_mode", "transaction"},
                      {"default_pool_size", "6"},
                      {"query_wait_timeout", "60"},
                      {"admin_users", kScramUser},
                      {"admin_port", std::to_string(admin_port)},
                      {"metrics_port", std::to_string(metrics_port)},
                      {"stats_period", "1"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);

  // Idle clients spread over the workers by SO_REUSEPORT: SHOW CLIENTS must gather every
  // one of them, whichever worker the admin connection landed on.
  constexpr int kHeld = 12;
  std::vector<Conn> held;
  for (int i = 0; i < kHeld; ++i) {
    held.push_back(connect(
        pgpivot.conninfo(kScramUser, "appdb", "application_name=held-" + std::to_string(i))));
    REQUIRE(PQstatus(held.back().get()) == CONNECTION_OK);
  }
  CHECK(rowsWithPrefix(admin.get(), "SHOW CLIENTS", "application_name", "held-") == kHeld);
  // KILL_CLIENT finds the client on its own worker.
  const std::string victim = clientId(admin.get(), "held-0");
  REQUIRE(!victim.empty());
  Res killed(PQexec(admin.get(), ("KILL_CLIENT " + victim).c_str()));
  CHECK(PQresultStatus(killed.get()) == PGRES_COMMAND_OK);
  CHECK(eventually(10s, [&] {
    return rowsWithPrefix(admin.get(), "SHOW CLIENTS", "application_name", "held-") == kHeld - 1;
  }));

  // The load: every loop bounded in count and time.
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> cancel_wrong{0};
  std::atomic<int> load_done{0};
  FirstProblem problem;
  constexpr int kLoadClients = 8;
  constexpr int kCancelClients = 2;
  constexpr int kCancelRounds = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kLoadClients; ++t) {
    threads.emplace_back([&, t] {
      Conn conn = connect(pgpivot.conninfo());
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        problem.note("load client connect: " + errorOf(conn.get()));
        failed++;
        load_done++;
        return;
      }
      const auto expect = [&](const std::string& sql, const std::string& want) {
        const std::string got = scalar(conn.get(), sql);
        if (got != want) {
          problem.note(sql + " -> " + got);
        }
        return got == want;
      };
      for (int i = 0; i < 300 && std::chrono::steady_clock::now() < deadline; ++i) {
        const std::string value = std::to_string(t * 1000 + i);
        if (i % 3 == 0) {
          // A transaction keeps its server until COMMIT, across several statements.
          if (!expect("BEGIN", "")) {
            failed++;
            continue;
          }
          if (!expect("SELECT " + value, value)) {
            wrong++;
          }
          if (!expect("COMMIT", "")) {
            failed++;
          }
        } else if (!expect("SELECT " + value, value)) {
          wrong++;
        }
      }
      load_done++;
    });
  }
  for (int t = 0; t < kCancelClients; ++t) {
    threads.emplace_back([&] {
      Conn conn = connect(pgpivot.conninfo());
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        problem.note("cancel client connect: " + errorOf(conn.get()));
        cancel_wrong++;
        load_done++;
        return;
      }
      for (int round = 0; round < kCancelRounds && std::chrono::steady_clock::now() < deadline;
           ++round) {
        const std::string state = sleepAndCancel(conn.get());
        if (state == "57014") {
          cancelled++;
        } else {
          problem.note("cancelled pg_sleep ended with '" + state + "'");
          cancel_wrong++;
        }
      }
      load_done++;
    });
  }

  // Meanwhile the console asks every worker, pauses and resumes them, reloads them, and
  // the metrics endpoint is scraped; bounded by the load's end and by count.
  const char* shows[] = {"SHOW POOLS", "SHOW STATS",   "SHOW CLIENTS", "SHOW SERVERS",
                         "SHOW MEM",   "SHOW SOCKETS", "SHOW LISTS",   "SHOW DATABASES"};
  int admin_errors = 0;
  int scrapes_bad = 0;
  int rounds = 0;
  // At least one round of each (PAUSE, RELOAD) even if the load is done first.
  for (; rounds < 400 && (rounds < 4 || load_done < kLoadClients + kCancelClients) &&
         std::chrono::steady_clock::now() < deadline;
       ++rounds) {
    const auto command = [&](const char* sql, ExecStatusType want) {
      Res result(PQexec(admin.get(), sql));
      if (PQresultStatus(result.get()) != want) {
        problem.note(std::string(sql) + ": " + PQerrorMessage(admin.get()));
        admin_errors++;
      }
    };
    for (const char* show : shows) {
      command(show, PGRES_TUPLES_OK);
    }
    if (rounds % 4 == 0) {
      command("PAUSE appdb", PGRES_COMMAND_OK);
      std::this_thread::sleep_for(50ms);
      command("RESUME appdb", PGRES_COMMAND_OK);
    }
    if (rounds % 4 == 2) {
      command("RELOAD", PGRES_COMMAND_OK);
    }
    RawClient http(metrics_port);
    http.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const std::string page = http.readAll(5s);
    if (page.rfind("HTTP/1.1 200", 0) != 0) {
      problem.note("metrics scrape: " + page.substr(0, 200));
      scrapes_bad++;
    }
  }
  for (auto& thread : threads) {
    thread.join();
  }
  const std::string log = pgpivot.logText();
  INFO("admin rounds " << rounds << ", first problem: " << problem.text() << "\nlog's end:\n"
                       << log.substr(log.size() > 20000 ? log.size() - 20000 : 0));
  CHECK(rounds >= 4);
  CHECK(admin_errors == 0);
  CHECK(scrapes_bad == 0);
  CHECK(wrong == 0);
  CHECK(failed == 0);
  CHECK(cancel_wrong == 0);
  CHECK(cancelled == kCancelClients * kCancelRounds);

  // The separate admin port reaches the same workers; the held clients are all still
  // there and still served.
  Conn port_admin = connect("host=127.0.0.1 port=" + std::to_string(admin_port) +
                            " dbname=pgpivot user=" + kScramUser + " password=" + kPassword +
                            " connect_timeout=10 sslmode=disable");
  REQUIRE(PQstatus(port_admin.get()) == CONNECTION_OK);
  CHECK(rowsWithPrefix(port_admin.get(), "SHOW CLIENTS", "application_name", "held-") == kHeld - 1);
  for (int i = 1; i < kHeld; ++i) {
    CAPTURE(i);
    CHECK(scalar(held[static_cast<std::size_t>(i)].get(), "SELECT " + std::to_string(i)) ==
          std::to_string(i));
  }
  // Each worker keeps its own shard of appdb's pool; SHOW POOLS adds them up in one row.
  CHECK(rowsWithPrefix(port_admin.get(), "SHOW POOLS", "database", "appdb") == 1);
}

// The health monitor's thread decides and drives the failover; each of the four workers
// learns the new primary through its mailbox while its clients write, and the console
// asks all of them what they see while it happens.
TEST_CASE("with four workers in promote mode a killed primary is replaced, writers stay",
          "[pg][workers][failover]") {
  TwoNodeCluster cluster;
  makeSynchronous(cluster);
  const ScratchFile events(scratchPath("events-four-workers"));
  Pgpivot::Options options = pgpivotOn(cluster, OnCluster().withLog(events.path));
  options.settings["workers"] = std::to_string(kWorkers);
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  createAckedTable(pgpivot);
  const std::string primary = std::to_string(cluster.primaryPort());
  const std::string standby = std::to_string(cluster.standbyPort());

  // Eight writers over four workers: SO_REUSEPORT spreads them.
  constexpr int kWriters = 8;
  AckedWriters writers(pgpivot.conninfo(), "acked", kWriters);
  startWritersOn(writers, primary);
  RouteWatch routes(pgpivot);
  cluster.killPrimary();
  int admin_errors = 0;
  bool moved = false;
  // The console fans out to every worker while the failover runs (bounded: 60 s).
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!moved && std::chrono::steady_clock::now() < deadline) {
    for (const char* show : {"SHOW POOLS", "SHOW SERVERS", "SHOW NODES", "SHOW CLUSTERS"}) {
      Res result(PQexec(admin.get(), show));
      admin_errors += PQresultStatus(result.get()) == PGRES_TUPLES_OK ? 0 : 1;
    }
    moved = writers.allWroteOn(standby, 3);
    if (!moved) {
      std::this_thread::sleep_for(100ms);
    }
  }
  writers.stop();
  routes.stop();
  INFO("writers: " << writers.summary() << "\nroutes: " << routes.describe() << "\nevents:\n"
                   << readFile(events.path));
  REQUIRE(moved);
  CHECK(admin_errors == 0);
  CHECK_THAT(readFile(events.path), Catch::Contains("PROMOTING"));
  // Never two primaries routed: the route went from the old primary (perhaps through
  // none) to the promoted standby, and stayed there.
  const auto changes = routes.changes();
  REQUIRE(!changes.empty());
  CHECK(changes.front() == nodeName(cluster.primaryPort()));
  CHECK(changes.back() == nodeName(cluster.standbyPort()));
  CHECK(changes.size() <= 3);
  // At most one statement in flight per writer failed, and each told the truth.
  checkWritersMoved(writers, pgpivot, standby, kWriters);
}
