// A bounded write workload for failover tests: a few clients, each on one connection
// through pgpivot, inserting (client, seq) rows every few milliseconds and remembering
// every insert PostgreSQL acknowledged, every error by SQLSTATE, and every time a
// connection was lost and had to be opened again. After the fault, check() compares the
// acknowledged rows with what the new primary holds.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/pgpivot_fixture.hpp"

namespace pgpivot::test {

class AckedWriters {
 public:
  // The table must exist: CREATE TABLE <table> (client int, seq int).
  AckedWriters(std::string conninfo, std::string table, int clients)
      : conninfo_(std::move(conninfo)), table_(std::move(table)) {
    for (int c = 0; c < clients; ++c) {
      clients_.push_back(std::make_unique<Client>());
      clients_.back()->id = c;
    }
  }
  AckedWriters(const AckedWriters&) = delete;
  AckedWriters& operator=(const AckedWriters&) = delete;
  ~AckedWriters() { stop(); }

  // Bounded: each client stops by itself after `limit` or 5,000 inserts.
  void start(std::chrono::milliseconds limit = std::chrono::seconds(90)) {
    for (auto& client : clients_) {
      Client* c = client.get();
      c->thread = std::thread([this, c, limit] { run(*c, limit); });
    }
  }
  void stop() {
    stop_ = true;
    for (auto& client : clients_) {
      if (client->thread.joinable()) {
        client->thread.join();
      }
    }
  }

  // Every client has had `n` inserts acknowledged by the server on `port` since start.
  bool allWroteOn(const std::string& port, int n) const {
    std::lock_guard lock(mutex_);
    for (const auto& c : clients_) {
      int on_port = 0;
      for (const auto& [seq, p] : c->acked) {
        on_port += p == port ? 1 : 0;
      }
      if (on_port < n) {
        return false;
      }
    }
    return true;
  }
  int reconnects() const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& c : clients_) {
      n += c->reconnects;
    }
    return n;
  }
  std::map<std::string, int> errors() const {
    std::lock_guard lock(mutex_);
    std::map<std::string, int> out;
    for (const auto& c : clients_) {
      for (const auto& [state, n] : c->errors) {
        out[state] += n;
      }
    }
    return out;
  }
  std::size_t acked() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& c : clients_) {
      n += c->acked.size();
    }
    return n;
  }
  // Acknowledged rows missing from what `conn` (the new primary, through pgpivot) holds.
  // -1 when the table cannot be read.
  int lost(PGconn* conn) const {
    Res result(PQexec(conn, ("SELECT client, seq FROM " + table_).c_str()));
    if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
      return -1;
    }
    std::set<std::pair<int, int>> present;
    for (int r = 0; r < PQntuples(result.get()); ++r) {
      present.emplace(std::stoi(PQgetvalue(result.get(), r, 0)),
                      std::stoi(PQgetvalue(result.get(), r, 1)));
    }
    std::lock_guard lock(mutex_);
    int missing = 0;
    for (const auto& c : clients_) {
      for (const auto& [seq, port] : c->acked) {
        missing += present.count({c->id, seq}) == 0 ? 1 : 0;
      }
    }
    return missing;
  }
  std::string summary() const {
    std::ostringstream out;
    out << "acked " << acked() << ", reconnects " << reconnects() << ", errors:";
    for (const auto& [state, n] : errors()) {
      out << " " << state << "=" << n;
    }
    return out.str();
  }

 private:
  struct Client {
    int id = 0;
    std::thread thread;
    std::vector<std::pair<int, std::string>> acked;  // seq, the server's port
    std::map<std::string, int> errors;               // by SQLSTATE ("none": no SQLSTATE)
    int reconnects = 0;
  };

  void run(Client& c, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    Conn conn = connect(conninfo_);
    for (int seq = 1; seq <= 5000 && !stop_ && std::chrono::steady_clock::now() < until; ++seq) {
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        {
          std::lock_guard lock(mutex_);
          ++c.reconnects;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        conn = connect(conninfo_);
        continue;
      }
      const std::string sql = "INSERT INTO " + table_ + " VALUES (" + std::to_string(c.id) + ", " +
                              std::to_string(seq) + ") RETURNING inet_server_port()";
      Res result(PQexec(conn.get(), sql.c_str()));
      {
        std::lock_guard lock(mutex_);
        if (PQresultStatus(result.get()) == PGRES_TUPLES_OK && PQntuples(result.get()) == 1) {
          c.acked.emplace_back(seq, PQgetvalue(result.get(), 0, 0));
        } else {
          const std::string state = sqlstateOf(result.get());
          ++c.errors[state.empty() ? "none" : state];
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string conninfo_;
  std::string table_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
};

}  // namespace pgpivot::test
