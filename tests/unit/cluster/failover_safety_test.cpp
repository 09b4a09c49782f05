// FailoverMachine walks that must NOT fail over (lock pile-up, crash recovery, a partition
// from pgpivot only, a synchronous-standby stall, lag too high) and the split-brain
// guards (two primaries, an old primary back on an older timeline, the flap guard).
#include <catch2/catch.hpp>

#include "sim.hpp"

namespace pgpivot::cluster::test {
namespace {

using config::FailoverMode;

TEST_CASE("lock pile-up: DEGRADED with the blocker tree, and no failover", "[unit][cluster]") {
  Settings s = walkSettings(FailoverMode::kPromote);
  s.lock_pileup_action = config::LockPileupAction::kCancelBlocker;
  s.lock_pileup_grace_ms = 20000;
  Sim sim = steadyCluster(s);
  sim.node(0).lock_waiters = 40;
  sim.node(0).oldest_lock_wait_ms = 6000;
  sim.node(0).write_outcome = ProbeOutcome::kError;  // our heartbeat hits its lock_timeout
  sim.node(0).write_sqlstate = "55P03";
  sim.run(2000);
  CHECK(sim.state() == ClusterState::kDegraded);
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  CHECK(sim.count(ActionKind::kReportBlockers) == 1);
  CHECK(sim.lastAction(ActionKind::kReportBlockers)->sql.find("pg_blocking_pids") !=
        std::string::npos);
  CHECK(sim.sawEvent("lock_pileup"));
  CHECK(sim.count(ActionKind::kCancelBlocker) == 0);  // not before lock_pileup_grace
  sim.run(180000);
  INFO(sim.dump());
  CHECK(sim.state() == ClusterState::kDegraded);
  CHECK(sim.count(ActionKind::kCancelBlocker) == 1);  // once per pile-up
  CHECK(sim.count(ActionKind::kTerminateBlocker) == 0);
  CHECK(sim.count(ActionKind::kReportBlockers) >= 10);  // every blocker_report_interval
  CHECK_FALSE(sim.machine().clientsPaused());
  CHECK_FALSE(sim.visited(ClusterState::kPrimaryDown));
  CHECK(sim.count(ActionKind::kPromote) == 0);
  sim.node(0).lock_waiters = 0;
  sim.node(0).oldest_lock_wait_ms = 0;
  sim.node(0).write_outcome = ProbeOutcome::kOk;
  REQUIRE(sim.runUntil(40000, [&] { return sim.state() == ClusterState::kSteady; }));
  CHECK(sim.sawEvent("lock_pileup_cleared"));
}

TEST_CASE("lock pile-up with lock_pileup_action = alert only reports", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).lock_waiters = 12;
  sim.run(120000);
  CHECK(sim.state() == ClusterState::kDegraded);
  CHECK(sim.count(ActionKind::kCancelBlocker) + sim.count(ActionKind::kTerminateBlocker) == 0);
  CHECK(sim.count(ActionKind::kAlert) == 1);
}

TEST_CASE("crash recovery: 57P03 pauses clients and the clock, no failover", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).mode = FakeNode::Mode::kStarting;  // 57P03 "the database system is starting up"
  sim.run(12000);                                // longer than dead_after
  INFO(sim.dump());
  CHECK(sim.state() == ClusterState::kCrashRecovery);
  CHECK(sim.machine().clientsPaused());
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK_FALSE(sim.visited(ClusterState::kPrimaryDown));
  sim.node(0).mode = FakeNode::Mode::kUp;
  sim.run(1000);
  CHECK_FALSE(sim.machine().clientsPaused());  // resumed on the first good answer
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  const bool steady = sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSteady; });
  INFO(sim.dump());
  REQUIRE(steady);
  CHECK(sim.machine().routing().epoch == 1);  // nothing moved
}

TEST_CASE("crash recovery that outlasts crash_recovery_grace becomes a failover",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).mode = FakeNode::Mode::kStarting;
  sim.run(29000);
  CHECK(sim.state() == ClusterState::kCrashRecovery);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  const auto path = sim.path();
  CHECK(std::find(path.begin(), path.end(), "CRASH_RECOVERY") <
        std::find(path.begin(), path.end(), "PRIMARY_DOWN"));
  CHECK(sim.lastEvent("failover_complete") != nullptr);
}

TEST_CASE("partition from pgpivot only: the standby still hears the primary, no failover",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).mode = FakeNode::Mode::kPartitioned;
  REQUIRE(
      sim.runUntil(15000, [&] { return sim.state() == ClusterState::kPartitionedFromPrimary; }));
  sim.run(60000);
  INFO(sim.dump());
  CHECK(sim.state() == ClusterState::kPartitionedFromPrimary);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.count(ActionKind::kFence) == 0);
  CHECK(sim.lastEvent("witness")->result == "primary_alive");
  CHECK(sim.machine().clientsPaused());
  sim.node(0).mode = FakeNode::Mode::kUp;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 0); }));
  CHECK(sim.sawEvent("failover_cancelled"));
  CHECK_FALSE(sim.machine().clientsPaused());
}

