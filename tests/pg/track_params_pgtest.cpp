// track_extra_parameters (PgBouncer 1.20+): a parameter PostgreSQL reports beside the
// built-in ones follows each client from server connection to server connection, and is
// accepted as a startup parameter; without the key it is neither.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <string>
#include <utility>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

constexpr auto kPatience = 10s;
constexpr const char* kTable = "track_params_rw";

Pgpivot::Options trackingOptions(const std::string& tracked) {
  Pgpivot::Options options;
  options.settings["pool_mode"] = "transaction";
  options.settings["default_pool_size"] = "1";
  options.settings["query_wait_timeout"] = "20";
  if (!tracked.empty()) {
    options.settings["track_extra_parameters"] = tracked;
  }
  return options;
}

bool refusedReadOnly(const std::string& answer) {
  return answer.rfind("ERROR 25006", 0) == 0;
}

std::string insertRow(PGconn* conn) {
  return scalar(conn, std::string("INSERT INTO ") + kTable + " VALUES (1)");
}

// The value a ParameterStatus in `bytes` gives `name`, or "(none)".
std::string reported(const std::string& bytes, const std::string& name) {
  for (const auto& message : backendMessages(bytes)) {
    if (message.tag == 'S' && message.body.rfind(name + '\0', 0) == 0) {
      const std::size_t at = name.size() + 1;
      return message.body.substr(at, message.body.find('\0', at) - at);
    }
  }
  return "(none)";
}

void createTable(Pgpivot& pgpivot, const std::string& user) {
  Conn setup = connect(pgpivot.conninfo(user));
  REQUIRE(PQstatus(setup.get()) == CONNECTION_OK);
  REQUIRE(scalar(setup.get(), std::string("DROP TABLE IF EXISTS ") + kTable + "; CREATE TABLE " +
                                  kTable + " (x int)")
              .empty());
}

void dropTable(Pgpivot& pgpivot, const std::string& user) {
  Conn cleanup = connect(pgpivot.conninfo(user));
  CHECK(scalar(cleanup.get(), std::string("DROP TABLE IF EXISTS ") + kTable).empty());
}

}  // namespace

TEST_CASE("a tracked extra parameter follows each client on a shared server connection",
          "[pg][transaction][track_params]") {
  Pgpivot pgpivot(trackingOptions("default_transaction_read_only"));
  pgpivot.start();
  createTable(pgpivot, kScramUser);
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  CHECK(std::string(PQparameterStatus(b.get(), "default_transaction_read_only")) == "off");
  CHECK(scalar(a.get(), "SET default_transaction_read_only = on").empty());
  CHECK(std::string(PQparameterStatus(a.get(), "default_transaction_read_only")) == "on");
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    // One server: each client's turn begins on the server the other one just left.
    CHECK(scalar(a.get(), "SELECT pg_backend_pid()") == scalar(b.get(), "SELECT pg_backend_pid()"));
    const std::string refused = insertRow(a.get());
    CHECK(refusedReadOnly(refused));
    CHECK(insertRow(b.get()).empty());
    CHECK(scalar(a.get(), "SHOW default_transaction_read_only") == "on");
    CHECK(scalar(b.get(), "SHOW default_transaction_read_only") == "off");
  }
  // A's RESET is followed too: its next transaction writes again.
  CHECK(scalar(a.get(), "RESET default_transaction_read_only").empty());
  CHECK(insertRow(b.get()).empty());
  CHECK(insertRow(a.get()).empty());
  a.reset();
  b.reset();
  dropTable(pgpivot, kScramUser);
}

TEST_CASE("a tracked extra parameter is accepted as a startup parameter, refused without the key",
          "[pg][transaction][track_params]") {
  SECTION("listed in track_extra_parameters (any case)") {
    auto options = trackingOptions("IntervalStyle, Default_Transaction_Read_Only");
    options.settings["auth_type"] = "trust";
    Pgpivot pgpivot(options);
    pgpivot.start();
    createTable(pgpivot, kTrustUser);
    RawClient a(pgpivot.port());
    REQUIRE(a.connected());
    const std::string welcome = rawTrustLogin(a, {{"default_transaction_read_only", "on"}});
    INFO("log:\n" << pgpivot.logText());
    REQUIRE(firstError(welcome).found == false);
    // The client is told its own value, under the server's spelling.
    CHECK(reported(welcome, "default_transaction_read_only") == "on");
    Conn b = connect(pgpivot.conninfo(kTrustUser));
    REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      const ErrorSeen refused =
          firstError(rawQuery(a, std::string("INSERT INTO ") + kTable + " VALUES (1)"));
      CHECK(refused.sqlstate == "25006");
      CHECK(insertRow(b.get()).empty());
    }
    b.reset();
    dropTable(pgpivot, kTrustUser);
  }
  SECTION("not listed") {
    auto options = trackingOptions("");
    options.settings["auth_type"] = "trust";
    Pgpivot pgpivot(options);
    pgpivot.start();
    RawClient a(pgpivot.port());
    REQUIRE(a.connected());
    const ErrorSeen error = firstError(rawTrustLogin(a, {{"default_transaction_read_only", "on"}}));
    CHECK(error.sqlstate == "08P01");
    CHECK_THAT(error.message, Catch::Contains("unsupported startup parameter") &&
                                  Catch::Contains("default_transaction_read_only"));
  }
}

TEST_CASE("track_extra_parameters added by RELOAD applies to clients that log in after it",
          "[pg][transaction][track_params]") {
  auto options = trackingOptions("");
  options.settings["auth_type"] = "trust";
  Pgpivot pgpivot(options);
  pgpivot.start();
  options.settings["track_extra_parameters"] = "default_transaction_read_only";
  pgpivot.rewriteConfig(options);
  pgpivot.signal(SIGHUP);
  std::string welcome;
  REQUIRE(eventually(kPatience, [&] {
    RawClient a(pgpivot.port());
    welcome = rawTrustLogin(a, {{"default_transaction_read_only", "on"}});
    return !firstError(welcome).found;
  }));
  CHECK(reported(welcome, "default_transaction_read_only") == "on");
}

TEST_CASE("a bad track_extra_parameters stops pgpivot with file:line and the key",
          "[pg][track_params]") {
  for (const std::string bad :
       {"IntervalStyle,,TimeZone", "default transaction read only", "1abc", "server_version"}) {
    CAPTURE(bad);
    Pgpivot pgpivot(trackingOptions(bad));
    const CommandResult result = runPgpivotCommand({pgpivot.configPath()}, 15s);
    CHECK(result.status == 1);
    CHECK_THAT(result.err, Catch::Contains(pgpivot.configPath() + ":") &&
                               Catch::Contains("track_extra_parameters") &&
                               Catch::Contains("error"));
  }
}
