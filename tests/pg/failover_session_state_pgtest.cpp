// Session-mode clients of a cluster database that hold server state which cannot move to
// another server (temp tables, session-level advisory locks, LISTEN, WITH HOLD cursors) are
// ended with a clear error when their server is lost to a failover or a crash-restart;
// clients without such state move on without noticing. A crash-restart of the primary is
// told as what it is, not as a failover, and is not counted as a failover error.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster_fixture.hpp"
#include "support/console_cluster.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

std::string serverPort(PGconn* conn) {
  return scalar(conn, "SELECT inet_server_port()");
}

// What a statement run on `conn` ended with: the SQLSTATE and primary message of its
// error, or "" for both when it succeeded.
struct Outcome {
  std::string sqlstate;
  std::string message;
};
Outcome run(PGconn* conn, const std::string& sql) {
  Res result(PQexec(conn, sql.c_str()));
  const auto status = PQresultStatus(result.get());
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
    return {};
  }
  const char* primary = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
  return {sqlstateOf(result.get()),
          primary != nullptr ? primary : PQresultErrorMessage(result.get())};
}

// What a client whose session pgpivot ended is told at its next statement: libpq's error
// text in verbose form ("FATAL:  08006: pgpivot: ..."). The FATAL may be followed by
// libpq's own "server closed the connection unexpectedly", which then is the result.
std::string endedWith(PGconn* conn, const std::string& sql) {
  PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
  Res result(PQexec(conn, sql.c_str()));
  return PQerrorMessage(conn);
}

// pgpivot in session mode.
const std::map<std::string, std::string> kSessionMode{{"pool_mode", "session"}};

// One value of a Prometheus scrape of `port` ("name{labels}"); -1 when missing.
double metric(int port, const std::string& key) {
  RawClient http(port);
  REQUIRE(http.connected());
  http.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const std::string response = http.readAll(std::chrono::seconds(5));
  REQUIRE_THAT(response, Catch::StartsWith("HTTP/1.1 200"));
  std::istringstream lines(response);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(key + " ", 0) == 0) {
      return std::stod(line.substr(key.size() + 1));
    }
  }
  return -1;
}

}  // namespace

