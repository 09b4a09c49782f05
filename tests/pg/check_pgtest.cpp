// `pgpivot --check` (with and without --connect) and PgBouncer configuration compatibility.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
namespace fs = std::filesystem;

namespace {

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The 1-based line of `text` that starts with `prefix` (0 when none does).
int lineStartingWith(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.rfind(prefix, 0) == 0) {
      return number;
    }
  }
  return 0;
}

// "FILE:LINE" of the first line of `pgpivot`'s config file that starts with `prefix`.
std::string whereIs(const Pgpivot& pgpivot, const std::string& prefix) {
  const int line = lineStartingWith(readText(pgpivot.configPath()), prefix);
  REQUIRE(line > 0);
  return pgpivot.configPath() + ":" + std::to_string(line);
}

std::string fixtureNode() {
  const auto& pg = pgServer();
  return pg.host + ":" + std::to_string(pg.port);
}

// A [cluster.main] with the fixture server as its only node, and appdb routed to it.
Pgpivot::Options oneNodeCluster(const std::string& more) {
  Pgpivot::Options options;
  options.databases = {{"appdb", "cluster=main dbname=appdb"}};
  options.extra_sections = {"[cluster.main]\nnodes = " + fixtureNode() +
                            "\nmonitor_user = " + kTrustUser + "\n" + more};
  return options;
}

}  // namespace

TEST_CASE("pgpivot --check accepts a valid config with exit status 0", "[pg][check]") {
  Pgpivot pgpivot;
  const CommandResult result = runPgpivotCommand({"--check", pgpivot.configPath()});
  INFO("stderr: " << result.err);
  CHECK(result.status == 0);
  CHECK_THAT(result.err, !Catch::Contains("error"));
}

TEST_CASE("pgpivot --check rejects a bad value with exit status 1 naming file:line and key",
          "[pg][check]") {
  Pgpivot::Options options;
  options.settings = {{"default_pool_size", "lots"}};
  Pgpivot pgpivot(options);
  const CommandResult result = runPgpivotCommand({"--check", pgpivot.configPath()});
  CHECK(result.status == 1);
  CHECK_THAT(result.err, Catch::Contains(whereIs(pgpivot, "default_pool_size")) &&
                             Catch::Contains("default_pool_size"));
}

TEST_CASE("pgpivot --check only warns about an unknown key, naming file:line", "[pg][check]") {
  Pgpivot::Options options;
  options.settings = {{"no_such_setting", "1"}};
  Pgpivot pgpivot(options);
  const CommandResult result = runPgpivotCommand({"--check", pgpivot.configPath()});
  CHECK(result.status == 0);
  CHECK_THAT(result.err, Catch::Contains(whereIs(pgpivot, "no_such_setting")) &&
                             Catch::Contains("warning") && Catch::Contains("no_such_setting"));
}

TEST_CASE("pgpivot --check --connect reports the server as a PostgreSQL 15 primary",
          "[pg][check]") {
  const auto& pg = pgServer();
  Pgpivot::Options options;
  options.databases = {{"appdb", "host=" + pg.host + " port=" + std::to_string(pg.port) +
                                     " dbname=appdb user=" + kTrustUser}};
  Pgpivot pgpivot(options);
  const CommandResult result = runPgpivotCommand({"--check", "--connect", pgpivot.configPath()});
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK(result.status == 0);
  CHECK_THAT(result.out, Catch::Contains(fixtureNode()) && Catch::Contains("PostgreSQL 15") &&
                             Catch::Contains("primary"));
}

TEST_CASE("pgpivot --check rejects a one-node cluster that cannot fail over", "[pg][check]") {
  Pgpivot pgpivot(oneNodeCluster(""));
  const CommandResult result = runPgpivotCommand({"--check", pgpivot.configPath()});
  CHECK(result.status == 1);
  CHECK_THAT(result.err,
             Catch::Contains(whereIs(pgpivot, "nodes =")) && Catch::Contains("cannot fail over"));
}

