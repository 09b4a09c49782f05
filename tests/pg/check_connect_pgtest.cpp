// `pgpivot --check --connect` against a cluster that cannot fail over because its standby
// does not stream (the misconfigured failover of the incident): it must say so and fail.
#include <catch2/catch.hpp>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

TEST_CASE("pgpivot --check --connect refuses a cluster whose standby is not streaming",
          "[pg][failover][check]") {
  TwoNodeCluster cluster;
  Pgpivot::Options options;
  options.databases = {{"appdb", "cluster=main dbname=appdb"}};
  options.extra_sections = {cluster.clusterSection("failover_mode = promote\n")};
  Pgpivot pgpivot(options);
  const CommandResult healthy = runPgpivotCommand({"--check", "--connect", pgpivot.configPath()});
  INFO("stdout: " << healthy.out << "\nstderr: " << healthy.err);
  REQUIRE(healthy.status == 0);
  CHECK_THAT(healthy.out, Catch::Contains("failover possible"));

  // The standby's WAL receiver stops.
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(),
                      "ALTER SYSTEM SET primary_conninfo = ''") != "ERROR");
  CHECK(cluster.query(cluster.standbyPort(), cluster.standbyData(), "SELECT pg_reload_conf()") ==
        "t");
  REQUIRE(eventually(std::chrono::seconds(15), [&] {
    return cluster.query(cluster.standbyPort(), cluster.standbyData(),
                         "SELECT count(*) FROM pg_stat_wal_receiver") == "0";
  }));
  const CommandResult broken = runPgpivotCommand({"--check", "--connect", pgpivot.configPath()});
  INFO("stdout: " << broken.out << "\nstderr: " << broken.err);
  CHECK(broken.status == 1);
  CHECK_THAT(broken.out, Catch::Contains("failover NOT possible"));
  CHECK_THAT(broken.out,
             Catch::Contains("standby 127.0.0.1:" + std::to_string(cluster.standbyPort()) +
                             " is not streaming from the primary"));
  CHECK_THAT(broken.out, Catch::Contains("nothing to fail over to"));
}
