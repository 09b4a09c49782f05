// Named prepared statements in transaction mode beyond the basics of
// transaction_pooling_pgtest.cpp: the per-server limit (max_prepared_statements), DEALLOCATE
// and DISCARD ALL sent as SQL, and real clients that prepare (psycopg 3, pgbench).
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

Pgpivot::Options transactionMode(int pool_size, int max_prepared_statements) {
  Pgpivot::Options options;
  options.settings["pool_mode"] = "transaction";
  options.settings["default_pool_size"] = std::to_string(pool_size);
  options.settings["query_wait_timeout"] = "20";
  options.settings["max_prepared_statements"] = std::to_string(max_prepared_statements);
  return options;
}

// Executes prepared statement `name` with text parameters; returns the first value or
// "ERROR <sqlstate>".
std::string execPrepared(PGconn* conn, const std::string& name,
                         const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& param : params) {
    values.push_back(param.c_str());
  }
  Res result(PQexecPrepared(conn, name.c_str(), static_cast<int>(values.size()), values.data(),
                            nullptr, nullptr, 0));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return "ERROR " + sqlstateOf(result.get());
  }
  return PQgetvalue(result.get(), 0, 0);
}

bool prepare(PGconn* conn, const std::string& name, const std::string& sql) {
  Res result(PQprepare(conn, name.c_str(), sql.c_str(), 0, nullptr));
  return PQresultStatus(result.get()) == PGRES_COMMAND_OK;
}

// The command tag of a simple query, or "ERROR <sqlstate>".
std::string command(PGconn* conn, const std::string& sql) {
  Res result(PQexec(conn, sql.c_str()));
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK &&
      PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return "ERROR " + sqlstateOf(result.get());
  }
  return PQcmdStatus(result.get());
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("max_prepared_statements bounds the statements each server connection holds",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(1, 2));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  Conn other = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(other.get()) == CONNECTION_OK);
  for (int k = 0; k < 5; ++k) {
    REQUIRE(
        prepare(conn.get(), "s" + std::to_string(k), "SELECT $1::int * 10 + " + std::to_string(k)));
  }
  REQUIRE(prepare(other.get(), "mine", "SELECT $1::int - 1"));
  // The pool has one server: every statement below runs on it, and it never holds more
  // than two of pgpivot's statements.
  const auto held = [&] {
    return std::stoi(scalar(other.get(),
                            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE "
                            "'pgpivot\\_%'"));
  };
  CHECK(held() <= 2);
  const int order[] = {4, 0, 3, 3, 1, 4, 2, 0, 1, 2, 4, 4, 0, 3, 1};
  int step = 0;
  for (const int k : order) {
    CAPTURE(step, k);
    const std::string x = std::to_string(step);
    CHECK(execPrepared(conn.get(), "s" + std::to_string(k), {x}) == std::to_string(step * 10 + k));
    if (step % 4 == 0) {
      CHECK(execPrepared(other.get(), "mine", {x}) == std::to_string(step - 1));
    }
    CHECK(held() <= 2);
    ++step;
  }
  // Inside one transaction too, where several are used back to back.
  CHECK(command(conn.get(), "BEGIN") == "BEGIN");
  for (int k = 4; k >= 0; --k) {
    CHECK(execPrepared(conn.get(), "s" + std::to_string(k), {"7"}) == std::to_string(70 + k));
  }
  Res described(PQdescribePrepared(conn.get(), "s0"));
  CHECK(PQresultStatus(described.get()) == PGRES_COMMAND_OK);
  CHECK(PQnparams(described.get()) == 1);
  CHECK(command(conn.get(), "COMMIT") == "COMMIT");
  CHECK(held() <= 2);
  CHECK(held() >= 1);
}

