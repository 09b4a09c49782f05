// DRILL on a live two-node cluster (real PostgreSQL 15 primary + streaming standby), the
// "disaster recovery drill" of the postmortem: it runs a planned switchover under a pgbench
// load and answers, once it has ended, with its steps, its checks and a verdict; a drill
// whose pre-checks fail stops before pausing anyone and says why; and a drill that had to
// abort a transaction left open past drain_timeout counts it as failed, while the clients
// outside any transaction go on without an error.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster_fixture.hpp"
#include "support/console_cluster.hpp"
#include "support/pgbench_load.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

namespace {

bool ok(PGconn* conn, const std::string& sql) {
  return scalar(conn, sql).rfind("ERROR", 0) != 0;
}

// One client outside any transaction: autocommit INSERTs into drill_rows, one after the
// other, each answered with the port of the server that ran it. Ids are `first_id` on.
// Bounded by a count and a time; stops early when asked.
class AutocommitLoop {
 public:
  AutocommitLoop(std::string conninfo, int first_id)
      : conninfo_(std::move(conninfo)), first_id_(first_id) {}
  ~AutocommitLoop() { stop(); }
  AutocommitLoop(const AutocommitLoop&) = delete;
  AutocommitLoop& operator=(const AutocommitLoop&) = delete;

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  int acked() const { return acked_.load(); }
  // Read once stopped.
  const std::vector<std::string>& errors() const { return errors_; }
  const std::vector<std::string>& ports() const { return ports_; }  // one per acked INSERT
  const std::string& loginError() const { return login_error_; }

 private:
  static constexpr int kMaxStatements = 20000;
  static constexpr auto kMaxRun = std::chrono::seconds(90);

  void run() {
    Conn conn = connect(conninfo_);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      login_error_ = errorOf(conn.get());
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0;
         i < kMaxStatements && !stopping_ && std::chrono::steady_clock::now() - started < kMaxRun;
         ++i) {
      const std::string sql = "INSERT INTO drill_rows VALUES (" + std::to_string(first_id_ + i) +
                              ") RETURNING inet_server_port()";
      Res result(PQexec(conn.get(), sql.c_str()));
      if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
        errors_.push_back(sql + ": " + sqlstateOf(result.get()) + " " +
                          PQresultErrorMessage(result.get()));
      } else {
        ports_.emplace_back(PQgetvalue(result.get(), 0, 0));
        ++acked_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  std::string conninfo_;
  int first_id_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> acked_{0};
  std::vector<std::string> errors_;
  std::vector<std::string> ports_;
  std::string login_error_;
};

}  // namespace

TEST_CASE("DRILL switches over under a pgbench load and reports its steps and a passed verdict",
          "[pg][failover][admin][drill]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-drill"));
  pgbenchInit(cluster.primaryPort());
  cluster.waitReplayed();

  Pgpivot pgpivot(pgpivotOn(cluster, OnCluster().withLog(events_file.path)));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  // Steady first: the drill refuses (with a failed "state" check) while discovering.
  waitSteady(admin.get());

  // TPC-B through pgpivot, bounded in time, while the drill runs.
  PgbenchRun bench;
  std::thread load([&] { bench = runPgbench(pgpivot.port(), "-n -c 4 -j 2 -T 6"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto asked = std::chrono::steady_clock::now();
  Res answer(PQexec(admin.get(), "DRILL main"));
  const auto answered = std::chrono::steady_clock::now();
  load.join();
  const RunReport report = toRunReport(answer.get());
  INFO("drill:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\npgbench:\n"
       << bench.output << "\nevents:\n"
       << readFile(events_file.path));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  // Typed columns: elapsed_ms is an int8.
  CHECK(PQftype(answer.get(), PQfnumber(answer.get(), "elapsed_ms")) == 20);

  // Steps in order, with time offsets that only grow.
  for (const char* step : {"precheck", "PAUSING", "ELECTING", "CATCHING_UP", "FENCING", "PROMOTING",
                           "VERIFYING", "RESUMING", "drill_complete"}) {
    CAPTURE(step);
    CHECK(report.row(step) != nullptr);
  }
  long previous = -1;
  for (const auto& row : report.rows) {
    if (row.at("step") == "check" || row.at("step") == "verdict") {
      continue;
    }
    const long elapsed = std::stol(row.at("elapsed_ms"));
    CHECK(elapsed >= previous);
    previous = elapsed;
  }
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  CHECK(verdict->at("failover_id").rfind("d-", 0) == 0);
  const std::string& detail = verdict->at("detail");
  std::smatch paused;
  REQUIRE(std::regex_search(detail, paused, std::regex("clients paused ([0-9]+) ms")));
  const long paused_ms = std::stol(paused[1]);
  CHECK(paused_ms > 0);
  CHECK(paused_ms < 30000);
  CHECK_THAT(detail,
             Catch::Contains("primary: 127.0.0.1:" + std::to_string(cluster.standbyPort())));
  CHECK_THAT(detail, Catch::Contains("0 transaction(s) failed"));
  for (const char* check : {"mode", "state", "primary_probe", "standby_eligible",
                            "standby_streaming", "completed", "no_failed_transactions"}) {
    CAPTURE(check);
    const auto* row = report.check(check);
    REQUIRE(row != nullptr);
    CHECK(row->at("result") == "passed");
  }
  // The answer came once the drill had ended, not at once.
  CHECK(answered - asked >= std::chrono::milliseconds(paused_ms));

  // SHOW FAILOVERS keeps the run under its id, as a drill, with offsets from its first step.
  const RunReport history = toRunReport(Res(PQexec(admin.get(), "SHOW FAILOVERS")).get());
  INFO("SHOW FAILOVERS:\n" << history.text);
  REQUIRE_FALSE(history.rows.empty());
  CHECK(history.rows.front().at("elapsed_ms") == "0");
  long history_previous = 0;
  for (const auto& row : history.rows) {
    CHECK(row.at("failover_id") == verdict->at("failover_id"));
    CHECK(row.at("kind") == "drill");
    const long elapsed = std::stol(row.at("elapsed_ms"));
    CHECK(elapsed >= history_previous);
    history_previous = elapsed;
  }
  CHECK(history.row("drill_complete") != nullptr);

  // pgbench finished its run without an aborted client.
  CHECK(bench.status == 0);
  CHECK(bench.summary.failed == 0);
  CHECK(bench.summary.processed > 0);
  // The standby is the primary now and takes writes through pgpivot.
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_is_in_recovery()") ==
        "f");
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(),
               "UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1 "
               "RETURNING inet_server_port()") == std::to_string(cluster.standbyPort()));
  WARN("drill under pgbench: clients paused "
       << paused_ms << " ms; answered after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(answered - asked).count() << " ms");
}

