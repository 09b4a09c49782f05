// COPY end to end: libpq -> pgpivot -> PostgreSQL 15. 100 MB in each direction, a COPY the
// client abandons, a COPY the server rejects halfway, and a COPY sent with the extended
// protocol; after each the connection (and its server connection) stays usable.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

constexpr int kRows = 100000;
constexpr std::size_t kPayload = 1000;  // 100,000 rows of ~1 KB: about 100 MB

std::string directConninfo(const std::string& user = kScramUser) {
  const auto& pg = pgServer();
  return "host=" + pg.host + " port=" + std::to_string(pg.port) + " dbname=appdb user=" + user +
         " password=" + kPassword + " connect_timeout=10 sslmode=disable";
}

Conn connectOk(const std::string& conninfo) {
  Conn conn = connect(conninfo);
  INFO(errorOf(conn.get()));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  return conn;
}

char payloadChar(int64_t id) {
  return static_cast<char>('a' + id % 26);
}

void appendRow(std::string& out, int64_t id) {
  out += std::to_string(id);
  out += '\t';
  out.append(kPayload, payloadChar(id));
  out += '\n';
}

// Sends `data` in pieces of at most `chunk` bytes; false once libpq refuses.
bool putCopyData(PGconn* conn, const std::string& data, std::size_t chunk = 64 * 1024) {
  for (std::size_t off = 0; off < data.size(); off += chunk) {
    const std::size_t n = std::min(chunk, data.size() - off);
    if (PQputCopyData(conn, data.data() + off, static_cast<int>(n)) != 1) {
      return false;
    }
  }
  return true;
}

// Collects every result until libpq says the command is over (bounded).
std::vector<std::string> drainResults(PGconn* conn) {
  std::vector<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    Res result(PQgetResult(conn));
    if (result == nullptr) {
      break;
    }
    const auto status = PQresultStatus(result.get());
    if (status == PGRES_FATAL_ERROR) {
      const char* message = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
      seen.push_back("error:" + sqlstateOf(result.get()) + ":" +
                     (message != nullptr ? message : PQresultErrorMessage(result.get())));
    } else {
      seen.push_back(std::string(PQresStatus(status)) + ":" + PQcmdTuples(result.get()));
    }
  }
  return seen;
}

}  // namespace

TEST_CASE("COPY FROM STDIN of 100 MB through pgpivot stores every row", "[pg][copy]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  CHECK(scalar(conn.get(), "DROP TABLE IF EXISTS copy_in_big") == "");
  CHECK(scalar(conn.get(), "CREATE UNLOGGED TABLE copy_in_big (id int8, payload text)") == "");

  Res started(PQexec(conn.get(), "COPY copy_in_big FROM STDIN"));
  REQUIRE(PQresultStatus(started.get()) == PGRES_COPY_IN);
  std::size_t bytes_sent = 0;
  int64_t ascii_sum = 0;
  std::string chunk;
  chunk.reserve(1 << 20);
  bool accepted = true;
  for (int64_t id = 1; id <= kRows && accepted; ++id) {
    appendRow(chunk, id);
    ascii_sum += payloadChar(id);
    if (chunk.size() >= (1 << 20) - kPayload - 32 || id == kRows) {
      bytes_sent += chunk.size();
      accepted = putCopyData(conn.get(), chunk);
      chunk.clear();
    }
  }
  REQUIRE(accepted);
  CHECK(bytes_sent >= 100'000'000);
  REQUIRE(PQputCopyEnd(conn.get(), nullptr) == 1);
  CHECK(drainResults(conn.get()) == std::vector<std::string>{"PGRES_COMMAND_OK:100000"});

  CHECK(scalar(conn.get(), "SELECT count(*) FROM copy_in_big") == std::to_string(kRows));
  CHECK(scalar(conn.get(), "SELECT sum(id) FROM copy_in_big") ==
        std::to_string(int64_t{kRows} * (kRows + 1) / 2));
  CHECK(scalar(conn.get(), "SELECT sum(length(payload)) FROM copy_in_big") ==
        std::to_string(int64_t{kRows} * kPayload));
  CHECK(scalar(conn.get(), "SELECT sum(ascii(payload)) FROM copy_in_big") ==
        std::to_string(ascii_sum));
  CHECK(scalar(conn.get(), "DROP TABLE copy_in_big") == "");
}

