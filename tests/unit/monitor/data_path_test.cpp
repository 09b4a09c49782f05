// DataPathTracker: the worker's half of the data-path evidence. A connection is stalled
// when it owes a reply and no byte moved for longer than its stall timeout, as seen by
// the janitor's passes; transactions and server errors are counted per interval.
#include "pgpivot/monitor/data_path.hpp"

#include <catch2/catch.hpp>

namespace pgpivot::monitor {
namespace {

DataPathTracker::ServerSeen conn(uint64_t id, bool owes, uint64_t in, uint64_t out = 100) {
  return {.id = id,
          .cluster = "main",
          .node = "db0:5432",
          .owes_reply = owes,
          .bytes_in = in,
          .bytes_out = out,
          .stall_timeout_ms = 1000};
}

// Janitor passes every 100 ms from `from` to `to` (exclusive) with the same servers.
void passes(DataPathTracker& t, uint64_t from, uint64_t to,
            const std::vector<DataPathTracker::ServerSeen>& servers) {
  for (uint64_t now = from; now < to; now += 100) {
    t.beginPass(now);
    for (const auto& s : servers) {
      t.server(s);
    }
    t.endPass();
  }
}

TEST_CASE("a connection owing a reply with no byte moving is stalled after the timeout",
          "[unit][monitor]") {
  DataPathTracker t;
  passes(t, 1000, 2000, {conn(1, true, 500)});
  DataPathReport r = t.report(3, 2000);
  REQUIRE(r.nodes.size() == 1);
  CHECK(r.worker == 3);
  CHECK(r.nodes[0].owing == 1);
  CHECK(r.nodes[0].stalled == 0);  // 900 ms so far
  passes(t, 2000, 2300, {conn(1, true, 500)});
  r = t.report(3, 2300);
  REQUIRE(r.nodes.size() == 1);
  CHECK(r.nodes[0].stalled == 1);
  CHECK(r.nodes[0].oldest_stall_ms == 1200);
  CHECK(r.nodes[0].cluster == "main");
  CHECK(r.nodes[0].node == "db0:5432");
}

TEST_CASE("a byte back, or the connection owing nothing, restarts the stall clock",
          "[unit][monitor]") {
  DataPathTracker t;
  passes(t, 1000, 1900, {conn(1, true, 500), conn(2, true, 500)});
  // Connection 1 gets a reply byte; connection 2 finishes (owes nothing).
  passes(t, 1900, 2000, {conn(1, true, 501), conn(2, false, 600)});
  passes(t, 2000, 2500, {conn(1, true, 501), conn(2, false, 600)});
  const DataPathReport r = t.report(0, 2500);
  REQUIRE(r.nodes.size() == 1);
  CHECK(r.nodes[0].stalled == 0);
  CHECK(r.nodes[0].owing == 1);
}

TEST_CASE("a client streaming COPY data to the server is not a stall", "[unit][monitor]") {
  DataPathTracker t;
  uint64_t out = 100;
  for (uint64_t now = 1000; now < 4000; now += 100) {
    t.beginPass(now);
    t.server(conn(1, true, 500, out += 8192));
    t.endPass();
  }
  CHECK(t.report(0, 4000).nodes.at(0).stalled == 0);
}

TEST_CASE("transactions and server errors are counted per interval, from first sight",
          "[unit][monitor]") {
  DataPathTracker t;
  int pool_key = 0;
  const auto pool = [&](uint64_t now, uint64_t xacts, uint64_t errors) {
    t.beginPass(now);
    t.pool({.pool = &pool_key,
            .cluster = "main",
            .node = "db0:5432",
            .transactions = xacts,
            .server_errors = errors});
    t.endPass();
  };
  pool(1000, 5000, 7);  // history before the tracker saw it does not count
  pool(1100, 5040, 7);
  pool(1200, 5100, 9);
  DataPathReport r = t.report(0, 1500);
  REQUIRE(r.nodes.size() == 1);
  CHECK(r.nodes[0].transactions == 100);
  CHECK(r.nodes[0].server_errors == 2);
  CHECK(r.interval_ms == 500);
  pool(1600, 5100, 9);
  r = t.report(0, 2000);
  CHECK(r.nodes.at(0).transactions == 0);
  CHECK(r.interval_ms == 500);
}

TEST_CASE("connections that are gone are forgotten", "[unit][monitor]") {
  DataPathTracker t;
  passes(t, 1000, 2500, {conn(1, true, 500)});
  passes(t, 2500, 2600, {});
  // Id 1 again (a new connection would not reuse it, but a forgotten one starts afresh).
  passes(t, 2600, 2700, {conn(1, true, 500)});
  CHECK(t.report(0, 2700).nodes.at(0).stalled == 0);
}

TEST_CASE("a report is due every kReportIntervalMs", "[unit][monitor]") {
  DataPathTracker t;
  t.beginPass(1000);
  t.endPass();
  CHECK_FALSE(t.due(1100));
  CHECK(t.due(1000 + DataPathTracker::kReportIntervalMs));
  (void)t.report(0, 1500);
  CHECK_FALSE(t.due(1600));
  CHECK(t.due(2000));
}

}  // namespace
}  // namespace pgpivot::monitor
