// NodeHealth and the data path's evidence (DataPathSample): stalled queries explain a lock
// pile-up below the lock thresholds, corroborate a write stall, and alone never make a
// node DOWN or DEGRADED: a long query is not a stuck server.
#include <catch2/catch.hpp>

#include "pgpivot/cluster/node_health.hpp"

namespace pgpivot::cluster {
namespace {

const std::string kSysid = "7712878630329562490";
const NodeContext kPrimary{
    .expected_primary = true, .min_timeline = 2, .system_identifier = kSysid};

ProbeSample okStats(uint64_t at) {
  ProbeSample s;
  s.at_ms = at;
  s.latency_ms = 3;
  s.timeline = 2;
  s.system_identifier = kSysid;
  s.current_lsn = 0x5000000;
  s.max_connections = 100;
  return s;
}

DataPathSample stalled(uint64_t at, int64_t queries, int64_t tps = 50) {
  return DataPathSample{.at_ms = at,
                        .stalled_queries = queries,
                        .oldest_stall_ms = queries > 0 ? uint64_t{4000} : uint64_t{0},
                        .stall_timeout_ms = 3000,
                        .queries_in_flight = queries + 1,
                        .transactions_per_s = tps,
                        .server_errors = 0};
}

// A primary probed every second from t = 0 with `lock_waiters` sessions waiting on locks
// (below the warn thresholds unless said otherwise), and the data path's sample each time.
struct Node {
  Settings settings;
  NodeHealth health{settings};
  uint64_t t = 0;

  NodeState run(int seconds, int lock_waiters, int64_t stalled_queries, int64_t tps = 50) {
    for (int i = 0; i < seconds; ++i, t += 1000) {
      ProbeSample s = okStats(t);
      s.lock_waiters = lock_waiters;
      s.oldest_lock_wait_ms = lock_waiters > 0 ? 2000 : 0;  // below the 5 s warning
      health.onStats(s);
      ConnectSample c;
      c.at_ms = t;
      c.latency_ms = 2;
      health.onConnect(c);
      health.onDataPath(stalled(t, stalled_queries, tps));
      health.evaluate(t, kPrimary);
    }
    return health.verdict().state;
  }
};

TEST_CASE("queries stalled behind lock waiters make the primary DEGRADED:LOCKS, never DOWN",
          "[unit][cluster]") {
  Node n;
  REQUIRE(n.run(4, 0, 0) == NodeState::kHealthy);
  // Two waiters and a 2 s old wait: under lock_waiters_warn and oldest_lock_wait_warn.
  CHECK(n.run(1, 2, 0) == NodeState::kHealthy);
  CHECK(n.run(1, 2, 3) == NodeState::kDegradedLocks);
  CHECK(n.health.verdict().reason.find("3 queries through pgpivot") != std::string::npos);
  CHECK(n.health.verdict().reason.find("2 sessions waiting on locks") != std::string::npos);
  // However long it lasts, and with completions collapsed to 0.
  CHECK(n.run(120, 2, 8, 0) == NodeState::kDegradedLocks);
}

TEST_CASE("stalled queries alone (a long report query) leave a node HEALTHY, with the evidence",
          "[unit][cluster]") {
  Node n;
  CHECK(n.run(30, 0, 2, 0) == NodeState::kHealthy);
  const auto* dp = findField(n.health.verdict().evidence, "data_path");
  REQUIRE(dp != nullptr);
  const auto* e = std::get_if<Evidence>(dp);
  REQUIRE(e != nullptr);
  const auto* count = findField(*e, "stalled_queries");
  REQUIRE(count != nullptr);
  CHECK(std::get<int64_t>(*count) == 2);
  CHECK(std::get<int64_t>(*findField(*e, "transactions_per_s")) == 0);
}

TEST_CASE("an old data-path sample is not evidence any more", "[unit][cluster]") {
  Node n;
  n.run(3, 0, 0);
  n.health.onDataPath(stalled(n.t, 4));
  ProbeSample s = okStats(n.t + 5000);
  s.lock_waiters = 2;
  n.health.onStats(s);
  n.health.evaluate(n.t + 5000, kPrimary);
  CHECK(n.health.verdict().state == NodeState::kHealthy);
  CHECK(findField(n.health.verdict().evidence, "data_path") == nullptr);
}

TEST_CASE("stalled queries with no transaction completing are a server-side cause for W",
          "[unit][cluster]") {
  Node n;
  n.run(3, 0, 0);
  // The heartbeat times out, WAL still moves (other sessions), no I/O waits seen: only the
  // data path says the write path is stuck.
  for (int i = 0; i <= 20; ++i, n.t += 1000) {
    ProbeSample s = okStats(n.t);
    s.current_lsn += n.t;
    n.health.onStats(s);
    ConnectSample c;
    c.at_ms = n.t;
    n.health.onConnect(c);
    WriteSample w;
    w.at_ms = n.t;
    w.outcome = ProbeOutcome::kTimeout;
    w.latency_ms = 1000;
    n.health.onWrite(w);
    n.health.onDataPath(stalled(n.t, 5, 0));
  }
  n.health.evaluate(n.t - 1000, kPrimary);
  CHECK(n.health.verdict().state == NodeState::kDownWriteStuck);
  CHECK(n.health.verdict().reason.find("no transaction completing") != std::string::npos);
}

}  // namespace
}  // namespace pgpivot::cluster
