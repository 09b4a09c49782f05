// Asynchronous traffic through pgpivot: LISTEN/NOTIFY between clients, and CancelRequest
// (PQcancel) forwarded to the right server connection and to no other.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using std::chrono::steady_clock;

namespace {

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

struct Notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;
};

// Waits for the next notification on `conn` (without sending a query).
bool awaitNotification(PGconn* conn, Notification& out) {
  return eventually(std::chrono::seconds(5), [&] {
    if (PQconsumeInput(conn) != 1) {
      return false;
    }
    PGnotify* notify = PQnotifies(conn);
    if (notify == nullptr) {
      return false;
    }
    out.channel = notify->relname;
    out.payload = notify->extra;
    out.sender_pid = notify->be_pid;
    PQfreemem(notify);
    return true;
  });
}

// Waits until PostgreSQL runs `sql` in the backend `pid` (as seen by a direct observer).
bool awaitRunning(PGconn* observer, const std::string& pid, const std::string& sql) {
  const std::string query = "SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                            " AND state = 'active' AND query = '" + sql + "'";
  return eventually(std::chrono::seconds(10), [&] { return scalar(observer, query) == "1"; });
}

std::string cancelRequest(int32_t pid, int32_t secret) {
  return int32be(16) + int32be(80877102) + int32be(pid) + int32be(secret);
}

}  // namespace

