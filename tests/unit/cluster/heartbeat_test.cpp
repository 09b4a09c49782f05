// The heartbeat write (W): its config keys and the SQL pgpivot builds from them.
#include <catch2/catch.hpp>

#include "pgpivot/cluster/probe_sql.hpp"
#include "pgpivot/config/parser.hpp"

namespace pgpivot::cluster {
namespace {

config::LoadResult parseCluster(const std::string& lines) {
  return config::parseConfig(
      "[pgpivot]\nauth_type = trust\n[databases]\nappdb = cluster=main\n"
      "[cluster.main]\nnodes = a, b\nmonitor_user = m\n" +
          lines,
      "t.ini");
}

}  // namespace

TEST_CASE("heartbeat_table and heartbeat_create", "[unit][cluster]") {
  SECTION("defaults: pgpivot_heartbeat, not created by pgpivot") {
    const auto result = parseCluster("");
    REQUIRE(result.ok());
    CHECK(result.config.clusters.at("main").heartbeat_table == "pgpivot_heartbeat");
    CHECK_FALSE(result.config.clusters.at("main").heartbeat_create);
  }
  SECTION("a schema-qualified table, created by pgpivot") {
    const auto result = parseCluster("heartbeat_table = Ops.Beat_1\nheartbeat_create = on\n");
    INFO(result.report());
    REQUIRE(result.ok());
    CHECK(result.config.clusters.at("main").heartbeat_table == "ops.beat_1");
    CHECK(result.config.clusters.at("main").heartbeat_create);
  }
  SECTION("off turns the heartbeat off") {
    const auto result = parseCluster("heartbeat_table = off\n");
    REQUIRE(result.ok());
    CHECK(result.config.clusters.at("main").heartbeat_table.empty());
  }
  SECTION("anything that is not an identifier is refused (it goes into SQL unquoted)") {
    const char* bad =
        GENERATE("beat; DROP TABLE x", "a.b.c", ".beat", "beat.", "1beat", "\"Beat\"", "a..b");
    CAPTURE(bad);
    const auto result = parseCluster(std::string("heartbeat_table = ") + bad + "\n");
    CHECK_FALSE(result.ok());
  }
}

TEST_CASE("the heartbeat SQL", "[unit][cluster]") {
  SECTION("the upsert sets lock_timeout first and quotes its literals") {
    const std::string sql = sql::heartbeatUpsert("pgpivot_heartbeat", "host's/main", 7, "h:5432");
    CHECK(sql.starts_with("SET lock_timeout = '500ms'; "));
    CHECK_THAT(sql, Catch::Contains("INSERT INTO pgpivot_heartbeat (proxy_id, epoch, node, ts) "
                                    "VALUES ('host''s/main', 7, 'h:5432', clock_timestamp())"));
    CHECK_THAT(sql, Catch::Contains("ON CONFLICT (proxy_id) DO UPDATE"));
  }
  SECTION("no backslash or control character reaches a literal") {
    CHECK(sql::quoteLiteral("a\\b\nc'") == "'abc'''");
  }
  SECTION("creating a schema-qualified table creates its schema first") {
    CHECK(sql::heartbeatCreate("ops.beat") ==
          "CREATE SCHEMA IF NOT EXISTS ops; CREATE TABLE IF NOT EXISTS ops.beat (proxy_id text "
          "PRIMARY KEY, epoch bigint NOT NULL, node text NOT NULL, ts timestamptz NOT NULL)");
    CHECK(sql::heartbeatCreate("beat").starts_with("CREATE TABLE IF NOT EXISTS beat ("));
  }
}

}  // namespace pgpivot::cluster
