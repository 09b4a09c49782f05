// Transaction and statement pooling: a server connection serves a client only for the
// length of a transaction (or statement) and then goes back to the pool.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

Pgpivot::Options modeOptions(const std::string& mode, int pool_size) {
  Pgpivot::Options options;
  options.settings["pool_mode"] = mode;
  options.settings["default_pool_size"] = std::to_string(pool_size);
  options.settings["query_wait_timeout"] = "20";
  return options;
}

}  // namespace

TEST_CASE("in transaction mode two clients share one server connection", "[pg][transaction]") {
  Pgpivot pgpivot(modeOptions("transaction", 1));
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  const std::string pid_a = scalar(a.get(), "SELECT pg_backend_pid()");
  const std::string pid_b = scalar(b.get(), "SELECT pg_backend_pid()");
  CHECK(pid_a == pid_b);
  for (int i = 0; i < 20; ++i) {
    CHECK(scalar(a.get(), "SELECT " + std::to_string(i)) == std::to_string(i));
    CHECK(scalar(b.get(), "SELECT " + std::to_string(i * 2)) == std::to_string(i * 2));
  }
}

TEST_CASE("the first client to log in gives its server back before its first query",
          "[pg][transaction]") {
  for (const std::string mode : {"transaction", "statement"}) {
    CAPTURE(mode);
    // A fresh pgpivot has no welcome cached: the first login needs the pool's only server.
    auto options = modeOptions(mode, 1);
    options.settings["query_wait_timeout"] = "3";
    Pgpivot pgpivot(options);
    pgpivot.start();
    Conn first = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(first.get()) == CONNECTION_OK);
    // The first client stays idle; others must get the server meanwhile.
    Conn second = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(second.get()) == CONNECTION_OK);
    CHECK(scalar(second.get(), "SELECT 2") == "2");
    Conn third = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(third.get()) == CONNECTION_OK);
    CHECK(scalar(third.get(), "SELECT 3") == "3");
    CHECK(scalar(first.get(), "SELECT 1") == "1");
    CHECK(scalar(second.get(), "SELECT pg_backend_pid()") ==
          scalar(first.get(), "SELECT pg_backend_pid()"));
  }
}

TEST_CASE("in transaction mode a transaction keeps its server until it ends", "[pg][transaction]") {
  Pgpivot pgpivot(modeOptions("transaction", 2));
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  CHECK(scalar(a.get(), "BEGIN").empty());
  const std::string pid_in_tx = scalar(a.get(), "SELECT pg_backend_pid()");
  CHECK(scalar(a.get(), "CREATE TEMP TABLE tx_scoped (x int) ON COMMIT DROP").empty());
  // Another client's statements run on the other server meanwhile.
  CHECK(scalar(b.get(), "SELECT pg_backend_pid()") != pid_in_tx);
  CHECK(scalar(a.get(), "INSERT INTO tx_scoped VALUES (1)").empty());
  CHECK(scalar(a.get(), "SELECT pg_backend_pid()") == pid_in_tx);
  CHECK(scalar(a.get(), "SELECT count(*) FROM tx_scoped") == "1");
  CHECK(PQtransactionStatus(a.get()) == PQTRANS_INTRANS);
  CHECK(scalar(a.get(), "COMMIT").empty());
  CHECK(PQtransactionStatus(a.get()) == PQTRANS_IDLE);
}

TEST_CASE("interleaved clients over a pool of 2 keep their own SET values", "[pg][transaction]") {
  Pgpivot pgpivot(modeOptions("transaction", 2));
  pgpivot.start();
  std::vector<Conn> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect(
        pgpivot.conninfo(kScramUser, "appdb", "application_name=client" + std::to_string(i))));
    REQUIRE(PQstatus(clients.back().get()) == CONNECTION_OK);
  }
  const char* zones[] = {"UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York"};
  for (int i = 0; i < 4; ++i) {
    CHECK(scalar(clients[static_cast<std::size_t>(i)].get(),
                 std::string("SET TimeZone = '") + zones[i] + "'")
              .empty());
  }
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 4; ++i) {
      CAPTURE(round, i);
      PGconn* conn = clients[static_cast<std::size_t>(i)].get();
      CHECK(scalar(conn, "SHOW TimeZone") == zones[i]);
      CHECK(scalar(conn, "SHOW application_name") == "client" + std::to_string(i));
    }
  }
  // A client that never set TimeZone sees the server default, not another client's SET.
  Conn fresh = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
  const std::string default_zone = PQparameterStatus(fresh.get(), "TimeZone");
  for (int round = 0; round < 4; ++round) {
    CHECK(scalar(fresh.get(), "SHOW TimeZone") == default_zone);
    CHECK(scalar(clients[static_cast<std::size_t>(round)].get(), "SELECT 1") == "1");
  }
}