TEST_CASE(
    "SWITCHOVER in session mode ends the sessions holding temp tables or advisory locks or "
    "LISTEN or a WITH HOLD cursor with an error and moves the others without one",
    "[pg][failover][session_state]") {
  ConsoleCluster env("events-session-state", OnCluster(), kSessionMode);
  const std::string primary = std::to_string(env.cluster.primaryPort());
  const std::string standby = std::to_string(env.cluster.standbyPort());

  // One client per kind of state, each created the way applications do.
  struct Pinned {
    std::string kind;  // as the error names it
    std::string sql;
    Conn conn;
    bool extended = false;  // sent with the extended protocol (Parse, Bind, Execute)
  };
  std::vector<Pinned> pinned;
  pinned.push_back({"temp tables", "CREATE TEMP TABLE scratch (a int)", nullptr});
  pinned.push_back({"advisory locks", "SELECT pg_advisory_lock(4242)", nullptr});
  pinned.push_back({"LISTEN", "LISTEN jobs", nullptr});
  pinned.push_back({"WITH HOLD cursors", "DECLARE held CURSOR WITH HOLD FOR SELECT 1", nullptr});
  pinned.push_back({"advisory locks", "SELECT pg_try_advisory_lock($1::bigint)", nullptr, true});
  for (Pinned& p : pinned) {
    p.conn = connect(env.pgpivot.conninfo());
    REQUIRE(PQstatus(p.conn.get()) == CONNECTION_OK);
    REQUIRE(
        eventually(std::chrono::seconds(10), [&] { return serverPort(p.conn.get()) == primary; }));
    CAPTURE(p.sql);
    if (p.extended) {
      const char* key = "4343";
      Res result(PQexecParams(p.conn.get(), p.sql.c_str(), 1, nullptr, &key, nullptr, nullptr, 0));
      REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
      REQUIRE(std::string(PQgetvalue(result.get(), 0, 0)) == "t");
    } else {
      REQUIRE(run(p.conn.get(), p.sql).sqlstate.empty());
    }
  }
  // Same pool, nothing held that cannot move: what only looks like it, transaction-level
  // locks, and state that was cleared again.
  Conn plain = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(plain.get()) == CONNECTION_OK);
  REQUIRE(serverPort(plain.get()) == primary);
  for (const char* sql : {"SELECT 'CREATE TEMP TABLE x (a int)' /* pg_advisory_lock(1) */",
                          "SELECT pg_advisory_xact_lock(1)", "LISTEN jobs; UNLISTEN *",
                          "SELECT pg_advisory_lock(7); SELECT pg_advisory_unlock_all()",
                          "CREATE TEMP TABLE gone (a int) ON COMMIT DROP", "SELECT $$ LISTEN x $$",
                          "SET application_name = 'plain_mover'"}) {
    CAPTURE(sql);
    REQUIRE(run(plain.get(), sql).sqlstate.empty());
  }

  // The answer comes once the switchover has ended.
  const std::string answer = env.switchover();
  INFO("last SWITCHOVER answer: " << answer << "\nevents:\n"
                                  << env.eventLog() << "\nlog:\n"
                                  << env.pgpivot.logText());
  REQUIRE(answer.empty());

  for (Pinned& p : pinned) {
    CAPTURE(p.kind);
    CHECK_THAT(endedWith(p.conn.get(), "SELECT 1"),
               Catch::Contains("FATAL:  08006: pgpivot: failover: this session held " + p.kind +
                               " on the old primary, which cannot be moved; reconnect\n"));
    CHECK(PQstatus(p.conn.get()) == CONNECTION_BAD);
  }
  // The plain session's first statement after the switchover runs on the new primary,
  // with its settings, and no error.
  CHECK(serverPort(plain.get()) == standby);
  CHECK(PQstatus(plain.get()) == CONNECTION_OK);
  CHECK(scalar(plain.get(), "SHOW application_name") == "plain_mover");
  CHECK(scalar(plain.get(), "SELECT pg_is_in_recovery()") == "f");
  // Reconnecting, as the error says, works.
  Conn again = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(again.get()) == CONNECTION_OK);
  CHECK(run(again.get(), "CREATE TEMP TABLE scratch (a int)").sqlstate.empty());
  CHECK(serverPort(again.get()) == standby);
}

