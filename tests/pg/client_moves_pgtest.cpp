// Transaction-mode clients moving between workers between two transactions
// (app/client_moves.hpp): a light load gathers on worker 0, and a client that moved keeps
// everything it had: its parameters, its prepared statements, its cancel key.
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

}  // namespace

TEST_CASE("idle transaction-mode clients gather on one worker and keep their session",
          "[pg][workers][moves]") {
  Pgpivot::Options options;
  options.settings = {{"workers", "2"},
                      {"pool_mode", "transaction"},
                      {"default_pool_size", "4"},
                      {"admin_users", kScramUser}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  constexpr int kClients = 8;
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
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  // New clients are spread evenly; a client inside a transaction block holds its server
  // and must stay where it is until the block ends.
  const auto before = placements(admin.get());
  REQUIRE(before.size() == kClients);
  std::string in_block;
  for (const auto& [name, where] : before) {
    if (where.worker == 1) {
      in_block = name;
    }
  }
  REQUIRE(!in_block.empty());
  const int block_index = std::stoi(in_block.substr(1));
  Res begun(PQexec(clients[block_index].get(), "BEGIN"));
  REQUIRE(PQresultStatus(begun.get()) == PGRES_COMMAND_OK);
  CHECK(scalar(clients[block_index].get(), "SELECT 'inside'") == "inside");

  // Light load: worker 1 gives worker 0 every client that is between transactions.
  CHECK(eventually(std::chrono::seconds(15), [&] {
    const auto now = placements(admin.get());
    int on_one = 0;
    for (const auto& [name, where] : now) {
      on_one += where.worker == 1 ? 1 : 0;
    }
    return on_one == 1 && now.at(in_block).worker == 1;
  }));
  // Ids do not change with the worker: KILL_CLIENT and cancel keys still name them.
  const auto moved = placements(admin.get());
  for (const auto& [name, where] : moved) {
    CAPTURE(name);
    CHECK(where.id == before.at(name).id);
  }
  Res committed(PQexec(clients[block_index].get(), "COMMIT"));
  REQUIRE(PQresultStatus(committed.get()) == PGRES_COMMAND_OK);
  CHECK(eventually(std::chrono::seconds(15),
                   [&] { return placements(admin.get()).at(in_block).worker == 0; }));

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
  for (const auto& [name, where] : before) {
    if (where.worker != 1) {
      continue;
    }
    CAPTURE(name);
    PGconn* conn = clients[std::stoi(name.substr(1))].get();
    REQUIRE(PQsendQuery(conn, "SELECT pg_sleep(20)") == 1);
    CHECK(eventually(std::chrono::seconds(5), [&] {
      return scalar(direct.get(),
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' "
                    "AND state = 'active'") == "1";
    }));
    PGcancel* cancel = PQgetCancel(conn);
    REQUIRE(cancel != nullptr);
    char error[256];
    CHECK(PQcancel(cancel, error, sizeof(error)) == 1);
    PQfreeCancel(cancel);
    Res result(PQgetResult(conn));
    CHECK(sqlstateOf(result.get()) == "57014");
    while (Res extra{PQgetResult(conn)}) {
    }
    CHECK(scalar(conn, "SELECT 'after cancel'") == "after cancel");
  }

  // KILL_CLIENT finds a moved client by the id it had.
  const uint64_t victim = moved.at("c0").id;
  Res killed(PQexec(admin.get(), ("KILL_CLIENT " + std::to_string(victim)).c_str()));
  CHECK(PQresultStatus(killed.get()) == PGRES_COMMAND_OK);
  CHECK(eventually(std::chrono::seconds(5),
                   [&] { return placements(admin.get()).count("c0") == 0; }));
  clients.clear();
  admin.reset();
  pgpivot.stop(SIGTERM);
}

TEST_CASE("session-mode clients stay on the worker they were given", "[pg][workers][moves]") {
  Pgpivot::Options options;
  options.settings = {{"workers", "2"}, {"pool_mode", "session"}, {"admin_users", kScramUser}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  std::vector<Conn> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(
        connect(pgpivot.conninfo(kScramUser, "appdb", "application_name=s" + std::to_string(i))));
    REQUIRE(PQstatus(clients.back().get()) == CONNECTION_OK);
    CHECK(scalar(clients.back().get(), "SELECT 1") == "1");
  }
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgbouncer"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  const auto before = placements(admin.get());
  REQUIRE(before.size() == 4);
  // Two load windows and then some: a move would have happened by now.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
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
