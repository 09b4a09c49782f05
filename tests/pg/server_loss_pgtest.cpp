// One client's server backend ends while the primary serves on: that client is told the
// truth (08006, its server connection was lost, with the server's own words), never
// "pgpivot: failover", and every other client keeps working, on the same primary.
//  - pg_terminate_backend() of its backend, from a direct psql, with a statement in flight
//    and with a transaction left open;
//  - kill -9 of its backend: PostgreSQL's crash-restart, where the others are told that
//    (57P02), and the crashed one that its connection was lost.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

std::string primaryQuery(const TwoNodeCluster& cluster, const std::string& sql) {
  return cluster.query(cluster.primaryPort(), cluster.primaryData(), sql);
}

// The pid of the primary's backend running a statement containing `marker`.
std::string backendOf(const TwoNodeCluster& cluster, const std::string& marker) {
  std::string pid;
  const bool found = eventually(10s, [&] {
    pid = primaryQuery(cluster, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%" + marker +
                                    "%' AND pid <> pg_backend_pid()");
    return !pid.empty() && pid.find('\n') == std::string::npos;
  });
  INFO("backend of " << marker << ": " << pid);
  REQUIRE(found);
  return pid;
}

// A client through pgpivot that runs short statements in a loop until stopped (bounded:
// 60 s, 20,000 statements) and counts those that failed.
class Bystander {
 public:
  explicit Bystander(const std::string& conninfo) : conn_(connect(conninfo)) {
    REQUIRE(PQstatus(conn_.get()) == CONNECTION_OK);
    thread_ = std::thread([this] {
      const auto until = std::chrono::steady_clock::now() + 60s;
      for (int i = 0; i < 20000 && !stop_ && std::chrono::steady_clock::now() < until; ++i) {
        const std::string got = scalar(conn_.get(), "SELECT 1");
        (got == "1" ? ok_ : failed_)++;
        if (got != "1") {
          last_error_ = got;
        }
        std::this_thread::sleep_for(10ms);
      }
    });
  }
  ~Bystander() { stop(); }
  Bystander(const Bystander&) = delete;
  Bystander& operator=(const Bystander&) = delete;
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string lastError() const { return stop_ ? last_error_ : std::string(); }

 private:
  Conn conn_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> failed_{0};
  std::string last_error_;
  std::thread thread_;
};

struct Answer {
  std::string sqlstate;
  std::string message;
};

// Waits for the answer to a query sent with PQsendQuery (bounded by pgpivot's verdict,
// which the test does not time: it only needs it to come).
Answer awaitError(PGconn* conn) {
  Answer answer;
  while (PGresult* raw = PQgetResult(conn)) {
    Res result(raw);
    if (PQresultStatus(result.get()) == PGRES_FATAL_ERROR) {
      answer.sqlstate = sqlstateOf(result.get());
      const char* message = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
      answer.message = message != nullptr ? message : "";
    }
  }
  return answer;
}

struct Setup {
  TwoNodeCluster cluster;
  ScratchFile events{scratchPath("events-server-loss")};
  Pgpivot pgpivot{pgpivotOn(cluster, OnCluster().withLog(events.path))};
  Conn admin;

  Setup() {
    pgpivot.start();
    admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
    REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
    waitSteady(admin.get());
  }
};

}  // namespace

