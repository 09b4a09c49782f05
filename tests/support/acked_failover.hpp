// The frame that issue 4's failover scenarios share: synchronous replication (so that no
// acknowledged write may be lost), acknowledged-write recorders writing through pgpivot on
// the primary before the fault, and what must hold once they write on the new primary.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>

#include "pg/acked_writers.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

namespace pgpivot::test {

inline std::string serverPort(PGconn* conn) {
  return scalar(conn, "SELECT inet_server_port()");
}

// Commits wait for the standby (synchronous_standby_names = '*'), so an acknowledged
// write is on the standby too: a failover may lose none.
inline void makeSynchronous(const TwoNodeCluster& cluster) {
  const int port = cluster.primaryPort();
  const std::string& data = cluster.primaryData();
  REQUIRE(cluster.query(port, data, "ALTER SYSTEM SET synchronous_commit = 'on'") != "ERROR");
  REQUIRE(cluster.query(port, data, "ALTER SYSTEM SET synchronous_standby_names = '*'") != "ERROR");
  REQUIRE(cluster.query(port, data, "SELECT pg_reload_conf()") == "t");
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    return cluster.query(port, data,
                         "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") ==
           "1";
  }));
}

// Waits (10 s at most) until pgpivot's heartbeat table (heartbeat_create = on) on the
// primary holds its row: W, the write probe, is running.
inline void waitHeartbeatRow(const TwoNodeCluster& cluster) {
  REQUIRE(eventually(std::chrono::seconds(10), [&] {
    return cluster.query(cluster.primaryPort(), cluster.primaryData(),
                         "SELECT count(*) FROM pgpivot_heartbeat") == "1";
  }));
}

// CREATE TABLE <table> (client int, seq int) through pgpivot, for AckedWriters.
inline void createAckedTable(const Pgpivot& pgpivot, const std::string& table = "acked") {
  Conn conn = connect(pgpivot.conninfo());
  INFO(errorOf(conn.get()));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "CREATE TABLE " + table + " (client int, seq int)").empty());
}

// Starts the writers and waits (20 s at most) until each has had 3 writes acknowledged by
// the server on `port` (the primary, before the fault is injected).
inline void startWritersOn(AckedWriters& writers, const std::string& port) {
  writers.start();
  REQUIRE(eventually(std::chrono::seconds(20), [&] { return writers.allWroteOn(port, 3); }));
}

// After the fault: true once every writer has had 3 writes acknowledged by `port`.
inline bool writersMovedTo(const AckedWriters& writers, const std::string& port,
                           std::chrono::seconds limit) {
  return eventually(limit, [&] { return writers.allWroteOn(port, 3); });
}

// What the clients of a failover must have seen, the writers stopped and moved to `port`:
// none had to reconnect, a new client lands on `port`, no acknowledged write is missing
// there, and every error told the truth about a statement in flight at the fault (the
// SQLSTATEs in `allowed`; at most `max_each` of each when it is above 0).
inline void checkWritersMoved(const AckedWriters& writers, const Pgpivot& pgpivot,
                              const std::string& port, int max_each = 0,
                              const std::set<std::string>& allowed = {"40001", "40003"}) {
  CHECK(writers.reconnects() == 0);
  Conn check = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(check.get()) == CONNECTION_OK);
  CHECK(serverPort(check.get()) == port);
  CHECK(writers.lost(check.get()) == 0);
  for (const auto& [state, n] : writers.errors()) {
    CAPTURE(state, n);
    if (max_each > 0) {
      CHECK(n <= max_each);
    }
    CHECK(allowed.count(state) == 1);
  }
}

}  // namespace pgpivot::test
