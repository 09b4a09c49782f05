// Pool limits and timeouts end to end (session pooling): the wait queue and
// query_wait_timeout, reserve pool, per-database and per-user caps, idle and lifetime
// timeouts, min_pool_size, server_connect_timeout and connect_query.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <set>
#include <thread>

#include "support/pgpivot_fixture.hpp"
#include "support/wire_builder.hpp"

using namespace pgpivot::test;

namespace {

constexpr auto kPatience = std::chrono::seconds(15);
using Clock = std::chrono::steady_clock;

std::string backendPid(PGconn* conn) {
  return scalar(conn, "SELECT pg_backend_pid()");
}

std::string targetOf(const std::string& dbname) {
  const auto& pg = pgServer();
  return "host=" + pg.host + " port=" + std::to_string(pg.port) + " dbname=" + dbname;
}

// A direct connection to the fixture server as the trust superuser, for pg_stat_activity.
Conn directConnection() {
  const auto& pg = pgServer();
  return connect("host=" + pg.host + " port=" + std::to_string(pg.port) +
                 " dbname=postgres user=" + kTrustUser + " sslmode=disable connect_timeout=10");
}

int countBackends(PGconn* direct, const std::string& where) {
  const std::string n = scalar(
      direct, "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND " + where);
  return n.rfind("ERROR", 0) == 0 ? -1 : std::stoi(n);
}

// The tags of the complete backend messages in `bytes`, which start at a message boundary.
std::string messageTags(const std::string& bytes) {
  std::string tags;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + pos + 1, 4);
    len = ntohl(len);
    if (len < 4 || pos + 1 + len > bytes.size()) {
      break;
    }
    tags.push_back(bytes[pos]);
    pos += 1 + len;
  }
  return tags;
}

// A raw client that logs in (auth_type trust) and does not wait for the answer.
std::unique_ptr<RawClient> startLogin(int port, const std::string& user,
                                      const std::string& database) {
  auto client = std::make_unique<RawClient>(port);
  REQUIRE(client->connected());
  REQUIRE(client->send(startupPacket({{"user", user}, {"database", database}})));
  return client;
}

// Reads from `client` into `seen` until `predicate(seen)` holds or `timeout` passes.
bool readUntil(RawClient& client, std::string& seen, std::chrono::milliseconds timeout,
               const std::function<bool(const std::string&)>& predicate) {
  return eventually(timeout, [&] {
    seen += client.readAll(std::chrono::milliseconds(10));
    return predicate(seen);
  });
}

bool hasReadyForQuery(const std::string& bytes) {
  return messageTags(bytes).find('Z') != std::string::npos;
}

// An SSLRequest that pgpivot answers with 'N'. Once the answer is back, pgpivot has read
// every byte that reached it before this connection did (one loop reads in arrival order).
void roundTripSslRequest(RawClient& client) {
  REQUIRE(client.send(int32be(8) + int32be(80877103)));
  std::string answer;
  REQUIRE(readUntil(client, answer, kPatience, [](const std::string& s) { return !s.empty(); }));
  REQUIRE(answer == "N");
}

// A TCP listener on loopback that never accepts: connecting works (the kernel completes the
// handshake) but nothing is ever answered.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("a client waiting past query_wait_timeout gets 08P01 and the server holder is unaffected",
          "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {
      {"default_pool_size", "1"}, {"query_wait_timeout", "1"}, {"auth_type", "trust"}};
  Pgpivot pgpivot(options);
  pgpivot.start();

  // In session mode a client keeps its server for the whole session.
  Conn holder = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(holder.get()) == CONNECTION_OK);
  const std::string holder_pid = backendPid(holder.get());

  auto waiter = startLogin(pgpivot.port(), kScramUser, "appdb");
  const ErrorSeen error = firstError(waiter->readAll(kPatience));
  REQUIRE(error.found);
  CHECK(error.sqlstate == "08P01");
  CHECK_THAT(error.message, Catch::StartsWith("pgpivot:") && Catch::Contains("query_wait_timeout"));
  CHECK(scalar(holder.get(), "SELECT 2") == "2");

  holder.reset();
  Conn next = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(next.get()) == CONNECTION_OK);
  CHECK(backendPid(next.get()) == holder_pid);
}

