// DRILL on a live two-node cluster (real PostgreSQL 15 primary + streaming standby), the
// "disaster recovery drill" of the postmortem: it runs a planned switchover under a pgbench
// load and answers, once it has ended, with its steps, its checks and a verdict; and a
// drill whose pre-checks fail stops before pausing anyone and says why.
#include <catch2/catch.hpp>
#include <regex>
#include <thread>

#include "support/cluster_fixture.hpp"
#include "support/pgbench_load.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

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