TEST_CASE("pipelined batches with an error keep the statement bookkeeping right",
          "[pg][transaction][prepared]") {
  // One statement per server: every execution below closes one and prepares another, and
  // the error skips what pgpivot injected in the rest of its batch.
  Pgpivot pgpivot(transactionMode(1, 1));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  for (int k = 0; k < 3; ++k) {
    REQUIRE(prepare(conn.get(), "s" + std::to_string(k),
                    "SELECT $1::int + " + std::to_string(100 * k)));
  }
  REQUIRE(prepare(conn.get(), "div", "SELECT 10 / $1::int"));
  struct Step {
    std::string name;
    std::string arg;
    std::string want;  // a value, "ERROR <sqlstate>", "ABORTED" or "SYNC"
  };
  const std::vector<Step> steps = {
      {"s0", "1", "1"},       {"div", "0", "ERROR 22012"},
      {"s1", "1", "ABORTED"}, {"s2", "1", "ABORTED"},
      {"", "", "SYNC"},       {"s2", "1", "201"},
      {"s0", "2", "2"},       {"s1", "3", "103"},
      {"", "", "SYNC"},       {"div", "5", "2"},
      {"s1", "4", "104"},     {"div", "0", "ERROR 22012"},
      {"", "", "SYNC"},       {"s1", "5", "105"},
      {"s0", "6", "6"},       {"", "", "SYNC"},
  };
  REQUIRE(PQenterPipelineMode(conn.get()) == 1);
  for (const Step& step : steps) {
    if (step.name.empty()) {
      REQUIRE(PQpipelineSync(conn.get()) == 1);
      continue;
    }
    const char* values[] = {step.arg.c_str()};
    REQUIRE(PQsendQueryPrepared(conn.get(), step.name.c_str(), 1, values, nullptr, nullptr, 0) ==
            1);
  }
  int index = 0;
  for (const Step& step : steps) {
    CAPTURE(index++, step.name, step.arg);
    Res result(PQgetResult(conn.get()));
    REQUIRE(result);
    std::string got;
    switch (PQresultStatus(result.get())) {
      case PGRES_TUPLES_OK:
        got = PQgetvalue(result.get(), 0, 0);
        break;
      case PGRES_PIPELINE_ABORTED:
        got = "ABORTED";
        break;
      case PGRES_PIPELINE_SYNC:
        got = "SYNC";
        break;
      default:
        got = "ERROR " + sqlstateOf(result.get());
    }
    CHECK(got == step.want);
    if (!step.name.empty()) {
      const Res end(PQgetResult(conn.get()));  // the end of this query's results
      CHECK(end.get() == nullptr);
    }
  }
  REQUIRE(PQexitPipelineMode(conn.get()) == 1);
  // Afterwards every statement still runs, and the server holds at most one of them.
  for (int round = 0; round < 2; ++round) {
    for (int k = 2; k >= 0; --k) {
      CHECK(execPrepared(conn.get(), "s" + std::to_string(k), {"7"}) ==
            std::to_string(7 + 100 * k));
    }
  }
  CHECK(scalar(conn.get(),
               "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgpivot\\_%'") == "1");
}

TEST_CASE("in statement mode prepared statements follow each statement to its server",
          "[pg][transaction][prepared]") {
  auto options = transactionMode(2, 2);
  options.settings["pool_mode"] = "statement";
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::vector<Conn> clients;
  for (int c = 0; c < 3; ++c) {
    clients.push_back(connect(pgpivot.conninfo()));
    REQUIRE(PQstatus(clients.back().get()) == CONNECTION_OK);
    for (int k = 0; k < 3; ++k) {
      REQUIRE(prepare(clients.back().get(), "q" + std::to_string(k),
                      "SELECT $1::int * " + std::to_string(c + 2) + " + " + std::to_string(k)));
    }
  }
  for (int round = 0; round < 6; ++round) {
    for (int c = 0; c < 3; ++c) {
      for (int k = (round + c) % 3, n = 0; n < 3; k = (k + 1) % 3, ++n) {
        CAPTURE(round, c, k);
        CHECK(execPrepared(clients[static_cast<std::size_t>(c)].get(), "q" + std::to_string(k),
                           {std::to_string(round)}) == std::to_string(round * (c + 2) + k));
      }
    }
  }
  CHECK(command(clients[0].get(), "DEALLOCATE q1") == "DEALLOCATE");
  CHECK(execPrepared(clients[0].get(), "q1", {"1"}) == "ERROR 26000");
  CHECK(execPrepared(clients[1].get(), "q1", {"1"}) == "4");
}