TEST_CASE(
    "pg_terminate_backend of one client's backend: that client gets 08006 'server connection "
    "lost' with the server's words, not 'failover', and the others keep working",
    "[pg][failover][server_loss]") {
  Setup s;
  const std::string primary = nodeName(s.cluster.primaryPort());
  Conn victim = connect(s.pgpivot.conninfo());
  REQUIRE(PQstatus(victim.get()) == CONNECTION_OK);
  Bystander bystander(s.pgpivot.conninfo());
  REQUIRE(eventually(10s, [&] { return bystander.ok() >= 10; }));

  SECTION("a statement in flight") {
    REQUIRE(PQsendQuery(victim.get(), "SELECT pg_sleep(30) /* victim-in-flight */") == 1);
    const std::string pid = backendOf(s.cluster, "victim-in-flight");
    REQUIRE(primaryQuery(s.cluster, "SELECT pg_terminate_backend(" + pid + ")") == "t");
    const Answer answer = awaitError(victim.get());
    CAPTURE(answer.sqlstate, answer.message);
    CHECK(answer.sqlstate == "08006");
    CHECK_THAT(answer.message, Catch::StartsWith("pgpivot: server connection lost"));
    CHECK_THAT(answer.message, Catch::Contains("administrator command"));
    CHECK_THAT(answer.message, !Catch::Contains("failover"));
  }
  SECTION("a transaction left open") {
    REQUIRE(scalar(victim.get(), "BEGIN").empty());
    REQUIRE(scalar(victim.get(), "SELECT 'victim-open-tx'") == "victim-open-tx");
    const std::string pid = backendOf(s.cluster, "victim-open-tx");
    REQUIRE(primaryQuery(s.cluster, "SELECT pg_terminate_backend(" + pid + ")") == "t");
    // Its next statement learns that the transaction is gone, once pgpivot knows why: as
    // a lost transaction, or, when it reached pgpivot before the server's goodbye did,
    // with the server's words.
    const std::string next = scalar(victim.get(), "SELECT 2");
    CAPTURE(next);
    CHECK_THAT(next, Catch::StartsWith("ERROR 08006: ERROR:  pgpivot: server connection lost"));
    CHECK_THAT(next, Catch::Contains("the transaction was rolled back") ||
                         Catch::Contains("administrator command"));
    CHECK_THAT(next, !Catch::Contains("failover"));
  }
  // The victim's session goes on, on the same primary.
  CHECK(PQstatus(victim.get()) == CONNECTION_OK);
  CHECK(scalar(victim.get(), "SELECT inet_server_port()") ==
        std::to_string(s.cluster.primaryPort()));
  const int ok_before = bystander.ok();
  REQUIRE(eventually(10s, [&] { return bystander.ok() >= ok_before + 10; }));
  bystander.stop();
  INFO("bystander: " << bystander.ok() << " ok, " << bystander.failed() << " failed, last "
                     << bystander.lastError());
  CHECK(bystander.failed() == 0);
  CHECK(clusterColumn(s.admin.get(), "primary") == primary);
  CHECK(clusterColumn(s.admin.get(), "state") == "STEADY");
  const std::string log = readFile(s.events.path);
  CHECK_THAT(log, !Catch::Contains("PRIMARY_DOWN"));
}

TEST_CASE(
    "kill -9 of one client's backend: PostgreSQL restarts, that client is told its connection "
    "was lost, one with a statement running is told of the crash-restart, neither of a failover",
    "[pg][failover][server_loss]") {
  Setup s;
  Conn victim = connect(s.pgpivot.conninfo());
  Conn other = connect(s.pgpivot.conninfo());
  REQUIRE(PQstatus(victim.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(other.get()) == CONNECTION_OK);
  REQUIRE(PQsendQuery(other.get(), "SELECT pg_sleep(30) /* other-in-flight */") == 1);
  REQUIRE(PQsendQuery(victim.get(), "SELECT pg_sleep(30) /* victim-crash */") == 1);
  backendOf(s.cluster, "other-in-flight");
  const std::string pid = backendOf(s.cluster, "victim-crash");
  REQUIRE(::kill(static_cast<pid_t>(std::stol(pid)), SIGKILL) == 0);

  const Answer victim_answer = awaitError(victim.get());
  const Answer other_answer = awaitError(other.get());
  const std::string log = readFile(s.events.path);
  INFO("events:\n" << log);
  {
    CAPTURE(victim_answer.sqlstate, victim_answer.message);
    CHECK(victim_answer.sqlstate == "08006");
    CHECK_THAT(victim_answer.message, Catch::StartsWith("pgpivot: server connection lost"));
    CHECK_THAT(victim_answer.message, !Catch::Contains("failover"));
  }
  {
    CAPTURE(other_answer.sqlstate, other_answer.message);
    CHECK(other_answer.sqlstate == "40003");
    CHECK_THAT(other_answer.message, Catch::StartsWith("pgpivot: server crash-restart"));
  }
  // Both sessions go on once PostgreSQL is back, on the same primary.
  std::string port;
  const bool back = eventually(30s, [&] {
    port = scalar(victim.get(), "SELECT inet_server_port()");
    return port == std::to_string(s.cluster.primaryPort());
  });
  INFO("victim after the restart: " << port);
  CHECK(back);
  CHECK(scalar(other.get(), "SELECT 1") == "1");
  CHECK_THAT(readFile(s.events.path), !Catch::Contains("\"to\":\"PROMOTING\""));
}
