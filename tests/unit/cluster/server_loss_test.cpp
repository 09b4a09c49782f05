// The verdict on a broken server connection to a cluster's primary: "failover" only once
// the pool moved (or a failover holds clients past failover_pause_timeout), "server
// connection lost" once the primary evidently serves on or no failover came in time.
#include "pgpivot/cluster/server_loss.hpp"

#include <catch2/catch.hpp>

namespace pgpivot::cluster {
namespace {

constexpr LossTiming kTiming{
    .alive_grace_ms = 1000, .decide_within_ms = 5000, .pause_limit_ms = 3000};

// Where the pool's servers connect: node 1, or node 2 after a failover moved it.
PoolSignals pool(int node = 1, bool paused = false, uint64_t transactions = 100) {
  return PoolSignals{.primary = "db" + std::to_string(node) + ":5432",
                     .paused = paused,
                     .transactions = transactions};
}

TEST_CASE("server loss: what the connection's end says by itself is final at once",
          "[unit][cluster]") {
  ServerLoss moved(true, false, pool(), 0, kTiming);
  CHECK(moved.cause() == LossCause::kFailover);
  CHECK(moved.decide(pool(), 10) == LossCause::kFailover);
  ServerLoss crash(false, true, pool(), 0, kTiming);
  CHECK(crash.decide(pool(2), 10) == LossCause::kCrashRestart);  // never changes once known
}

TEST_CASE("server loss: the pool moving to a new primary is a failover", "[unit][cluster]") {
  ServerLoss loss(false, false, pool(), 1000, kTiming);
  CHECK(loss.decide(pool(), 1100) == LossCause::kPending);
  CHECK(loss.decide(pool(1, true), 2000) == LossCause::kPending);  // held: being decided
  CHECK(loss.decide(pool(2, true), 3000) == LossCause::kFailover);
  CHECK(loss.decide(pool(), 3100) == LossCause::kFailover);
}

TEST_CASE("server loss: transactions completing after the grace mean the primary serves on",
          "[unit][cluster]") {
  ServerLoss loss(false, false, pool(), 1000, kTiming);
  // Within the grace, completions prove nothing (an orphaned backend finishes its statement).
  CHECK(loss.decide(pool(1, false, 150), 1500) == LossCause::kPending);
  CHECK(loss.decide(pool(1, false, 150), 2000) == LossCause::kPending);  // baseline taken
  CHECK(loss.decide(pool(1, false, 150), 2100) == LossCause::kPending);
  CHECK(loss.decide(pool(1, false, 151), 2200) == LossCause::kServerLost);
}

TEST_CASE("server loss: no failover declared in the detection time is no failover",
          "[unit][cluster]") {
  ServerLoss loss(false, false, pool(), 1000, kTiming);
  CHECK(loss.decide(pool(), 5999) == LossCause::kPending);
  CHECK(loss.decide(pool(), 6000) == LossCause::kServerLost);
}

TEST_CASE("server loss: a pause that ends on the same primary is no failover", "[unit][cluster]") {
  // A crash recovery holds clients, then the same primary serves again.
  ServerLoss loss(false, false, pool(), 1000, kTiming);
  CHECK(loss.decide(pool(), 1200) == LossCause::kPending);
  CHECK(loss.decide(pool(1, true), 4000) == LossCause::kPending);
  CHECK(loss.decide(pool(1, true), 6900) == LossCause::kPending);  // past decide_within: held
  CHECK(loss.decide(pool(1, false), 7000) == LossCause::kServerLost);
}

TEST_CASE("server loss: clients held past failover_pause_timeout: a failover is under way",
          "[unit][cluster]") {
  ServerLoss loss(false, false, pool(), 1000, kTiming);
  CHECK(loss.decide(pool(1, true), 2000) == LossCause::kPending);
  CHECK(loss.decide(pool(1, true), 4999) == LossCause::kPending);
  CHECK(loss.decide(pool(1, true), 5000) == LossCause::kFailover);
}

TEST_CASE("server loss causes have stable names", "[unit][cluster]") {
  CHECK(toString(LossCause::kPending) == "pending");
  CHECK(toString(LossCause::kServerLost) == "server_lost");
  CHECK(toString(LossCause::kFailover) == "failover");
  CHECK(toString(LossCause::kCrashRestart) == "crash_restart");
}

}  // namespace
}  // namespace pgpivot::cluster
