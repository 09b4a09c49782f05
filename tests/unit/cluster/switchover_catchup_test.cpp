// A switchover's catch-up (FailoverMachine::catchingUp) with the two nodes' probes out of
// step, as they are on a real monitor: each node's stats probe runs on its own schedule.
#include <catch2/catch.hpp>

#include "sim.hpp"

namespace pgpivot::cluster::test {
namespace {

using config::FailoverMode;

ProbeSample sampleOf(const FakeNode& n, uint64_t sent_ms) {
  ProbeSample s;
  s.at_ms = sent_ms;
  s.latency_ms = 3;
  s.in_recovery = n.in_recovery;
  s.timeline = n.timeline;
  s.system_identifier = n.sysid;
  s.server_version_num = 150018;
  s.max_connections = 100;
  if (n.in_recovery) {
    s.receive_lsn = n.lsn;
    s.replay_lsn = n.lsn - n.replay_lag;
    s.wal_receiver_streaming = true;
    s.last_msg_receipt_age_ms = 0;
  } else {
    s.current_lsn = n.lsn;
    s.streaming_standbys = 1;
  }
  return s;
}

// Clients paused, the standby elected: CATCHING_UP waits for a probe of the old primary
// sent after the pause.
Sim catchingUp() {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kSwitchover});
  REQUIRE(out.admin);
  REQUIRE(out.admin->accepted);
  REQUIRE(sim.state() == ClusterState::kCatchingUp);
  sim.node(1).lsn = sim.node(0).lsn;  // it received the last heartbeat too
  return sim;
}

TEST_CASE("switchover: a standby probed before the old primary, already caught up, is enough",
          "[unit][cluster]") {
  Sim sim = catchingUp();
  const uint64_t t = sim.now();
  // The standby's probe went out first and shows everything the primary has...
  (void)sim.machine().onStats(1, sampleOf(sim.node(1), t + 10), t + 15);
  CHECK(sim.state() == ClusterState::kCatchingUp);  // no target yet: nothing to compare
  // ...the old primary's, sent later, gives the target: no need to wait for yet another
  // standby probe (a whole probe_interval when the two are out of step).
  (void)sim.machine().onStats(0, sampleOf(sim.node(0), t + 30), t + 35);
  CHECK(sim.state() == ClusterState::kFencing);
}

TEST_CASE("switchover: a standby behind the old primary's position keeps it catching up",
          "[unit][cluster]") {
  Sim sim = catchingUp();
  const uint64_t t = sim.now();
  FakeNode behind = sim.node(1);
  behind.replay_lag = 0x100;  // received everything, replayed less
  (void)sim.machine().onStats(1, sampleOf(behind, t + 10), t + 15);
  (void)sim.machine().onStats(0, sampleOf(sim.node(0), t + 30), t + 35);
  CHECK(sim.state() == ClusterState::kCatchingUp);
  // Its next probe shows the replay done.
  (void)sim.machine().onStats(1, sampleOf(sim.node(1), t + 50), t + 55);
  CHECK(sim.state() == ClusterState::kFencing);
}

}  // namespace
}  // namespace pgpivot::cluster::test
