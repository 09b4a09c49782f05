// Several workers (one libuv loop per thread): limits hold across them, cancels reach the
// worker that owns the session, clients on every worker are served.
#include <atomic>
#include <catch2/catch.hpp>
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
