// The extended query protocol end to end: libpq -> pgpivot -> PostgreSQL 15. Parse, Bind,
// Describe, Execute and Sync in every shape libpq produces: prepared and unnamed statements,
// text and binary formats, pipelines with an error in the middle, messages far larger than
// pgpivot's receive buffer, notices and transaction status.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

constexpr Oid kInt4Oid = 23;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaOid = 17;
constexpr Oid kTimestamptzOid = 1184;

std::string directConninfo() {
  const auto& pg = pgServer();
  return "host=" + pg.host + " port=" + std::to_string(pg.port) +
         " dbname=appdb user=" + kScramUser + " password=" + kPassword +
         " connect_timeout=10 sslmode=disable";
}

Conn connectOk(const std::string& conninfo) {
  Conn conn = connect(conninfo);
  INFO(errorOf(conn.get()));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  return conn;
}

std::string int4Binary(int32_t value) {
  const uint32_t be = htonl(static_cast<uint32_t>(value));
  return std::string(reinterpret_cast<const char*>(&be), 4);
}

int32_t int4FromBinary(const char* bytes) {
  uint32_t be = 0;
  std::memcpy(&be, bytes, 4);
  return static_cast<int32_t>(ntohl(be));
}

// One result of a pipeline or a sequence of commands, as a comparable string.
std::string describe(const PGresult* result) {
  if (result == nullptr) {
    return "end";
  }
  switch (PQresultStatus(result)) {
    case PGRES_TUPLES_OK:
      return PQntuples(result) > 0 ? std::string("rows:") + PQgetvalue(result, 0, 0) : "rows:";
    case PGRES_COMMAND_OK:
      return std::string("ok:") + PQcmdStatus(const_cast<PGresult*>(result));
    case PGRES_FATAL_ERROR:
      return "error:" + sqlstateOf(result);
    case PGRES_PIPELINE_SYNC:
      return "sync";
    case PGRES_PIPELINE_ABORTED:
      return "aborted";
    default:
      return std::string("status:") + PQresStatus(PQresultStatus(result));
  }
}

bool sendInt4(PGconn* conn, const char* sql, const std::string& value) {
  const char* values[] = {value.c_str()};
  const Oid types[] = {kInt4Oid};
  return PQsendQueryParams(conn, sql, 1, types, values, nullptr, nullptr, 0) == 1;
}

// Two pipeline segments: the first fails in its second query, the second is clean.
std::vector<std::string> runPipelineWithError(PGconn* conn) {
  std::vector<std::string> seen;
  REQUIRE(PQenterPipelineMode(conn) == 1);
  REQUIRE(sendInt4(conn, "SELECT $1::int4", "1"));
  REQUIRE(sendInt4(conn, "SELECT 1 / $1::int4", "0"));
  REQUIRE(sendInt4(conn, "SELECT $1::int4", "3"));
  REQUIRE(PQpipelineSync(conn) == 1);
  REQUIRE(sendInt4(conn, "SELECT $1::int4", "4"));
  REQUIRE(sendInt4(conn, "SELECT $1::int4 + 1", "4"));
  REQUIRE(PQpipelineSync(conn) == 1);
  int syncs = 0;
  for (int i = 0; i < 100 && syncs < 2; ++i) {
    Res result(PQgetResult(conn));
    seen.push_back(describe(result.get()));
    if (result != nullptr && PQresultStatus(result.get()) == PGRES_PIPELINE_SYNC) {
      ++syncs;
    }
  }
  CHECK(PQexitPipelineMode(conn) == 1);
  return seen;
}

