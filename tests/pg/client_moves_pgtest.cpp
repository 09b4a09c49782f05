// Transaction-mode clients moving between workers between two transactions
// (app/client_moves.hpp): a worker over worker_spill_load hands clients to one with room,
// and a client that moved keeps everything it had: its parameters, its prepared
// statements, its id and its cancel key. The tests set the line at 2 % of a core, which a
// few clients running queries back to back cross and idle clients do not.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

struct Placement {
  uint64_t id = 0;
  int worker = -1;
};

// Where each appdb client is, by application_name.
std::map<std::string, Placement> placements(PGconn* admin) {
  std::map<std::string, Placement> where;
  Res listed(PQexec(admin, "SHOW CLIENTS"));
  REQUIRE(PQresultStatus(listed.get()) == PGRES_TUPLES_OK);
  const int id_column = PQfnumber(listed.get(), "id");
  const int worker_column = PQfnumber(listed.get(), "worker");
  const int db_column = PQfnumber(listed.get(), "database");
  const int app_column = PQfnumber(listed.get(), "application_name");
  REQUIRE(worker_column >= 0);
  for (int row = 0; row < PQntuples(listed.get()); ++row) {
    if (std::string(PQgetvalue(listed.get(), row, db_column)) != "appdb") {
      continue;
    }
    where[PQgetvalue(listed.get(), row, app_column)] = {
        std::stoull(PQgetvalue(listed.get(), row, id_column)),
        std::stoi(PQgetvalue(listed.get(), row, worker_column))};
  }
  return where;
}

// Runs `SELECT 1` back to back on each connection, each from its own thread, until
// stopped (or for 30 s at most).
class BusyClients {
 public:
  explicit BusyClients(const std::vector<PGconn*>& conns) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (PGconn* conn : conns) {
      threads_.emplace_back([this, conn, deadline] {
        while (!stop_ && std::chrono::steady_clock::now() < deadline) {
          Res result(PQexec(conn, "SELECT 1"));
          if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
            ++failures_;
          }
          ++queries_;
        }
      });
    }
  }
  BusyClients(const BusyClients&) = delete;
  BusyClients& operator=(const BusyClients&) = delete;
  ~BusyClients() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& thread : threads_) {
      if (thread.joinable()) {
        thread.join();
      }
    }
  }
  int failures() const { return failures_; }
  int queries() const { return queries_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::atomic<int> queries_{0};
  std::vector<std::thread> threads_;
};

}  // namespace