TEST_CASE(
    "a crash-restart of the primary's PostgreSQL is told as one, not as a failover, and is "
    "not counted as a failover error",
    "[pg][failover][session_state]") {
  const int metrics_port = freePort();
  ConsoleCluster env("events-crash-restart", OnCluster().withMode("follow"),
                     {{"pool_mode", "session"}, {"metrics_port", std::to_string(metrics_port)}});
  const std::string primary = std::to_string(env.cluster.primaryPort());

  Conn running = connect(env.pgpivot.conninfo());  // a statement in flight
  Conn in_tx = connect(env.pgpivot.conninfo());    // idle inside a transaction
  Conn temp = connect(env.pgpivot.conninfo());     // holds a temp table
  for (PGconn* conn : {running.get(), in_tx.get(), temp.get()}) {
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    REQUIRE(eventually(std::chrono::seconds(10), [&] { return serverPort(conn) == primary; }));
  }
  REQUIRE(run(in_tx.get(), "CREATE TABLE crashed (id int)").sqlstate.empty());
  REQUIRE(run(in_tx.get(), "BEGIN").sqlstate.empty());
  REQUIRE(run(in_tx.get(), "INSERT INTO crashed VALUES (1)").sqlstate.empty());
  REQUIRE(run(temp.get(), "CREATE TEMP TABLE scratch (a int)").sqlstate.empty());
  const double errors_before = metric(metrics_port, "pgpivot_client_failover_errors_total");
  REQUIRE(errors_before >= 0);
  REQUIRE(PQsendQuery(running.get(), "SELECT pg_sleep(60)") == 1);
  // The statement has reached its backend before the crash.
  const std::string direct_info =
      "host=127.0.0.1 port=" + primary + " dbname=postgres user=" + kTrustUser;
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    Conn direct = connect(direct_info);
    return PQstatus(direct.get()) == CONNECTION_OK &&
           scalar(direct.get(),
                  "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' "
                  "AND state = 'active'") == "1";
  }));

  // kill -9 of a backend of another connection: the postmaster ends every backend
  // (57P02), runs crash recovery and takes connections again; no node changes role.
  Conn victim = connect(direct_info);
  REQUIRE(PQstatus(victim.get()) == CONNECTION_OK);
  const int pid = std::atoi(scalar(victim.get(), "SELECT pg_backend_pid()").c_str());
  REQUIRE(pid > 0);
  REQUIRE(::kill(pid, SIGKILL) == 0);

  // In flight: the outcome of an autocommit statement is unknown (40003).
  Res in_flight(PQgetResult(running.get()));
  CHECK(PQresultStatus(in_flight.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(in_flight.get()) == "40003");
  const char* flight_message = PQresultErrorField(in_flight.get(), PG_DIAG_MESSAGE_PRIMARY);
  CHECK(std::string(flight_message != nullptr ? flight_message : "") ==
        "pgpivot: server crash-restart: PostgreSQL on the primary restarted after a backend "
        "crashed while a statement was running; it may or may not have committed");
  while (PGresult* rest = PQgetResult(running.get())) {
    PQclear(rest);
  }
  // Recovered: every backend of before the crash is gone (so is their server connection).
  REQUIRE(eventually(std::chrono::seconds(30), [&] {
    Conn direct = connect(direct_info);
    return PQstatus(direct.get()) == CONNECTION_OK;
  }));
  INFO("events:\n" << env.eventLog() << "\nlog:\n" << env.pgpivot.logText());
  // Idle in a transaction: told at its next statement that it did not commit (40001).
  const Outcome aborted = run(in_tx.get(), "INSERT INTO crashed VALUES (2)");
  CHECK(aborted.sqlstate == "40001");
  CHECK(aborted.message ==
        "pgpivot: server crash-restart: the transaction was aborted because PostgreSQL on the "
        "primary restarted after a backend crashed; it did not commit and may be retried");
  // Its temp table is gone with the restart: ended, with what happened.
  CHECK_THAT(endedWith(temp.get(), "SELECT 1"),
             Catch::Contains("FATAL:  08006: pgpivot: server crash-restart: this session held "
                             "temp tables on the primary, which its restart discarded; "
                             "reconnect\n"));
  CHECK(PQstatus(temp.get()) == CONNECTION_BAD);
  // The others go on with the same primary once it has recovered.
  CHECK(eventually(std::chrono::seconds(30), [&] { return serverPort(running.get()) == primary; }));
  CHECK(eventually(std::chrono::seconds(30), [&] { return serverPort(in_tx.get()) == primary; }));
  CHECK(PQstatus(running.get()) == CONNECTION_OK);
  // None of it was a failover.
  CHECK(metric(metrics_port, "pgpivot_client_failover_errors_total") == errors_before);
  CHECK(clusterColumn(env.admin.get(), "primary") == nodeName(env.cluster.primaryPort()));
}

