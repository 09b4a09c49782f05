// Authentication end to end: clients to pgpivot (auth_type trust, plain, md5, scram-sha-256
// with plain passwords, md5 hashes and PostgreSQL's own SCRAM secrets in the auth file) and
// pgpivot to PostgreSQL 15 (md5, SCRAM and trust roles, forced users, wrong passwords).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

constexpr auto kPatience = std::chrono::seconds(10);

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// A superuser connection straight to the fixture's PostgreSQL.
Conn directSuperuser() {
  const auto& pg = pgServer();
  Conn conn = connect("host=" + pg.host + " port=" + std::to_string(pg.port) +
                      " dbname=appdb user=" + kTrustUser + " sslmode=disable");
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  return conn;
}

// What PostgreSQL stores for `role`: "SCRAM-SHA-256$4096:..." or "md5...".
std::string storedSecret(const std::string& role) {
  Conn conn = directSuperuser();
  const std::string secret =
      scalar(conn.get(), "SELECT rolpassword FROM pg_authid WHERE rolname = '" + role + "'");
  REQUIRE(!secret.empty());
  REQUIRE(!startsWith(secret, "ERROR"));
  return secret;
}

// The authentication request code (3 cleartext, 5 md5, 10 SASL) pgpivot answers a startup
// packet for `user` with, or -1 when none came. For SASL, `mechanisms` gets the list.
int32_t firstAuthRequest(const Pgpivot& pgpivot, const std::string& user,
                         std::string* mechanisms = nullptr) {
  RawClient client(pgpivot.port());
  REQUIRE(client.connected());
  REQUIRE(client.send(startupPacket({{"user", user}, {"database", "appdb"}})));
  std::string seen;
  readUntilMessage(client, seen, "RE", kPatience);
  for (const auto& message : backendMessages(seen)) {
    if (message.tag != 'R' || message.body.size() < 4) {
      continue;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(message.body.data());
    const auto code = static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                                           (uint32_t{p[2]} << 8) | uint32_t{p[3]});
    if (mechanisms != nullptr) {
      *mechanisms = message.body.substr(4);
    }
    return code;
  }
  return -1;
}

// Logs in with `conninfo` and returns current_user, or the failure for CAPTURE.
std::string currentUserVia(const std::string& conninfo) {
  LoginResult login = attemptLogin(conninfo);
  if (!login.ok) {
    return "login failed: " + login.text;
  }
  return scalar(login.conn.get(), "SELECT current_user");
}

struct CommandOutput {
  int status = -1;
  std::string text;
};

// Runs a shell command line (stderr folded into stdout) and waits for it.
CommandOutput runShell(const std::string& command) {
  CommandOutput out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    out.text.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string psqlCommand(const Pgpivot& pgpivot, const std::string& user,
                        const std::string& password, const std::string& sql) {
  return "PGPASSWORD='" + password + "' PGCONNECT_TIMEOUT=10 PGSSLMODE=disable " +
         "/usr/bin/psql -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " +
         std::to_string(pgpivot.port()) + " -U " + user + " -d appdb -c '" + sql + "'";
}

}  // namespace

// --- client to pgpivot ----------------------------------------------------------------------

TEST_CASE("auth_type trust lets a client in without checking its password", "[pg][auth]") {
  Pgpivot::Options options;
  options.settings["auth_type"] = "trust";
  Pgpivot pgpivot(options);
  pgpivot.start();
  CHECK(firstAuthRequest(pgpivot, kScramUser) == 0);  // AuthenticationOk straight away
  CHECK(currentUserVia(pgpivot.conninfo(kScramUser, "appdb", "password=wrong")) == kScramUser);
  CHECK(currentUserVia(pgpivot.conninfo(kMd5User, "appdb", "password=")) == kMd5User);
}

TEST_CASE("auth_type plain accepts the right cleartext password and refuses a wrong one",
          "[pg][auth]") {
  Pgpivot::Options options;
  options.settings["auth_type"] = "plain";
  Pgpivot pgpivot(options);
  pgpivot.start();
  CHECK(firstAuthRequest(pgpivot, kScramUser) == 3);
  CHECK(currentUserVia(pgpivot.conninfo(kScramUser)) == kScramUser);
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kScramUser, "appdb", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
  CHECK(startsWith(wrong.message, "pgpivot:"));
}

TEST_CASE("auth_type md5 with plain passwords in the auth file logs clients in", "[pg][auth]") {
  Pgpivot::Options options;
  options.settings["auth_type"] = "md5";
  Pgpivot pgpivot(options);
  pgpivot.start();
  CHECK(firstAuthRequest(pgpivot, kMd5User) == 5);
  for (const char* user : {kMd5User, kScramUser, kTrustUser}) {
    CAPTURE(user);
    CHECK(currentUserVia(pgpivot.conninfo(user)) == user);
  }
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kMd5User, "appdb", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
  CHECK(startsWith(wrong.message, "pgpivot:"));
}

