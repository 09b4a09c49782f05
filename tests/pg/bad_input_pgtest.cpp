// Bad input from clients and failures behind pgpivot: every case gets a clear ErrorResponse
// (or a clean close), and a normal client keeps working through the same pgpivot afterwards.
#include <catch2/catch.hpp>
#include <climits>
#include <cstdint>
#include <string>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

constexpr auto kPatience = std::chrono::seconds(10);

// A normal libpq client logs in through `pgpivot` and runs a query.
void requireOthersStillServed(Pgpivot& pgpivot) {
  REQUIRE(pgpivot.running());
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 6 * 7") == "42");
}

// Sends `bytes` on a fresh raw connection and returns everything pgpivot answers before
// it closes the connection (which it must do within kPatience).
std::string answerTo(Pgpivot& pgpivot, const std::string& bytes) {
  RawClient client(pgpivot.port());
  REQUIRE(client.connected());
  client.send(bytes);  // pgpivot may close before it has read everything
  std::string seen;
  readUntilMessage(client, seen, "E", kPatience);
  CHECK(client.closedWithin(kPatience));
  return seen;
}

// The tags of the complete messages in `bytes`, in order.
std::string tagsOf(const std::string& bytes) {
  std::string tags;
  for (const auto& message : backendMessages(bytes)) {
    tags.push_back(message.tag);
  }
  return tags;
}

// Whether the last complete message in `bytes` is a ReadyForQuery.
bool endsWithReadyForQuery(const std::string& bytes) {
  const std::string tags = tagsOf(bytes);
  return !tags.empty() && tags.back() == 'Z';
}

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// Options for raw logins: no password exchange, a superuser that PostgreSQL trusts.
Pgpivot::Options trustOptions() {
  Pgpivot::Options options;
  options.settings["auth_type"] = "trust";
  return options;
}

// The first column of the first DataRow in `bytes` (text format), or "" when none.
std::string firstValue(const std::string& bytes) {
  for (const auto& message : backendMessages(bytes)) {
    if (message.tag != 'D' || message.body.size() < 6) {
      continue;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(message.body.data()) + 2;
    const int32_t len = static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                                             (uint32_t{p[2]} << 8) | uint32_t{p[3]});
    if (len < 0 || static_cast<std::size_t>(len) > message.body.size() - 6) {
      return "";
    }
    return message.body.substr(6, static_cast<std::size_t>(len));
  }
  return "";
}

// Reads exactly `n` raw bytes (the one-byte answers to SSLRequest and GSSENCRequest).
std::string readBytes(RawClient& client, std::size_t n) {
  std::string seen;
  eventually(kPatience, [&] {
    seen += client.readAll(10ms);
    return seen.size() >= n;
  });
  return seen;
}

// Waits for the pending result of `conn` without blocking past `timeout`; returns every
// result's SQLSTATE ("" for a success) in order, or {"timeout"}.
std::vector<std::string> drainResults(PGconn* conn, std::chrono::milliseconds timeout) {
  std::vector<std::string> states;
  const bool done = eventually(timeout, [&] {
    if (PQconsumeInput(conn) == 0) {
      return true;  // the connection broke; PQgetResult reports it below
    }
    return PQisBusy(conn) == 0;
  });
  if (!done) {
    return {"timeout"};
  }
  for (int i = 0; i < 10; ++i) {
    Res result(PQgetResult(conn));
    if (!result) {
      break;
    }
    states.push_back(sqlstateOf(result.get()));
    if (PQresultStatus(result.get()) == PGRES_FATAL_ERROR && states.back().empty()) {
      states.back() = "client-side: " + std::string(PQresultErrorMessage(result.get()));
    }
  }
  return states;
}

}  // namespace