TEST_CASE("partition, then the primary really dies: the witness flips and the failover goes on",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).mode = FakeNode::Mode::kPartitioned;
  REQUIRE(
      sim.runUntil(15000, [&] { return sim.state() == ClusterState::kPartitionedFromPrimary; }));
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  CHECK(sim.count(ActionKind::kPromote) == 1);
}

TEST_CASE("no standby answers: promote mode will not promote blind", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(1).mode = FakeNode::Mode::kFrozen;
  sim.run(3000);
  sim.node(0).mode = FakeNode::Mode::kFrozen;
  REQUIRE(sim.runUntil(20000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  INFO(sim.dump());
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.lastEvent("witness")->result == "no_witness");
}

TEST_CASE("replica lag above max_lag_on_failover: WAIT_OPERATOR, nothing fenced or promoted",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(1).mode = FakeNode::Mode::kFrozen;  // replay paused: it stops receiving...
  sim.node(0).lsn += 8 * 1024 * 1024;          // ...while the primary writes 8 MB
  sim.run(2000);
  sim.node(1).mode = FakeNode::Mode::kUp;
  sim.node(1).upstream = -1;  // the standby lost its upstream at the same moment
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(20000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  INFO(sim.dump());
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.count(ActionKind::kFence) == 0);  // elected before fencing: nothing to undo
  CHECK(sim.lastEvent("state_change")->reason.find("over max_lag_on_failover") !=
        std::string::npos);
  const Event* election = sim.lastEvent("election");
  REQUIRE(election != nullptr);
  CHECK(election->result == "none");
  SECTION("the old primary comes back on its own: resumed there") {
    sim.node(0).mode = FakeNode::Mode::kUp;
    REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 0); }));
    CHECK(sim.machine().routing().epoch == 2);  // a new epoch all the same
  }
  SECTION("the operator accepts the loss and names the standby") {
    const Output out = sim.admin(AdminCommand{.kind = AdminKind::kFailover, .target = 1});
    CHECK(out.admin->accepted);
    REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
    const Event* done = sim.lastEvent("failover_complete");
    REQUIRE(done != nullptr);
    CHECK(std::get<int64_t>(*findField(done->evidence, "possibly_lost_bytes_at_least")) >=
          8 * 1024 * 1024);
  }
}

TEST_CASE("two writable primaries at once: SPLIT_BRAIN, writes refused until an operator decides",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kFollow));
  sim.promoteExternally(1);  // a misconfigured script promotes the standby; the primary lives
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSplitBrain; }));
  INFO(sim.dump());
  CHECK(sim.machine().writesRefused());
  CHECK_FALSE(sim.machine().routedPrimary());
  REQUIRE(sim.lastAction(ActionKind::kRefuseWrites) != nullptr);
  CHECK(sim.lastAction(ActionKind::kRefuseWrites)->reason.starts_with("pgpivot: split brain"));
  sim.run(60000);
  CHECK(sim.state() == ClusterState::kSplitBrain);  // no automatic exit
  SECTION("RESUME rediscovers, and finds the split brain again") {
    CHECK(sim.admin(AdminCommand{.kind = AdminKind::kResume}).admin->accepted);
    sim.run(3000);
    CHECK(sim.state() == ClusterState::kSplitBrain);
  }
  SECTION("SET PRIMARY picks the winner; the loser is fenced for good") {
    CHECK(sim.admin(AdminCommand{.kind = AdminKind::kSetPrimary, .target = 1}).admin->accepted);
    REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
    CHECK_FALSE(sim.machine().writesRefused());
    CHECK(sim.machine().routing().isFenced("db0:5432"));
    CHECK(sim.machine().routing().min_timeline == 2);
    CHECK(sim.node(0).read_only);
    sim.run(30000);
    CHECK(steadyOn(sim, 1));
  }
}

TEST_CASE("the old primary restarted after a failover is never routed to", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  sim.clearLog();
  sim.node(0).mode = FakeNode::Mode::kUp;  // research fault 14: back on timeline 1, writable
  sim.node(0).read_only = false;
  sim.run(30000);
  INFO(sim.dump());
  CHECK(steadyOn(sim, 1));
  CHECK(sim.sawEvent("old_primary"));
  CHECK(sim.count(ActionKind::kFence) == 1);  // fenced again now that it answers, once
  CHECK(sim.node(0).read_only);
  CHECK_FALSE(sim.visited(ClusterState::kSplitBrain));
  for (const Action& a : sim.actions) {
    if (a.kind == ActionKind::kRoute) {
      CHECK(a.node != std::size_t{0});
    }
  }
}