TEST_CASE("a name in use and a failed Parse get PostgreSQL's answers",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(2, 200));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(prepare(conn.get(), "s1", "SELECT 1"));
  for (const char* again : {"SELECT 2", "SELECT 1"}) {
    CAPTURE(again);
    Res refused(PQprepare(conn.get(), "s1", again, 0, nullptr));
    CHECK(sqlstateOf(refused.get()) == "42P05");
    CHECK_THAT(PQresultErrorField(refused.get(), PG_DIAG_MESSAGE_PRIMARY),
               Catch::Equals("prepared statement \"s1\" already exists"));
    CHECK(execPrepared(conn.get(), "s1") == "1");  // the first one stays
  }
  // A Parse that fails creates nothing: the name stays free.
  Res bad(PQprepare(conn.get(), "s2", "SELEC 1", 0, nullptr));
  CHECK(sqlstateOf(bad.get()) == "42601");
  CHECK(execPrepared(conn.get(), "s2") == "ERROR 26000");
  REQUIRE(prepare(conn.get(), "s2", "SELECT 3"));
  CHECK(execPrepared(conn.get(), "s2") == "3");
  // So does one in an aborted transaction, even of a query the server already has.
  CHECK(command(conn.get(), "BEGIN") == "BEGIN");
  CHECK(command(conn.get(), "SELECT 1/0") == "ERROR 22012");
  Res aborted(PQprepare(conn.get(), "s3", "SELECT 3", 0, nullptr));
  CHECK(sqlstateOf(aborted.get()) == "25P02");
  CHECK(command(conn.get(), "ROLLBACK") == "ROLLBACK");
  CHECK(execPrepared(conn.get(), "s3") == "ERROR 26000");
  REQUIRE(prepare(conn.get(), "s3", "SELECT 4"));
  CHECK(execPrepared(conn.get(), "s3") == "4");
}

TEST_CASE("a Bind larger than the receive buffer runs the client's statement",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(1, 2));  // pkt_buf 32 kB: these Binds are 100 kB
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  CHECK(scalar(a.get(), "SELECT 1") == "1");
  // Same name, different queries, one server: each Bind must run its own client's.
  REQUIRE(prepare(a.get(), "len", "SELECT length($1::text)"));
  REQUIRE(prepare(b.get(), "len", "SELECT length($1::text) * 2"));
  REQUIRE(prepare(a.get(), "other", "SELECT 5"));
  const std::string big(100000, 'x');
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(execPrepared(a.get(), "len", {big}) == "100000");
    CHECK(execPrepared(b.get(), "len", {big}) == "200000");
    CHECK(execPrepared(a.get(), "len", {"abc"}) == "3");
    CHECK(execPrepared(a.get(), "other") == "5");
  }
  // The unnamed statement with a large parameter (PQexecParams) passes as it is.
  const std::vector<const char*> values = {big.c_str()};
  Res unnamed(PQexecParams(a.get(), "SELECT length($1::text) + 1", 1, nullptr, values.data(),
                           nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(unnamed.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(unnamed.get(), 0, 0)) == "100001");
  CHECK(execPrepared(a.get(), "unknown", {big}) == "ERROR 26000");
  // A simple query that large, as the first message of a transaction, too.
  CHECK(scalar(a.get(), "SELECT length('" + big + "')") == "100000");
  Conn c = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
  CHECK(scalar(c.get(), "SELECT length('" + big + "') + 2") == "100002");
  CHECK(PQstatus(a.get()) == CONNECTION_OK);
  CHECK(std::stoi(scalar(a.get(), "SELECT count(*) FROM pg_prepared_statements")) <= 2);
}

