// SWITCHOVER's drain on a live two-node cluster (real PostgreSQL 15 primary + streaming
// standby). A planned switchover must not fail clients: a session-mode client that keeps
// starting short transactions is held between two of them (as PAUSE holds it) from the
// pause until the new primary is routed, and its next transaction runs there, without an
// error. A client that stays idle inside a transaction is waited for up to drain_timeout;
// then the switchover goes on, the fence aborts its transaction, it is told so with 40001
// at its next statement, and the verdict counts it as failed. With two workers the drain
// waits for the transactions open on each, and a transaction held on one worker does not
// stop the other clients of either.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster_fixture.hpp"
#include "support/console_cluster.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

namespace {

// The pgpivot worker that serves `conn`: the key pgpivot gave the client (BackendKeyData)
// carries it in bits 24..29 of its pid, so a cancel can be routed (Worker::newCancelKey).
int workerOf(PGconn* conn) {
  return (PQbackendPID(conn) >> 24) & 0x3f;
}

// A connection that worker `worker` serves. The kernel spreads new connections over the
// workers' listeners (SO_REUSEPORT): connect until one lands there, 64 tries at most; a
// failed connection (or none on that worker) is returned as the last one tried.
Conn connectOnWorker(const std::string& conninfo, int worker) {
  Conn conn;
  for (int attempt = 0; attempt < 64; ++attempt) {
    conn = connect(conninfo);
    if (PQstatus(conn.get()) != CONNECTION_OK || workerOf(conn.get()) == worker) {
      return conn;
    }
  }
  return conn;
}

bool ok(PGconn* conn, const std::string& sql) {
  return scalar(conn, sql).rfind("ERROR", 0) != 0;
}

// `sql` run on appdb of the node on `port` itself, not through pgpivot.
std::string onNode(int port, const std::string& sql) {
  Conn direct =
      connect("host=127.0.0.1 port=" + std::to_string(port) + " dbname=appdb user=" + kTrustUser);
  if (PQstatus(direct.get()) != CONNECTION_OK) {
    return "ERROR connecting: " + errorOf(direct.get());
  }
  return scalar(direct.get(), sql);
}

// One client, in a loop: BEGIN, INSERT, 2 ms of think time, SELECT where it runs,
// COMMIT, 2 ms of sleep. Each statement is its own round trip, so the transaction is open
// about half of the time. Bounded by a count and a time; stops early when asked. Ids are
// `first_id` on, so several loops can share a table.
class TransactionLoop {
 public:
  // `worker` >= 0: the connection is one that worker serves (connectOnWorker).
  TransactionLoop(std::string conninfo, int first_id, int worker = -1)
      : conninfo_(std::move(conninfo)), first_id_(first_id), worker_(worker) {}
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
    Conn conn = worker_ >= 0 ? connectOnWorker(conninfo_, worker_) : connect(conninfo_);
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
  int worker_;
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
  ConsoleCluster env("switchover-loop", OnCluster{}, {{"pool_mode", "session"}});
  {
    Conn setup = connect(env.pgpivot.conninfo());
    REQUIRE(PQstatus(setup.get()) == CONNECTION_OK);
    REQUIRE(scalar(setup.get(), "CREATE TABLE loop_rows (id int)").rfind("ERROR", 0) != 0);
  }
  env.cluster.waitReplayed();

  // Four session-mode clients, each inside a transaction about half of the time.
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<TransactionLoop>> loops;
  for (int c = 0; c < kClients; ++c) {
    loops.push_back(std::make_unique<TransactionLoop>(env.pgpivot.conninfo(), c * 100000));
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
  Res answer(PQexec(env.admin.get(), "SWITCHOVER main"));
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
       << env.eventLog());
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
    CHECK(loop->where().front() == std::to_string(env.cluster.primaryPort()) + " false");
    CHECK(loop->where().back() == std::to_string(env.cluster.standbyPort()) + " false");
  }
  // Every acknowledged commit is on the new primary.
  Conn check = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(check.get()) == CONNECTION_OK);
  CHECK(scalar(check.get(),
               "SELECT count(DISTINCT id) || ' on ' || inet_server_port() "
               "FROM loop_rows") ==
        std::to_string(committed()) + " on " + std::to_string(env.cluster.standbyPort()));
  WARN("session-mode loops across SWITCHOVER: " << committed() << " transactions, " << errors.size()
                                                << " errors; verdict: " << verdict->at("detail"));
}