TEST_CASE(
    "auth_type md5 with PostgreSQL's md5 hash in the auth file logs the client in and "
    "pgpivot in to PostgreSQL",
    "[pg][auth]") {
  const std::string hash = storedSecret(kMd5User);
  REQUIRE(startsWith(hash, "md5"));
  Pgpivot::Options options;
  options.settings["auth_type"] = "md5";
  options.userlist = {{kMd5User, hash}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  CHECK(firstAuthRequest(pgpivot, kMd5User) == 5);
  CHECK(currentUserVia(pgpivot.conninfo(kMd5User)) == kMd5User);
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kMd5User, "appdb", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
  CHECK(startsWith(wrong.message, "pgpivot:"));
}

TEST_CASE(
    "auth_type scram-sha-256 with plain passwords logs clients in and refuses a wrong "
    "password",
    "[pg][auth]") {
  Pgpivot pgpivot;  // the fixture's default auth_type is scram-sha-256
  pgpivot.start();
  std::string mechanisms;
  CHECK(firstAuthRequest(pgpivot, kScramUser, &mechanisms) == 10);
  CHECK(mechanisms.find("SCRAM-SHA-256") != std::string::npos);
  CHECK(currentUserVia(pgpivot.conninfo(kScramUser)) == kScramUser);
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kScramUser, "appdb", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
  CHECK(startsWith(wrong.message, "pgpivot:"));
}

TEST_CASE(
    "auth_type scram-sha-256 with PostgreSQL's own SCRAM secret logs in to PostgreSQL "
    "with the client's keys",
    "[pg][auth]") {
  const std::string secret = storedSecret(kScramUser);
  REQUIRE(startsWith(secret, "SCRAM-SHA-256$"));
  Pgpivot::Options options;
  options.userlist = {{kScramUser, secret}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  // pgpivot knows no password: only the keys from the client's SCRAM proof can log it in.
  LoginResult first = attemptLogin(pgpivot.conninfo(kScramUser));
  CAPTURE(first.text);
  REQUIRE(first.ok);
  CHECK(scalar(first.conn.get(), "SELECT current_user") == kScramUser);
  // While the first holds its server, a second client needs a new server login.
  LoginResult second = attemptLogin(pgpivot.conninfo(kScramUser));
  CAPTURE(second.text);
  REQUIRE(second.ok);
  CHECK(scalar(second.conn.get(), "SELECT current_user") == kScramUser);
  CHECK(scalar(first.conn.get(), "SELECT pg_backend_pid()") !=
        scalar(second.conn.get(), "SELECT pg_backend_pid()"));
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kScramUser, "appdb", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
  CHECK(startsWith(wrong.message, "pgpivot:"));
}

TEST_CASE("auth_type md5 with a SCRAM secret in the auth file falls back to SCRAM", "[pg][auth]") {
  const std::string secret = storedSecret(kScramUser);
  Pgpivot::Options options;
  options.settings["auth_type"] = "md5";
  options.userlist = {{kScramUser, secret}, {kMd5User, kPassword}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::string mechanisms;
  CHECK(firstAuthRequest(pgpivot, kScramUser, &mechanisms) == 10);
  CHECK(mechanisms.find("SCRAM-SHA-256") != std::string::npos);
  CHECK(firstAuthRequest(pgpivot, kMd5User) == 5);  // a plain password still gets md5
  CHECK(currentUserVia(pgpivot.conninfo(kScramUser)) == kScramUser);
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kScramUser, "appdb", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
}

// --- pgpivot to PostgreSQL -----------------------------------------------------------------

TEST_CASE("pgpivot logs in to PostgreSQL as an md5, a SCRAM and a trust role", "[pg][auth]") {
  const std::string user = GENERATE(as<std::string>{}, kMd5User, kScramUser, kTrustUser);
  CAPTURE(user);
  Pgpivot pgpivot;
  pgpivot.start();
  LoginResult login = attemptLogin(pgpivot.conninfo(user));
  CAPTURE(login.text);
  REQUIRE(login.ok);
  CHECK(scalar(login.conn.get(), "SELECT current_user") == user);
  CHECK(scalar(login.conn.get(), "SELECT current_database()") == "appdb");
  CHECK(scalar(login.conn.get(), "SELECT 40 + 2") == "42");
}

TEST_CASE("a database entry with user and password forces the server login", "[pg][auth]") {
  const auto& pg = pgServer();
  const std::string where = "host=" + pg.host + " port=" + std::to_string(pg.port);
  Pgpivot::Options options;
  options.databases["appdb"] = where + " dbname=appdb";
  options.databases["forced"] = where + " dbname=appdb user=" + kMd5User + " password=" + kPassword;
  Pgpivot pgpivot(options);
  pgpivot.start();
  for (const char* user : {kScramUser, kTrustUser}) {
    CAPTURE(user);
    LoginResult login = attemptLogin(pgpivot.conninfo(user, "forced"));
    CAPTURE(login.text);
    REQUIRE(login.ok);
    CHECK(scalar(login.conn.get(), "SELECT current_user") == kMd5User);
    CHECK(scalar(login.conn.get(), "SELECT session_user") == kMd5User);
    CHECK(scalar(login.conn.get(), "SELECT current_database()") == "appdb");
  }
  // The client still has to prove who it is to pgpivot.
  const LoginResult wrong = attemptLogin(pgpivot.conninfo(kScramUser, "forced", "password=wrong"));
  CAPTURE(wrong.text);
  CHECK(!wrong.ok);
  CHECK(wrong.sqlstate == "28P01");
}

TEST_CASE(
    "a wrong server password in the auth file surfaces PostgreSQL's 28P01 as a pgpivot "
    "server login error",
    "[pg][auth]") {
  const std::string user = GENERATE(as<std::string>{}, kScramUser, kMd5User);
  CAPTURE(user);
  Pgpivot::Options options;
  options.settings["auth_type"] = "trust";
  options.userlist = {{kScramUser, "wrong"}, {kMd5User, "wrong"}, {kTrustUser, kPassword}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  const LoginResult login = attemptLogin(pgpivot.conninfo(user));
  CAPTURE(login.text);
  CHECK(!login.ok);
  CHECK(login.sqlstate == "28P01");
  CHECK(startsWith(login.message, "pgpivot: server login failed"));
  // Other users of the same pgpivot are not affected.
  CHECK(currentUserVia(pgpivot.conninfo(kTrustUser)) == kTrustUser);
}

TEST_CASE("psql logs in through pgpivot with PGPASSWORD and runs a query", "[pg][auth]") {
  Pgpivot pgpivot;
  pgpivot.start();
  for (const char* user : {kScramUser, kMd5User}) {
    CAPTURE(user);
    const CommandOutput ok =
        runShell(psqlCommand(pgpivot, user, kPassword, "SELECT current_user, 40 + 2"));
    CAPTURE(ok.text);
    CHECK(ok.status == 0);
    CHECK(ok.text == std::string(user) + "|42\n");
  }
  const CommandOutput refused = runShell(psqlCommand(pgpivot, kScramUser, "wrong", "SELECT 1"));
  CAPTURE(refused.text);
  CHECK(refused.status == 2);  // psql: connection to the server failed
  CHECK(refused.text.find("pgpivot: password authentication failed") != std::string::npos);
}

TEST_CASE("auth_query looks up users missing from the auth file in PostgreSQL", "[pg][auth]") {
  Pgpivot::Options options;
  options.settings["auth_type"] = "scram-sha-256";
  options.settings["auth_user"] = kTrustUser;   // runs auth_query (default: pg_shadow)
  options.userlist = {{kTrustUser, "unused"}};  // nobody else is in the file
  Pgpivot pgpivot(options);
  pgpivot.start();
  // A SCRAM user: pgpivot verifies the client against PostgreSQL's own secret, then logs
  // in to PostgreSQL with the keys from the client's proof.
  Conn scram = connect(pgpivot.conninfo(kScramUser));
  REQUIRE(PQstatus(scram.get()) == CONNECTION_OK);
  CHECK(scalar(scram.get(), "SELECT current_user") == kScramUser);
  Conn wrong = connect("host=127.0.0.1 port=" + std::to_string(pgpivot.port()) +
                       " dbname=appdb user=" + kScramUser + " password=nope sslmode=disable");
  CHECK(PQstatus(wrong.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(wrong.get()), Catch::Contains("password authentication failed"));
  Conn nobody = connect("host=127.0.0.1 port=" + std::to_string(pgpivot.port()) +
                        " dbname=appdb user=no_such_role password=x sslmode=disable");
  CHECK(PQstatus(nobody.get()) == CONNECTION_BAD);
}

TEST_CASE("auth_query with md5 secrets logs md5 users in", "[pg][auth]") {
  Pgpivot::Options options;
  options.settings["auth_type"] = "md5";
  options.settings["auth_user"] = kTrustUser;
  options.userlist = {{kTrustUser, "unused"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn md5 = connect(pgpivot.conninfo(kMd5User));
  REQUIRE(PQstatus(md5.get()) == CONNECTION_OK);
  CHECK(scalar(md5.get(), "SELECT current_user") == kMd5User);
}