TEST_CASE(
    "a client's SETs are applied on a server another client left with "
    "standard_conforming_strings off",
    "[pg][transaction]") {
  Pgpivot pgpivot(modeOptions("transaction", 1));
  pgpivot.start();
  Conn legacy = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(legacy.get()) == CONNECTION_OK);
  CHECK(scalar(legacy.get(), "SET standard_conforming_strings = off").empty());
  // Its SETs for this client are read with backslashes as escapes: the name must still
  // arrive as written.
  Conn named = connect(pgpivot.conninfo(kScramUser, "appdb", "application_name='b\\\\\\'x'"));
  REQUIRE(PQstatus(named.get()) == CONNECTION_OK);
  CHECK(scalar(named.get(), "SHOW application_name") == "b\\'x");
  CHECK(scalar(named.get(), "SHOW standard_conforming_strings") == "on");
  CHECK(scalar(legacy.get(), "SHOW standard_conforming_strings") == "off");
  CHECK(scalar(named.get(), "SHOW application_name") == "b\\'x");
}

TEST_CASE("in statement mode a transaction block is refused", "[pg][transaction]") {
  Pgpivot pgpivot(modeOptions("statement", 2));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 7") == "7");
  // PgBouncer's answer: a FATAL error, and the client is disconnected.
  const std::string result = scalar(conn.get(), "BEGIN");
  CHECK_THAT(result, Catch::StartsWith("ERROR"));
  CHECK_THAT(errorOf(conn.get()),
             Catch::Contains("pgpivot: transaction blocks not allowed in statement pooling mode"));
  CHECK(PQstatus(conn.get()) == CONNECTION_BAD);
  // Other clients are unaffected.
  Conn other = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(other.get()) == CONNECTION_OK);
  CHECK(scalar(other.get(), "SELECT 8") == "8");
}

TEST_CASE("COPY works in transaction mode and frees the server afterwards", "[pg][transaction]") {
  Pgpivot pgpivot(modeOptions("transaction", 1));
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  CHECK(scalar(a.get(), "CREATE TABLE IF NOT EXISTS tx_copy (x int)").empty());
  CHECK(scalar(a.get(), "TRUNCATE tx_copy").empty());
  Res copy(PQexec(a.get(), "COPY tx_copy FROM STDIN"));
  REQUIRE(PQresultStatus(copy.get()) == PGRES_COPY_IN);
  std::string rows;
  for (int i = 1; i <= 1000; ++i) {
    rows += std::to_string(i) + "\n";
  }
  REQUIRE(PQputCopyData(a.get(), rows.data(), static_cast<int>(rows.size())) == 1);
  REQUIRE(PQputCopyEnd(a.get(), nullptr) == 1);
  Res done(PQgetResult(a.get()));
  CHECK(PQresultStatus(done.get()) == PGRES_COMMAND_OK);
  while (Res extra{PQgetResult(a.get())}) {
  }
  CHECK(scalar(b.get(), "SELECT sum(x) FROM tx_copy") == "500500");
  CHECK(scalar(a.get(), "DROP TABLE tx_copy").empty());
}