TEST_CASE("a DRILL whose pre-checks fail stops before pausing anyone and says why",
          "[pg][failover][admin][drill]") {
  TwoNodeCluster cluster;
  const ScratchFile events_file(scratchPath("events-drill-refused"));
  Pgpivot pgpivot(pgpivotOn(cluster, OnCluster().withLog(events_file.path)));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  // The standby's WAL receiver stops: it cannot catch up with anything any more.
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(),
                      "ALTER SYSTEM SET primary_conninfo = ''") != "ERROR");
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_reload_conf()") ==
        "t");
  REQUIRE(eventually(std::chrono::seconds(15), [&] {
    return cluster.query(cluster.standbyPort(), cluster.standbyData(),
                         "SELECT count(*) FROM pg_stat_wal_receiver") == "0";
  }));
  // A few probe intervals (0.2 s here) for the monitor to see it.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  Res answer(PQexec(admin.get(), "DRILL main"));
  INFO("error: " << PQresultErrorMessage(answer.get()));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  const RunReport report = toRunReport(answer.get());
  INFO("drill:\n" << report.text << "\nevents:\n" << readFile(events_file.path));
  const auto* streaming = report.check("standby_streaming");
  REQUIRE(streaming != nullptr);
  CHECK(streaming->at("step") == "check");
  CHECK(streaming->at("result") == "failed");
  CHECK(streaming->at("failover_id").empty());
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "failed");
  CHECK_THAT(verdict->at("detail"), Catch::Contains("refused before pausing anyone"));
  CHECK_THAT(verdict->at("detail"), Catch::Contains("not streaming"));
  CHECK(report.check("primary_probe")->at("result") == "passed");
  CHECK(report.row("PAUSING") == nullptr);
  // A SWITCHOVER refused for the same reason is an error the script sees.
  Res switchover(PQexec(admin.get(), "SWITCHOVER main"));
  CHECK(PQresultStatus(switchover.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(switchover.get()) == "55000");
  CHECK_THAT(PQresultErrorMessage(switchover.get()), Catch::Contains("not streaming"));
  // Nothing moved: still the primary, still writable through pgpivot, the standby untouched.
  CHECK(scalar(conn.get(), "SELECT inet_server_port()") == std::to_string(cluster.primaryPort()));
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_is_in_recovery()") ==
        "t");
  CHECK(clusterColumn(admin.get(), "state") == "STEADY");
}

