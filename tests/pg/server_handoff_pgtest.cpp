// Workers hand idle server connections to each other (session/server_handoff.cpp): when
// the process-wide pool size is reached and the clients waiting sit on another worker than
// the idle servers, the servers move; no backend is closed and started again. The backend
// pids clients see prove it: there are never more of them than the pool size.
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

constexpr int kPoolSize = 2;
constexpr int kThreads = 6;
constexpr int kConnectionsPerThread = 25;

struct Seen {
  std::mutex mutex;
  std::set<std::string> backend_pids;
  std::vector<std::string> problems;

  void pid(const std::string& pid) {
    std::lock_guard lock(mutex);
    backend_pids.insert(pid);
  }
  void problem(std::string what) {
    std::lock_guard lock(mutex);
    problems.push_back(std::move(what));
  }
};

Pgpivot::Options optionsFor(const std::string& mode) {
  Pgpivot::Options options;
  // Four workers: SO_REUSEPORT spreads the short-lived clients over all of them.
  options.settings = {{"workers", "4"},
                      {"pool_mode", mode},
                      {"default_pool_size", std::to_string(kPoolSize)},
                      {"query_wait_timeout", "60"}};
  return options;
}

// Every thread connects again and again; each connection reports its backend pid and
// checks a value of its own.
template <class Work>
void runShortLivedClients(Pgpivot& pgpivot, Seen& seen, Work work) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kConnectionsPerThread; ++i) {
        Conn conn = connect(pgpivot.conninfo());
        if (PQstatus(conn.get()) != CONNECTION_OK) {
          seen.problem("connect: " + errorOf(conn.get()));
          continue;
        }
        work(conn.get(), t * 1000 + i, seen);
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
}

}  // namespace

TEST_CASE("in session mode idle servers move between workers instead of being reopened",
          "[pg][workers][handoff]") {
  Pgpivot pgpivot(optionsFor("session"));
  pgpivot.start();
  Seen seen;
  runShortLivedClients(pgpivot, seen, [](PGconn* conn, int n, Seen& out) {
    const std::string pid = scalar(conn, "SELECT pg_backend_pid()");
    out.pid(pid);
    // Session state set by this client, read back on the same server.
    const std::string mine = "client-" + std::to_string(n);
    if (scalar(conn, "SET application_name = '" + mine + "'").rfind("ERROR", 0) == 0 ||
        scalar(conn, "SHOW application_name") != mine) {
      out.problem("application_name of client " + std::to_string(n) + " not kept");
    }
    if (scalar(conn, "SELECT " + std::to_string(n)) != std::to_string(n)) {
      out.problem("wrong value for client " + std::to_string(n));
    }
  });
  INFO(seen.problems.size() << " problems, first: "
                            << (seen.problems.empty() ? "" : seen.problems.front()));
  CHECK(seen.problems.empty());
  CHECK(static_cast<int>(seen.backend_pids.size()) <= kPoolSize);
  CHECK(!seen.backend_pids.empty());
}

TEST_CASE("in transaction mode a moved server keeps the prepared statements it holds",
          "[pg][workers][handoff]") {
  Pgpivot pgpivot(optionsFor("transaction"));
  pgpivot.start();
  Seen seen;
  runShortLivedClients(pgpivot, seen, [](PGconn* conn, int n, Seen& out) {
    // Every client prepares the same name and text, so a server that moved with it in its
    // cache is reused without a new Parse; a cache that did not move would Parse again
    // and PostgreSQL would refuse the name as taken.
    Res prepared(PQprepare(conn, "plus_one", "SELECT $1::int4 + 1", 0, nullptr));
    if (PQresultStatus(prepared.get()) != PGRES_COMMAND_OK) {
      out.problem("prepare: " + std::string(PQresultErrorMessage(prepared.get())));
      return;
    }
    for (int k = 0; k < 5; ++k) {
      const std::string value = std::to_string(n * 10 + k);
      const char* values[] = {value.c_str()};
      Res result(PQexecPrepared(conn, "plus_one", 1, values, nullptr, nullptr, 0));
      if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
        out.problem("execute: " + std::string(PQresultErrorMessage(result.get())));
        return;
      }
      if (std::string(PQgetvalue(result.get(), 0, 0)) != std::to_string(n * 10 + k + 1)) {
        out.problem("wrong result for client " + std::to_string(n));
      }
    }
    out.pid(scalar(conn, "SELECT pg_backend_pid()"));
  });
  INFO(seen.problems.size() << " problems, first: "
                            << (seen.problems.empty() ? "" : seen.problems.front()));
  CHECK(seen.problems.empty());
  CHECK(static_cast<int>(seen.backend_pids.size()) <= kPoolSize);
  CHECK(!seen.backend_pids.empty());
}