TEST_CASE("garbage instead of a startup packet gets an ErrorResponse and a close",
          "[pg][bad_input]") {
  // An HTTP request sent to the wrong port, bytes that look random (fixed, so the case is
  // the same every run), and a well-framed packet whose protocol code is nonsense.
  const std::string garbage =
      GENERATE(std::string("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
               std::string("\x9c\x3e\x17\xd2\x5a\x88\x01\xfe\x44\x6b\xc0\x2d\x91\x7f\x33\xe8"
                           "\x0b\xa4\x56\xdd\x12\x8e\x77\xb9\x60\x05\xca\x3f\xf1\x28\x9d\x4e",
                           32),
               int32be(16) + std::string("\x12\x34\x56\x78garbage!", 12),
               // protocol 3.0, but the parameter list never ends
               int32be(30) + int32be(196608) + std::string("user\0pgpivot_scram\0db", 22));
  CAPTURE(garbage);
  Pgpivot pgpivot;
  pgpivot.start();
  const ErrorSeen error = firstError(answerTo(pgpivot, garbage));
  REQUIRE(error.found);
  CHECK(error.severity == "FATAL");
  CHECK((error.sqlstate == "08P01" || error.sqlstate == "0A000"));
  CHECK(startsWith(error.message, "pgpivot:"));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("a client that closes halfway through its startup packet leaves pgpivot serving",
          "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const std::string packet = startupPacket({{"user", kScramUser}, {"database", "appdb"}});
  for (const std::size_t cut :
       {std::size_t{2}, std::size_t{4}, packet.size() / 2, packet.size() - 1}) {
    CAPTURE(cut);
    RawClient client(pgpivot.port());
    REQUIRE(client.connected());
    REQUIRE(client.send(packet.substr(0, cut)));
  }  // each client closes here
  requireOthersStillServed(pgpivot);
}

TEST_CASE("a startup length of 0, 3, 2 GB or below zero is refused with 08P01 at once",
          "[pg][bad_input]") {
  const int32_t length = GENERATE(0, 3, INT32_C(0x7fffffff), -1, -8, INT32_MIN);
  CAPTURE(length);
  Pgpivot pgpivot;
  pgpivot.start();
  // Some bytes after the length, as a client that means it would send them.
  const ErrorSeen error = firstError(answerTo(pgpivot, int32be(length) + int32be(196608)));
  REQUIRE(error.found);
  CHECK(error.sqlstate == "08P01");
  CHECK(startsWith(error.message, "pgpivot:"));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("a startup packet over 10000 bytes is refused with 08P01", "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const std::string packet = startupPacket(
      {{"user", kScramUser}, {"database", "appdb"}, {"application_name", std::string(10100, 'a')}});
  REQUIRE(packet.size() > 10000);
  const ErrorSeen error = firstError(answerTo(pgpivot, packet));
  REQUIRE(error.found);
  CHECK(error.sqlstate == "08P01");
  CHECK(startsWith(error.message, "pgpivot:"));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("a client that stalls halfway through its startup packet gets client_login_timeout",
          "[pg][bad_input]") {
  Pgpivot::Options options;
  options.settings["client_login_timeout"] = "1";
  Pgpivot pgpivot(options);
  pgpivot.start();
  const std::string packet = startupPacket({{"user", kScramUser}, {"database", "appdb"}});
  RawClient client(pgpivot.port());
  REQUIRE(client.connected());
  REQUIRE(client.send(packet.substr(0, packet.size() / 2)));
  std::string seen;
  REQUIRE(readUntilMessage(client, seen, "E", kPatience));
  const ErrorSeen error = firstError(seen);
  CHECK(error.severity == "FATAL");
  CHECK(error.sqlstate == "08P01");
  CHECK(startsWith(error.message, "pgpivot:"));
  CHECK(error.message.find("client_login_timeout") != std::string::npos);
  CHECK(tagsOf(seen) == "E");
  CHECK(client.closedWithin(kPatience));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("a protocol 2.0 startup packet gets an ErrorResponse and a close", "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const std::string seen =
      answerTo(pgpivot, startupPacket({{"user", kScramUser}, {"database", "appdb"}}, 0x00020000));
  REQUIRE(!seen.empty());
  CHECK(seen[0] == 'E');
  CHECK(tagsOf(seen) == "E");
  const ErrorSeen error = firstError(seen);
  REQUIRE(error.found);
  CHECK(error.severity == "FATAL");
  CHECK((error.sqlstate == "0A000" || error.sqlstate == "08P01"));
  CHECK(startsWith(error.message, "pgpivot:"));
  CHECK(error.message.find("2.0") != std::string::npos);
  requireOthersStillServed(pgpivot);
}

TEST_CASE("an SSLRequest is answered N and a startup on the same socket then logs in",
          "[pg][bad_input]") {
  Pgpivot pgpivot(trustOptions());
  pgpivot.start();
  RawClient client(pgpivot.port());
  REQUIRE(client.connected());
  REQUIRE(client.send(int32be(8) + int32be(80877103)));
  CHECK(readBytes(client, 1) == "N");
  const std::string login = rawTrustLogin(client);
  CHECK(tagsOf(login).find('E') == std::string::npos);
  CHECK(endsWithReadyForQuery(login));
  CHECK(firstValue(rawQuery(client, "SELECT 40 + 2")) == "42");

  // libpq's sslmode=prefer does exactly this and goes on in plain text.
  Conn conn = connect(pgpivot.conninfo(kTrustUser, "appdb", "sslmode=prefer"));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(PQsslInUse(conn.get()) == 0);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");
}

TEST_CASE("a GSSENCRequest is answered N and a startup on the same socket then logs in",
          "[pg][bad_input]") {
  Pgpivot pgpivot(trustOptions());
  pgpivot.start();
  RawClient client(pgpivot.port());
  REQUIRE(client.connected());
  REQUIRE(client.send(int32be(8) + int32be(80877104)));
  CHECK(readBytes(client, 1) == "N");
  const std::string login = rawTrustLogin(client);
  CHECK(tagsOf(login).find('E') == std::string::npos);
  CHECK(endsWithReadyForQuery(login));
  CHECK(firstValue(rawQuery(client, "SELECT 40 + 2")) == "42");
}

TEST_CASE("a client asking for an unknown database gets 3D000 from pgpivot", "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const LoginResult login = attemptLogin(pgpivot.conninfo(kScramUser, "nosuchdb"));
  CAPTURE(login.text);
  CHECK(!login.ok);
  CHECK(login.sqlstate == "3D000");
  CHECK(startsWith(login.message, "pgpivot:"));
  CHECK(login.message.find("nosuchdb") != std::string::npos);
  requireOthersStillServed(pgpivot);
}

TEST_CASE("an unknown user gets 28P01", "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const LoginResult login = attemptLogin(pgpivot.conninfo("nosuchuser"));
  CAPTURE(login.text);
  CHECK(!login.ok);
  CHECK(login.sqlstate == "28P01");
  CHECK(startsWith(login.message, "pgpivot:"));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("a wrong password gets 28P01", "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const LoginResult login = attemptLogin(pgpivot.conninfo(kScramUser, "appdb", "password=wrong"));
  CAPTURE(login.text);
  CHECK(!login.ok);
  CHECK(login.sqlstate == "28P01");
  CHECK(startsWith(login.message, "pgpivot:"));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("the client over max_client_conn gets 53300 and the others keep working",
          "[pg][bad_input]") {
  Pgpivot::Options options;
  options.settings["max_client_conn"] = "3";
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::vector<Conn> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect(pgpivot.conninfo()));
    REQUIRE(PQstatus(clients.back().get()) == CONNECTION_OK);
  }
  const LoginResult fourth = attemptLogin(pgpivot.conninfo());
  CAPTURE(fourth.text);
  CHECK(!fourth.ok);
  CHECK(fourth.sqlstate == "53300");
  CHECK(startsWith(fourth.message, "pgpivot:"));
  for (auto& conn : clients) {
    CHECK(scalar(conn.get(), "SELECT 1") == "1");
  }
  // A slot that frees up can be taken again.
  clients.pop_back();
  CHECK(eventually(kPatience, [&] { return attemptLogin(pgpivot.conninfo()).ok; }));
}

TEST_CASE("a database whose server is down gets 08006 with pgpivot's message", "[pg][bad_input]") {
  const auto& pg = pgServer();
  Pgpivot::Options options;
  options.databases["appdb"] =
      "host=" + pg.host + " port=" + std::to_string(pg.port) + " dbname=appdb";
  options.databases["downdb"] =
      "host=127.0.0.1 port=" + std::to_string(freePort()) + " dbname=appdb";
  Pgpivot pgpivot(options);
  pgpivot.start();
  const LoginResult login = attemptLogin(pgpivot.conninfo(kScramUser, "downdb"));
  CAPTURE(login.text);
  CHECK(!login.ok);
  CHECK(login.sqlstate == "08006");
  CHECK(startsWith(login.message, "pgpivot:"));
  requireOthersStillServed(pgpivot);
}

TEST_CASE(
    "a client whose server is killed mid-query gets an error and its next query runs "
    "on a fresh server",
    "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  const std::string victim = scalar(conn.get(), "SELECT pg_backend_pid()");
  REQUIRE(!victim.empty());
  REQUIRE(PQsendQuery(conn.get(), "SELECT pg_sleep(30)") == 1);

  const auto& pg = pgServer();
  Conn direct = connect("host=" + pg.host + " port=" + std::to_string(pg.port) +
                        " dbname=appdb user=" + kTrustUser + " sslmode=disable");
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  REQUIRE(eventually(kPatience, [&] {
    return scalar(direct.get(), "SELECT count(*) FROM pg_stat_activity WHERE pid = " + victim +
                                    " AND state = 'active' AND query LIKE '%pg_sleep%'") == "1";
  }));
  CHECK(scalar(direct.get(), "SELECT pg_terminate_backend(" + victim + ")") == "t");

  const std::vector<std::string> states = drainResults(conn.get(), kPatience);
  CAPTURE(states, errorOf(conn.get()));
  REQUIRE(!states.empty());
  CHECK(states.front() != "timeout");
  CHECK(!states.front().empty());  // an error, not a result
  CHECK(PQstatus(conn.get()) == CONNECTION_OK);

  const std::string fresh = scalar(conn.get(), "SELECT pg_backend_pid()");
  CAPTURE(fresh);
  CHECK(fresh.rfind("ERROR", 0) == std::string::npos);
  CHECK(!fresh.empty());
  CHECK(fresh != victim);
  CHECK(scalar(conn.get(), "SELECT 6 * 7") == "42");
  requireOthersStillServed(pgpivot);
}

TEST_CASE(
    "a client whose idle server is terminated keeps its connection and gets a fresh "
    "server",
    "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  const std::string victim = scalar(conn.get(), "SELECT pg_backend_pid()");
  REQUIRE(!victim.empty());
  Conn direct = connect("host=" + pgServer().host + " port=" + std::to_string(pgServer().port) +
                        " dbname=appdb user=" + kTrustUser + " sslmode=disable");
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  CHECK(scalar(direct.get(), "SELECT pg_terminate_backend(" + victim + ")") == "t");
  REQUIRE(eventually(kPatience, [&] {
    return scalar(direct.get(), "SELECT count(*) FROM pg_stat_activity WHERE pid = " + victim) ==
           "0";
  }));
  // pgpivot may see the end of that server only when this query reaches it: then the query
  // gets pgpivot's 08006, and the connection stays usable either way.
  const std::string first = scalar(conn.get(), "SELECT 1");
  CAPTURE(first);
  CHECK((first == "1" ||
         (startsWith(first, "ERROR 08006:") && first.find("pgpivot:") != std::string::npos)));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  const std::string fresh = scalar(conn.get(), "SELECT pg_backend_pid()");
  CAPTURE(fresh);
  CHECK(fresh.rfind("ERROR", 0) == std::string::npos);
  CHECK(fresh != victim);
  requireOthersStillServed(pgpivot);
}

TEST_CASE("an invalid message after login gets 08P01 and the connection closes",
          "[pg][bad_input]") {
  Pgpivot pgpivot(trustOptions());
  pgpivot.start();
  RawClient client(pgpivot.port());
  REQUIRE(client.connected());
  const std::string login = rawTrustLogin(client);
  REQUIRE(endsWithReadyForQuery(login));
  REQUIRE(client.send(std::string(1, 'Q') + int32be(2)));
  std::string seen;
  REQUIRE(readUntilMessage(client, seen, "E", kPatience));
  const ErrorSeen error = firstError(seen);
  CHECK(error.sqlstate == "08P01");
  CHECK(startsWith(error.message, "pgpivot:"));
  CHECK(client.closedWithin(kPatience));
  requireOthersStillServed(pgpivot);
}

TEST_CASE("an unsupported startup parameter gets 08P01 naming it", "[pg][bad_input]") {
  Pgpivot pgpivot;
  pgpivot.start();
  const ErrorSeen error = firstError(answerTo(
      pgpivot, startupPacket({{"user", kScramUser}, {"database", "appdb"}, {"foo", "bar"}})));
  REQUIRE(error.found);
  CHECK(error.sqlstate == "08P01");
  CHECK(startsWith(error.message, "pgpivot:"));
  CHECK(error.message.find("foo") != std::string::npos);
  requireOthersStillServed(pgpivot);
}

TEST_CASE("ignore_startup_parameters lets a JDBC-style extra_float_digits through",
          "[pg][bad_input]") {
  SECTION("without the setting the parameter is refused by name") {
    Pgpivot pgpivot(trustOptions());
    pgpivot.start();
    const ErrorSeen error = firstError(answerTo(
        pgpivot,
        startupPacket({{"user", kTrustUser}, {"database", "appdb"}, {"extra_float_digits", "2"}})));
    REQUIRE(error.found);
    CHECK(error.sqlstate == "08P01");
    CHECK(error.message.find("extra_float_digits") != std::string::npos);
    requireOthersStillServed(pgpivot);
  }
  SECTION("with extra_float_digits listed the client logs in and queries") {
    Pgpivot::Options options = trustOptions();
    options.settings["ignore_startup_parameters"] = "extra_float_digits";
    Pgpivot pgpivot(options);
    pgpivot.start();
    RawClient client(pgpivot.port());
    REQUIRE(client.connected());
    const std::string login = rawTrustLogin(client, {{"extra_float_digits", "2"}});
    CAPTURE(firstError(login).message);
    CHECK(tagsOf(login).find('E') == std::string::npos);
    CHECK(endsWithReadyForQuery(login));
    CHECK(firstValue(rawQuery(client, "SELECT 40 + 2")) == "42");
    requireOthersStillServed(pgpivot);
  }
}
