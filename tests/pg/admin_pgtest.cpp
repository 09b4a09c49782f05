// The admin console (virtual database pgpivot/pgbouncer and the admin port) and the
// Prometheus metrics endpoint, driven the way operators drive them: psql and HTTP.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

Pgpivot::Options adminOptions(int admin_port = 0, int metrics_port = 0) {
  Pgpivot::Options options;
  options.settings["admin_users"] = kScramUser;
  options.settings["stats_users"] = kMd5User;
  options.settings["admin_port"] = std::to_string(admin_port);
  if (metrics_port != 0) {
    options.settings["metrics_port"] = std::to_string(metrics_port);
  }
  return options;
}

// Column names of a result.
std::vector<std::string> columns(PGresult* result) {
  std::vector<std::string> names;
  for (int i = 0; i < PQnfields(result); ++i) {
    names.emplace_back(PQfname(result, i));
  }
  return names;
}

std::string run(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  ::pclose(pipe);
  return output;
}

}  // namespace

TEST_CASE("SHOW POOLS on the pgbouncer database lists pools with PgBouncer's columns",
          "[pg][admin]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "SELECT 1") == "1");
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Res pools(PQexec(admin.get(), "SHOW POOLS"));
  REQUIRE(PQresultStatus(pools.get()) == PGRES_TUPLES_OK);
  const auto names = columns(pools.get());
  REQUIRE(names.size() >= 4);
  CHECK(names[0] == "database");
  CHECK(names[1] == "user");
  CHECK(names[2] == "cl_active");
  CHECK(names[3] == "cl_waiting");
  bool found = false;
  for (int row = 0; row < PQntuples(pools.get()); ++row) {
    if (std::string(PQgetvalue(pools.get(), row, 0)) == "appdb") {
      found = true;
      CHECK(std::string(PQgetvalue(pools.get(), row, 2)) == "1");  // our one client
    }
  }
  CHECK(found);
  for (const char* command :
       {"SHOW CLIENTS", "SHOW SERVERS", "SHOW STATS", "SHOW DATABASES", "SHOW CONFIG",
        "SHOW VERSION", "SHOW HELP", "SHOW LISTS", "SHOW USERS", "SHOW CLUSTERS"}) {
    CAPTURE(command);
    Res result(PQexec(admin.get(), command));
    const auto status = PQresultStatus(result.get());
    CHECK((status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK));
  }
}

TEST_CASE("the admin console answers bad commands with 42601 and keeps the session",
          "[pg][admin]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Res bad(PQexec(admin.get(), "SHOW NONSENSE"));
  CHECK(sqlstateOf(bad.get()) == "42601");
  Res worse(PQexec(admin.get(), "DROP TABLE x"));
  CHECK(sqlstateOf(worse.get()) == "42601");
  CHECK(scalar(admin.get(), "SHOW VERSION").find("pgpivot") != std::string::npos);
}

TEST_CASE("only admin_users and stats_users reach the console, and stats users may only look",
          "[pg][admin]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn outsider = connect(pgpivot.conninfo(kTrustUser, "pgpivot"));
  CHECK(PQstatus(outsider.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(outsider.get()), Catch::Contains("not allowed"));
  Conn stats = connect(pgpivot.conninfo(kMd5User, "pgbouncer"));
  REQUIRE(PQstatus(stats.get()) == CONNECTION_OK);
  Res show(PQexec(stats.get(), "SHOW POOLS"));
  CHECK(PQresultStatus(show.get()) == PGRES_TUPLES_OK);
  Res pause(PQexec(stats.get(), "PAUSE"));
  CHECK(sqlstateOf(pause.get()) == "42501");
}

TEST_CASE("PAUSE holds new queries of a database and RESUME lets them run", "[pg][admin]") {
  auto options = adminOptions();
  options.settings["pool_mode"] = "transaction";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "SELECT 1") == "1");
  Res paused(PQexec(admin.get(), "PAUSE appdb"));
  REQUIRE(PQresultStatus(paused.get()) == PGRES_COMMAND_OK);
  REQUIRE(PQsendQuery(client.get(), "SELECT 2") == 1);
  // The query waits: no result within a short while.
  PQconsumeInput(client.get());
  CHECK(PQisBusy(client.get()) == 1);
  Res resumed(PQexec(admin.get(), "RESUME appdb"));
  REQUIRE(PQresultStatus(resumed.get()) == PGRES_COMMAND_OK);
  Res result(PQgetResult(client.get()));
  CHECK(std::string(PQgetvalue(result.get(), 0, 0)) == "2");
  while (Res extra{PQgetResult(client.get())}) {
  }
}