TEST_CASE("SWITCHOVER: a transaction left open past drain_timeout is aborted with 40001",
          "[pg][failover][admin][switchover]") {
  const std::string mode = GENERATE(as<std::string>{}, "transaction", "session");
  CAPTURE(mode);
  ConsoleCluster env("switchover-open", OnCluster{}.withLines("drain_timeout = 1\n"),
                     {{"pool_mode", mode}});
  Conn client = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "CREATE TABLE open_rows (id int)").rfind("ERROR", 0) != 0);
  env.cluster.waitReplayed();
  // Idle inside a transaction on the old primary while the switchover runs.
  REQUIRE(scalar(client.get(), "BEGIN").rfind("ERROR", 0) != 0);
  REQUIRE(scalar(client.get(), "INSERT INTO open_rows VALUES (1)").rfind("ERROR", 0) != 0);

  Res answer(PQexec(env.admin.get(), "SWITCHOVER main"));
  const RunReport report = toRunReport(answer.get());
  INFO("switchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << env.eventLog());
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
             Catch::Contains("primary: 127.0.0.1:" + std::to_string(env.cluster.standbyPort())));
  // The aborted transaction counts as failed, though its client has not been told yet.
  CHECK_THAT(verdict->at("detail"), Catch::EndsWith("; 1 transaction(s) failed"));
  REQUIRE(report.check("no_failed_transactions") != nullptr);
  CHECK(report.check("no_failed_transactions")->at("result") == "failed");

  // The client learns at its next statement that its transaction did not commit.
  Res next(PQexec(client.get(), "INSERT INTO open_rows VALUES (2)"));
  CHECK(PQresultStatus(next.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(next.get()) == "40001");
  const char* primary = PQresultErrorField(next.get(), PG_DIAG_MESSAGE_PRIMARY);
  REQUIRE(primary != nullptr);
  CHECK_THAT(std::string(primary), Catch::StartsWith("pgpivot: failover"));
  // Then it goes on, on the new primary, where nothing of the aborted transaction is.
  CHECK(scalar(client.get(), "SELECT inet_server_port() || ' ' || pg_is_in_recovery()") ==
        std::to_string(env.cluster.standbyPort()) + " false");
  CHECK(scalar(client.get(), "SELECT count(*) FROM open_rows") == "0");
}