TEST_CASE("a worker over worker_spill_load hands transaction-mode clients to one with room",
          "[pg][workers][moves]") {
  const int admin_port = freePort();
  Pgpivot::Options options;
  options.settings = {{"admin_port", std::to_string(admin_port)},
                      {"workers", "2"},
                      {"pool_mode", "transaction"},
                      {"default_pool_size", "8"},
                      {"worker_spill_load", "2"},
                      {"admin_users", kScramUser}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  constexpr int kClients = 6;
  std::vector<Conn> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(
        connect(pgpivot.conninfo(kScramUser, "appdb", "application_name=c" + std::to_string(i))));
    PGconn* conn = clients.back().get();
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    // Session state that lives in pgpivot, not on any one server connection.
    Res set(PQexec(conn, ("SET TimeZone = 'Etc/GMT-" + std::to_string(i) + "'").c_str()));
    REQUIRE(PQresultStatus(set.get()) == PGRES_COMMAND_OK);
    Res prepared(
        PQprepare(conn, "add", ("SELECT $1::int + " + std::to_string(i)).c_str(), 1, nullptr));
    REQUIRE(PQresultStatus(prepared.get()) == PGRES_COMMAND_OK);
  }
  // The console on the admin port stays on the first worker and never moves.
  Conn admin = connect("host=127.0.0.1 port=" + std::to_string(admin_port) +
                       " dbname=pgbouncer user=" + kScramUser + " password=secret");
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  const auto before = placements(admin.get());
  REQUIRE(before.size() == kClients);
  // Load the clients of worker 0; those of worker 1 sit idle, so it has room.
  std::vector<PGconn*> busy;
  for (const auto& [name, where] : before) {
    if (where.worker == 0) {
      busy.push_back(clients[std::stoi(name.substr(1))].get());
    }
  }
  REQUIRE(busy.size() == kClients / 2);
  BusyClients load(busy);
  const bool spilled = eventually(std::chrono::seconds(20), [&] {
    int moved = 0;
    for (const auto& [name, where] : placements(admin.get())) {
      moved += before.at(name).worker == 0 && where.worker == 1 ? 1 : 0;
    }
    return moved > 0;
  });
  load.stop();
  INFO(pgpivot.logText());
  REQUIRE(spilled);
  CHECK(load.failures() == 0);
  CHECK(load.queries() > 0);

  // Ids do not change with the worker: KILL_CLIENT and cancel keys still name them.
  const auto after = placements(admin.get());
  std::vector<std::string> moved;
  for (const auto& [name, where] : after) {
    CAPTURE(name);
    CHECK(where.id == before.at(name).id);
    if (where.worker != before.at(name).worker) {
      CHECK(before.at(name).worker == 0);  // only the loaded worker gives clients away
      moved.push_back(name);
    }
  }
  REQUIRE(!moved.empty());
  CHECK(moved.size() < busy.size());  // half the difference, not everything

  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    PGconn* conn = clients[i].get();
    CHECK(scalar(conn, "SHOW TimeZone") == "Etc/GMT-" + std::to_string(i));
    CHECK(scalar(conn, "SHOW application_name") == "c" + std::to_string(i));
    const char* value = "40";
    Res added(PQexecPrepared(conn, "add", 1, &value, nullptr, nullptr, 0));
    REQUIRE(PQresultStatus(added.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(added.get(), 0, 0)) == std::to_string(40 + i));
  }

  // A cancel goes to the worker that made the key, which sends it on to where the client
  // is now.
  Conn direct = connect("host=" + pgServer().host + " port=" + std::to_string(pgServer().port) +
                        " dbname=appdb user=" + kTrustUser);
  PGconn* mover = clients[std::stoi(moved.front().substr(1))].get();
  REQUIRE(PQsendQuery(mover, "SELECT pg_sleep(20)") == 1);
  CHECK(eventually(std::chrono::seconds(5), [&] {
    return scalar(direct.get(),
                  "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' "
                  "AND state = 'active'") == "1";
  }));
  PGcancel* cancel = PQgetCancel(mover);
  REQUIRE(cancel != nullptr);
  char error[256];
  CHECK(PQcancel(cancel, error, sizeof(error)) == 1);
  PQfreeCancel(cancel);
  Res result(PQgetResult(mover));
  CHECK(sqlstateOf(result.get()) == "57014");
  while (Res extra{PQgetResult(mover)}) {
  }
  CHECK(scalar(mover, "SELECT 'after cancel'") == "after cancel");

  // KILL_CLIENT finds a moved client by the id it had.
  Res killed(
      PQexec(admin.get(), ("KILL_CLIENT " + std::to_string(after.at(moved.front()).id)).c_str()));
  CHECK(PQresultStatus(killed.get()) == PGRES_COMMAND_OK);
  CHECK(eventually(std::chrono::seconds(5),
                   [&] { return placements(admin.get()).count(moved.front()) == 0; }));
  clients.clear();
  admin.reset();
  pgpivot.stop(SIGTERM);
}

TEST_CASE("session-mode clients stay on the worker they were given, however loaded",
          "[pg][workers][moves]") {
  const int admin_port = freePort();
  Pgpivot::Options options;
  options.settings = {{"admin_port", std::to_string(admin_port)},
                      {"workers", "2"},
                      {"pool_mode", "session"},
                      {"worker_spill_load", "2"},
                      {"admin_users", kScramUser}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::vector<Conn> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(
        connect(pgpivot.conninfo(kScramUser, "appdb", "application_name=s" + std::to_string(i))));
    REQUIRE(PQstatus(clients.back().get()) == CONNECTION_OK);
  }
  Conn admin = connect("host=127.0.0.1 port=" + std::to_string(admin_port) +
                       " dbname=pgbouncer user=" + kScramUser + " password=secret");
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  const auto before = placements(admin.get());
  REQUIRE(before.size() == 4);
  std::vector<PGconn*> busy;
  for (const auto& [name, where] : before) {
    if (where.worker == 0) {
      busy.push_back(clients[std::stoi(name.substr(1))].get());
    }
  }
  REQUIRE(!busy.empty());
  {
    // Six load windows: a transaction-mode client would have moved by now.
    BusyClients load(busy);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    load.stop();
    CHECK(load.failures() == 0);
  }
  for (const auto& [name, where] : placements(admin.get())) {
    CAPTURE(name);
    CHECK(where.worker == before.at(name).worker);
  }
  for (auto& client : clients) {
    CHECK(scalar(client.get(), "SELECT 2") == "2");
  }
  clients.clear();
  admin.reset();
  pgpivot.stop(SIGTERM);
}