TEST_CASE("KILL_CLIENT closes that client only", "[pg][admin]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn victim = connect(pgpivot.conninfo(kScramUser, "appdb", "application_name=victim"));
  Conn bystander = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(victim.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(bystander.get()) == CONNECTION_OK);
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  Res clients(PQexec(admin.get(), "SHOW CLIENTS"));
  REQUIRE(PQresultStatus(clients.get()) == PGRES_TUPLES_OK);
  const int id_column = PQfnumber(clients.get(), "id");
  const int app_column = PQfnumber(clients.get(), "application_name");
  REQUIRE(id_column >= 0);
  REQUIRE(app_column >= 0);
  std::string victim_id;
  for (int row = 0; row < PQntuples(clients.get()); ++row) {
    if (std::string(PQgetvalue(clients.get(), row, app_column)) == "victim") {
      victim_id = PQgetvalue(clients.get(), row, id_column);
    }
  }
  REQUIRE(!victim_id.empty());
  Res killed(PQexec(admin.get(), ("KILL_CLIENT " + victim_id).c_str()));
  CHECK(PQresultStatus(killed.get()) == PGRES_COMMAND_OK);
  CHECK(scalar(victim.get(), "SELECT 1") != "1");
  CHECK(scalar(bystander.get(), "SELECT 1") == "1");
  Res missing(PQexec(admin.get(), "KILL_CLIENT 999999999"));
  CHECK(sqlstateOf(missing.get()) == "42704");
}

TEST_CASE("psql reaches the console on the admin port and RELOAD re-reads the file",
          "[pg][admin]") {
  const int admin_port = freePort();
  Pgpivot pgpivot(adminOptions(admin_port));
  pgpivot.start();
  const std::string psql = "PGPASSWORD=" + std::string(kPassword) +
                           " /usr/bin/psql -X -h 127.0.0.1 -p " + std::to_string(admin_port) +
                           " -U " + kScramUser + " -d pgpivot --csv ";
  const std::string pools = run(psql + "-c 'SHOW POOLS' 2>&1");
  CHECK_THAT(pools, Catch::StartsWith("database,user,cl_active"));
  const std::string reload = run(psql + "-c 'RELOAD' 2>&1");
  CHECK_THAT(reload, Catch::Contains("RELOAD"));
}

TEST_CASE("the metrics endpoint serves Prometheus text that follows the load", "[pg][admin]") {
  const int metrics_port = freePort();
  Pgpivot pgpivot(adminOptions(0, metrics_port));
  pgpivot.start();
  const auto scrape = [&] {
    RawClient http(metrics_port);
    REQUIRE(http.connected());
    http.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    return http.readAll(std::chrono::seconds(5));
  };
  const std::string before = scrape();
  CHECK_THAT(before, Catch::StartsWith("HTTP/1.1 200"));
  CHECK_THAT(before, Catch::Contains("# TYPE pgpivot_"));
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(scalar(client.get(), "SELECT 1") == "1");
  }
  const std::string after = scrape();
  CHECK_THAT(after, Catch::Contains("database=\"appdb\""));
  RawClient bad(metrics_port);
  bad.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(bad.readAll(std::chrono::seconds(5)), Catch::StartsWith("HTTP/1.1 404"));
}

namespace {

// SHOW CONFIG's row for `key`: {value, changeable}.
std::pair<std::string, std::string> configRow(PGconn* admin, const std::string& key) {
  Res config(PQexec(admin, "SHOW CONFIG"));
  if (PQresultStatus(config.get()) != PGRES_TUPLES_OK) {
    return {"error", "error"};
  }
  for (int r = 0; r < PQntuples(config.get()); ++r) {
    if (PQgetvalue(config.get(), r, PQfnumber(config.get(), "key")) == key) {
      return {PQgetvalue(config.get(), r, PQfnumber(config.get(), "value")),
              PQgetvalue(config.get(), r, PQfnumber(config.get(), "changeable"))};
    }
  }
  return {"missing", "missing"};
}

}  // namespace