TEST_CASE("SWITCHOVER with two workers drains the transactions open on each before promoting",
          "[pg][failover][admin][switchover][workers]") {
  ConsoleCluster env("switchover-workers", OnCluster{}, {{"workers", "2"}});
  Conn observer = connect(env.pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(observer.get()) == CONNECTION_OK);
  const std::string primary = std::to_string(env.cluster.primaryPort());
  const std::string standby = std::to_string(env.cluster.standbyPort());
  {
    Conn setup = connect(env.pgpivot.conninfo());
    REQUIRE(PQstatus(setup.get()) == CONNECTION_OK);
    REQUIRE(ok(setup.get(), "CREATE TABLE worker_rows (id int)"));
  }
  env.cluster.waitReplayed();
  // A transaction open on each worker when the switchover starts.
  std::vector<Conn> clients;
  for (int worker = 0; worker < 2; ++worker) {
    CAPTURE(worker);
    clients.push_back(connectOnWorker(env.pgpivot.conninfo(), worker));
    PGconn* conn = clients.back().get();
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    REQUIRE(workerOf(conn) == worker);
    REQUIRE(ok(conn, "BEGIN"));
    REQUIRE(ok(conn, "INSERT INTO worker_rows VALUES (" + std::to_string(worker + 1) + ")"));
    REQUIRE(scalar(conn, "SELECT inet_server_port()") == primary);
  }

  REQUIRE(PQsendQuery(env.admin.get(), "SWITCHOVER main") == 1);
  REQUIRE(eventually(std::chrono::seconds(10),
                     [&] { return clusterColumn(observer.get(), "state") == "PAUSING"; }));
  // Worker 0's transaction commits on the old primary; worker 1's is still open, so the
  // switchover still waits for it (drain_timeout is 10 s).
  Res first(PQexec(clients[0].get(), "COMMIT"));
  INFO(PQresultErrorMessage(first.get()));
  REQUIRE(PQresultStatus(first.get()) == PGRES_COMMAND_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  CHECK(clusterColumn(observer.get(), "state") == "PAUSING");
  REQUIRE(PQconsumeInput(env.admin.get()) == 1);
  CHECK(PQisBusy(env.admin.get()) == 1);
  CHECK(ok(clients[1].get(), "INSERT INTO worker_rows VALUES (3)"));
  Res second(PQexec(clients[1].get(), "COMMIT"));
  INFO(PQresultErrorMessage(second.get()));
  REQUIRE(PQresultStatus(second.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(second.get())) == "COMMIT");

  Res answer(PQgetResult(env.admin.get()));
  const RunReport report = toRunReport(answer.get());
  INFO("switchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << env.eventLog());
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  while (Res extra{PQgetResult(env.admin.get())}) {
  }
  const auto* drained = report.check("drained");
  REQUIRE(drained != nullptr);
  CHECK(drained->at("result") == "passed");
  CHECK_THAT(drained->at("detail"), Catch::Contains("2 transaction(s) running at the pause"));
  const auto* paused = report.row("clients_paused");
  REQUIRE(paused != nullptr);
  CHECK(paused->at("result") == "ok");
  for (const char* check : {"completed", "no_failed_transactions"}) {
    CAPTURE(check);
    REQUIRE(report.check(check) != nullptr);
    CHECK(report.check(check)->at("result") == "passed");
  }
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  CHECK_THAT(verdict->at("detail"), Catch::EndsWith("; 0 transaction(s) failed"));
  // Both were committed before the promotion: the new primary, asked directly, has every
  // row of both.
  CHECK(env.cluster.query(env.cluster.standbyPort(), env.cluster.standbyData(),
                          "SELECT pg_is_in_recovery()") == "f");
  CHECK(onNode(env.cluster.standbyPort(),
               "SELECT string_agg(id::text, ',' ORDER BY id) FROM worker_rows") == "1,2,3");
  for (int worker = 0; worker < 2; ++worker) {
    CAPTURE(worker);
    CHECK(scalar(clients[static_cast<std::size_t>(worker)].get(), "SELECT inet_server_port()") ==
          standby);
  }
}

TEST_CASE(
    "SWITCHOVER with two workers: a transaction held past drain_timeout on one worker gets "
    "40001 while both workers' other clients run on",
    "[pg][failover][admin][switchover][workers]") {
  const std::string mode = GENERATE(as<std::string>{}, "transaction", "session");
  CAPTURE(mode);
  ConsoleCluster env("switchover-workers-held", OnCluster{}.withLines("drain_timeout = 3\n"),
                     {{"workers", "2"}, {"pool_mode", mode}});
  Conn observer = connect(env.pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(observer.get()) == CONNECTION_OK);
  const std::string primary = std::to_string(env.cluster.primaryPort());
  const std::string standby = std::to_string(env.cluster.standbyPort());
  Conn holder = connectOnWorker(env.pgpivot.conninfo(), 0);
  REQUIRE(PQstatus(holder.get()) == CONNECTION_OK);
  REQUIRE(workerOf(holder.get()) == 0);
  REQUIRE(ok(holder.get(), "CREATE TABLE loop_rows (id int)"));
  env.cluster.waitReplayed();
  // A client on each worker starting short transactions all along.
  std::vector<std::unique_ptr<TransactionLoop>> loops;
  for (int worker = 0; worker < 2; ++worker) {
    loops.push_back(
        std::make_unique<TransactionLoop>(env.pgpivot.conninfo(), 1000 + worker * 100000, worker));
    loops.back()->start();
  }
  const auto everyLoop = [&](int at_least) {
    for (const auto& loop : loops) {
      if (loop->committed() < at_least) {
        return false;
      }
    }
    return true;
  };
  REQUIRE(eventually(std::chrono::seconds(10), [&] { return everyLoop(10); }));
  // On worker 1, a transaction that commits during the drain; on worker 0, one held open.
  Conn committer = connectOnWorker(env.pgpivot.conninfo(), 1);
  REQUIRE(PQstatus(committer.get()) == CONNECTION_OK);
  REQUIRE(workerOf(committer.get()) == 1);
  REQUIRE(ok(committer.get(), "BEGIN"));
  REQUIRE(ok(committer.get(), "INSERT INTO loop_rows VALUES (1)"));
  REQUIRE(ok(holder.get(), "BEGIN"));
  REQUIRE(ok(holder.get(), "INSERT INTO loop_rows VALUES (2)"));

  REQUIRE(PQsendQuery(env.admin.get(), "SWITCHOVER main") == 1);
  REQUIRE(eventually(std::chrono::seconds(10),
                     [&] { return clusterColumn(observer.get(), "state") == "PAUSING"; }));
  Res commit(PQexec(committer.get(), "COMMIT"));
  const std::string commit_error = PQresultErrorMessage(commit.get());
  Res answer(PQgetResult(env.admin.get()));
  const RunReport report = toRunReport(answer.get());
  while (Res extra{PQgetResult(env.admin.get())}) {
  }
  int after_switch = 0;
  for (const auto& loop : loops) {
    after_switch = std::max(after_switch, loop->committed());
  }
  const bool went_on =
      eventually(std::chrono::seconds(10), [&] { return everyLoop(after_switch + 10); });
  std::vector<std::string> errors;
  for (const auto& loop : loops) {
    loop->stop();
    REQUIRE(loop->loginError().empty());
    errors.insert(errors.end(), loop->errors().begin(), loop->errors().end());
  }
  INFO("switchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get())
       << "\ncommit: " << commit_error << "\nclient errors:\n"
       << joined(errors) << "\nevents:\n"
       << env.eventLog());
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  // Worker 1's transaction committed during the drain and was acknowledged.
  CHECK(PQresultStatus(commit.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(commit.get())) == "COMMIT");
  // Worker 0's held one is the only one the drain gave up on; the run went on to the end.
  const auto* drained = report.check("drained");
  REQUIRE(drained != nullptr);
  CHECK(drained->at("result") == "failed");
  CHECK_THAT(drained->at("detail"), Catch::StartsWith("drained: drain_timeout (3000 ms) expired "
                                                      "with 1 transaction(s) still open"));
  REQUIRE(report.check("completed") != nullptr);
  CHECK(report.check("completed")->at("result") == "passed");
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "failed");
  CHECK_THAT(verdict->at("detail"), Catch::EndsWith("; 1 transaction(s) failed"));

  // The holder is told at its next statement, by pgpivot.
  Res next(PQexec(holder.get(), "INSERT INTO loop_rows VALUES (3)"));
  CHECK(PQresultStatus(next.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(next.get()) == "40001");
  const char* message = PQresultErrorField(next.get(), PG_DIAG_MESSAGE_PRIMARY);
  REQUIRE(message != nullptr);
  CHECK_THAT(std::string(message), Catch::StartsWith("pgpivot:"));

  // Every other client ran on without an error, on either worker, and ended on the new
  // primary.
  CHECK(went_on);
  CHECK(errors.empty());
  int committed = 0;
  for (const auto& loop : loops) {
    REQUIRE(loop->where().size() >= 2);
    CHECK(loop->where().front() == primary + " false");
    CHECK(loop->where().back() == standby + " false");
    committed += loop->committed();
  }
  // In PostgreSQL, on the new primary: every acknowledged commit, worker 1's transaction,
  // and nothing of the aborted one.
  CHECK(onNode(env.cluster.standbyPort(),
               "SELECT count(DISTINCT id) FROM loop_rows WHERE id >= 1000") ==
        std::to_string(committed));
  CHECK(onNode(env.cluster.standbyPort(),
               "SELECT string_agg(id::text, ',' ORDER BY id) FROM loop_rows WHERE id < 1000") ==
        "1");
}
