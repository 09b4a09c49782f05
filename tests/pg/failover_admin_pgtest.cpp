// The console's failover commands on a live two-node cluster (real PostgreSQL 15 primary +
// streaming standby): a planned pause that truly drains (a transaction open when a DRILL
// starts commits on the old primary before the promotion, and the verdict says so), and
// FAILOVER cluster TO node, which answers once the run has ended with its steps and verdict.
#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "support/cluster_fixture.hpp"
#include "support/console_cluster.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

namespace {

bool ok(PGconn* conn, const std::string& sql) {
  return scalar(conn, sql).rfind("ERROR", 0) != 0;
}

}  // namespace

TEST_CASE("a DRILL waits for a transaction open when it starts: it commits before the promotion",
          "[pg][failover][admin][drill]") {
  ConsoleCluster env("drain");
  Conn observer = connect(env.pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(observer.get()) == CONNECTION_OK);

  Conn client = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(ok(client.get(), "CREATE TABLE drain_rows (id int)"));
  env.cluster.waitReplayed();
  // A transaction is open on the old primary when the drill starts.
  REQUIRE(ok(client.get(), "BEGIN"));
  REQUIRE(ok(client.get(), "INSERT INTO drain_rows VALUES (1)"));
  REQUIRE(scalar(client.get(), "SELECT inet_server_port()") ==
          std::to_string(env.cluster.primaryPort()));

  REQUIRE(PQsendQuery(env.admin.get(), "DRILL main") == 1);
  std::string state;
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    state = clusterColumn(observer.get(), "state");
    return state == "PAUSING";
  }));
  // The drill holds there for the transaction (drain_timeout is 10 s): a while later it is
  // still pausing, and the transaction goes on on the old primary.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  CHECK(clusterColumn(observer.get(), "state") == "PAUSING");
  REQUIRE(PQconsumeInput(env.admin.get()) == 1);
  CHECK(PQisBusy(env.admin.get()) == 1);
  CHECK(ok(client.get(), "INSERT INTO drain_rows VALUES (2)"));
  Res commit(PQexec(client.get(), "COMMIT"));
  INFO(PQresultErrorMessage(commit.get()));
  REQUIRE(PQresultStatus(commit.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(commit.get())) == "COMMIT");

  Res answer(PQgetResult(env.admin.get()));
  const RunReport report = toRunReport(answer.get());
  INFO("drill:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << env.eventLog());
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  while (Res extra{PQgetResult(env.admin.get())}) {
  }
  const auto* drained = report.check("drained");
  REQUIRE(drained != nullptr);
  CHECK(drained->at("result") == "passed");
  CHECK_THAT(drained->at("detail"), Catch::Contains("1 transaction(s) running at the pause"));
  for (const char* check : {"completed", "no_failed_transactions"}) {
    CAPTURE(check);
    REQUIRE(report.check(check) != nullptr);
    CHECK(report.check(check)->at("result") == "passed");
  }
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  CHECK_THAT(verdict->at("detail"), Catch::Contains("0 transaction(s) failed"));
  // The pause ended before the fence: the drain's answer comes first in the timeline.
  std::size_t paused_at = report.rows.size();
  std::size_t fencing_at = report.rows.size();
  for (std::size_t i = 0; i < report.rows.size(); ++i) {
    if (report.rows[i].at("step") == "clients_paused" && paused_at == report.rows.size()) {
      paused_at = i;
    }
    if (report.rows[i].at("step") == "FENCING" && fencing_at == report.rows.size()) {
      fencing_at = i;
    }
  }
  CHECK(paused_at < fencing_at);
  CHECK(fencing_at < report.rows.size());

  // Both rows were committed before the promotion: the promoted node has them.
  CHECK(env.cluster.query(env.cluster.standbyPort(), env.cluster.standbyData(),
                          "SELECT pg_is_in_recovery()") == "f");
  CHECK(scalar(client.get(), "SELECT count(*) || ' on ' || inet_server_port() FROM drain_rows") ==
        "2 on " + std::to_string(env.cluster.standbyPort()));
}

TEST_CASE("FAILOVER cluster TO node answers once the run has ended, with its steps and a verdict",
          "[pg][failover][admin]") {
  ConsoleCluster env("forced");
  Conn client = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "SELECT inet_server_port()") ==
          std::to_string(env.cluster.primaryPort()));

  const std::string standby = nodeName(env.cluster.standbyPort());
  Res answer(PQexec(env.admin.get(), ("FAILOVER main TO " + standby).c_str()));
  const RunReport report = toRunReport(answer.get());
  INFO("failover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << env.eventLog());
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQcmdStatus(answer.get())) == "FAILOVER");
  for (const char* step :
       {"PAUSING", "ELECTING", "FENCING", "PROMOTING", "VERIFYING", "failover_complete"}) {
    CAPTURE(step);
    CHECK(report.row(step) != nullptr);
  }
  REQUIRE(report.check("completed") != nullptr);
  CHECK(report.check("completed")->at("result") == "passed");
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  CHECK(verdict->at("failover_id").rfind("f-", 0) == 0);
  CHECK(verdict->at("kind") == "failover");
  CHECK_THAT(verdict->at("detail"), Catch::Contains("primary: " + standby));
  // Answered after the run: the standby is the primary already, and the idle client
  // moved with it.
  CHECK(env.cluster.query(env.cluster.standbyPort(), env.cluster.standbyData(),
                          "SELECT pg_is_in_recovery()") == "f");
  CHECK(scalar(client.get(), "SELECT inet_server_port()") ==
        std::to_string(env.cluster.standbyPort()));
  CHECK(clusterColumn(env.admin.get(), "primary") == standby);

  // One the monitor refuses is an error naming the command: the target is the primary now.
  Res refused(PQexec(env.admin.get(), ("FAILOVER main TO " + standby).c_str()));
  CHECK(PQresultStatus(refused.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(refused.get()) == "55000");
  CHECK_THAT(PQresultErrorMessage(refused.get()),
             Catch::Contains("pgpivot: failover refused") && Catch::Contains("is the primary"));
  Res unknown(PQexec(env.admin.get(), "FAILOVER nosuch"));
  CHECK(sqlstateOf(unknown.get()) == "42704");
}
