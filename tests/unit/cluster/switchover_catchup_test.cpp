// A switchover's catch-up (FailoverMachine::catchingUp) with the two nodes' probes out of
// step, as they are on a real monitor: each node's stats probe runs on its own schedule.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "pgpivot/cluster/probe_sql.hpp"
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
    s.flush_lsn = n.lsn;
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
  behind.lsn -= 0x100;  // not all received yet
  (void)sim.machine().onStats(1, sampleOf(behind, t + 10), t + 15);
  (void)sim.machine().onStats(0, sampleOf(sim.node(0), t + 30), t + 35);
  CHECK(sim.state() == ClusterState::kCatchingUp);
  // Its next probe shows the rest received.
  (void)sim.machine().onStats(1, sampleOf(sim.node(1), t + 50), t + 55);
  CHECK(sim.state() == ClusterState::kFencing);
}

// synchronous_commit = off: the old primary acknowledged commits whose WAL is past its
// pg_current_wal_lsn() until the fence flushes it. Only a probe sent after the fence's
// answer shows where that WAL ends.
TEST_CASE("switchover: the fence flushes the old primary's WAL and the standby must get it",
          "[unit][cluster]") {
  Sim sim = catchingUp();
  const uint64_t t = sim.now();
  (void)sim.machine().onStats(1, sampleOf(sim.node(1), t + 10), t + 15);
  const Output caught_up = sim.machine().onStats(0, sampleOf(sim.node(0), t + 30), t + 35);
  REQUIRE(sim.state() == ClusterState::kFencing);
  const auto fence = std::find_if(caught_up.actions.begin(), caught_up.actions.end(),
                                  [](const Action& a) { return a.kind == ActionKind::kFence; });
  REQUIRE(fence != caught_up.actions.end());
  CHECK(fence->planned);
  CHECK_THAT(fence->sql, Catch::EndsWith(std::string(sql::kFlushWal)));

  const FakeNode before_flush = sim.node(0);
  sim.node(0).lsn += 0x200;  // the buffered commits and the flush's own message
  (void)sim.machine().onActionResult(ActionResult{.id = fence->id}, t + 40);
  REQUIRE(sim.state() == ClusterState::kCatchingUp);
  // A probe sent in the millisecond the answer came may have left before the flush: its
  // position is no target, although the standby has replayed that far.
  (void)sim.machine().onStats(0, sampleOf(before_flush, t + 40), t + 43);
  (void)sim.machine().onStats(1, sampleOf(sim.node(1), t + 44), t + 47);
  CHECK(sim.state() == ClusterState::kCatchingUp);
  // The next one shows the flushed end; the standby must replay up to it.
  (void)sim.machine().onStats(0, sampleOf(sim.node(0), t + 41), t + 48);
  CHECK(sim.state() == ClusterState::kCatchingUp);
  sim.node(1).lsn = sim.node(0).lsn;
  (void)sim.machine().onStats(1, sampleOf(sim.node(1), t + 50), t + 53);
  CHECK(sim.state() == ClusterState::kPromoting);
}

// The CI run that found it: the old primary's flush position cut a record in two, and the
// standby's replay waited 48 bytes short of it for the rest (10 s with wal_writer_delay =
// 10s) until the switchover gave up. What it received is what counts before the fence;
// after it, the end of the fence's flush message, a record boundary, must be replayed.
TEST_CASE("switchover: a flush position inside a record does not hold the catch-up",
          "[unit][cluster]") {
  Sim sim = catchingUp();
  const uint64_t t = sim.now();
  FakeNode cut = sim.node(1);
  cut.replay_lag = 48;  // received up to the flush position, replayed up to the record
  (void)sim.machine().onStats(1, sampleOf(cut, t + 10), t + 15);
  const Output caught_up = sim.machine().onStats(0, sampleOf(sim.node(0), t + 30), t + 35);
  REQUIRE(sim.state() == ClusterState::kFencing);
  const auto fence = std::find_if(caught_up.actions.begin(), caught_up.actions.end(),
                                  [](const Action& a) { return a.kind == ActionKind::kFence; });
  REQUIRE(fence != caught_up.actions.end());

  const uint64_t flushed = sim.node(0).lsn + 0x80;  // the fence's message ends here
  (void)sim.machine().onActionResult(ActionResult{.id = fence->id, .flushed_lsn = flushed}, t + 40);
  REQUIRE(sim.state() == ClusterState::kCatchingUp);
  FakeNode received = sim.node(1);
  received.lsn = flushed;
  received.replay_lag = 0x10;  // has it, has not replayed it all
  (void)sim.machine().onStats(1, sampleOf(received, t + 45), t + 48);
  CHECK(sim.state() == ClusterState::kCatchingUp);
  received.replay_lag = 0;
  (void)sim.machine().onStats(1, sampleOf(received, t + 50), t + 53);
  CHECK(sim.state() == ClusterState::kPromoting);
}

}  // namespace
}  // namespace pgpivot::cluster::test