TEST_CASE("clients waiting for a server are served in the order they came", "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {
      {"default_pool_size", "1"}, {"query_wait_timeout", "30"}, {"auth_type", "trust"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn holder = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(holder.get()) == CONNECTION_OK);

  // Queue four waiters one after the other; each one's SSLRequest round trip proves the
  // previous one's login was read (and queued) before its own.
  constexpr int kWaiters = 4;
  std::vector<std::unique_ptr<RawClient>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    CAPTURE(i);
    auto client = std::make_unique<RawClient>(pgpivot.port());
    REQUIRE(client->connected());
    roundTripSslRequest(*client);
    REQUIRE(client->send(startupPacket({{"user", kScramUser}, {"database", "appdb"}})));
    waiters.push_back(std::move(client));
  }
  {
    RawClient last(pgpivot.port());
    REQUIRE(last.connected());
    roundTripSslRequest(last);
  }

  // Release the server and let each served waiter leave in turn; record who got it.
  holder.reset();
  std::vector<std::string> seen(kWaiters);
  std::vector<int> order;
  for (int round = 0; round < kWaiters; ++round) {
    CAPTURE(round);
    int served = -1;
    REQUIRE(eventually(kPatience, [&] {
      for (int i = 0; i < kWaiters; ++i) {
        if (waiters[i] == nullptr) {
          continue;
        }
        seen[i] += waiters[i]->readAll(std::chrono::milliseconds(5));
        if (hasReadyForQuery(seen[i])) {
          served = i;
          return true;
        }
      }
      return false;
    }));
    order.push_back(served);
    CHECK_FALSE(firstError(seen[served]).found);
    waiters[served]->send(std::string("X") + int32be(4));
    waiters[served].reset();
  }
  CHECK(order == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("reserve_pool_size opens one more server once reserve_pool_timeout has passed",
          "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {{"default_pool_size", "1"},
                      {"reserve_pool_size", "1"},
                      {"reserve_pool_timeout", "0.5"},
                      {"query_wait_timeout", "2"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn first = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);

  const auto started = Clock::now();
  Conn second = connect(pgpivot.conninfo());
  const auto waited = Clock::now() - started;
  REQUIRE(PQstatus(second.get()) == CONNECTION_OK);
  CHECK(waited >= std::chrono::milliseconds(450));  // it waited for reserve_pool_timeout
  CHECK(backendPid(second.get()) != backendPid(first.get()));

  // The reserve is one server: a third session waits and times out.
  Conn third = connect(pgpivot.conninfo());
  CHECK(PQstatus(third.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(third.get()), Catch::Contains("query_wait_timeout"));
  CHECK(scalar(first.get(), "SELECT 1") == "1");
  CHECK(scalar(second.get(), "SELECT 2") == "2");
}

TEST_CASE("max_db_connections caps the servers of one database across users", "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {{"default_pool_size", "5"},
                      {"max_db_connections", "2"},
                      {"query_wait_timeout", "3"},
                      {"server_idle_timeout", "1"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn scram = connect(pgpivot.conninfo(kScramUser));
  Conn md5 = connect(pgpivot.conninfo(kMd5User));
  REQUIRE(PQstatus(scram.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(md5.get()) == CONNECTION_OK);

  // A third user's pool is empty but the database has its two servers.
  Conn trust = connect(pgpivot.conninfo(kTrustUser));
  CHECK(PQstatus(trust.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(trust.get()), Catch::Contains("query_wait_timeout"));
  CHECK(scalar(scram.get(), "SELECT current_user") == kScramUser);
  CHECK(scalar(md5.get(), "SELECT current_user") == kMd5User);

  // As PgBouncer documents: a server given back stays open for its own pool until
  // server_idle_timeout closes it; then the waiting pool gets a new one.
  scram.reset();
  Conn later = connect(pgpivot.conninfo(kTrustUser));
  REQUIRE(PQstatus(later.get()) == CONNECTION_OK);
  CHECK(scalar(later.get(), "SELECT current_user") == kTrustUser);
}

TEST_CASE("max_user_connections caps one user's servers across databases", "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {
      {"default_pool_size", "5"}, {"max_user_connections", "1"}, {"query_wait_timeout", "1"}};
  options.databases = {{"appdb", targetOf("appdb")}, {"otherdb", targetOf("postgres")}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn first = connect(pgpivot.conninfo(kScramUser, "appdb"));
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);

  Conn same_user = connect(pgpivot.conninfo(kScramUser, "otherdb"));
  CHECK(PQstatus(same_user.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(same_user.get()), Catch::Contains("query_wait_timeout"));

  // The cap is per user: another user is served.
  Conn other_user = connect(pgpivot.conninfo(kMd5User, "otherdb"));
  REQUIRE(PQstatus(other_user.get()) == CONNECTION_OK);
  CHECK(scalar(other_user.get(), "SELECT current_database()") == "postgres");
  CHECK(scalar(first.get(), "SELECT 1") == "1");
}

TEST_CASE("client_idle_timeout closes a client that stays idle", "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {{"client_idle_timeout", "1"}, {"auth_type", "trust"}};
  Pgpivot pgpivot(options);
  pgpivot.start();

  SECTION("a libpq client's next query fails") {
    Conn conn = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    // A query running longer than the timeout is not idleness.
    CHECK(scalar(conn.get(), "SELECT pg_sleep(1.5)").empty());
    // Only read from now on (a query would be activity).
    CHECK(eventually(kPatience, [&] {
      PQconsumeInput(conn.get());
      return PQstatus(conn.get()) == CONNECTION_BAD;
    }));
    CHECK(scalar(conn.get(), "SELECT 1").rfind("ERROR", 0) == 0);
  }
  SECTION("the client is told why") {
    auto client = startLogin(pgpivot.port(), kScramUser, "appdb");
    std::string seen;
    REQUIRE(readUntil(*client, seen, kPatience, hasReadyForQuery));
    seen += client->readAll(kPatience);  // until pgpivot closes the connection
    const ErrorSeen error = firstError(seen);
    REQUIRE(error.found);
    CHECK(error.sqlstate == "08P01");
    CHECK_THAT(error.message, Catch::Contains("client_idle_timeout"));
  }
}

TEST_CASE("query_timeout ends a client whose query runs too long and cancels it, others go on",
          "[pg][pool]") {
  for (const std::string mode : {"session", "transaction"}) {
    CAPTURE(mode);
    Pgpivot::Options options;
    options.settings = {{"query_timeout", "1"}, {"auth_type", "trust"}, {"pool_mode", mode}};
    Pgpivot pgpivot(options);
    pgpivot.start();
    Conn direct = directConnection();
    Conn bystander = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(bystander.get()) == CONNECTION_OK);
    // Queries shorter than the timeout are not touched.
    CHECK(scalar(bystander.get(), "SELECT pg_sleep(0.3)").empty());

    auto client = startLogin(pgpivot.port(), kScramUser, "appdb");
    std::string seen;
    REQUIRE(readUntil(*client, seen, kPatience, hasReadyForQuery));
    REQUIRE(client->send(pgpivot::wire::query("SELECT pg_sleep(30)")));
    REQUIRE(eventually(kPatience, [&] {
      return countBackends(direct.get(), "query = 'SELECT pg_sleep(30)'") == 1;
    }));
    seen += client->readAll(kPatience);  // until pgpivot closes the connection
    const ErrorSeen error = firstError(seen);
    REQUIRE(error.found);
    CHECK(error.severity == "FATAL");
    CHECK(error.sqlstate == "08P01");
    CHECK_THAT(error.message, Catch::Contains("query_timeout"));
    // Its query was cancelled on the server (not left to sleep on for nobody).
    CHECK(eventually(kPatience, [&] {
      return countBackends(direct.get(), "query = 'SELECT pg_sleep(30)' AND state = 'active'") == 0;
    }));
    CHECK(scalar(bystander.get(), "SELECT 7") == "7");
    Conn after = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(after.get()) == CONNECTION_OK);
    CHECK(scalar(after.get(), "SELECT 8") == "8");
  }
}

TEST_CASE("idle_transaction_timeout ends a client idle inside a transaction and frees its locks",
          "[pg][pool]") {
  for (const std::string mode : {"session", "transaction"}) {
    CAPTURE(mode);
    Pgpivot::Options options;
    options.settings = {
        {"idle_transaction_timeout", "1"}, {"auth_type", "trust"}, {"pool_mode", mode}};
    Pgpivot pgpivot(options);
    pgpivot.start();
    const std::string table = "idle_tx_" + mode;
    Conn other = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(other.get()) == CONNECTION_OK);
    CHECK(scalar(other.get(), "CREATE TABLE IF NOT EXISTS " + table + " (id int)").empty());
    // Idle outside a transaction for longer than the timeout is fine.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK(scalar(other.get(), "SELECT 1") == "1");

    auto client = startLogin(pgpivot.port(), kScramUser, "appdb");
    std::string seen;
    REQUIRE(readUntil(*client, seen, kPatience, hasReadyForQuery));
    seen.clear();
    REQUIRE(client->send(
        pgpivot::wire::query("BEGIN; LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE")));
    REQUIRE(readUntil(*client, seen, kPatience, hasReadyForQuery));
    // The lock it holds is given up when pgpivot closes its server: this insert waits
    // for it, then runs.
    CHECK(scalar(other.get(), "INSERT INTO " + table + " VALUES (1)") == "");
    seen += client->readAll(kPatience);
    const ErrorSeen error = firstError(seen);
    REQUIRE(error.found);
    CHECK(error.severity == "FATAL");
    CHECK(error.sqlstate == "08P01");
    CHECK_THAT(error.message, Catch::Contains("idle_transaction_timeout"));
    CHECK(scalar(other.get(), "SELECT count(*) FROM " + table) != "");
    CHECK(scalar(other.get(), "DROP TABLE " + table).empty());
  }
}

TEST_CASE("server_idle_timeout closes servers that nobody uses", "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {{"server_idle_timeout", "1"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn direct = directConnection();
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);

  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  const std::string pid = backendPid(client.get());
  client.reset();
  // Given back, the server stays in the pool for now...
  CHECK(countBackends(direct.get(), "pid = " + pid) == 1);
  // ...and is closed once it has been idle for server_idle_timeout.
  CHECK(eventually(kPatience, [&] { return countBackends(direct.get(), "pid = " + pid) == 0; }));
}

TEST_CASE("server_lifetime replaces servers older than it once they are given back", "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {{"server_lifetime", "1"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn direct = directConnection();
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);

  Conn client = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  const std::string old_pid = backendPid(client.get());
  // A server in use outlives its lifetime: it is not taken from its client.
  CHECK(scalar(client.get(), "SELECT pg_sleep(1.2)").empty());
  CHECK(backendPid(client.get()) == old_pid);
  client.reset();

  CHECK(
      eventually(kPatience, [&] { return countBackends(direct.get(), "pid = " + old_pid) == 0; }));
  Conn next = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(next.get()) == CONNECTION_OK);
  CHECK(backendPid(next.get()) != old_pid);
}