// Transaction status after each step of a transaction that fails and is rolled back.
std::vector<std::string> runTransactionSteps(PGconn* conn) {
  std::vector<std::string> seen;
  const auto status = [conn] {
    switch (PQtransactionStatus(conn)) {
      case PQTRANS_IDLE:
        return std::string("idle");
      case PQTRANS_ACTIVE:
        return std::string("active");
      case PQTRANS_INTRANS:
        return std::string("intrans");
      case PQTRANS_INERROR:
        return std::string("inerror");
      default:
        return std::string("unknown");
    }
  };
  const auto step = [&](const char* sql) {
    Res result(PQexec(conn, sql));
    seen.push_back(std::string(sql) + " -> " + describe(result.get()) + " / " + status());
  };
  const auto stepParams = [&](const char* sql, const char* value) {
    const char* values[] = {value};
    Res result(PQexecParams(conn, sql, 1, nullptr, values, nullptr, nullptr, 0));
    seen.push_back(std::string(sql) + " [" + value + "] -> " + describe(result.get()) + " / " +
                   status());
  };
  seen.push_back("start / " + status());
  step("BEGIN");
  stepParams("SELECT $1::int4", "7");
  step("SELECT 1 / 0");
  step("SELECT 1");
  stepParams("SELECT $1::int4", "8");
  step("ROLLBACK");
  step("BEGIN");
  step("SAVEPOINT s1");
  stepParams("SELECT $1::int4", "not a number");
  step("ROLLBACK TO SAVEPOINT s1");
  stepParams("SELECT $1::int4", "9");
  step("COMMIT");
  // An implicit transaction (a Sync-delimited batch) that fails leaves nothing open.
  stepParams("SELECT 10 / $1::int4", "0");
  step("BEGIN");
  step("COMMIT");
  // While a query runs libpq reports "active".
  REQUIRE(PQsendQuery(conn, "SELECT pg_sleep(0.05)") == 1);
  seen.push_back("sent / " + status());
  for (int i = 0; i < 10; ++i) {
    Res result(PQgetResult(conn));
    if (result == nullptr) {
      break;
    }
  }
  seen.push_back("done / " + status());
  return seen;
}

}  // namespace