TEST_CASE("a named Parse larger than the receive buffer prepares the client's statement",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(1, 2));  // pkt_buf 32 kB: these Parses are 100 kB
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  const std::string big(100000, 'x');
  const std::string long_query = "SELECT length('" + big + "') + $1::int";
  REQUIRE(prepare(a.get(), "long", long_query));
  CHECK(execPrepared(a.get(), "long", {"1"}) == "100001");
  // Two more statements on the one server (limit 2) push it out: it is prepared again
  // from what pgpivot kept, 100 kB injected ahead of the Bind.
  REQUIRE(prepare(b.get(), "s1", "SELECT 1"));
  REQUIRE(prepare(b.get(), "s2", "SELECT 2"));
  CHECK(execPrepared(b.get(), "s1") == "1");
  CHECK(execPrepared(b.get(), "s2") == "2");
  CHECK(execPrepared(a.get(), "long", {"2"}) == "100002");
  // The same name again gets PostgreSQL's 42P05; another name with the same long query
  // shares the server's statement.
  Res again(PQprepare(a.get(), "long", long_query.c_str(), 0, nullptr));
  CHECK(sqlstateOf(again.get()) == "42P05");
  REQUIRE(prepare(b.get(), "long_too", long_query));
  CHECK(execPrepared(b.get(), "long_too", {"3"}) == "100003");
  // Pipelined behind an Execute still on its way to the server, and another client's
  // long statement of the same name.
  REQUIRE(PQenterPipelineMode(b.get()) == 1);
  const char* values[] = {"4"};
  REQUIRE(PQsendQueryPrepared(b.get(), "long_too", 1, values, nullptr, nullptr, 0) == 1);
  const std::string other_query = "SELECT length('" + big + "') * 2 + $1::int";
  REQUIRE(PQsendPrepare(b.get(), "long", other_query.c_str(), 0, nullptr) == 1);
  REQUIRE(PQsendQueryPrepared(b.get(), "long", 1, values, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(b.get()) == 1);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    Res result(PQgetResult(b.get()));
    REQUIRE(result);
    got.push_back(PQresultStatus(result.get()) == PGRES_TUPLES_OK
                      ? std::string(PQgetvalue(result.get(), 0, 0))
                      : std::string(PQresStatus(PQresultStatus(result.get()))));
    const Res end(PQgetResult(b.get()));
    CHECK(end.get() == nullptr);
  }
  Res sync(PQgetResult(b.get()));
  CHECK(PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC);
  CHECK(got == std::vector<std::string>{"100004", "PGRES_COMMAND_OK", "200004"});
  REQUIRE(PQexitPipelineMode(b.get()) == 1);
  CHECK(execPrepared(a.get(), "long", {"5"}) == "100005");
  CHECK(execPrepared(b.get(), "long", {"5"}) == "200005");
  CHECK(PQstatus(a.get()) == CONNECTION_OK);
  CHECK(PQstatus(b.get()) == CONNECTION_OK);
}

TEST_CASE("max_prepared_statements = 0 passes statements through unchanged",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(1, 0));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(prepare(conn.get(), "plain_name", "SELECT $1::int + 1"));
  CHECK(execPrepared(conn.get(), "plain_name", {"1"}) == "2");
  // The server knows it under the client's own name.
  CHECK(scalar(conn.get(),
               "SELECT count(*) FROM pg_prepared_statements WHERE name = 'plain_name'") == "1");
  CHECK(command(conn.get(), "DEALLOCATE plain_name") == "DEALLOCATE");
}

TEST_CASE("a reload of max_prepared_statements to 0 applies to new clients only",
          "[pg][transaction][prepared]") {
  auto options = transactionMode(1, 200);
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn old = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(old.get()) == CONNECTION_OK);
  REQUIRE(prepare(old.get(), "s1", "SELECT $1::int + 1"));
  CHECK(execPrepared(old.get(), "s1", {"1"}) == "2");

  options.settings["max_prepared_statements"] = "0";
  pgpivot.rewriteConfig(options);
  pgpivot.signal(SIGHUP);
  // Once the reload is in, a new client's statement reaches the server under its own name.
  int probes = 0;
  Conn fresh;
  REQUIRE(eventually(std::chrono::seconds(20), [&] {
    fresh = connect(pgpivot.conninfo());
    const std::string name = "probe_" + std::to_string(probes++);
    return PQstatus(fresh.get()) == CONNECTION_OK && prepare(fresh.get(), name, "SELECT 1") &&
           scalar(fresh.get(),
                  "SELECT count(*) FROM pg_prepared_statements WHERE name = '" + name + "'") == "1";
  }));
  // The client from before keeps its statements renamed: old ones run, new ones too, and
  // DEALLOCATE answers as before.
  for (int i = 0; i < 3; ++i) {
    CHECK(execPrepared(old.get(), "s1", {std::to_string(i)}) == std::to_string(i + 1));
  }
  REQUIRE(prepare(old.get(), "s2", "SELECT $1::int * 2"));
  CHECK(execPrepared(old.get(), "s2", {"21"}) == "42");
  CHECK(command(old.get(), "DEALLOCATE s1") == "DEALLOCATE");
  CHECK(execPrepared(old.get(), "s1", {"1"}) == "ERROR 26000");
  CHECK(execPrepared(old.get(), "s2", {"1"}) == "2");
  // The new client's statements pass through, beside the old client's on the one server.
  REQUIRE(prepare(fresh.get(), "plain", "SELECT $1::int + 100"));
  CHECK(execPrepared(fresh.get(), "plain", {"1"}) == "101");
  CHECK(scalar(fresh.get(), "SELECT count(*) FROM pg_prepared_statements WHERE name = 'plain'") ==
        "1");
  CHECK(execPrepared(old.get(), "s2", {"2"}) == "4");
}