TEST_CASE("COPY TO STDOUT of 100 MB through pgpivot delivers every byte", "[pg][copy]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connectOk(pgpivot.conninfo());
  Res started(PQexec(conn.get(),
                     "COPY (SELECT g, repeat(chr(97 + g % 26), 1000) FROM "
                     "generate_series(1, 100000) g) TO STDOUT"));
  REQUIRE(PQresultStatus(started.get()) == PGRES_COPY_OUT);

  std::size_t want_bytes = 0;
  for (int64_t id = 1; id <= kRows; ++id) {
    want_bytes += std::to_string(id).size() + 1 + kPayload + 1;
  }
  std::size_t got_bytes = 0;
  int64_t rows = 0;
  int64_t bad_rows = 0;
  int last = 0;
  for (int i = 0; i <= kRows + 1; ++i) {
    char* buffer = nullptr;
    last = PQgetCopyData(conn.get(), &buffer, 0);
    if (last < 0) {
      break;
    }
    ++rows;
    got_bytes += static_cast<std::size_t>(last);
    // Text COPY sends one row per CopyData: "<id>\t<1000 times the id's letter>\n".
    const std::string row(buffer, static_cast<std::size_t>(last));
    PQfreemem(buffer);
    const std::string expected_prefix = std::to_string(rows) + "\t";
    if (row.compare(0, expected_prefix.size(), expected_prefix) != 0 || row.back() != '\n' ||
        row[row.size() - 2] != payloadChar(rows)) {
      ++bad_rows;
    }
  }
  CHECK(last == -1);  // the end of the COPY, not an error (-2)
  CHECK(rows == kRows);
  CHECK(bad_rows == 0);
  CHECK(got_bytes == want_bytes);
  CHECK(got_bytes >= 100'000'000);
  CHECK(drainResults(conn.get()) == std::vector<std::string>{"PGRES_COMMAND_OK:100000"});
  CHECK(scalar(conn.get(), "SELECT 'after'") == "after");
}

TEST_CASE("a COPY the client abandons with PQputCopyEnd gets an error and the connection works",
          "[pg][copy]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn direct = connectOk(directConninfo());
  Conn proxied = connectOk(pgpivot.conninfo());
  CHECK(scalar(direct.get(), "DROP TABLE IF EXISTS copy_abandoned") == "");
  CHECK(scalar(direct.get(), "CREATE UNLOGGED TABLE copy_abandoned (id int8, payload text)") == "");
  std::string data;
  for (int64_t id = 1; id <= 2000; ++id) {
    appendRow(data, id);
  }
  for (PGconn* conn : {direct.get(), proxied.get()}) {
    const std::string via = conn == direct.get() ? "direct" : "pgpivot";
    CAPTURE(via);
    Res started(PQexec(conn, "COPY copy_abandoned FROM STDIN"));
    REQUIRE(PQresultStatus(started.get()) == PGRES_COPY_IN);
    REQUIRE(putCopyData(conn, data));
    REQUIRE(PQputCopyEnd(conn, "client gave up") == 1);
    const auto results = drainResults(conn);
    REQUIRE(results.size() == 1);
    CHECK(results[0].rfind("error:57014:COPY from stdin failed: client gave up", 0) == 0);
    CHECK(PQstatus(conn) == CONNECTION_OK);
    CHECK(PQtransactionStatus(conn) == PQTRANS_IDLE);
    CHECK(scalar(conn, "SELECT count(*) FROM copy_abandoned") == "0");
    CHECK(scalar(conn, "SELECT 'after'") == "after");
  }
  CHECK(scalar(direct.get(), "DROP TABLE copy_abandoned") == "");
}

