// FENCE / UNFENCE by hand on a live two-node cluster (real PostgreSQL 15 primary + standby):
// a fenced standby leaves elections; the primary may be fenced only in manual mode, where
// clients then wait until an operator decides; UNFENCE routes to it again.
#include <catch2/catch.hpp>
#include <thread>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

TEST_CASE("FENCE of a standby takes it out of elections until UNFENCE, and the primary is refused",
          "[pg][failover][admin][fence]") {
  TwoNodeCluster cluster;
  const ScratchFile state_file(scratchPath("state-fence"));
  Pgpivot pgpivot(
      pgpivotOn(cluster, OnCluster().withMode("promote").withStateFile(state_file.path)));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  const std::string standby = nodeName(cluster.standbyPort());
  const std::string primary = nodeName(cluster.primaryPort());

  Res fence(PQexec(admin.get(), ("FENCE \"" + standby + "\"").c_str()));
  INFO(PQresultErrorMessage(fence.get()));
  REQUIRE(PQresultStatus(fence.get()) == PGRES_COMMAND_OK);
  // Persisted, held: a restart of pgpivot keeps it fenced.
  CHECK_THAT(readFile(state_file.path), Catch::Contains("\"held\":[\"" + standby + "\"]"));
  CHECK(nodeColumn(admin.get(), standby, "fenced") == "1");
  // Clients keep working on the primary.
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  CHECK(scalar(client.get(), "SELECT inet_server_port()") == std::to_string(cluster.primaryPort()));
  // Nobody to switch over to now.
  Res switchover(PQexec(admin.get(), "SWITCHOVER main"));
  CHECK(sqlstateOf(switchover.get()) == "55000");
  CHECK_THAT(PQresultErrorMessage(switchover.get()), Catch::Contains("fenced"));
  // Twice, the routed primary in promote mode, and an unknown node: refused, each with why.
  Res again(PQexec(admin.get(), ("FENCE \"" + standby + "\"").c_str()));
  CHECK(sqlstateOf(again.get()) == "55000");
  Res primary_fence(PQexec(admin.get(), ("FENCE \"" + primary + "\"").c_str()));
  CHECK(sqlstateOf(primary_fence.get()) == "55000");
  CHECK_THAT(PQresultErrorMessage(primary_fence.get()), Catch::Contains("failover_mode = manual"));
  Res unknown(PQexec(admin.get(), "FENCE \"10.9.9.9:5432\""));
  CHECK(sqlstateOf(unknown.get()) == "42704");
  CHECK_THAT(PQresultErrorMessage(unknown.get()), Catch::StartsWith("ERROR:  pgpivot: "));
  CHECK(nodeColumn(admin.get(), primary, "fenced") == "0");

  Res unfence(PQexec(admin.get(), ("UNFENCE \"" + standby + "\"").c_str()));
  INFO(PQresultErrorMessage(unfence.get()));
  REQUIRE(PQresultStatus(unfence.get()) == PGRES_COMMAND_OK);
  CHECK(nodeColumn(admin.get(), standby, "fenced") == "0");
  CHECK_THAT(readFile(state_file.path), !Catch::Contains(standby));
  Res not_fenced(PQexec(admin.get(), ("UNFENCE \"" + standby + "\"").c_str()));
  CHECK(sqlstateOf(not_fenced.get()) == "55000");
}

TEST_CASE("in manual mode FENCE of the primary holds clients until UNFENCE routes to it again",
          "[pg][failover][admin][fence]") {
  TwoNodeCluster cluster;
  const ScratchFile state_file(scratchPath("state-fence-manual"));
  Pgpivot pgpivot(
      pgpivotOn(cluster, OnCluster().withMode("manual").withStateFile(state_file.path)));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  const std::string primary = nodeName(cluster.primaryPort());
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  CHECK(scalar(client.get(), "CREATE TABLE fenced_t (id int)").empty());

  Res fence(PQexec(admin.get(), ("FENCE \"" + primary + "\"").c_str()));
  INFO(PQresultErrorMessage(fence.get()));
  REQUIRE(PQresultStatus(fence.get()) == PGRES_COMMAND_OK);
  CHECK(nodeColumn(admin.get(), primary, "fenced") == "1");
  // Fenced for real: read-only for anyone who connects to it directly.
  CHECK(eventually(std::chrono::seconds(5), [&] {
    return cluster.query(cluster.primaryPort(), cluster.primaryData(),
                         "SHOW default_transaction_read_only") == "on";
  }));
  // A write through pgpivot waits (clients paused), it is neither run nor refused.
  REQUIRE(PQsendQuery(client.get(),
                      "INSERT INTO fenced_t VALUES (1) RETURNING inet_server_port()") == 1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  REQUIRE(PQconsumeInput(client.get()) == 1);
  CHECK(PQisBusy(client.get()) == 1);
  CHECK(clusterColumn(admin.get(), "state") == "WAIT_OPERATOR");

  Res unfence(PQexec(admin.get(), ("UNFENCE \"" + primary + "\"").c_str()));
  INFO(PQresultErrorMessage(unfence.get()));
  REQUIRE(PQresultStatus(unfence.get()) == PGRES_COMMAND_OK);
  // The held write runs on the primary once it is validated and routed again.
  Res written(PQgetResult(client.get()));
  INFO(PQresultErrorMessage(written.get()));
  REQUIRE(PQresultStatus(written.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(written.get(), 0, 0)) == std::to_string(cluster.primaryPort()));
  while (Res extra{PQgetResult(client.get())}) {
  }
  CHECK(cluster.query(cluster.primaryPort(), cluster.primaryData(),
                      "SHOW default_transaction_read_only") == "off");
  CHECK(nodeColumn(admin.get(), primary, "fenced") == "0");
}