TEST_CASE("DEALLOCATE of a statement frees its name, on any server connection",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(2, 200));
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  Conn c = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
  // B holds server X; A prepares on the other one, Y.
  CHECK(command(b.get(), "BEGIN") == "BEGIN");
  const std::string x = scalar(b.get(), "SELECT pg_backend_pid()");
  REQUIRE(prepare(a.get(), "s1", "SELECT pg_backend_pid()"));
  const std::string y = execPrepared(a.get(), "s1");
  REQUIRE(y != x);
  // C holds Y, B lets X go: A's DEALLOCATE runs on X, which never had the statement.
  CHECK(command(c.get(), "BEGIN") == "BEGIN");
  CHECK(scalar(c.get(), "SELECT pg_backend_pid()") == y);
  CHECK(command(b.get(), "COMMIT") == "COMMIT");
  CHECK(command(a.get(), "DEALLOCATE s1") == "DEALLOCATE");
  CHECK(execPrepared(a.get(), "s1") == "ERROR 26000");
  // The name is free: the same name with another query runs the new query.
  REQUIRE(prepare(a.get(), "s1", "SELECT 42"));
  CHECK(execPrepared(a.get(), "s1") == "42");
  CHECK(command(c.get(), "COMMIT") == "COMMIT");
  CHECK(execPrepared(a.get(), "s1") == "42");
  // PREPARE, folded and quoted names, as PostgreSQL reads them.
  REQUIRE(prepare(a.get(), "Mixed", "SELECT 1"));
  REQUIRE(prepare(a.get(), "lower", "SELECT 2"));
  CHECK(command(a.get(), "deallocate prepare \"Mixed\";") == "DEALLOCATE");
  CHECK(command(a.get(), "  DEALLOCATE LOWER") == "DEALLOCATE");
  CHECK(execPrepared(a.get(), "Mixed") == "ERROR 26000");
  CHECK(execPrepared(a.get(), "lower") == "ERROR 26000");
  // A name never prepared gets PostgreSQL's own error, and the session goes on.
  CHECK(command(a.get(), "DEALLOCATE never_prepared") == "ERROR 26000");
  CHECK(execPrepared(a.get(), "s1") == "42");
  // In an aborted transaction it fails as it does on PostgreSQL, and the statement stays.
  CHECK(command(a.get(), "BEGIN") == "BEGIN");
  CHECK(command(a.get(), "SELECT 1/0") == "ERROR 22012");
  CHECK(command(a.get(), "DEALLOCATE s1") == "ERROR 25P02");
  CHECK(command(a.get(), "ROLLBACK") == "ROLLBACK");
  CHECK(execPrepared(a.get(), "s1") == "42");
  // Inside a transaction it works as well.
  CHECK(command(a.get(), "BEGIN") == "BEGIN");
  CHECK(command(a.get(), "DEALLOCATE s1") == "DEALLOCATE");
  CHECK(command(a.get(), "COMMIT") == "COMMIT");
  CHECK(execPrepared(a.get(), "s1") == "ERROR 26000");
}