TEST_CASE(
    "a DRILL that aborts a transaction left open past drain_timeout counts it as failed, and "
    "clients outside a transaction go on",
    "[pg][failover][admin][drill]") {
  ConsoleCluster env("drill-fenced", OnCluster{}.withLines("drain_timeout = 1\n"));
  const std::string primary = std::to_string(env.cluster.primaryPort());
  const std::string standby = std::to_string(env.cluster.standbyPort());
  Conn holder = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(holder.get()) == CONNECTION_OK);
  REQUIRE(ok(holder.get(), "CREATE TABLE drill_rows (id int)"));
  env.cluster.waitReplayed();
  // Clients outside any transaction: two writing all along, one idle throughout.
  std::vector<std::unique_ptr<AutocommitLoop>> loops;
  for (int c = 0; c < 2; ++c) {
    loops.push_back(std::make_unique<AutocommitLoop>(env.pgpivot.conninfo(), 1000 + c * 100000));
    loops.back()->start();
  }
  const auto everyLoop = [&](int at_least) {
    for (const auto& loop : loops) {
      if (loop->acked() < at_least) {
        return false;
      }
    }
    return true;
  };
  REQUIRE(eventually(std::chrono::seconds(10), [&] { return everyLoop(10); }));
  Conn idle = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(idle.get()) == CONNECTION_OK);
  REQUIRE(scalar(idle.get(), "SELECT inet_server_port()") == primary);
  // The holder sits idle inside a transaction on the old primary for the whole drill.
  REQUIRE(ok(holder.get(), "BEGIN"));
  REQUIRE(ok(holder.get(), "INSERT INTO drill_rows VALUES (1)"));

  Res answer(PQexec(env.admin.get(), "DRILL main"));
  const RunReport report = toRunReport(answer.get());
  int after_drill = 0;
  for (const auto& loop : loops) {
    after_drill = std::max(after_drill, loop->acked());
  }
  const bool went_on =
      eventually(std::chrono::seconds(10), [&] { return everyLoop(after_drill + 10); });
  std::vector<std::string> errors;
  for (const auto& loop : loops) {
    loop->stop();
    REQUIRE(loop->loginError().empty());
    errors.insert(errors.end(), loop->errors().begin(), loop->errors().end());
  }
  std::string error_text;
  for (const auto& e : errors) {
    error_text += e + "\n";
  }
  INFO("drill:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nclient errors:\n"
       << error_text << "\nevents:\n"
       << env.eventLog());
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);

  // The drill went through, but it is not clean: the drain gave up on the holder's
  // transaction, the fence aborted it, and the verdict counts it as failed.
  REQUIRE(report.check("completed") != nullptr);
  CHECK(report.check("completed")->at("result") == "passed");
  const auto* drained = report.check("drained");
  REQUIRE(drained != nullptr);
  CHECK(drained->at("result") == "failed");
  CHECK_THAT(drained->at("detail"), Catch::Contains("expired with 1 transaction(s) still open"));
  const auto* failed = report.check("no_failed_transactions");
  REQUIRE(failed != nullptr);
  CHECK(failed->at("result") == "failed");
  CHECK_THAT(failed->at("detail"),
             Catch::StartsWith("no_failed_transactions: 1 client transaction(s) failed"));
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "failed");
  CHECK(verdict->at("failover_id").rfind("d-", 0) == 0);
  CHECK_THAT(verdict->at("detail"),
             Catch::StartsWith("completed; the drain timed out with 1 transaction(s) still open"));
  CHECK_THAT(verdict->at("detail"), Catch::EndsWith("; 1 transaction(s) failed"));

  // The holder is told at its next statement, by pgpivot, that its transaction is gone.
  Res next(PQexec(holder.get(), "INSERT INTO drill_rows VALUES (2)"));
  CHECK(PQresultStatus(next.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(next.get()) == "40001");
  const char* message = PQresultErrorField(next.get(), PG_DIAG_MESSAGE_PRIMARY);
  REQUIRE(message != nullptr);
  CHECK_THAT(std::string(message), Catch::StartsWith("pgpivot:"));
  CHECK(PQstatus(holder.get()) == CONNECTION_OK);

  // The clients outside a transaction kept working: not one error, and they write on the
  // new primary now; so does the one that was idle all along.
  CHECK(went_on);
  CHECK(errors.empty());
  int acked = 0;
  for (const auto& loop : loops) {
    REQUIRE_FALSE(loop->ports().empty());
    CHECK(loop->ports().front() == primary);
    CHECK(loop->ports().back() == standby);
    acked += loop->acked();
  }
  CHECK(scalar(idle.get(), "SELECT inet_server_port()") == standby);
  CHECK(PQstatus(idle.get()) == CONNECTION_OK);
  // Every acknowledged write is on the new primary; nothing of the aborted transaction is.
  CHECK(scalar(holder.get(),
               "SELECT count(DISTINCT id) || ' on ' || inet_server_port() FROM drill_rows") ==
        std::to_string(acked) + " on " + standby);
  CHECK(scalar(holder.get(), "SELECT count(*) FROM drill_rows WHERE id IN (1, 2)") == "0");
}