TEST_CASE("a fenced old primary is re-admitted once it streams as a standby on the new timeline",
          "[unit][cluster]") {
  Settings s = walkSettings(FailoverMode::kPromote);
  s.failover_cooldown_ms = 0;  // this test fails over twice
  Sim sim = steadyCluster(s);
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  // pg_rewind + standby.signal: back as a standby of the new primary, timeline 2.
  FakeNode& old = sim.node(0);
  old = FakeNode::standby(1);
  old.timeline = 2;
  sim.run(59000);
  CHECK(sim.machine().routing().isFenced("db0:5432"));
  REQUIRE(sim.runUntil(3000, [&] { return !sim.machine().routing().isFenced("db0:5432"); }));
  CHECK(sim.sawEvent("readmitted"));
  // ...and is a candidate again for the next failover.
  sim.node(1).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 0); }));
  CHECK(sim.node(0).timeline == 3);
  CHECK(sim.machine().routing().min_timeline == 3);
}

TEST_CASE("flap guard: a second automatic failover within failover_cooldown waits for an operator",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote), 2);
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  sim.run(60000);
  sim.node(1).mode = FakeNode::Mode::kDead;  // node 2 still streams from node 0: it lost both
  REQUIRE(sim.runUntil(20000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  INFO(sim.dump());
  CHECK(
      sim.lastEvent("state_change")->reason.starts_with("flap guard: the last automatic failover"));
  CHECK(sim.count(ActionKind::kPromote) == 1);
}

TEST_CASE("flap guard: at most max_failovers_per_hour", "[unit][cluster]") {
  Settings s = walkSettings(FailoverMode::kPromote);
  s.failover_cooldown_ms = 0;
  s.max_failovers_per_hour = 1;
  Sim sim = steadyCluster(s, 2);
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  sim.node(1).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(20000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  CHECK(sim.lastEvent("state_change")->reason ==
        "flap guard: 1 automatic failovers in the last hour (max_failovers_per_hour 1)");
}

TEST_CASE("a synchronous-standby stall is DEGRADED:SYNCREP, never a failover", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).write_outcome = ProbeOutcome::kTimeout;  // research fault 6
  sim.node(0).syncrep_waiters = 5;
  sim.run(120000);
  INFO(sim.dump());
  CHECK(sim.state() == ClusterState::kDegraded);
  CHECK(sim.machine().health(0).verdict().state == NodeState::kDegradedSyncRep);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK_FALSE(sim.machine().clientsPaused());
  CHECK(sim.count(ActionKind::kAlert) == 1);
  CHECK(sim.lastAction(ActionKind::kAlert)->level == AlertLevel::kCritical);
}

TEST_CASE("a state file that cannot be written stops writes and waits for an operator",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.persist_status = ActionStatus::kFailed;
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  INFO(sim.dump());
  CHECK(sim.machine().writesRefused());
  CHECK(sim.count(ActionKind::kPromote) == 0);  // the fence was never recorded: no promotion
}

TEST_CASE("a restart with a state file keeps the epoch and never routes to a fenced node",
          "[unit][cluster]") {
  RoutingState restored;
  restored.epoch = 5;
  restored.min_timeline = 2;
  restored.system_identifier = kSysid;
  restored.expected_primary = "db1:5432";
  restored.fence("db0:5432");
  FakeNode old_primary = FakeNode::primary();  // writable on timeline 1: the split-brain setup
  FakeNode primary = FakeNode::primary();
  primary.timeline = 2;
  Sim sim(walkSettings(FailoverMode::kFollow), {old_primary, primary}, restored);
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  CHECK(sim.machine().routing().epoch == 5);  // same primary as before the restart
  CHECK(sim.sawEvent("old_primary"));
  CHECK_FALSE(sim.visited(ClusterState::kSplitBrain));
}

TEST_CASE("a state file from another cluster routes nowhere and says why", "[unit][cluster]") {
  RoutingState restored;
  restored.epoch = 5;
  restored.min_timeline = 1;
  restored.system_identifier = "1111";
  restored.expected_primary = "db0:5432";
  Sim sim(walkSettings(FailoverMode::kFollow), {FakeNode::primary(), FakeNode::standby(0)},
          restored);
  sim.run(5000);
  CHECK_FALSE(sim.machine().routedPrimary());
  REQUIRE(sim.lastAction(ActionKind::kAlert) != nullptr);
  CHECK(sim.lastAction(ActionKind::kAlert)->reason.find("was the cluster rebuilt?") !=
        std::string::npos);
}

TEST_CASE("the probe plan: W on the routed primary only, C faster under suspicion",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  CHECK(sim.machine().probePlan(0).write);
  CHECK_FALSE(sim.machine().probePlan(1).write);
  CHECK(sim.machine().probePlan(0).connect_interval_ms == 5000);
  sim.node(0).mode = FakeNode::Mode::kFrozen;
  sim.run(2000);
  CHECK(sim.state() == ClusterState::kSuspect);
  CHECK(sim.machine().probePlan(0).connect_interval_ms == 1000);
  CHECK(sim.machine().probePlan(1).connect_interval_ms == 5000);
}

}  // namespace
}  // namespace pgpivot::cluster::test
