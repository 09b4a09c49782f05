// SWITCHOVER on a primary that acknowledges commits before their WAL is flushed
// (synchronous_commit = off, as the test clusters run). Such a commit's WAL sits in the
// primary's buffers, beyond pg_current_wal_lsn(), until the WAL writer gets to it; the
// standby receives only flushed WAL. A switchover that waited for the standby to replay
// up to pg_current_wal_lsn() promoted it without those commits (a CI run lost 73 of 190
// that way); the fence now flushes the old primary's WAL (sql::kFlushWal) first.
#include <catch2/catch.hpp>
#include <string>

#include "support/cluster_fixture.hpp"
#include "support/console_cluster.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

TEST_CASE("SWITCHOVER keeps every commit the old primary acknowledged with synchronous_commit off",
          "[pg][failover][admin][switchover]") {
  ConsoleCluster env("switchover-async", OnCluster{}, {{"pool_mode", "transaction"}});
  const int primary = env.cluster.primaryPort();
  const std::string& data = env.cluster.primaryData();
  // The WAL writer waits 10 s between rounds, so the commits below stay in the WAL
  // buffers (unflushed, unsent) until something flushes them: the switchover must.
  REQUIRE(env.cluster.query(primary, data, "ALTER SYSTEM SET wal_writer_delay = '10s'") != "ERROR");
  REQUIRE(env.cluster.query(primary, data, "SELECT pg_reload_conf()") == "t");
  Conn client = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "CREATE TABLE async_rows (id int)").rfind("ERROR", 0) != 0);
  env.cluster.waitReplayed();

  constexpr int kRows = 40;
  for (int i = 0; i < kRows; ++i) {
    REQUIRE(scalar(client.get(), "INSERT INTO async_rows VALUES (" + std::to_string(i) + ")")
                .rfind("ERROR", 0) != 0);
  }
  // Acknowledged, and (almost always: the WAL writer's round may just have come) not yet
  // written out, so not on the standby.
  const std::string unflushed =
      env.cluster.query(primary, data, "SELECT pg_current_wal_insert_lsn() > pg_current_wal_lsn()");

  Res answer(PQexec(env.admin.get(), "SWITCHOVER main"));
  const RunReport report = toRunReport(answer.get());
  INFO("WAL unflushed before the switchover: "
       << unflushed << "\nswitchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << env.eventLog());
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  // The same client goes on, on the new primary, and finds every row it was told committed.
  CHECK(scalar(client.get(),
               "SELECT count(DISTINCT id) || ' on ' || inet_server_port() "
               "FROM async_rows") ==
        std::to_string(kRows) + " on " + std::to_string(env.cluster.standbyPort()));
  // The fence quoted the flush in the event log.
  CHECK_THAT(env.eventLog(), Catch::Contains("pg_logical_emit_message"));
}