TEST_CASE("DEALLOCATE among other statements of one simple query works as on PostgreSQL",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(2, 200));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  Conn direct = connect("host=" + pgServer().host + " port=" + std::to_string(pgServer().port) +
                        " dbname=appdb user=" + kTrustUser);
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  // Every result of a multi-statement query: command tags or the first value, then the
  // error's SQLSTATE if one ended it.
  const auto results = [](PGconn* c, const std::string& sql) {
    std::vector<std::string> out;
    REQUIRE(PQsendQuery(c, sql.c_str()) == 1);
    while (PGresult* raw = PQgetResult(c)) {
      Res result(raw);
      switch (PQresultStatus(result.get())) {
        case PGRES_TUPLES_OK:
          out.push_back(PQgetvalue(result.get(), 0, 0));
          break;
        case PGRES_COMMAND_OK:
          out.push_back(PQcmdStatus(result.get()));
          break;
        default:
          out.push_back("ERROR " + sqlstateOf(result.get()));
      }
    }
    return out;
  };
  // The same on pgpivot and on a direct connection, then the same statements left.
  const auto both = [&](const std::string& sql) {
    CAPTURE(sql);
    const auto want = results(direct.get(), sql);
    CHECK(results(conn.get(), sql) == want);
    return want;
  };
  for (PGconn* c : {conn.get(), direct.get()}) {
    REQUIRE(prepare(c, "a", "SELECT 1"));
    REQUIRE(prepare(c, "b", "SELECT 2"));
    REQUIRE(prepare(c, "Mixed", "SELECT 3"));
    REQUIRE(prepare(c, "d", "SELECT 4"));
  }
  CHECK(both("DEALLOCATE a; SELECT 1") == std::vector<std::string>{"DEALLOCATE", "1"});
  CHECK(both("SELECT 'x;DEALLOCATE b' ; deallocate prepare \"Mixed\"; SELECT $q$;$q$") ==
        std::vector<std::string>{"x;DEALLOCATE b", "DEALLOCATE", ";"});
  // A second DEALLOCATE of the same name fails and ends the query, as on PostgreSQL; the
  // first one stays done (DEALLOCATE is not transactional).
  CHECK(both("DEALLOCATE b; DEALLOCATE b; SELECT 5") ==
        std::vector<std::string>{"DEALLOCATE", "ERROR 26000"});
  // After an error the rest is skipped: the statement stays.
  CHECK(both("SELECT 1/0; DEALLOCATE d") == std::vector<std::string>{"ERROR 22012"});
  CHECK(both("/* d */ SELECT 7; -- DEALLOCATE d\nDEALLOCATE d;") ==
        std::vector<std::string>{"7", "DEALLOCATE"});
  for (PGconn* c : {conn.get(), direct.get()}) {
    CAPTURE(c == direct.get());
    CHECK(execPrepared(c, "a") == "ERROR 26000");
    CHECK(execPrepared(c, "b") == "ERROR 26000");
    CHECK(execPrepared(c, "Mixed") == "ERROR 26000");
    CHECK(execPrepared(c, "d") == "ERROR 26000");
    // The names are free again.
    REQUIRE(prepare(c, "a", "SELECT 11"));
    CHECK(execPrepared(c, "a") == "11");
  }
  // The server holds no statement of pgpivot's that the client lost track of: preparing
  // the same queries again works, and DEALLOCATE ALL in a list clears both sides.
  REQUIRE(prepare(conn.get(), "b", "SELECT 2"));
  CHECK(execPrepared(conn.get(), "b") == "2");
  CHECK(results(conn.get(), "SELECT 1; DEALLOCATE ALL") ==
        std::vector<std::string>{"1", "DEALLOCATE ALL"});
  CHECK(execPrepared(conn.get(), "b") == "ERROR 26000");
  CHECK(PQstatus(conn.get()) == CONNECTION_OK);
}

TEST_CASE("with standard_conforming_strings off a DEALLOCATE inside a string stays text",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(2, 200));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(command(conn.get(), "SET escape_string_warning = off") == "SET");
  REQUIRE(command(conn.get(), "SET standard_conforming_strings = off") == "SET");
  REQUIRE(prepare(conn.get(), "x", "SELECT 42"));
  // The backslash escapes the quote, so the DEALLOCATE is inside the string: PostgreSQL
  // runs one statement and deallocates nothing; splitting as if the setting were on would
  // take "DEALLOCATE x;" for a statement of its own and rewrite it.
  REQUIRE(PQsendQuery(conn.get(), "SELECT 'a\\'; DEALLOCATE x; SELECT '") == 1);
  std::vector<std::string> values;
  while (PGresult* raw = PQgetResult(conn.get())) {
    Res result(raw);
    values.push_back(PQresultStatus(result.get()) == PGRES_TUPLES_OK
                         ? std::string(PQgetvalue(result.get(), 0, 0))
                         : "ERROR " + sqlstateOf(result.get()));
  }
  CHECK(values == std::vector<std::string>{"a'; DEALLOCATE x; SELECT "});
  CHECK(execPrepared(conn.get(), "x") == "42");
  CHECK(PQstatus(conn.get()) == CONNECTION_OK);
}