TEST_CASE("a prepared statement runs through pgpivot with text and binary parameters and NULLs",
          "[pg][extended]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  const Oid types[] = {kInt4Oid, kInt4Oid, kTextOid, kInt8Oid, kByteaOid};
  Res prepared(PQprepare(conn.get(), "calc",
                         "SELECT $1::int4 + $2::int4, $3::text, $4::int8, $5::bytea, "
                         "$4::int8 IS NULL",
                         5, types));
  REQUIRE(PQresultStatus(prepared.get()) == PGRES_COMMAND_OK);

  SECTION("text parameters and text results, executed many times") {
    for (int i = 0; i < 200; ++i) {
      CAPTURE(i);
      const std::string a = std::to_string(i);
      const std::string b = std::to_string(1000 * i);
      const std::string text = "grüße " + std::to_string(i);
      const std::string big = std::to_string(int64_t{1} << 40);
      const char* values[] = {a.c_str(), b.c_str(), text.c_str(),
                              i % 2 == 0 ? nullptr : big.c_str(), "\\x00ff10"};
      Res result(PQexecPrepared(conn.get(), "calc", 5, values, nullptr, nullptr, 0));
      REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
      REQUIRE(PQntuples(result.get()) == 1);
      CHECK(std::string(PQgetvalue(result.get(), 0, 0)) == std::to_string(1001 * i));
      CHECK(std::string(PQgetvalue(result.get(), 0, 1)) == text);
      if (i % 2 == 0) {
        CHECK(PQgetisnull(result.get(), 0, 2) == 1);
        CHECK(std::string(PQgetvalue(result.get(), 0, 4)) == "t");
      } else {
        CHECK(PQgetisnull(result.get(), 0, 2) == 0);
        CHECK(std::string(PQgetvalue(result.get(), 0, 2)) == big);
        CHECK(std::string(PQgetvalue(result.get(), 0, 4)) == "f");
      }
      CHECK(std::string(PQgetvalue(result.get(), 0, 3)) == "\\x00ff10");
    }
  }

  SECTION("binary parameters and binary results") {
    const std::string a = int4Binary(40);
    const std::string b = int4Binary(2);
    const std::string text = "abc";
    const std::string bytes("\x00\xff\x10\x00", 4);
    const char* values[] = {a.data(), b.data(), text.data(), nullptr, bytes.data()};
    const int lengths[] = {4, 4, 3, 0, 4};
    const int formats[] = {1, 1, 1, 1, 1};
    Res result(PQexecPrepared(conn.get(), "calc", 5, values, lengths, formats, 1));
    REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    REQUIRE(PQntuples(result.get()) == 1);
    CHECK(PQfformat(result.get(), 0) == 1);
    REQUIRE(PQgetlength(result.get(), 0, 0) == 4);
    CHECK(int4FromBinary(PQgetvalue(result.get(), 0, 0)) == 42);
    CHECK(std::string(PQgetvalue(result.get(), 0, 1), PQgetlength(result.get(), 0, 1)) == text);
    CHECK(PQgetisnull(result.get(), 0, 2) == 1);
    CHECK(std::string(PQgetvalue(result.get(), 0, 3), PQgetlength(result.get(), 0, 3)) == bytes);
    REQUIRE(PQgetlength(result.get(), 0, 4) == 1);
    CHECK(PQgetvalue(result.get(), 0, 4)[0] == 1);
  }

  SECTION("a bad parameter value fails that execution only") {
    const char* bad[] = {"forty", "2", "x", nullptr, "\\x00"};
    Res failed(PQexecPrepared(conn.get(), "calc", 5, bad, nullptr, nullptr, 0));
    CHECK(PQresultStatus(failed.get()) == PGRES_FATAL_ERROR);
    CHECK(sqlstateOf(failed.get()) == "22P02");
    const char* good[] = {"40", "2", "x", nullptr, "\\x00"};
    Res ok(PQexecPrepared(conn.get(), "calc", 5, good, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(ok.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(ok.get(), 0, 0)) == "42");
  }

  SECTION("preparing the same name twice is PostgreSQL's error, not pgpivot's") {
    Res again(PQprepare(conn.get(), "calc", "SELECT 1", 0, nullptr));
    CHECK(PQresultStatus(again.get()) == PGRES_FATAL_ERROR);
    CHECK(sqlstateOf(again.get()) == "42P05");
    Res missing(PQexecPrepared(conn.get(), "no_such_statement", 0, nullptr, nullptr, nullptr, 0));
    CHECK(sqlstateOf(missing.get()) == "26000");
    CHECK(scalar(conn.get(), "SELECT 'still fine'") == "still fine");
  }
}

TEST_CASE("PQexecParams and the unnamed statement work through pgpivot", "[pg][extended]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());

  const char* one[] = {"20"};
  Res params(
      PQexecParams(conn.get(), "SELECT $1::int4 * 2 + 2", 1, nullptr, one, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(params.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(params.get(), 0, 0)) == "42");

  // No parameters at all still goes through Parse/Bind/Execute.
  Res none(
      PQexecParams(conn.get(), "SELECT 'no params'", 0, nullptr, nullptr, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(none.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(none.get(), 0, 0)) == "no params");

  // The unnamed statement: prepare, execute, replace, execute again.
  Res unnamed(PQprepare(conn.get(), "", "SELECT $1::int4 * 10", 0, nullptr));
  REQUIRE(PQresultStatus(unnamed.get()) == PGRES_COMMAND_OK);
  const char* seven[] = {"7"};
  Res first(PQexecPrepared(conn.get(), "", 1, seven, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(first.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(first.get(), 0, 0)) == "70");
  Res replaced(PQprepare(conn.get(), "", "SELECT $1::text || '!'", 0, nullptr));
  REQUIRE(PQresultStatus(replaced.get()) == PGRES_COMMAND_OK);
  const char* hi[] = {"hi"};
  Res second(PQexecPrepared(conn.get(), "", 1, hi, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(second.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(second.get(), 0, 0)) == "hi!");

  // A statement that does not parse fails, and the session carries on.
  Res broken(PQexecParams(conn.get(), "SELEC $1", 1, nullptr, one, nullptr, nullptr, 0));
  CHECK(PQresultStatus(broken.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(broken.get()) == "42601");
  Res after(PQexecParams(conn.get(), "SELECT $1::int4 + 1", 1, nullptr, one, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(after.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(after.get(), 0, 0)) == "21");
  CHECK(PQtransactionStatus(conn.get()) == PQTRANS_IDLE);
}

TEST_CASE("Describe of a prepared statement and a portal reports what PostgreSQL reports",
          "[pg][extended]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn proxied = connectOk(pgpivot.conninfo());
  Conn direct = connectOk(directConninfo());
  for (PGconn* conn : {direct.get(), proxied.get()}) {
    const std::string via = conn == direct.get() ? "direct" : "pgpivot";
    CAPTURE(via);
    Res prepared(
        PQprepare(conn, "desc_me", "SELECT $1::int4 AS a, $2::text AS b, now() AS c", 0, nullptr));
    REQUIRE(PQresultStatus(prepared.get()) == PGRES_COMMAND_OK);
    Res described(PQdescribePrepared(conn, "desc_me"));
    REQUIRE(PQresultStatus(described.get()) == PGRES_COMMAND_OK);
    REQUIRE(PQnparams(described.get()) == 2);
    CHECK(PQparamtype(described.get(), 0) == kInt4Oid);
    CHECK(PQparamtype(described.get(), 1) == kTextOid);
    REQUIRE(PQnfields(described.get()) == 3);
    CHECK(std::string(PQfname(described.get(), 0)) == "a");
    CHECK(std::string(PQfname(described.get(), 1)) == "b");
    CHECK(std::string(PQfname(described.get(), 2)) == "c");
    CHECK(PQftype(described.get(), 0) == kInt4Oid);
    CHECK(PQftype(described.get(), 1) == kTextOid);
    CHECK(PQftype(described.get(), 2) == kTimestamptzOid);

    Res missing(PQdescribePrepared(conn, "not_prepared"));
    CHECK(PQresultStatus(missing.get()) == PGRES_FATAL_ERROR);
    CHECK(sqlstateOf(missing.get()) == "26000");

    // A portal (a cursor opened with DECLARE) can be described too.
    CHECK(scalar(conn, "BEGIN").empty());
    CHECK(scalar(conn, "DECLARE cur CURSOR FOR SELECT 1::int8 AS x, 'y'::text AS y").empty());
    Res portal(PQdescribePortal(conn, "cur"));
    REQUIRE(PQresultStatus(portal.get()) == PGRES_COMMAND_OK);
    REQUIRE(PQnfields(portal.get()) == 2);
    CHECK(std::string(PQfname(portal.get(), 0)) == "x");
    CHECK(PQftype(portal.get(), 0) == kInt8Oid);
    CHECK(PQftype(portal.get(), 1) == kTextOid);
    CHECK(scalar(conn, "COMMIT").empty());
    CHECK(scalar(conn, "DEALLOCATE desc_me").empty());
  }
}

TEST_CASE("a pipeline that fails midway skips the rest of its segment and the next segment runs",
          "[pg][extended][pipeline]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn direct = connectOk(directConninfo());
  Conn proxied = connectOk(pgpivot.conninfo());
  const std::vector<std::string> want = runPipelineWithError(direct.get());
  // What PostgreSQL itself does: the error, the rest of the segment aborted, then the sync
  // and a clean second segment.
  REQUIRE(want == std::vector<std::string>{"rows:1", "end", "error:22012", "end", "aborted", "end",
                                           "sync", "rows:4", "end", "rows:5", "end", "sync"});
  CHECK(runPipelineWithError(proxied.get()) == want);
  CHECK(PQtransactionStatus(proxied.get()) == PQTRANS_IDLE);
  CHECK(scalar(proxied.get(), "SELECT 'after the pipeline'") == "after the pipeline");
}

TEST_CASE("a pipeline of 1000 queries returns every result in order", "[pg][extended][pipeline]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  constexpr int kQueries = 1000;
  REQUIRE(PQenterPipelineMode(conn.get()) == 1);
  for (int i = 0; i < kQueries; ++i) {
    REQUIRE(sendInt4(conn.get(), "SELECT $1::int4 * 3", std::to_string(i)));
  }
  REQUIRE(PQpipelineSync(conn.get()) == 1);
  int mismatches = 0;
  for (int i = 0; i < kQueries; ++i) {
    Res result(PQgetResult(conn.get()));
    REQUIRE(result != nullptr);
    REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    if (std::string(PQgetvalue(result.get(), 0, 0)) != std::to_string(3 * i)) {
      ++mismatches;
    }
    Res end(PQgetResult(conn.get()));
    REQUIRE(end == nullptr);
  }
  CHECK(mismatches == 0);
  Res sync(PQgetResult(conn.get()));
  REQUIRE(sync != nullptr);
  CHECK(PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC);
  CHECK(PQexitPipelineMode(conn.get()) == 1);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");
}

TEST_CASE("a 50000-row result arrives complete through pgpivot", "[pg][extended]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  constexpr int kRows = 50000;
  const char* sql = "SELECT g, 'row-' || g || repeat('.', 40) FROM generate_series(1, 50000) g";

  SECTION("all at once") {
    Res result(PQexecParams(conn.get(), sql, 0, nullptr, nullptr, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    REQUIRE(PQntuples(result.get()) == kRows);
    int64_t sum = 0;
    for (int row = 0; row < kRows; ++row) {
      sum += std::stoll(PQgetvalue(result.get(), row, 0));
    }
    CHECK(sum == int64_t{kRows} * (kRows + 1) / 2);
    CHECK(std::string(PQgetvalue(result.get(), kRows - 1, 1)) ==
          "row-50000" + std::string(40, '.'));
  }

  SECTION("row by row in single-row mode") {
    REQUIRE(PQsendQuery(conn.get(), sql) == 1);
    REQUIRE(PQsetSingleRowMode(conn.get()) == 1);
    int rows = 0;
    int64_t sum = 0;
    bool done = false;
    for (int i = 0; i < kRows + 10 && !done; ++i) {
      Res result(PQgetResult(conn.get()));
      REQUIRE(result != nullptr);
      if (PQresultStatus(result.get()) == PGRES_SINGLE_TUPLE) {
        ++rows;
        sum += std::stoll(PQgetvalue(result.get(), 0, 0));
      } else {
        CHECK(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
        done = true;
      }
    }
    CHECK(done);
    CHECK(rows == kRows);
    CHECK(sum == int64_t{kRows} * (kRows + 1) / 2);
    Res end(PQgetResult(conn.get()));
    CHECK(end == nullptr);
  }
  CHECK(scalar(conn.get(), "SELECT 'after'") == "after");
}

TEST_CASE("a 5 MB parameter round-trips through pgpivot unchanged", "[pg][extended]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  constexpr std::size_t kSize = 5 * 1024 * 1024;

  SECTION("as text") {
    std::string text(kSize, 'a');
    for (std::size_t i = 0; i < kSize; ++i) {
      text[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
    }
    const char* values[] = {text.c_str()};
    Res result(PQexecParams(conn.get(), "SELECT $1::text, length($1::text)", 1, nullptr, values,
                            nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    REQUIRE(static_cast<std::size_t>(PQgetlength(result.get(), 0, 0)) == kSize);
    CHECK(std::string(PQgetvalue(result.get(), 0, 0), kSize) == text);
    CHECK(std::string(PQgetvalue(result.get(), 0, 1)) == std::to_string(kSize));
  }

  SECTION("as binary bytea with every byte value") {
    std::string bytes(kSize, '\0');
    for (std::size_t i = 0; i < kSize; ++i) {
      bytes[i] = static_cast<char>((i * 31 + i / 251) & 0xff);
    }
    const char* values[] = {bytes.data()};
    const int lengths[] = {static_cast<int>(kSize)};
    const int formats[] = {1};
    const Oid types[] = {kByteaOid};
    Res result(PQexecParams(conn.get(), "SELECT $1::bytea", 1, types, values, lengths, formats, 1));
    REQUIRE(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
    REQUIRE(static_cast<std::size_t>(PQgetlength(result.get(), 0, 0)) == kSize);
    CHECK(std::string(PQgetvalue(result.get(), 0, 0), kSize) == bytes);
  }
  CHECK(scalar(conn.get(), "SELECT 'after'") == "after");
}

TEST_CASE("a NOTICE raised by the server reaches the client's notice receiver",
          "[pg][extended][notice]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  std::vector<std::string> notices;
  PQsetNoticeReceiver(
      conn.get(),
      [](void* arg, const PGresult* result) {
        auto* out = static_cast<std::vector<std::string>*>(arg);
        const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
        const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
        out->push_back(std::string(severity != nullptr ? severity : "?") + " " +
                       sqlstateOf(result) + " " + (message != nullptr ? message : "?"));
      },
      &notices);

  CHECK(scalar(conn.get(),
               "DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; "
               "RAISE WARNING 'careful'; END $$") == "");
  REQUIRE(notices.size() == 2);
  CHECK(notices[0] == "NOTICE 00000 hello from plpgsql");
  CHECK(notices[1] == "WARNING 01000 careful");

  // Through the extended protocol as well.
  Res result(PQexecParams(conn.get(), "DO $$ BEGIN RAISE NOTICE 'extended'; END $$", 0, nullptr,
                          nullptr, nullptr, nullptr, 0));
  CHECK(PQresultStatus(result.get()) == PGRES_COMMAND_OK);
  REQUIRE(notices.size() == 3);
  CHECK(notices[2] == "NOTICE 00000 extended");
}

TEST_CASE("transaction status seen through pgpivot matches a direct connection",
          "[pg][extended][transaction]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn direct = connectOk(directConninfo());
  Conn proxied = connectOk(pgpivot.conninfo());
  const std::vector<std::string> want = runTransactionSteps(direct.get());
  // Spot checks that the sequence really covers an aborted transaction.
  REQUIRE(want.size() == 18);
  CHECK(want[3] == "SELECT 1 / 0 -> error:22012 / inerror");
  CHECK(want[4] == "SELECT 1 -> error:25P02 / inerror");
  CHECK(want[6] == "ROLLBACK -> ok:ROLLBACK / idle");
  CHECK(want[16] == "sent / active");
  const std::vector<std::string> got = runTransactionSteps(proxied.get());
  CHECK(got == want);
}