TEST_CASE("pgpivot --check --connect reports a one-node manual cluster's node and no failover",
          "[pg][check]") {
  // failover_mode = manual is the way to say "one node on purpose": the file is valid...
  Pgpivot pgpivot(oneNodeCluster("failover_mode = manual\n"));
  const CommandResult checked = runPgpivotCommand({"--check", pgpivot.configPath()});
  INFO("--check stderr: " << checked.err);
  CHECK(checked.status == 0);

  // ...and --connect shows the node's role and version and that failover is not possible,
  // which it reports as a failed check.
  const CommandResult result = runPgpivotCommand({"--check", "--connect", pgpivot.configPath()});
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  CHECK_THAT(result.out, Catch::Contains(fixtureNode()) && Catch::Contains("PostgreSQL 15") &&
                             Catch::Contains("primary"));
  CHECK_THAT(result.out, Catch::Contains("NOT possible"));
  CHECK(result.status == 1);
}

TEST_CASE("a PgBouncer pgbouncer.ini with its userlist.txt works unchanged", "[pg][check]") {
  const auto& pg = pgServer();
  Pgpivot pgpivot;
  const std::string dir = fs::path(pgpivot.configPath()).parent_path().string();

  // userlist.txt as PgBouncer users make it: the secrets from pg_authid.
  {
    Conn direct = connect("host=" + pg.host + " port=" + std::to_string(pg.port) +
                          " dbname=postgres user=" + kTrustUser + " sslmode=disable");
    REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
    Res rows(PQexec(direct.get(),
                    "SELECT '\"' || rolname || '\" \"' || rolpassword || '\"' FROM pg_authid "
                    "WHERE rolname IN ('pgpivot_md5', 'pgpivot_scram') ORDER BY rolname"));
    REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
    REQUIRE(PQntuples(rows.get()) == 2);
    std::ofstream userlist(dir + "/userlist.txt", std::ios::trunc);
    for (int i = 0; i < PQntuples(rows.get()); ++i) {
      userlist << PQgetvalue(rows.get(), i, 0) << "\n";
    }
  }
  std::ostringstream ini;
  ini << ";; pgbouncer.ini of an existing PgBouncer installation\n"
      << "[databases]\n"
      << "appdb = host=" << pg.host << " port=" << pg.port << " dbname=appdb\n"
      << "\n"
      << "[pgbouncer]\n"
      << "logfile = pgbouncer.log\n"
      << "pidfile = pgbouncer.pid\n"
      << "listen_addr = 127.0.0.1\n"
      << "listen_port = " << pgpivot.port() << "\n"
      << "unix_socket_dir =\n"
      << "auth_type = md5\n"
      << "auth_file = userlist.txt\n"
      << "admin_users = postgres\n"
      << "stats_users = stats, postgres\n"
      << "pool_mode = session\n"
      << "server_reset_query = DISCARD ALL\n"
      << "ignore_startup_parameters = extra_float_digits\n"
      << "max_client_conn = 100\n"
      << "default_pool_size = 20\n"
      << "min_pool_size = 0\n"
      << "reserve_pool_size = 0\n"
      << "server_lifetime = 3600\n"
      << "server_idle_timeout = 600\n"
      << "log_connections = 1\n"
      << "log_disconnections = 1\n"
      << "log_pooler_errors = 1\n"
      << "stats_period = 60\n";
  pgpivot.writeRawConfig(ini.str());

  const CommandResult checked = runPgpivotCommand({"--check", pgpivot.configPath()});
  INFO("--check stderr: " << checked.err);
  CHECK(checked.status == 0);

  pgpivot.start();
  for (const char* user : {kMd5User, kScramUser}) {
    CAPTURE(user);
    Conn conn = connect(pgpivot.conninfo(user));
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    CHECK(scalar(conn.get(), "SELECT current_user") == user);
    CHECK(scalar(conn.get(), "SELECT 20 + 22") == "42");
  }
  CHECK(fs::exists(dir + "/pgbouncer.pid"));
  CHECK(pgpivot.stop(SIGTERM) == 0);
}
