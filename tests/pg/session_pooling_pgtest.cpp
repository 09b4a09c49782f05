// Session pooling end to end: libpq -> pgpivot -> PostgreSQL 15.
#include <catch2/catch.hpp>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

TEST_CASE("a query through pgpivot returns what PostgreSQL returns", "[pg][session]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 40 + 2") == "42");
  CHECK(scalar(conn.get(), "SELECT current_user") == kScramUser);
  CHECK(scalar(conn.get(), "SELECT current_database()") == "appdb");
}

TEST_CASE("a client sees the ParameterStatus values a direct connection sees", "[pg][session]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const auto& pg = pgServer();
  const std::string extra = "application_name=paramcheck options='' client_encoding=LATIN1";
  Conn direct = connect("host=" + pg.host + " port=" + std::to_string(pg.port) +
                        " dbname=appdb user=" + kScramUser + " password=" + kPassword + " " +
                        "application_name=paramcheck client_encoding=LATIN1");
  Conn proxied = connect(
      pgpivot.conninfo(kScramUser, "appdb", "application_name=paramcheck client_encoding=LATIN1"));
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(proxied.get()) == CONNECTION_OK);
  for (const char* name :
       {"server_version", "server_encoding", "client_encoding", "application_name", "DateStyle",
        "TimeZone", "integer_datetimes", "standard_conforming_strings", "IntervalStyle",
        "is_superuser", "session_authorization"}) {
    CAPTURE(name);
    const char* want = PQparameterStatus(direct.get(), name);
    const char* got = PQparameterStatus(proxied.get(), name);
    REQUIRE(want != nullptr);
    REQUIRE(got != nullptr);
    CHECK(std::string(got) == want);
  }
  (void)extra;
}

TEST_CASE("a server connection is reused by the next client, reset in between", "[pg][session]") {
  Pgpivot pgpivot;
  pgpivot.start();
  std::string first_pid;
  {
    Conn conn = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    first_pid = scalar(conn.get(), "SELECT pg_backend_pid()");
    CHECK(scalar(conn.get(), "SET statement_timeout = '1234s'").empty());
    CHECK(scalar(conn.get(), "SHOW statement_timeout") == "1234s");
  }
  Conn conn = connect(pgpivot.conninfo(kScramUser, "appdb", "application_name=second"));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  // The same backend serves the second client, but DISCARD ALL removed the first one's SET
  // and the second one's application_name was applied.
  CHECK(eventually(std::chrono::seconds(5),
                   [&] { return scalar(conn.get(), "SELECT pg_backend_pid()") == first_pid; }));
  CHECK(scalar(conn.get(), "SHOW statement_timeout") == "0");
  CHECK(scalar(conn.get(), "SHOW application_name") == "second");
  CHECK(std::string(PQparameterStatus(conn.get(), "application_name")) == "second");
}

TEST_CASE(
    "the application_name a login brings is applied on a reused backend, also for clients that "
    "leave before the SET is answered",
    "[pg][session]") {
  Pgpivot::Options options;
  options.settings["default_pool_size"] = "1";
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::string pid;
  for (int i = 0; i < 12; ++i) {
    CAPTURE(i);
    const std::string name = "client" + std::to_string(i);
    Conn conn = connect(pgpivot.conninfo(kScramUser, "appdb", "application_name=" + name));
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    CHECK(std::string(PQparameterStatus(conn.get(), "application_name")) == name);
    if (i % 3 == 1) {
      continue;  // gone right after the welcome: its SET may still be on its way
    }
    CHECK(scalar(conn.get(), "SHOW application_name") == name);
    const std::string backend = scalar(conn.get(), "SELECT pg_backend_pid()");
    // One backend serves them all: a client leaving early did not cost it.
    CHECK((pid.empty() || backend == pid));
    pid = backend;
  }
  // A name with a backslash and a quote arrives as written.
  Conn odd = connect(pgpivot.conninfo(kScramUser, "appdb", "application_name='it\\\\\\'s'"));
  REQUIRE(PQstatus(odd.get()) == CONNECTION_OK);
  CHECK(scalar(odd.get(), "SHOW application_name") == "it\\'s");
}
