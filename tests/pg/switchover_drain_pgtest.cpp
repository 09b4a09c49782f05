// SWITCHOVER's drain on a live two-node cluster (real PostgreSQL 15 primary + streaming
// standby). A planned switchover must not fail clients: a session-mode client that keeps
// starting short transactions is held between two of them (as PAUSE holds it) from the
// pause until the new primary is routed, and its next transaction runs there, without an
// error. A client that stays idle inside a transaction is waited for up to drain_timeout;
// then the switchover goes on, the fence aborts its transaction, it is told so with 40001
// at its next statement, and the verdict says the drain timed out with it still open.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

namespace {

// One client, in a loop: BEGIN, INSERT, 2 ms of think time, SELECT where it runs,
// COMMIT, 2 ms of sleep. Each statement is its own round trip, so the transaction is open
// about half of the time. Bounded by a count and a time; stops early when asked. Ids are
// `first_id` on, so several loops can share a table.
class TransactionLoop {
 public:
  TransactionLoop(std::string conninfo, int first_id)
      : conninfo_(std::move(conninfo)), first_id_(first_id) {}
  ~TransactionLoop() { stop(); }
  TransactionLoop(const TransactionLoop&) = delete;
  TransactionLoop& operator=(const TransactionLoop&) = delete;

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  int committed() const { return committed_.load(); }
  // Read once stopped.
  const std::vector<std::string>& errors() const { return errors_; }
  const std::vector<std::string>& where() const { return where_; }  // "port in_recovery" each
  const std::string& loginError() const { return login_error_; }

 private:
  static constexpr int kMaxTransactions = 20000;
  static constexpr auto kMaxRun = std::chrono::seconds(90);

  void run() {
    Conn conn = connect(conninfo_);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      login_error_ = errorOf(conn.get());
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0;
         i < kMaxTransactions && !stopping_ && std::chrono::steady_clock::now() - started < kMaxRun;
         ++i) {
      std::string at;
      const auto think = [] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return true;
      };
      const bool done =
          step(conn.get(), "BEGIN", PGRES_COMMAND_OK, nullptr) &&
          step(conn.get(), "INSERT INTO loop_rows VALUES (" + std::to_string(first_id_ + i) + ")",
               PGRES_COMMAND_OK, nullptr) &&
          think() &&
          step(conn.get(), "SELECT inet_server_port() || ' ' || pg_is_in_recovery()",
               PGRES_TUPLES_OK, &at) &&
          step(conn.get(), "COMMIT", PGRES_COMMAND_OK, nullptr);
      if (done) {
        where_.push_back(at);
        ++committed_;
      } else {
        Res rollback(PQexec(conn.get(), "ROLLBACK"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  bool step(PGconn* conn, const std::string& sql, ExecStatusType expected, std::string* value) {
    Res result(PQexec(conn, sql.c_str()));
    if (PQresultStatus(result.get()) != expected) {
      errors_.push_back(sql + ": " + sqlstateOf(result.get()) + " " +
                        PQresultErrorMessage(result.get()));
      return false;
    }
    if (value != nullptr) {
      *value = PQgetvalue(result.get(), 0, 0);
    }
    return true;
  }

  std::string conninfo_;
  int first_id_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> committed_{0};
  std::vector<std::string> errors_;
  std::vector<std::string> where_;
  std::string login_error_;
};

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) {
    out += line + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("SWITCHOVER in session mode: a client starting transactions every few ms sees no error",
          "[pg][failover][admin][switchover]") {
  TwoNodeCluster cluster;
  const ScratchFile events(scratchPath("switchover-loop"));
  Pgpivot::Options options = pgpivotOn(cluster, OnCluster{}.withLog(events.path));
  options.settings["pool_mode"] = "session";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  {
    Conn setup = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(setup.get()) == CONNECTION_OK);
    REQUIRE(scalar(setup.get(), "CREATE TABLE loop_rows (id int)").rfind("ERROR", 0) != 0);
  }
  cluster.waitReplayed();

  // Four session-mode clients, each inside a transaction about half of the time.
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<TransactionLoop>> loops;
  for (int c = 0; c < kClients; ++c) {
    loops.push_back(std::make_unique<TransactionLoop>(pgpivot.conninfo(), c * 100000));
    loops.back()->start();
  }
  const auto committed = [&] {
    int total = 0;
    for (const auto& loop : loops) {
      total += loop->committed();
    }
    return total;
  };
  const auto everyLoop = [&](int at_least) {
    for (const auto& loop : loops) {
      if (loop->committed() < at_least) {
        return false;
      }
    }
    return true;
  };
  REQUIRE(eventually(std::chrono::seconds(10), [&] { return everyLoop(20); }));
  Res answer(PQexec(admin.get(), "SWITCHOVER main"));
  const RunReport report = toRunReport(answer.get());
  // Some more transactions after the switchover, on the new primary.
  int after_switch = 0;
  for (const auto& loop : loops) {
    after_switch = std::max(after_switch, loop->committed());
  }
  const bool went_on =
      eventually(std::chrono::seconds(10), [&] { return everyLoop(after_switch + 20); });
  std::vector<std::string> errors;
  for (const auto& loop : loops) {
    loop->stop();
    REQUIRE(loop->loginError().empty());
    errors.insert(errors.end(), loop->errors().begin(), loop->errors().end());
  }
  INFO("switchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nclient errors:\n"
       << joined(errors) << "\nevents:\n"
       << readFile(events.path));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  CHECK(went_on);
  // No client error, at any statement, across the whole switchover.
  CHECK(errors.empty());
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  CHECK_THAT(verdict->at("detail"), Catch::Contains("0 transaction(s) failed"));
  for (const char* check : {"drained", "completed", "no_failed_transactions"}) {
    CAPTURE(check);
    REQUIRE(report.check(check) != nullptr);
    CHECK(report.check(check)->at("result") == "passed");
  }
  // Each client started on the old primary and ended on the new one, writable.
  for (const auto& loop : loops) {
    REQUIRE(loop->where().size() >= 2);
    CHECK(loop->where().front() == std::to_string(cluster.primaryPort()) + " false");
    CHECK(loop->where().back() == std::to_string(cluster.standbyPort()) + " false");
  }
  // Every acknowledged commit is on the new primary.
  Conn check = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(check.get()) == CONNECTION_OK);
  CHECK(scalar(check.get(),
               "SELECT count(DISTINCT id) || ' on ' || inet_server_port() "
               "FROM loop_rows") ==
        std::to_string(committed()) + " on " + std::to_string(cluster.standbyPort()));
  WARN("session-mode loops across SWITCHOVER: " << committed() << " transactions, " << errors.size()
                                                << " errors; verdict: " << verdict->at("detail"));
}

TEST_CASE("SWITCHOVER: a transaction left open past drain_timeout is aborted with 40001",
          "[pg][failover][admin][switchover]") {
  const std::string mode = GENERATE(as<std::string>{}, "transaction", "session");
  CAPTURE(mode);
  TwoNodeCluster cluster;
  const ScratchFile events(scratchPath("switchover-open"));
  Pgpivot::Options options =
      pgpivotOn(cluster, OnCluster{}.withLog(events.path).withLines("drain_timeout = 1\n"));
  options.settings["pool_mode"] = mode;
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "CREATE TABLE open_rows (id int)").rfind("ERROR", 0) != 0);
  cluster.waitReplayed();
  // Idle inside a transaction on the old primary while the switchover runs.
  REQUIRE(scalar(client.get(), "BEGIN").rfind("ERROR", 0) != 0);
  REQUIRE(scalar(client.get(), "INSERT INTO open_rows VALUES (1)").rfind("ERROR", 0) != 0);