TEST_CASE("min_pool_size opens servers for a forced-user database before any client",
          "[pg][pool]") {
  Pgpivot::Options options;
  options.settings = {{"min_pool_size", "2"}};
  options.databases = {
      {"appdb", targetOf("appdb")},
      {"minpool", targetOf("postgres") + " user=" + kScramUser + " password=" + kPassword}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn direct = directConnection();
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  const std::string pool_backends = "datname = 'postgres' AND usename = '" +
                                    std::string(kScramUser) +
                                    "' AND backend_type = 'client backend'";
  // The janitor runs ten times a second: a few seconds are plenty.
  CHECK(eventually(std::chrono::seconds(5),
                   [&] { return countBackends(direct.get(), pool_backends) == 2; }));

  // A client of that database (any user: the entry forces pgpivot_scram) gets one of them.
  Conn client = connect(pgpivot.conninfo(kTrustUser, "minpool"));
  REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
  CHECK(scalar(client.get(), "SELECT current_user") == kScramUser);
  CHECK(countBackends(direct.get(), pool_backends + " AND pid = " + backendPid(client.get())) == 1);
}

TEST_CASE("server_connect_timeout fails the waiting client when the server never answers",
          "[pg][pool]") {
  SilentServer silent;
  Pgpivot::Options options;
  options.settings = {
      {"server_connect_timeout", "1"}, {"query_wait_timeout", "10"}, {"auth_type", "trust"}};
  options.databases = {
      {"appdb", targetOf("appdb")},
      {"silent", "host=127.0.0.1 port=" + std::to_string(silent.port()) + " dbname=appdb"}};
  Pgpivot pgpivot(options);
  pgpivot.start();

  auto client = startLogin(pgpivot.port(), kScramUser, "silent");
  const auto started = Clock::now();
  const ErrorSeen error = firstError(client->readAll(kPatience));
  REQUIRE(error.found);
  CHECK(error.sqlstate == "08006");
  CHECK_THAT(error.message,
             Catch::StartsWith("pgpivot:") && Catch::Contains("server_connect_timeout"));
  CHECK(Clock::now() - started < std::chrono::seconds(8));  // not query_wait_timeout

  Conn other = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(other.get()) == CONNECTION_OK);
  CHECK(scalar(other.get(), "SELECT 1") == "1");
}

TEST_CASE("connect_query runs on each new server connection", "[pg][pool]") {
  Pgpivot::Options options;
  options.databases = {{"appdb", targetOf("appdb") + " connect_query='SET myapp.flag = ''on'''"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn first = connect(pgpivot.conninfo());
  Conn second = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(second.get()) == CONNECTION_OK);
  CHECK(backendPid(first.get()) != backendPid(second.get()));
  CHECK(scalar(first.get(), "SHOW myapp.flag") == "on");
  CHECK(scalar(second.get(), "SHOW myapp.flag") == "on");
}
