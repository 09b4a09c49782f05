// Load through pgpivot: many concurrent libpq clients over a small pool, and pgbench in
// simple, extended and prepared protocol modes.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/pgbench_load.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

std::string directConninfo(const std::string& user) {
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

// Backends PostgreSQL runs for pgpivot's pool of appdb (the observer is another user).
std::string poolBackendsQuery() {
  return std::string(
             "SELECT count(*) FROM pg_stat_activity WHERE datname = 'appdb' AND usename = '") +
         kScramUser + "'";
}

// One client's bounded work: connect, 20 queries (simple and extended), check each answer.
// Returns "" on success or what went wrong.
std::string runClient(const std::string& conninfo, int client) {
  Conn conn = connect(conninfo);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return "client " + std::to_string(client) + ": connect: " + errorOf(conn.get());
  }
  for (int q = 0; q < 20; ++q) {
    const int64_t value = int64_t{client} * 1000 + q;
    std::string got;
    if (q % 2 == 0) {
      got = scalar(conn.get(), "SELECT " + std::to_string(value) + " * 2");
    } else {
      const std::string param = std::to_string(value);
      const char* values[] = {param.c_str()};
      Res result(
          PQexecParams(conn.get(), "SELECT $1::int8 * 2", 1, nullptr, values, nullptr, nullptr, 0));
      got = PQresultStatus(result.get()) == PGRES_TUPLES_OK
                ? PQgetvalue(result.get(), 0, 0)
                : "ERROR " + sqlstateOf(result.get()) + ": " + errorOf(conn.get());
    }
    if (got != std::to_string(value * 2)) {
      return "client " + std::to_string(client) + " query " + std::to_string(q) + ": got '" + got +
             "'";
    }
  }
  return "";
}

}  // namespace

TEST_CASE("200 concurrent clients share a pool of 20 server connections and all succeed",
          "[pg][load]") {
  Pgpivot::Options options;
  options.settings = {
      {"default_pool_size", "20"}, {"max_client_conn", "300"}, {"query_wait_timeout", "60"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn observer = connectOk(directConninfo(kTrustUser));
  // Backends of earlier tests' pgpivot processes must be gone before we count ours.
  REQUIRE(eventually(std::chrono::seconds(10),
                     [&] { return scalar(observer.get(), poolBackendsQuery()) == "0"; }));

  constexpr int kClients = 200;
  std::vector<std::string> failures(kClients);
  std::atomic<int> finished{0};
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      failures[i] = runClient(
          pgpivot.conninfo(kScramUser, "appdb", "application_name=load" + std::to_string(i)), i);
      finished++;
    });
  }

  // Sample how many backends PostgreSQL runs for the pool while the clients work.
  int most_backends = 0;
  int samples = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (finished.load() < kClients && std::chrono::steady_clock::now() < deadline) {
    const std::string count = scalar(observer.get(), poolBackendsQuery());
    if (!count.empty() && count.front() != 'E') {
      most_backends = std::max(most_backends, std::stoi(count));
      ++samples;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& thread : clients) {
    thread.join();
  }

  std::vector<std::string> errors;
  for (const auto& failure : failures) {
    if (!failure.empty()) {
      errors.push_back(failure);
    }
  }
  INFO("first failures: " << (errors.empty() ? "" : errors.front()) << " | "
                          << (errors.size() > 1 ? errors[1] : ""));
  CHECK(errors.size() == 0);
  INFO(samples << " samples");
  CHECK(samples > 0);
  CHECK(most_backends > 0);
  CHECK(most_backends <= 20);
  // After the rush the pool still holds at most 20 and pgpivot serves new clients.
  CHECK(std::stoi(scalar(observer.get(), poolBackendsQuery())) <= 20);
  CHECK(runClient(pgpivot.conninfo(), kClients) == "");
}

TEST_CASE("pgbench runs through pgpivot in simple, extended and prepared modes without failures",
          "[pg][load][pgbench]") {
  // Initialise directly against PostgreSQL, as the pool's user.
  pgbenchInit(pgServer().port);

  Pgpivot pgpivot;
  pgpivot.start();
  for (const char* mode : {"simple", "extended", "prepared"}) {
    CAPTURE(mode);
    const PgbenchRun run =
        runPgbench(pgpivot.port(), std::string("-n -c 8 -j 2 -t 200 -M ") + mode);
    INFO(run.output);
    CHECK(run.status == 0);
    CHECK(run.summary.processed == 1600);
    CHECK(run.summary.planned == 1600);
    CHECK(run.summary.failed == 0);
  }
}