  Res answer(PQexec(admin.get(), "SWITCHOVER main"));
  const RunReport report = toRunReport(answer.get());
  INFO("switchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << readFile(events.path));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  // The drain gave up after drain_timeout with the transaction still open, and the
  // switchover went on to the end.
  const auto* drained = report.check("drained");
  REQUIRE(drained != nullptr);
  CHECK(drained->at("result") == "failed");
  CHECK_THAT(drained->at("detail"), Catch::StartsWith("drained: drain_timeout (1000 ms) expired "
                                                      "with 1 transaction(s) still open"));
  REQUIRE(report.check("completed") != nullptr);
  CHECK(report.check("completed")->at("result") == "passed");
  for (const char* step : {"clients_paused", "FENCING", "PROMOTING", "switchover_complete"}) {
    CAPTURE(step);
    CHECK(report.row(step) != nullptr);
  }
  const auto* paused = report.row("clients_paused");
  REQUIRE(paused != nullptr);
  CHECK_THAT(paused->at("detail"), Catch::Contains("1 transaction(s) still open"));
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "failed");
  CHECK_THAT(verdict->at("detail"),
             Catch::StartsWith("completed; the drain timed out with 1 transaction(s) still open"));
  CHECK_THAT(verdict->at("detail"),
             Catch::Contains("primary: 127.0.0.1:" + std::to_string(cluster.standbyPort())));

  // The client learns at its next statement that its transaction did not commit.
  Res next(PQexec(client.get(), "INSERT INTO open_rows VALUES (2)"));
  CHECK(PQresultStatus(next.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(next.get()) == "40001");
  const char* primary = PQresultErrorField(next.get(), PG_DIAG_MESSAGE_PRIMARY);
  REQUIRE(primary != nullptr);
  CHECK_THAT(std::string(primary), Catch::StartsWith("pgpivot: failover"));
  // Then it goes on, on the new primary, where nothing of the aborted transaction is.
  CHECK(scalar(client.get(), "SELECT inet_server_port() || ' ' || pg_is_in_recovery()") ==
        std::to_string(cluster.standbyPort()) + " false");
  CHECK(scalar(client.get(), "SELECT count(*) FROM open_rows") == "0");
}
