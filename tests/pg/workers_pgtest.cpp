// Several workers (one libuv loop per thread): limits hold across them, cancels reach the
// worker that owns the session, clients on every worker are served.
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

Conn directConnection() {
  return connect("host=" + pgServer().host + " port=" + std::to_string(pgServer().port) +
                 " dbname=appdb user=" + kTrustUser);
}

int backendsOf(PGconn* direct, const std::string& user) {
  return std::stoi(scalar(direct, "SELECT count(*) FROM pg_stat_activity WHERE usename = '" + user +
                                      "' AND backend_type = 'client backend'"));
}

}  // namespace

TEST_CASE("with four workers the pool size holds across all of them", "[pg][workers]") {
  Pgpivot::Options options;
  options.settings = {{"workers", "4"},
                      {"pool_mode", "transaction"},
                      {"default_pool_size", "4"},
                      {"query_wait_timeout", "30"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn direct = directConnection();
  REQUIRE(PQstatus(direct.get()) == CONNECTION_OK);
  std::atomic<int> wrong{0};
  std::atomic<int> max_backends{0};
  std::atomic<bool> running{true};
  std::thread watcher([&] {
    Conn watch = directConnection();
    while (running) {
      const int n = backendsOf(watch.get(), kScramUser);
      int seen = max_backends.load();
      while (n > seen && !max_backends.compare_exchange_weak(seen, n)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 80; ++t) {
    threads.emplace_back([&, t] {
      Conn conn = connect(pgpivot.conninfo());
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        wrong++;
        return;
      }
      for (int i = 0; i < 25; ++i) {
        const std::string value = std::to_string(t * 1000 + i);
        if (scalar(conn.get(), "SELECT " + value) != value) {
          wrong++;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  running = false;
  watcher.join();
  CHECK(wrong == 0);
  CHECK(max_backends <= 4);
  CHECK(max_backends >= 1);
}

TEST_CASE("with four workers every cancel reaches the worker that owns the session",
          "[pg][workers]") {
  Pgpivot::Options options;
  options.settings = {{"workers", "4"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  // Cancel connections land on any worker (SO_REUSEPORT); with several rounds some cross.
  for (int round = 0; round < 8; ++round) {
    CAPTURE(round);
    Conn conn = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    REQUIRE(PQsendQuery(conn.get(), "SELECT pg_sleep(20)") == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    PGcancel* cancel = PQgetCancel(conn.get());
    REQUIRE(cancel != nullptr);
    char error[256];
    CHECK(PQcancel(cancel, error, sizeof(error)) == 1);
    PQfreeCancel(cancel);
    const auto started = std::chrono::steady_clock::now();
    Res result(PQgetResult(conn.get()));
    CHECK(sqlstateOf(result.get()) == "57014");
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
    while (Res extra{PQgetResult(conn.get())}) {
    }
  }
}

TEST_CASE("max_client_conn counts the clients of every worker", "[pg][workers]") {
  Pgpivot::Options options;
  options.settings = {{"workers", "3"}, {"max_client_conn", "5"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::vector<Conn> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(connect(pgpivot.conninfo()));
    REQUIRE(PQstatus(held.back().get()) == CONNECTION_OK);
  }
  Conn extra = connect(pgpivot.conninfo());
  CHECK(PQstatus(extra.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(extra.get()), Catch::Contains("max_client_conn"));
  held.pop_back();
  CHECK(eventually(std::chrono::seconds(5), [&] {
    Conn again = connect(pgpivot.conninfo());
    return PQstatus(again.get()) == CONNECTION_OK;
  }));
}

TEST_CASE("new clients are spread evenly over the workers, from TCP and the unix socket",
          "[pg][workers]") {
  // The kernel's SO_REUSEPORT hash lands a few clients unevenly, and only the first worker
  // listens on the unix socket: the accepting worker hands a client to the one with fewest.
  char pattern[] = "/tmp/pgpivot-unix.XXXXXX";
  const char* socket_dir = ::mkdtemp(pattern);
  REQUIRE(socket_dir != nullptr);
  Pgpivot::Options options;
  // Session mode: transaction-mode clients would start gathering on one worker once they
  // have sat idle a while (client_moves_pgtest.cpp), and this is about where they land.
  options.settings = {{"workers", "3"},
                      {"pool_mode", "session"},
                      {"admin_users", kScramUser},
                      {"unix_socket_dir", socket_dir}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::vector<Conn> clients;
  const auto connectAndAsk = [&](const std::string& conninfo, int n) {
    for (int i = 0; i < n; ++i) {
      clients.push_back(connect(conninfo));
      REQUIRE(PQstatus(clients.back().get()) == CONNECTION_OK);
      const std::string value = std::to_string(clients.size());
      CHECK(scalar(clients.back().get(), "SELECT " + value) == value);
    }
  };
  connectAndAsk(pgpivot.conninfo(), 12);
  connectAndAsk("host=" + std::string(socket_dir) + " port=" + std::to_string(pgpivot.port()) +
                    " dbname=appdb user=" + kScramUser + " password=secret",
                6);

  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  Res listed(PQexec(admin.get(), "SHOW CLIENTS"));
  REQUIRE(PQresultStatus(listed.get()) == PGRES_TUPLES_OK);
  const int id_column = PQfnumber(listed.get(), "id");
  const int db_column = PQfnumber(listed.get(), "database");
  const int addr_column = PQfnumber(listed.get(), "addr");
  REQUIRE(id_column >= 0);
  REQUIRE(db_column >= 0);
  std::map<uint64_t, int> per_worker;
  int unix_clients = 0;
  for (int row = 0; row < PQntuples(listed.get()); ++row) {
    if (std::string(PQgetvalue(listed.get(), row, db_column)) != "appdb") {
      continue;
    }
    // Connection ids carry their worker's index in the bits above 40.
    const uint64_t id = std::stoull(PQgetvalue(listed.get(), row, id_column));
    per_worker[id >> 40]++;
    unix_clients += std::string(PQgetvalue(listed.get(), row, addr_column)) == "unix" ? 1 : 0;
  }
  CHECK(unix_clients == 6);
  REQUIRE(per_worker.size() == 3);
  for (const auto& [worker, count] : per_worker) {
    CAPTURE(worker);
    CHECK(count == 6);
  }
  // Every client, wherever it was handed, still answers.
  for (std::size_t i = 0; i < clients.size(); ++i) {
    CHECK(scalar(clients[i].get(), "SELECT 'again'") == "again");
  }
  clients.clear();
  admin.reset();
  pgpivot.stop(SIGTERM);
  std::error_code ignored;
  std::filesystem::remove_all(socket_dir, ignored);
}
