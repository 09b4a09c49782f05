// The rights the monitor user needs, as conf/pgpivot.ini lists them, on a real cluster: a
// role that is no superuser but holds exactly those grants passes `--check --connect` and
// runs a whole SWITCHOVER (pause, fence with WAL flush, promotion, checkpoint); one that
// lacks the fence's rights is refused by the check, which names what is missing, instead
// of failing mid-failover.
#include <catch2/catch.hpp>
#include <string>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"
#include "support/run_report.hpp"

using namespace pgpivot::test;

namespace {

// The same cluster under pgpivot, monitored as `user` (password "secret").
Pgpivot::Options monitoredAs(const TwoNodeCluster& cluster, const std::string& user,
                             const std::string& events) {
  Pgpivot::Options options = pgpivotOn(cluster, OnCluster().withLog(events));
  options.extra_sections = {"[cluster.main]\nnodes = " + nodeName(cluster.primaryPort()) + ", " +
                            nodeName(cluster.standbyPort()) + "\nmonitor_user = " + user +
                            "\nmonitor_password = secret\nmonitor_dbname = postgres\n"
                            "failover_mode = promote\nprofile = fast\nprobe_interval = 0.2\n"
                            "probe_timeout = 0.5\nfailover_cooldown = 0\nfailover_log = " +
                            events + "\n"};
  return options;
}

void run(const TwoNodeCluster& cluster, const std::string& sql) {
  INFO(sql);
  REQUIRE(cluster.query(cluster.primaryPort(), cluster.primaryData(), sql) != "ERROR");
}

}  // namespace

TEST_CASE(
    "a monitor user with the documented grants, no superuser, passes the check and "
    "switches over",
    "[pg][failover][check][switchover]") {
  TwoNodeCluster cluster;
  // conf/pgpivot.ini, monitor_user: the whole list, nothing more.
  run(cluster, "CREATE ROLE granted_mon LOGIN PASSWORD 'secret'");
  run(cluster, "GRANT pg_monitor, pg_signal_backend, pg_checkpoint TO granted_mon");
  run(cluster, "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO granted_mon");
  run(cluster, "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO granted_mon");
  run(cluster, "GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only TO granted_mon");
  // Everything but the fence's rights.
  run(cluster, "CREATE ROLE unfenced_mon LOGIN PASSWORD 'secret'");
  run(cluster, "GRANT pg_monitor TO unfenced_mon");
  run(cluster, "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO unfenced_mon");
  cluster.waitReplayed();
  const ScratchFile events(scratchPath("events-rights"));

  {
    Pgpivot unfenced(monitoredAs(cluster, "unfenced_mon", events.path));
    const CommandResult bad = runPgpivotCommand({"--check", "--connect", unfenced.configPath()});
    INFO("stdout: " << bad.out << "\nstderr: " << bad.err);
    CHECK(bad.status == 1);
    CHECK_THAT(bad.out, Catch::Contains("pg_monitor, pg_promote, MISSING fence"));
    CHECK_THAT(bad.out, Catch::Contains("may not fence " + nodeName(cluster.primaryPort())) &&
                            Catch::Contains("pg_signal_backend"));
  }

  Pgpivot pgpivot(monitoredAs(cluster, "granted_mon", events.path));
  const CommandResult good = runPgpivotCommand({"--check", "--connect", pgpivot.configPath()});
  INFO("stdout: " << good.out << "\nstderr: " << good.err);
  CHECK(good.status == 0);
  CHECK_THAT(good.out, Catch::Contains("pg_monitor, pg_promote, fence"));
  CHECK_THAT(good.out, !Catch::Contains("MISSING"));

  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "CREATE TABLE rights_rows (id int)").rfind("ERROR", 0) != 0);
  REQUIRE(scalar(client.get(), "INSERT INTO rights_rows VALUES (1)").rfind("ERROR", 0) != 0);

  Res answer(PQexec(admin.get(), "SWITCHOVER main"));
  const RunReport report = toRunReport(answer.get());
  INFO("switchover:\n"
       << report.text << "\nerror: " << PQresultErrorMessage(answer.get()) << "\nevents:\n"
       << readFile(events.path));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  const auto* verdict = report.row("verdict");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->at("result") == "passed");
  // The fence ran as granted_mon: the old primary is read-only by default now.
  CHECK(cluster.query(cluster.primaryPort(), cluster.primaryData(),
                      "SHOW default_transaction_read_only") == "on");
  // The client goes on, on the new primary, with its row.
  CHECK(scalar(client.get(), "INSERT INTO rights_rows VALUES (2)").rfind("ERROR", 0) != 0);
  CHECK(scalar(client.get(), "SELECT count(*) || ' on ' || inet_server_port() FROM rights_rows") ==
        "2 on " + std::to_string(cluster.standbyPort()));
}