TEST_CASE("SET changes a runtime setting until the next RELOAD and refuses what it cannot change",
          "[pg][admin][set]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  REQUIRE(configRow(admin.get(), "default_pool_size").first == "20");

  Res set(PQexec(admin.get(), "SET default_pool_size = 7"));
  INFO(PQresultErrorMessage(set.get()));
  REQUIRE(PQresultStatus(set.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(set.get())) == "SET");
  CHECK(configRow(admin.get(), "default_pool_size") ==
        std::make_pair(std::string("7"), std::string("yes")));
  // The workers have it too: SHOW DATABASES gives the pool size new pools get.
  Res databases(PQexec(admin.get(), "SHOW DATABASES"));
  REQUIRE(PQresultStatus(databases.get()) == PGRES_TUPLES_OK);
  bool found = false;
  for (int r = 0; r < PQntuples(databases.get()); ++r) {
    if (std::string(PQgetvalue(databases.get(), r, 0)) == "appdb") {
      found = true;
      CHECK(std::string(PQgetvalue(databases.get(), r, PQfnumber(databases.get(), "pool_size"))) ==
            "7");
    }
  }
  CHECK(found);

  // Bad input: each refused with its SQLSTATE, naming the key; nothing changes.
  struct Bad {
    const char* sql;
    const char* state;
    const char* words;
  };
  for (const Bad& bad : {Bad{"SET default_pool_size = lots", "22023", "default_pool_size"},
                         Bad{"SET default_pool_size = -3", "22023", "default_pool_size"},
                         Bad{"SET no_such_key = 1", "22023", "no_such_key"},
                         Bad{"SET transaction_timeout = 5", "22023", "not supported"},
                         Bad{"SET listen_port = 7000", "55P02", "listen_port"},
                         Bad{"SET workers = 3", "55P02", "restart"}}) {
    CAPTURE(bad.sql);
    Res result(PQexec(admin.get(), bad.sql));
    CHECK(PQresultStatus(result.get()) == PGRES_FATAL_ERROR);
    CHECK(sqlstateOf(result.get()) == bad.state);
    CHECK_THAT(PQresultErrorMessage(result.get()),
               Catch::StartsWith("ERROR:  pgpivot: ") && Catch::Contains(bad.words));
  }
  CHECK(configRow(admin.get(), "default_pool_size").first == "7");
  CHECK(configRow(admin.get(), "listen_port").second == "no");
  CHECK(configRow(admin.get(), "max_client_conn").second == "yes");

  // A limit takes effect for the next client: the admin session and one client are two.
  Res limit(PQexec(admin.get(), "SET max_client_conn TO 2"));
  REQUIRE(PQresultStatus(limit.get()) == PGRES_COMMAND_OK);
  Conn first = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);
  const LoginResult refused = attemptLogin(pgpivot.conninfo());
  CHECK_FALSE(refused.ok);
  CHECK(refused.sqlstate == "53300");

  // RELOAD re-reads the file: what SET changed is gone, as in PgBouncer.
  Res reload(PQexec(admin.get(), "RELOAD"));
  REQUIRE(PQresultStatus(reload.get()) == PGRES_COMMAND_OK);
  CHECK(configRow(admin.get(), "default_pool_size").first == "20");
  CHECK(configRow(admin.get(), "max_client_conn").first == "500");
  const LoginResult admitted = attemptLogin(pgpivot.conninfo());
  INFO(admitted.text);
  CHECK(admitted.ok);

  // Stats users may look, not SET.
  Conn stats = connect(pgpivot.conninfo(kMd5User, "pgbouncer"));
  REQUIRE(PQstatus(stats.get()) == CONNECTION_OK);
  Res denied(PQexec(stats.get(), "SET default_pool_size = 3"));
  CHECK(sqlstateOf(denied.get()) == "42501");
}