TEST_CASE("500 clients over a pool of 10 in transaction mode all get correct results",
          "[pg][transaction]") {
  auto options = modeOptions("transaction", 10);
  options.settings["max_client_conn"] = "600";
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::atomic<int> wrong{0};
  std::atomic<int> failed_connects{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 500; ++t) {
    threads.emplace_back([&, t] {
      Conn conn = connect(pgpivot.conninfo());
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        failed_connects++;
        return;
      }
      for (int i = 0; i < 10; ++i) {
        const int value = t * 100 + i;
        if (scalar(conn.get(), "SELECT " + std::to_string(value)) != std::to_string(value)) {
          wrong++;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  CHECK(failed_connects == 0);
  CHECK(wrong == 0);
  // Never more than the pool's 10 server connections.
  Conn direct = connect("host=" + pgServer().host + " port=" + std::to_string(pgServer().port) +
                        " dbname=appdb user=" + kTrustUser);
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  const int servers = std::stoi(scalar(
      direct.get(), "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgpivot_scram'"));
  CHECK(servers <= 10);
}

TEST_CASE(
    "named prepared statements follow a client across server connections in transaction "
    "mode",
    "[pg][transaction][prepared]") {
  Pgpivot pgpivot(modeOptions("transaction", 2));
  pgpivot.start();
  Conn a = connect(pgpivot.conninfo());
  Conn b = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(a.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(b.get()) == CONNECTION_OK);
  Res prepared_a(PQprepare(a.get(), "add", "SELECT $1::int + $2::int", 2, nullptr));
  REQUIRE(PQresultStatus(prepared_a.get()) == PGRES_COMMAND_OK);
  Res prepared_b(PQprepare(b.get(), "add", "SELECT $1::int * $2::int", 2, nullptr));
  REQUIRE(PQresultStatus(prepared_b.get()) == PGRES_COMMAND_OK);
  // B holds one server in a transaction, so A's statements run on whichever is free.
  for (int i = 0; i < 30; ++i) {
    CAPTURE(i);
    const std::string x = std::to_string(i);
    const char* values[] = {x.c_str(), "3"};
    if (i % 7 == 0) {
      CHECK(scalar(b.get(), "BEGIN").empty());
    }
    Res sum(PQexecPrepared(a.get(), "add", 2, values, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(sum.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(sum.get(), 0, 0)) == std::to_string(i + 3));
    Res product(PQexecPrepared(b.get(), "add", 2, values, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(product.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(product.get(), 0, 0)) == std::to_string(i * 3));
    if (i % 7 == 3) {
      CHECK(scalar(b.get(), "COMMIT").empty());
    }
  }
  // Describe works and an unknown name gets PostgreSQL's error.
  Res described(PQdescribePrepared(a.get(), "add"));
  CHECK(PQresultStatus(described.get()) == PGRES_COMMAND_OK);
  CHECK(PQnparams(described.get()) == 2);
  Res unknown(PQexecPrepared(a.get(), "nope", 0, nullptr, nullptr, nullptr, 0));
  CHECK(sqlstateOf(unknown.get()) == "26000");
  // libpq 15 has no PQclosePrepared; a second statement under a new name works alongside.
  Res again(PQprepare(a.get(), "sub", "SELECT $1::int - $2::int", 2, nullptr));
  REQUIRE(PQresultStatus(again.get()) == PGRES_COMMAND_OK);
  const char* values[] = {"1", "2"};
  Res diff(PQexecPrepared(a.get(), "sub", 2, values, nullptr, nullptr, 0));
  CHECK(std::string(PQgetvalue(diff.get(), 0, 0)) == "-1");
}

TEST_CASE("prepared statements survive their server connection being killed and replaced",
          "[pg][transaction][prepared]") {
  Pgpivot pgpivot(modeOptions("transaction", 1));
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  Res prepared(PQprepare(conn.get(), "pid", "SELECT pg_backend_pid()", 0, nullptr));
  REQUIRE(PQresultStatus(prepared.get()) == PGRES_COMMAND_OK);
  Res first(PQexecPrepared(conn.get(), "pid", 0, nullptr, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(first.get()) == PGRES_TUPLES_OK);
  const std::string pid = PQgetvalue(first.get(), 0, 0);
  Conn direct = connect("host=" + pgServer().host + " port=" + std::to_string(pgServer().port) +
                        " dbname=appdb user=" + kTrustUser);
  REQUIRE(scalar(direct.get(), "SELECT pg_terminate_backend(" + pid + ")") == "t");
  // The next execution lands on a fresh server, where pgpivot prepares it again.
  const bool replaced = eventually(std::chrono::seconds(10), [&] {
    Res next(PQexecPrepared(conn.get(), "pid", 0, nullptr, nullptr, nullptr, 0));
    return PQresultStatus(next.get()) == PGRES_TUPLES_OK &&
           std::string(PQgetvalue(next.get(), 0, 0)) != pid;
  });
  CHECK(replaced);
}

TEST_CASE("pgbench -M prepared runs in transaction mode with no aborted client",
          "[pg][transaction][prepared]") {
  // As many servers as clients: pgbench prepares with a blocking PQprepare, so with fewer
  // servers one thread's clients would wait on each other (with any pooler).
  Pgpivot pgpivot(modeOptions("transaction", 8));
  pgpivot.start();
  const auto& pg = pgServer();
  const std::string init = "PGPASSWORD=secret pgbench -i -s 1 -q -h " + pg.host + " -p " +
                           std::to_string(pg.port) + " -U " + kScramUser + " appdb >/dev/null 2>&1";
  REQUIRE(system(init.c_str()) == 0);
  const std::string run =
      "PGPASSWORD=secret pgbench -n -M prepared -c 8 -j 2 -t 200 -h 127.0.0.1 "
      "-p " +
      std::to_string(pgpivot.port()) + " -U " + kScramUser +
      " appdb > /tmp/pgpivot-pgbench-prepared.log 2>&1";
  const int status = system(run.c_str());
  std::ifstream log("/tmp/pgpivot-pgbench-prepared.log");
  std::stringstream text;
  text << log.rdbuf();
  INFO(text.str());
  CHECK(status == 0);
  CHECK_THAT(text.str(), Catch::Contains("number of transactions actually processed: 1600/1600"));
  CHECK_THAT(text.str(), Catch::Contains("number of failed transactions: 0"));
}