TEST_CASE("a bad row in COPY FROM STDIN gets the server's error and the connection works",
          "[pg][copy]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn direct = connectOk(directConninfo());
  Conn proxied = connectOk(pgpivot.conninfo());
  CHECK(scalar(direct.get(), "DROP TABLE IF EXISTS copy_bad_row") == "");
  CHECK(scalar(direct.get(), "CREATE UNLOGGED TABLE copy_bad_row (id int8, payload text)") == "");
  // A bad row early, then 10 MB more that the client sends before it notices the error
  // (the server discards it), then the end of the COPY.
  std::string after_bad;
  for (int64_t id = 10; id < 10010; ++id) {
    appendRow(after_bad, id);
  }
  for (PGconn* conn : {direct.get(), proxied.get()}) {
    const std::string via = conn == direct.get() ? "direct" : "pgpivot";
    CAPTURE(via);
    Res started(PQexec(conn, "COPY copy_bad_row FROM STDIN"));
    REQUIRE(PQresultStatus(started.get()) == PGRES_COPY_IN);
    REQUIRE(putCopyData(conn, "1\tfine\n2\tfine\nnot-a-number\tbad\n3\tfine\n"));
    putCopyData(conn, after_bad);  // libpq may refuse once it has seen the error
    PQputCopyEnd(conn, nullptr);
    const auto results = drainResults(conn);
    REQUIRE(results.size() == 1);
    CHECK(results[0].rfind("error:22P02:invalid input syntax for type bigint", 0) == 0);
    CHECK(PQstatus(conn) == CONNECTION_OK);
    CHECK(PQtransactionStatus(conn) == PQTRANS_IDLE);
    CHECK(scalar(conn, "SELECT count(*) FROM copy_bad_row") == "0");
    CHECK(scalar(conn, "SELECT 'after'") == "after");
  }
  CHECK(scalar(direct.get(), "DROP TABLE copy_bad_row") == "");
}

TEST_CASE("a COPY sent with the extended protocol leaves the server connection reusable",
          "[pg][copy]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn observer = connectOk(directConninfo(kTrustUser));
  std::string first_pid;
  {
    Conn conn = connectOk(pgpivot.conninfo());
    CHECK(scalar(conn.get(), "DROP TABLE IF EXISTS copy_extended") == "");
    CHECK(scalar(conn.get(), "CREATE UNLOGGED TABLE copy_extended (id int8, payload text)") == "");
    first_pid = scalar(conn.get(), "SELECT pg_backend_pid()");
    // PQexecParams sends Parse/Bind/Describe/Execute/Sync; libpq adds a second Sync after
    // CopyDone, and PostgreSQL answers the two with a single ReadyForQuery.
    Res started(PQexecParams(conn.get(), "COPY copy_extended FROM STDIN", 0, nullptr, nullptr,
                             nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(started.get()) == PGRES_COPY_IN);
    std::string data;
    for (int64_t id = 1; id <= 100; ++id) {
      appendRow(data, id);
    }
    REQUIRE(putCopyData(conn.get(), data));
    REQUIRE(PQputCopyEnd(conn.get(), nullptr) == 1);
    CHECK(drainResults(conn.get()) == std::vector<std::string>{"PGRES_COMMAND_OK:100"});
    CHECK(scalar(conn.get(), "SELECT count(*) FROM copy_extended") == "100");
    CHECK(PQtransactionStatus(conn.get()) == PQTRANS_IDLE);
  }
  // The client left at a clean point: pgpivot resets its backend and keeps it in the pool
  // instead of closing it.
  const std::string query =
      "SELECT state || ':' || query FROM pg_stat_activity WHERE pid = " + first_pid;
  std::string last;
  const bool reset = eventually(std::chrono::seconds(5), [&] {
    last = scalar(observer.get(), query);
    return last == "idle:DISCARD ALL";
  });
  INFO("backend " << first_pid << " in pg_stat_activity: '" << last << "'");
  CHECK(reset);
  Conn next = connectOk(pgpivot.conninfo());
  CHECK(scalar(next.get(), "SELECT pg_backend_pid()") == first_pid);
  CHECK(scalar(next.get(), "DROP TABLE copy_extended") == "");
}
