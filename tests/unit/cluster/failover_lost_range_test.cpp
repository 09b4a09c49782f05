// The LSN range a failover may have lost (FailoverMachine::possiblyLost): in follow mode,
// where an external manager promoted, and in promote mode; and the reason SHOW CLUSTERS
// shows next to the state.
#include <catch2/catch.hpp>
#include <variant>

#include "sim.hpp"

namespace pgpivot::cluster::test {
namespace {

using config::FailoverMode;

const std::string& textField(const Event& e, std::string_view key) {
  const Field::Value* v = findField(e.evidence, key);
  REQUIRE(v != nullptr);
  const auto* text = std::get_if<std::string>(v);
  REQUIRE(text != nullptr);
  return *text;
}

int64_t numberField(const Event& e, std::string_view key) {
  const Field::Value* v = findField(e.evidence, key);
  REQUIRE(v != nullptr);
  const auto* n = std::get_if<int64_t>(v);
  REQUIRE(n != nullptr);
  return *n;
}

TEST_CASE("follow: the WAL the old primary wrote past the promoted standby is reported lost",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kFollow));
  // The standby stops receiving (asynchronous replication falling behind) while the
  // primary writes 1 MB more and pgpivot probes it.
  sim.node(1).upstream = -1;
  const uint64_t standby_at = sim.node(1).lsn;
  sim.node(0).lsn += 1024 * 1024;
  sim.run(2000);
  const uint64_t primary_at = sim.node(0).lsn;
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  sim.promoteExternally(1);
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  const Event* done = sim.lastEvent("failover_complete");
  REQUIRE(done != nullptr);
  CHECK(textField(*done, "promoted_at_lsn") == formatLsn(standby_at));
  CHECK(textField(*done, "promoted_at_source") == "pg_last_wal_replay_lsn");
  // The last position a probe saw: the heartbeat may have written after it.
  const auto old_last = parseLsn(textField(*done, "old_primary_last_lsn"));
  REQUIRE(old_last);
  CHECK(*old_last >= standby_at + 1024 * 1024);
  CHECK(*old_last <= primary_at);
  const int64_t bytes = numberField(*done, "possibly_lost_bytes_at_least");
  CHECK(bytes == static_cast<int64_t>(*old_last - standby_at));
  const auto* range = std::get_if<std::vector<std::string>>(
      findField(done->evidence, "possible_lost_commits_lsn_range"));
  REQUIRE(range != nullptr);
  CHECK(*range == std::vector<std::string>{formatLsn(standby_at), formatLsn(*old_last)});
  CHECK(textField(*done, "possibly_lost") == "LSN " + formatLsn(standby_at) + " .. " +
                                                 formatLsn(*old_last) + " (" +
                                                 std::to_string(bytes) + " bytes)");
  // The main log's summary line carries it too.
  const EventLogFormatter log("sim", "main");
  CHECK_THAT(log.summary(*done), Catch::Contains("possibly lost: LSN " + formatLsn(standby_at)));
  CHECK_THAT(log.line(*done, 0),
             Catch::Contains("\"possible_lost_commits_lsn_range\":[\"" + formatLsn(standby_at)));
}

TEST_CASE("follow: a standby that had everything loses nothing", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kFollow));
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  sim.promoteExternally(1);
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  const Event* done = sim.lastEvent("failover_complete");
  REQUIRE(done != nullptr);
  CHECK(numberField(*done, "possibly_lost_bytes_at_least") == 0);
  CHECK(textField(*done, "possibly_lost").starts_with("none (promoted at "));
}

TEST_CASE("follow: without its end of recovery, the promoted node's last standby position",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kFollow));
  sim.node(1).upstream = -1;
  const uint64_t standby_at = sim.node(1).lsn;
  sim.node(0).lsn += 4096;
  sim.run(1000);
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  sim.promoteExternally(1);
  sim.node(1).recovery_end = 0;  // restarted since its promotion: NULL
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
  const Event* done = sim.lastEvent("failover_complete");
  REQUIRE(done != nullptr);
  CHECK(textField(*done, "promoted_at_source") == "last_standby_lsn_seen");
  CHECK(textField(*done, "promoted_at_lsn") == formatLsn(standby_at));
  CHECK(numberField(*done, "possibly_lost_bytes_at_least") >= 4096);
}

TEST_CASE("promote: the range starts at the promoted node's end of recovery", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(1).upstream = -1;  // falls behind by 4 kB, within max_lag_on_failover
  const uint64_t standby_at = sim.node(1).lsn;
  sim.node(0).lsn += 4096;
  sim.run(1000);
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(20000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  const Event* done = sim.lastEvent("failover_complete");
  REQUIRE(done != nullptr);
  CHECK(textField(*done, "promoted_at_source") == "pg_last_wal_replay_lsn");
  CHECK(textField(*done, "promoted_at_lsn") == formatLsn(standby_at));
  CHECK(numberField(*done, "possibly_lost_bytes_at_least") >= 4096);
}

TEST_CASE("the reason of the current state is kept for SHOW CLUSTERS", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kManual));
  CHECK(sim.machine().stateReason() == "clients resumed on db0:5432");
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  INFO(sim.dump());
  const Event* change = sim.lastEvent("state_change");
  REQUIRE(change != nullptr);
  CHECK(change->to == "WAIT_OPERATOR");
  CHECK(sim.machine().stateReason() == change->reason);
  CHECK_THAT(sim.machine().stateReason(), Catch::StartsWith("failover_mode = manual: "));
}

}  // namespace
}  // namespace pgpivot::cluster::test