TEST_CASE("LISTEN/NOTIFY between two pgpivot clients delivers the payload intact", "[pg][notify]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn listener = connectOk(pgpivot.conninfo());
  Conn sender = connectOk(pgpivot.conninfo());
  CHECK(scalar(listener.get(), "LISTEN pivot_channel") == "");
  const std::string sender_backend = scalar(sender.get(), "SELECT pg_backend_pid()");

  const std::string payload = "héllo, wörld: 'quoted' \"and\" \\backslash";
  const char* values[] = {payload.c_str()};
  Res sent(PQexecParams(sender.get(), "SELECT pg_notify('pivot_channel', $1)", 1, nullptr, values,
                        nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(sent.get()) == PGRES_TUPLES_OK);
  Notification got;
  REQUIRE(awaitNotification(listener.get(), got));
  CHECK(got.channel == "pivot_channel");
  CHECK(got.payload == payload);
  // The sender's real backend pid, as PostgreSQL reports it.
  CHECK(std::to_string(got.sender_pid) == sender_backend);

  // The largest payload PostgreSQL allows (7999 bytes), inside a transaction: delivered
  // once, at commit.
  std::string large(7999, 'x');
  for (std::size_t i = 0; i < large.size(); ++i) {
    large[i] = static_cast<char>('A' + i % 26);
  }
  CHECK(scalar(sender.get(), "BEGIN") == "");
  CHECK(scalar(sender.get(), "NOTIFY pivot_channel, '" + large + "'") == "");
  CHECK(scalar(sender.get(), "COMMIT") == "");
  REQUIRE(awaitNotification(listener.get(), got));
  CHECK(got.payload == large);

  // Nothing more is queued, and UNLISTEN stops the flow.
  CHECK(PQnotifies(listener.get()) == nullptr);
  CHECK(scalar(listener.get(), "UNLISTEN pivot_channel") == "");
  CHECK(scalar(sender.get(), "NOTIFY pivot_channel, 'unheard'") == "");
  CHECK(scalar(listener.get(), "SELECT 1") == "1");
  PQconsumeInput(listener.get());
  CHECK(PQnotifies(listener.get()) == nullptr);
}

TEST_CASE("LISTEN/NOTIFY works between a direct connection and a pgpivot client", "[pg][notify]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn proxied = connectOk(pgpivot.conninfo());
  Conn direct = connectOk(directConninfo());
  CHECK(scalar(proxied.get(), "LISTEN to_pivot") == "");
  CHECK(scalar(direct.get(), "LISTEN from_pivot") == "");

  CHECK(scalar(direct.get(), "NOTIFY to_pivot, 'from the direct side'") == "");
  Notification got;
  REQUIRE(awaitNotification(proxied.get(), got));
  CHECK(got.channel == "to_pivot");
  CHECK(got.payload == "from the direct side");
  CHECK(got.sender_pid == PQbackendPID(direct.get()));

  CHECK(scalar(proxied.get(), "NOTIFY from_pivot, 'from the pgpivot side'") == "");
  REQUIRE(awaitNotification(direct.get(), got));
  CHECK(got.channel == "from_pivot");
  CHECK(got.payload == "from the pgpivot side");
  CHECK(std::to_string(got.sender_pid) == scalar(proxied.get(), "SELECT pg_backend_pid()"));
}

TEST_CASE("PQcancel through pgpivot cancels a long query and no other session's query",
          "[pg][cancel]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn observer = connectOk(directConninfo(kTrustUser));
  Conn victim = connectOk(pgpivot.conninfo());
  Conn bystander = connectOk(pgpivot.conninfo());
  const std::string victim_pid = scalar(victim.get(), "SELECT pg_backend_pid()");
  const std::string bystander_pid = scalar(bystander.get(), "SELECT pg_backend_pid()");
  REQUIRE(victim_pid != bystander_pid);

  REQUIRE(PQsendQuery(bystander.get(), "SELECT pg_sleep(2)") == 1);
  REQUIRE(PQsendQuery(victim.get(), "SELECT pg_sleep(30)") == 1);
  REQUIRE(awaitRunning(observer.get(), bystander_pid, "SELECT pg_sleep(2)"));
  REQUIRE(awaitRunning(observer.get(), victim_pid, "SELECT pg_sleep(30)"));

  const auto started = steady_clock::now();
  PGcancel* cancel = PQgetCancel(victim.get());
  REQUIRE(cancel != nullptr);
  char error[256] = {0};
  const int dispatched = PQcancel(cancel, error, sizeof(error));
  PQfreeCancel(cancel);
  INFO(error);
  REQUIRE(dispatched == 1);

  Res cancelled(PQgetResult(victim.get()));
  const auto took = steady_clock::now() - started;
  CHECK(PQresultStatus(cancelled.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstateOf(cancelled.get()) == "57014");
  CHECK(took < std::chrono::seconds(5));
  Res end(PQgetResult(victim.get()));
  CHECK(end == nullptr);

  // The other session's sleep runs to its end untouched.
  Res finished(PQgetResult(bystander.get()));
  CHECK(PQresultStatus(finished.get()) == PGRES_TUPLES_OK);
  CHECK(sqlstateOf(finished.get()).empty());
  Res bystander_end(PQgetResult(bystander.get()));
  CHECK(bystander_end == nullptr);

  // The cancelled connection carries on, on the same backend.
  CHECK(PQtransactionStatus(victim.get()) == PQTRANS_IDLE);
  CHECK(scalar(victim.get(), "SELECT 'still here'") == "still here");
  CHECK(scalar(victim.get(), "SELECT pg_backend_pid()") == victim_pid);
}

TEST_CASE("a cancel request with a wrong key cancels nothing", "[pg][cancel]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn observer = connectOk(directConninfo(kTrustUser));
  Conn conn = connectOk(pgpivot.conninfo());
  const std::string backend_pid = scalar(conn.get(), "SELECT pg_backend_pid()");
  const int32_t client_pid = PQbackendPID(conn.get());

  REQUIRE(PQsendQuery(conn.get(), "SELECT pg_sleep(1.5)") == 1);
  REQUIRE(awaitRunning(observer.get(), backend_pid, "SELECT pg_sleep(1.5)"));
  // The key pgpivot gave this client with a wrong secret, an unknown key, and the real
  // backend's pid (which a client of pgpivot never sees): pgpivot reads each request and
  // closes the connection without forwarding anything.
  for (const auto& [pid, secret] :
       std::vector<std::pair<int32_t, int32_t>>{{client_pid, 0x12345678},
                                                {client_pid, 0},
                                                {client_pid ^ 0x5a5a, 0x12345678},
                                                {std::stoi(backend_pid), 0x12345678}}) {
    CAPTURE(pid, secret);
    RawClient raw(pgpivot.port());
    REQUIRE(raw.connected());
    REQUIRE(raw.send(cancelRequest(pid, secret)));
    CHECK(raw.closedWithin(std::chrono::seconds(5)));
  }
  Res result(PQgetResult(conn.get()));
  CHECK(PQresultStatus(result.get()) == PGRES_TUPLES_OK);
  CHECK(sqlstateOf(result.get()).empty());
  Res end(PQgetResult(conn.get()));
  CHECK(end == nullptr);
  CHECK(scalar(conn.get(), "SELECT 'untouched'") == "untouched");
}

TEST_CASE("a cancel of an idle connection does not cancel the query sent after it",
          "[pg][cancel]") {
  // PQcancel returns once the server side has closed the cancel connection. PostgreSQL
  // has signalled the backend by then, so a cancel that found nothing running cannot hit
  // a query sent afterwards. Through pgpivot the same must hold: the client's cancel
  // connection may close only after the request reached PostgreSQL.
  Pgpivot pgpivot;
  pgpivot.start();
  Conn direct = connectOk(directConninfo());
  Conn proxied = connectOk(pgpivot.conninfo());
  for (PGconn* conn : {direct.get(), proxied.get()}) {
    for (int round = 0; round < 5; ++round) {
      const std::string via = conn == direct.get() ? "direct" : "pgpivot";
      CAPTURE(via, round);
      PGcancel* cancel = PQgetCancel(conn);
      REQUIRE(cancel != nullptr);
      char error[256] = {0};
      const int dispatched = PQcancel(cancel, error, sizeof(error));
      PQfreeCancel(cancel);
      INFO(error);
      REQUIRE(dispatched == 1);
      CHECK(scalar(conn, "SELECT 'not cancelled' FROM pg_sleep(0.2)") == "not cancelled");
    }
  }
}