TEST_CASE("DEALLOCATE ALL and DISCARD ALL forget the client's statements and no others",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(1, 200));
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  CHECK(scalar(a.get(), "SELECT 1") == "1");
  REQUIRE(prepare(b.get(), "bq", "SELECT $1::int * 3"));
  CHECK(execPrepared(b.get(), "bq", {"2"}) == "6");
  for (const char* forget_all : {"DEALLOCATE ALL", "DISCARD ALL", "deallocate prepare all"}) {
    CAPTURE(forget_all);
    REQUIRE(prepare(a.get(), "s1", "SELECT 1"));
    REQUIRE(prepare(a.get(), "s2", "SELECT 2"));
    CHECK(execPrepared(a.get(), "s1") == "1");
    CHECK(command(a.get(), forget_all) ==
          (std::string(forget_all) == "DISCARD ALL" ? "DISCARD ALL" : "DEALLOCATE ALL"));
    CHECK(execPrepared(a.get(), "s1") == "ERROR 26000");
    CHECK(execPrepared(a.get(), "s2") == "ERROR 26000");
    // The one server lost B's statement too: pgpivot knows, and prepares it again.
    CHECK(execPrepared(b.get(), "bq", {"5"}) == "15");
    // A's names are free for new queries.
    REQUIRE(prepare(a.get(), "s1", "SELECT 11"));
    CHECK(execPrepared(a.get(), "s1") == "11");
    CHECK(command(a.get(), "DEALLOCATE s1") == "DEALLOCATE");
  }
  // A client with no statements of its own wipes the server's: B's still works.
  Conn c = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
  CHECK(execPrepared(b.get(), "bq", {"1"}) == "3");
  CHECK(command(c.get(), "DEALLOCATE ALL") == "DEALLOCATE ALL");
  CHECK(execPrepared(b.get(), "bq", {"7"}) == "21");
}

TEST_CASE("psycopg 3 prepares through transaction pooling and gets every result right",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(2, 3));  // fewer than the 4 queries the script prepares
  pgpivot.start();
  const std::string log = "/tmp/pgpivot-psycopg-prepared-" + std::to_string(pgpivot.port());
  const std::string run = "timeout 120 /usr/bin/python3 " PGPIVOT_SOURCE_DIR_FOR_TESTS
                          "/tests/pg/psycopg_prepared.py " +
                          std::to_string(pgpivot.port()) + " > " + log + " 2>&1";
  const int status = system(run.c_str());
  const std::string text = readFile(log);
  std::remove(log.c_str());
  INFO(text);
  CHECK(status == 0);
  CHECK_THAT(text, Catch::Contains("checked 616 results, 0 wrong"));
}

TEST_CASE("pgbench -M prepared with a small max_prepared_statements aborts no client",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(transactionMode(8, 3));
  pgpivot.start();
  const auto& pg = pgServer();
  const std::string init = "PGPASSWORD=secret pgbench -i -s 1 -q -h " + pg.host + " -p " +
                           std::to_string(pg.port) + " -U " + kScramUser + " appdb >/dev/null 2>&1";
  REQUIRE(system(init.c_str()) == 0);
  // TPC-B-like uses 7 statements per client, select-only 1: with 3 per server, TPC-B
  // keeps closing and preparing.
  for (const std::string script : {"-S", "-b tpcb-like"}) {
    CAPTURE(script);
    const std::string log = "/tmp/pgpivot-pgbench-small-cache-" + std::to_string(pgpivot.port());
    const std::string run = "PGPASSWORD=secret timeout 120 pgbench -n -M prepared " + script +
                            " -c 8 -j 2 -t 100 -h 127.0.0.1 -p " + std::to_string(pgpivot.port()) +
                            " -U " + kScramUser + " appdb > " + log + " 2>&1";
    const int status = system(run.c_str());
    const std::string text = readFile(log);
    std::remove(log.c_str());
    INFO(text);
    CHECK(status == 0);
    CHECK_THAT(text, Catch::Contains("number of transactions actually processed: 800/800"));
    CHECK_THAT(text, Catch::Contains("number of failed transactions: 0"));
  }
}