TEST_CASE(
    "a Query whose body arrives in two pieces is scanned whole: the temp table it creates ends "
    "the session at a switchover",
    "[pg][failover][session_state]") {
  // auth_type = trust: a raw login without a password exchange.
  ConsoleCluster env("events-split-query", OnCluster(),
                     {{"pool_mode", "session"}, {"auth_type", "trust"}});
  constexpr auto kPatience = std::chrono::seconds(10);

  RawClient client(env.pgpivot.port());
  REQUIRE(client.connected());
  REQUIRE(client.send(startupPacket({{"user", kTrustUser}, {"database", "appdb"}})));
  std::string seen;
  REQUIRE(readUntilMessage(client, seen, "ZE", kPatience));
  REQUIRE_FALSE(firstError(seen).found);
  // The keyword is cut in two: the first piece alone holds neither half of the statement
  // that matters, and the relay must wait for the rest before it decides.
  const std::string sql = "SELECT 1; CREATE TE" + std::string("MP TABLE split_t (a int)");
  std::string message(1, 'Q');
  message += int32be(static_cast<int32_t>(sql.size() + 5));
  message += sql;
  message.push_back('\0');
  const std::size_t cut = 5 + sql.find("TE") + 2;
  REQUIRE(client.send(message.substr(0, cut)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  REQUIRE(client.send(message.substr(cut)));
  seen.clear();
  REQUIRE(readUntilMessage(client, seen, "Z", kPatience));
  INFO("answer: " << seen << "\nlog:\n" << env.pgpivot.logText());
  REQUIRE_FALSE(firstError(seen).found);
  // It was run: the temp table exists on the primary.
  Conn direct = connect("host=127.0.0.1 port=" + std::to_string(env.cluster.primaryPort()) +
                        " dbname=appdb user=" + kTrustUser);
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  REQUIRE(scalar(direct.get(),
                 "SELECT count(*) FROM pg_class WHERE relname = 'split_t' AND "
                 "relpersistence = 't'") == "1");

  REQUIRE(env.switchover().empty());
  // Told without asking: the error is sent when the server is lost, then the connection
  // closes.
  seen.clear();
  readUntilMessage(client, seen, "E", kPatience);
  const ErrorSeen error = firstError(seen);
  CHECK(error.severity == "FATAL");
  CHECK(error.sqlstate == "08006");
  CHECK(error.message ==
        "pgpivot: failover: this session held temp tables on the old primary, which cannot be "
        "moved; reconnect");
  CHECK(client.closedWithin(kPatience));
}

TEST_CASE("SWITCHOVER in session mode moves a client's prepared statements with it",
          "[pg][failover][session_state]") {
  ConsoleCluster env("events-session-prepared", OnCluster(), kSessionMode);
  const std::string primary = std::to_string(env.cluster.primaryPort());
  const std::string standby = std::to_string(env.cluster.standbyPort());

  Conn client = connect(env.pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  REQUIRE(
      eventually(std::chrono::seconds(10), [&] { return serverPort(client.get()) == primary; }));
  // As drivers prepare: by protocol (libpq's PQprepare, JDBC, psycopg after 5 runs).
  const auto execute = [&](const char* name, const char* param) {
    Res result(PQexecPrepared(client.get(), name, 1, &param, nullptr, nullptr, 0));
    return PQresultStatus(result.get()) == PGRES_TUPLES_OK
               ? std::string(PQgetvalue(result.get(), 0, 0))
               : "ERROR " + sqlstateOf(result.get());
  };
  {
    Res one(PQprepare(client.get(), "plus_one", "SELECT $1::int + 1", 0, nullptr));
    REQUIRE(PQresultStatus(one.get()) == PGRES_COMMAND_OK);
    Res where(PQprepare(client.get(), "where_am_i",
                        "SELECT $1::text || ':' || pg_is_in_recovery()::text", 0, nullptr));
    REQUIRE(PQresultStatus(where.get()) == PGRES_COMMAND_OK);
    Res gone(PQprepare(client.get(), "gone", "SELECT 0", 0, nullptr));
    REQUIRE(PQresultStatus(gone.get()) == PGRES_COMMAND_OK);
  }
  CHECK(execute("plus_one", "41") == "42");
  CHECK(execute("where_am_i", "before") == "before:false");
  REQUIRE(run(client.get(), "DEALLOCATE gone").sqlstate.empty());

  const std::string answer = env.switchover();
  INFO("last SWITCHOVER answer: " << answer << "\nevents:\n"
                                  << env.eventLog() << "\nlog:\n"
                                  << env.pgpivot.logText());
  REQUIRE(answer.empty());

  // The statements run on the new primary, which never saw their Parse from the client;
  // the one deallocated before stays gone, as on one server.
  CHECK(execute("where_am_i", "after") == "after:false");
  CHECK(serverPort(client.get()) == standby);
  CHECK(execute("plus_one", "1") == "2");
  CHECK(execute("gone", "1") == "ERROR 26000");
  Res described(PQdescribePrepared(client.get(), "plus_one"));
  CHECK(PQresultStatus(described.get()) == PGRES_COMMAND_OK);
  CHECK(PQnparams(described.get()) == 1);
  CHECK(PQstatus(client.get()) == CONNECTION_OK);
}

TEST_CASE(
    "SWITCHOVER in session mode moves sessions whose state was rolled back or only looked like "
    "state, and ends those whose state a commit or a lexer's reading kept",
    "[pg][failover][session_state]") {
  ConsoleCluster env("events-session-state-exact", OnCluster(), kSessionMode);
  const std::string primary = std::to_string(env.cluster.primaryPort());
  const std::string standby = std::to_string(env.cluster.standbyPort());

  struct Client {
    std::string name;
    std::vector<std::string> sqls;  // run in order, one Query each
    std::string held;               // what the error names; "" when the session moves
    Conn conn;
  };
  std::vector<Client> clients;
  clients.push_back(
      {"rolled back", {"BEGIN", "CREATE TEMP TABLE rolled (a int)", "ROLLBACK"}, "", nullptr});
  clients.push_back({"rolled back in one query",
                     {"BEGIN; LISTEN jobs; DECLARE c CURSOR WITH HOLD FOR SELECT 1; ROLLBACK"},
                     "",
                     nullptr});
  // The COMMIT of a failed block rolls it back.
  clients.push_back({"failed",
                     {"BEGIN", "CREATE TEMP TABLE failed (a int)", "SELECT 1/0", "COMMIT"},
                     "",
                     nullptr});
  // standard_conforming_strings off: the backslash escapes the quote, LISTEN is in the string.
  clients.push_back({"backslash",
                     {"SET standard_conforming_strings = off", "SELECT 'a\\'; LISTEN jobs; --'"},
                     "",
                     nullptr});
  // A session-level advisory lock outlives the rollback of its block.
  clients.push_back(
      {"lock", {"BEGIN", "SELECT pg_advisory_lock(77)", "ROLLBACK"}, "advisory locks", nullptr});
  clients.push_back(
      {"committed", {"BEGIN", "CREATE TEMP TABLE kept (a int)", "COMMIT"}, "temp tables", nullptr});
  // The -- comment ends at the \r: LISTEN runs.
  clients.push_back({"carriage return", {"SELECT 1 --c\r; LISTEN jobs"}, "LISTEN", nullptr});
  for (Client& c : clients) {
    CAPTURE(c.name);
    c.conn = connect(env.pgpivot.conninfo());
    REQUIRE(PQstatus(c.conn.get()) == CONNECTION_OK);
    REQUIRE(
        eventually(std::chrono::seconds(10), [&] { return serverPort(c.conn.get()) == primary; }));
    for (const std::string& sql : c.sqls) {
      CAPTURE(sql);
      const Outcome outcome = run(c.conn.get(), sql);
      CHECK(outcome.sqlstate == (sql == "SELECT 1/0" ? "22012" : ""));
    }
  }
  // PostgreSQL agrees about what exists.
  for (const Client& c : clients) {
    CAPTURE(c.name);
    const std::string temps = scalar(c.conn.get(),
                                     "SELECT count(*) FROM pg_class WHERE relnamespace = "
                                     "pg_my_temp_schema() AND relkind = 'r'");
    const std::string listens =
        scalar(c.conn.get(), "SELECT count(*) FROM pg_listening_channels()");
    const std::string cursors =
        scalar(c.conn.get(), "SELECT count(*) FROM pg_cursors WHERE is_holdable");
    const std::string locks = scalar(
        c.conn.get(),
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()");
    CHECK(temps == (c.held == "temp tables" ? "1" : "0"));
    CHECK(listens == (c.held == "LISTEN" ? "1" : "0"));
    CHECK(cursors == "0");
    CHECK(locks == (c.held == "advisory locks" ? "1" : "0"));
  }

  const std::string answer = env.switchover();
  INFO("last SWITCHOVER answer: " << answer << "\nevents:\n"
                                  << env.eventLog() << "\nlog:\n"
                                  << env.pgpivot.logText());
  REQUIRE(answer.empty());
  for (Client& c : clients) {
    CAPTURE(c.name);
    if (c.held.empty()) {
      CHECK(serverPort(c.conn.get()) == standby);
      CHECK(PQstatus(c.conn.get()) == CONNECTION_OK);
    } else {
      CHECK_THAT(endedWith(c.conn.get(), "SELECT 1"),
                 Catch::Contains("FATAL:  08006: pgpivot: failover: this session held " + c.held +
                                 " on the old primary, which cannot be moved; reconnect\n"));
      CHECK(PQstatus(c.conn.get()) == CONNECTION_BAD);
    }
  }
}