TEST_CASE("WAIT_CLOSE waits until the servers RECONNECT marked have closed", "[pg][admin]") {
  Pgpivot::Options options = adminOptions();
  options.settings["pool_mode"] = "session";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  // Nothing marked: it answers at once.
  Res nothing(PQexec(admin.get(), "WAIT_CLOSE"));
  REQUIRE(PQresultStatus(nothing.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(nothing.get())) == "WAIT_CLOSE");

  // A session-mode client holds its server; RECONNECT marks it for close when released.
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  const std::string pid = scalar(client.get(), "SELECT pg_backend_pid()");
  Res reconnect(PQexec(admin.get(), "RECONNECT appdb"));
  REQUIRE(PQresultStatus(reconnect.get()) == PGRES_COMMAND_OK);
  Conn observer = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  Res servers(PQexec(observer.get(), "SHOW SERVERS"));
  REQUIRE(PQresultStatus(servers.get()) == PGRES_TUPLES_OK);
  REQUIRE(PQntuples(servers.get()) >= 1);

  REQUIRE(PQsendQuery(admin.get(), "WAIT_CLOSE appdb") == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  REQUIRE(PQconsumeInput(admin.get()) == 1);
  CHECK(PQisBusy(admin.get()) == 1);  // still waiting: the server is in use
  // Another database's WAIT_CLOSE does not wait for appdb's server.
  Res other(PQexec(observer.get(), "WAIT_CLOSE postgres"));
  CHECK(PQresultStatus(other.get()) == PGRES_COMMAND_OK);

  client.reset();  // released, so closed
  Res done(PQgetResult(admin.get()));
  INFO(PQresultErrorMessage(done.get()));
  CHECK(PQresultStatus(done.get()) == PGRES_COMMAND_OK);
  while (Res extra{PQgetResult(admin.get())}) {
  }
  // The backend that served the client is gone.
  Conn direct = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  CHECK(scalar(direct.get(), "SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0");
}

TEST_CASE("SUSPEND stops reading every client and server socket until RESUME", "[pg][admin]") {
  const int admin_port = freePort();
  Pgpivot::Options options = adminOptions(admin_port);
  options.settings["pool_mode"] = "session";
  Pgpivot pgpivot(options);
  pgpivot.start();
  const std::string on_admin_port = "host=127.0.0.1 port=" + std::to_string(admin_port) +
                                    " user=" + kScramUser + " password=" + kPassword +
                                    " dbname=pgpivot sslmode=disable";
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "SELECT 1") == "1");

  Res suspend(PQexec(admin.get(), "SUSPEND"));
  INFO(PQresultErrorMessage(suspend.get()));
  REQUIRE(PQresultStatus(suspend.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(suspend.get())) == "SUSPEND");

  // The client's query is not read: no answer while suspended.
  REQUIRE(PQsendQuery(client.get(), "SELECT 42") == 1);
  // A new client is accepted but its start-up packet is not read either.
  std::optional<LoginResult> late;
  std::thread login([&] { late = attemptLogin(pgpivot.conninfo(), std::chrono::seconds(30)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  REQUIRE(PQconsumeInput(client.get()) == 1);
  CHECK(PQisBusy(client.get()) == 1);
  CHECK_FALSE(late.has_value());
  // The console still answers, on this session and on a new one on the admin port.
  Res pools(PQexec(admin.get(), "SHOW POOLS"));
  CHECK(PQresultStatus(pools.get()) == PGRES_TUPLES_OK);
  Conn second_admin = connect(on_admin_port);
  REQUIRE(PQstatus(second_admin.get()) == CONNECTION_OK);
  // An admin logs in on the data port too (virtual database pgpivot), as PgBouncer lets
  // admins in; the client that started to log in meanwhile is still held.
  Conn data_port_admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  INFO(errorOf(data_port_admin.get()));
  REQUIRE(PQstatus(data_port_admin.get()) == CONNECTION_OK);
  Res clients(PQexec(data_port_admin.get(), "SHOW CLIENTS"));
  CHECK(PQresultStatus(clients.get()) == PGRES_TUPLES_OK);
  CHECK_FALSE(late.has_value());

  Res resume(PQexec(second_admin.get(), "RESUME"));
  INFO(PQresultErrorMessage(resume.get()));
  REQUIRE(PQresultStatus(resume.get()) == PGRES_COMMAND_OK);
  Res answer(PQgetResult(client.get()));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(answer.get(), 0, 0)) == "42");
  while (Res extra{PQgetResult(client.get())}) {
  }
  login.join();
  REQUIRE(late.has_value());
  INFO(late->text);
  CHECK(late->ok);
  // Nothing left to resume.
  Res again(PQexec(admin.get(), "RESUME"));
  CHECK(sqlstateOf(again.get()) == "55000");
}

namespace {

// SHOW STATS' row for `database` as column -> value; empty when the row is missing.
std::map<std::string, int64_t> statsRow(PGconn* admin, const std::string& command,
                                        const std::string& database) {
  std::map<std::string, int64_t> row;
  Res stats(PQexec(admin, command.c_str()));
  if (PQresultStatus(stats.get()) != PGRES_TUPLES_OK) {
    return row;
  }
  for (int r = 0; r < PQntuples(stats.get()); ++r) {
    if (PQgetvalue(stats.get(), r, 0) != database) {
      continue;
    }
    for (int c = 1; c < PQnfields(stats.get()); ++c) {
      row[PQfname(stats.get(), c)] = std::atoll(PQgetvalue(stats.get(), r, c));
    }
  }
  return row;
}

// The value of the sample `name` (with its labels) in a Prometheus scrape; -1 if absent.
double metric(const std::string& scrape, const std::string& name) {
  const auto at = scrape.find("\n" + name + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(scrape.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("query and transaction times grow with the load in SHOW STATS and the metrics",
          "[pg][admin][stats]") {
  const int metrics_port = freePort();
  Pgpivot::Options options = adminOptions(0, metrics_port);
  options.settings["pool_mode"] = "transaction";
  options.settings["stats_period"] = "1";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  const auto scrape = [&] {
    RawClient http(metrics_port);
    REQUIRE(http.connected());
    http.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    return http.readAll(std::chrono::seconds(5));
  };
  const auto before = statsRow(admin.get(), "SHOW STATS", "appdb");

  // One round: a transaction that sleeps 5 ms in the server between BEGIN and COMMIT,
  // a simple query that sleeps 5 ms, and two extended-protocol queries (Parse, Bind,
  // Execute, Sync), one of which sleeps 5 ms.
  constexpr int kSleepUs = 5000;
  constexpr int kSleepsPerRound = 3;
  const auto round = [&] {
    REQUIRE(scalar(client.get(), "BEGIN").rfind("ERROR", 0) != 0);
    REQUIRE(scalar(client.get(), "SELECT pg_sleep(0.005)").rfind("ERROR", 0) != 0);
    REQUIRE(scalar(client.get(), "COMMIT").rfind("ERROR", 0) != 0);
    REQUIRE(scalar(client.get(), "SELECT pg_sleep(0.005)").rfind("ERROR", 0) != 0);
    const char* sleep = "0.005";
    Res slept(PQexecParams(client.get(), "SELECT pg_sleep($1::float8)", 1, nullptr, &sleep, nullptr,
                           nullptr, 0));
    REQUIRE(PQresultStatus(slept.get()) == PGRES_TUPLES_OK);
    const char* value = "7";
    Res params(
        PQexecParams(client.get(), "SELECT $1::int", 1, nullptr, &value, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(params.get()) == PGRES_TUPLES_OK);
  };
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    round();
  }
  const auto after = statsRow(admin.get(), "SHOW STATS", "appdb");
  REQUIRE(!after.empty());
  // Six requests a round are answered by ReadyForQuery (four Query messages and two
  // Syncs), in four transactions.
  CHECK(after.at("total_query_count") - before.at("total_query_count") >= 6 * kRounds);
  CHECK(after.at("total_xact_count") - before.at("total_xact_count") >= 4 * kRounds);
  const int64_t query_us = after.at("total_query_time") - before.at("total_query_time");
  const int64_t xact_us = after.at("total_xact_time") - before.at("total_xact_time");
  // The server slept at least this long inside queries: a lower bound, not a timing.
  CHECK(query_us >= kSleepsPerRound * kRounds * kSleepUs);
  CHECK(xact_us >= query_us);
  CHECK(after.at("total_xact_time") >= after.at("total_query_time"));
  // STATS_TOTALS shows the same totals.
  const auto totals = statsRow(admin.get(), "SHOW STATS_TOTALS", "appdb");
  CHECK(totals.at("query_time") >= after.at("total_query_time"));
  CHECK(totals.at("xact_time") >= totals.at("query_time"));

  // Prometheus: the same counters in seconds.
  const std::string metrics = scrape();
  const double query_s = metric(metrics, "pgpivot_query_seconds_total{database=\"appdb\"}");
  const double xact_s = metric(metrics, "pgpivot_transaction_seconds_total{database=\"appdb\"}");
  CHECK(query_s >= kSleepsPerRound * kRounds * kSleepUs / 1e6);
  CHECK(xact_s >= query_s);

  // The averages of the last complete stats_period (1 s), while the load runs: bounded.
  bool averaged = false;
  bool shown = false;
  std::map<std::string, int64_t> avg;
  for (int i = 0; i < 300 && !(averaged && shown); ++i) {
    round();
    avg = statsRow(admin.get(), "SHOW STATS_AVERAGES", "appdb");
    averaged = averaged || (!avg.empty() && avg.at("query_time") > 0 && avg.at("xact_time") > 0 &&
                            avg.at("query_count") > 0 && avg.at("xact_count") > 0);
    const auto row = statsRow(admin.get(), "SHOW STATS", "appdb");
    shown = shown || (!row.empty() && row.at("avg_query_time") > 0 && row.at("avg_xact_time") > 0);
  }
  CHECK(averaged);
  CHECK(shown);
}

TEST_CASE("SHOW MEM and SHOW SOCKETS answer with PgBouncer's columns", "[pg][admin]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "SELECT 1") == "1");
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);

  Res mem(PQexec(admin.get(), "SHOW MEM"));
  REQUIRE(PQresultStatus(mem.get()) == PGRES_TUPLES_OK);
  CHECK(columns(mem.get()) == std::vector<std::string>{"name", "size", "used", "free", "memtotal"});
  // This client and its session-mode server are in use.
  std::map<std::string, int64_t> used;
  for (int r = 0; r < PQntuples(mem.get()); ++r) {
    used[PQgetvalue(mem.get(), r, 0)] = std::atoll(PQgetvalue(mem.get(), r, 2));
    CHECK(std::atoll(PQgetvalue(mem.get(), r, 1)) > 0);
  }
  CHECK(used["client_session"] >= 2);  // the client and this console session
  CHECK(used["server_conn"] >= 1);
  CHECK(used["pool"] >= 1);

  Res sockets(PQexec(admin.get(), "SHOW SOCKETS"));
  REQUIRE(PQresultStatus(sockets.get()) == PGRES_TUPLES_OK);
  const auto names = columns(sockets.get());
  for (const char* column :
       {"type", "user", "database", "state", "addr", "port", "recv_pos", "pkt_pos", "pkt_remain",
        "send_pos", "send_remain", "pkt_avail", "send_avail"}) {
    CAPTURE(column);
    CHECK(std::find(names.begin(), names.end(), column) != names.end());
  }
  // Our client (C) and its session-mode server (S) are both listed.
  bool client_row = false;
  bool server_row = false;
  for (int r = 0; r < PQntuples(sockets.get()); ++r) {
    const std::string type = PQgetvalue(sockets.get(), r, PQfnumber(sockets.get(), "type"));
    const std::string database = PQgetvalue(sockets.get(), r, PQfnumber(sockets.get(), "database"));
    client_row = client_row || (type == "C" && database == "appdb");
    server_row = server_row || (type == "S" && database == "appdb");
  }
  CHECK(client_row);
  CHECK(server_row);

  // SHOW HELP names every command the console takes (in a NOTICE, which psql prints).
  const std::string psql = "PGPASSWORD=" + std::string(kPassword) +
                           " /usr/bin/psql -X -h 127.0.0.1 -p " + std::to_string(pgpivot.port()) +
                           " -U " + kScramUser + " -d pgpivot -c 'SHOW HELP' 2>&1";
  const std::string text = run(psql);
  for (const char* command :
       {"SHOW HELP",      "POOLS",      "CLIENTS",  "SERVERS",   "STATS",     "STATS_TOTALS",
        "STATS_AVERAGES", "DATABASES",  "USERS",    "CONFIG",    "LISTS",     "MEM",
        "VERSION",        "SOCKETS",    "CLUSTERS", "NODES",     "FAILOVERS", "PAUSE",
        "RESUME",         "DISABLE",    "ENABLE",   "RECONNECT", "KILL",      "KILL_CLIENT",
        "SUSPEND",        "WAIT_CLOSE", "RELOAD",   "SET",       "SHUTDOWN",  "SWITCHOVER",
        "FAILOVER",       "FENCE",      "UNFENCE",  "DRILL"}) {
    CAPTURE(command);
    CHECK_THAT(text, Catch::Contains(command));
  }
}

TEST_CASE("DISABLE refuses new clients until ENABLE, KILL drops a database's clients until RESUME",
          "[pg][admin]") {
  Pgpivot::Options options = adminOptions();
  options.settings["pool_mode"] = "transaction";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(scalar(client.get(), "SELECT 1") == "1");

  // DISABLE: new logins to the database are refused, connected clients go on.
  Res disable(PQexec(admin.get(), "DISABLE appdb"));
  REQUIRE(PQresultStatus(disable.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(disable.get())) == "DISABLE");
  const LoginResult refused = attemptLogin(pgpivot.conninfo());
  CHECK_FALSE(refused.ok);
  CHECK(refused.sqlstate == "57P03");
  CHECK_THAT(refused.message, Catch::Contains("disabled"));
  CHECK(scalar(client.get(), "SELECT 2") == "2");
  Res databases(PQexec(admin.get(), "SHOW DATABASES"));
  REQUIRE(PQresultStatus(databases.get()) == PGRES_TUPLES_OK);
  for (int r = 0; r < PQntuples(databases.get()); ++r) {
    if (std::string(PQgetvalue(databases.get(), r, 0)) == "appdb") {
      CHECK(std::string(PQgetvalue(databases.get(), r, PQfnumber(databases.get(), "disabled"))) ==
            "1");
    }
  }
  // ENABLE lets them in again; enabling what is not disabled is refused.
  Res enable(PQexec(admin.get(), "ENABLE appdb"));
  REQUIRE(PQresultStatus(enable.get()) == PGRES_COMMAND_OK);
  const LoginResult admitted = attemptLogin(pgpivot.conninfo());
  INFO(admitted.text);
  CHECK(admitted.ok);
  Res again(PQexec(admin.get(), "ENABLE appdb"));
  CHECK(sqlstateOf(again.get()) == "55000");

  // KILL: the database's clients are closed with 57P01; the console session stays.
  Res kill(PQexec(admin.get(), "KILL appdb"));
  REQUIRE(PQresultStatus(kill.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(kill.get())) == "KILL");
  CHECK_THAT(scalar(client.get(), "SELECT 3"), Catch::StartsWith("ERROR"));
  CHECK(PQstatus(client.get()) == CONNECTION_BAD);
  Res pools(PQexec(admin.get(), "SHOW POOLS"));
  CHECK(PQresultStatus(pools.get()) == PGRES_TUPLES_OK);
  // A new client logs in but its query waits, as after PAUSE, until RESUME.
  Conn late = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(late.get()) == CONNECTION_OK);
  REQUIRE(PQsendQuery(late.get(), "SELECT 4") == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  REQUIRE(PQconsumeInput(late.get()) == 1);
  CHECK(PQisBusy(late.get()) == 1);
  Res resume(PQexec(admin.get(), "RESUME appdb"));
  REQUIRE(PQresultStatus(resume.get()) == PGRES_COMMAND_OK);
  Res answer(PQgetResult(late.get()));
  REQUIRE(PQresultStatus(answer.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(answer.get(), 0, 0)) == "4");
  while (Res extra{PQgetResult(late.get())}) {
  }
}

TEST_CASE("SHUTDOWN from the console stops pgpivot once its clients have left", "[pg][admin]") {
  Pgpivot pgpivot(adminOptions());
  pgpivot.start();
  Conn stats = connect(pgpivot.conninfo(kMd5User, "pgbouncer"));
  REQUIRE(PQstatus(stats.get()) == CONNECTION_OK);
  Res denied(PQexec(stats.get(), "SHUTDOWN"));
  CHECK(sqlstateOf(denied.get()) == "42501");
  stats.reset();
  REQUIRE(pgpivot.running());

  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Res shutdown(PQexec(admin.get(), "SHUTDOWN"));
  INFO(PQresultErrorMessage(shutdown.get()));
  CHECK(PQresultStatus(shutdown.get()) == PGRES_COMMAND_OK);
  admin.reset();
  CHECK(eventually(std::chrono::seconds(20), [&] { return !pgpivot.running(); }));
  // Nobody is accepted any more.
  const LoginResult after = attemptLogin(pgpivot.conninfo(), std::chrono::seconds(2));
  CHECK_FALSE(after.ok);
}
