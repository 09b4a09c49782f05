// FailoverMachine walks in promote mode (pgpivot fences and promotes) and manual mode,
// through the faults of research §6.2: kill -9, a frozen primary, write stalls, and a
// planned switchover.
#include <catch2/catch.hpp>

#include "pgpivot/cluster/probe_sql.hpp"
#include "sim.hpp"

namespace pgpivot::cluster::test {
namespace {

using config::FailoverMode;

TEST_CASE("promote: kill -9 of the primary: pause, elect, fence, promote, verify, resume",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  const uint64_t fault = sim.now();
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  CHECK(sim.path() == std::vector<std::string>{"SUSPECT", "PRIMARY_DOWN", "PAUSING", "ELECTING",
                                               "FENCING", "PROMOTING", "VERIFYING", "RESUMING",
                                               "STEADY"});
  // Refused + a standby that lost it: no dead_after wait. Probes are 1 s apart here.
  CHECK(sim.now() - fault <= 3000);
  CHECK(sim.machine().routedPrimary() == std::size_t{1});
  CHECK(sim.node(1).timeline == 2);
  CHECK(sim.machine().routing().min_timeline == 2);
  CHECK(sim.machine().routing().epoch == 2);
  CHECK(sim.machine().routing().isFenced("db0:5432"));
  CHECK(sim.count(ActionKind::kPromote) == 1);
  // Signalled, then polled until out of recovery (not pg_promote(true), which checks every
  // 100 ms): the action's SQL is what runs, and what the event log quotes.
  CHECK(sim.lastAction(ActionKind::kPromote)->sql == sql::kPromote);
  CHECK_THAT(sim.lastAction(ActionKind::kPromote)->sql,
             Catch::Contains("pg_promote(false)") && Catch::Contains("pg_is_in_recovery()"));
  CHECK(sim.count(ActionKind::kCheckpoint) == 1);
  REQUIRE(sim.lastEvent("fence") != nullptr);
  CHECK(sim.lastEvent("fence")->result == "unreachable");
  const Event* election = sim.lastEvent("election");
  REQUIRE(election != nullptr);
  CHECK(election->node == "db1:5432");
  const Event* done = sim.lastEvent("failover_complete");
  REQUIRE(done != nullptr);
  CHECK(done->result == "ok");
  CHECK(done->failover_id == "f-1-1");
  // Every event of the incident carries its id.
  for (const Event& e : sim.events) {
    if (e.event == "fence" || e.event == "promote" || e.event == "election") {
      CHECK(e.failover_id == "f-1-1");
    }
  }
}

TEST_CASE("promote: the fence is persisted before it runs and before the promotion",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  std::vector<ActionKind> order;
  for (const Action& a : sim.actions) {
    if (a.kind == ActionKind::kPersistState || a.kind == ActionKind::kFence ||
        a.kind == ActionKind::kPromote || a.kind == ActionKind::kRoute) {
      order.push_back(a.kind);
    }
  }
  CHECK(order == std::vector<ActionKind>{ActionKind::kPersistState, ActionKind::kFence,
                                         ActionKind::kPromote, ActionKind::kPersistState,
                                         ActionKind::kRoute});
  // An unplanned fence does not flush the WAL: the old primary may be stuck on its disk.
  CHECK_THAT(sim.lastAction(ActionKind::kFence)->sql,
             !Catch::Contains(std::string(sql::kFlushWal)));
  const auto state = parseRoutingState(sim.lastAction(ActionKind::kPersistState)->payload);
  REQUIRE(state);
  CHECK(*state == sim.machine().routing());
}

TEST_CASE("promote: a frozen primary is DOWN:UNRESPONSIVE after unresponsive_after, then replaced",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  const uint64_t fault = sim.now();
  sim.node(0).mode = FakeNode::Mode::kFrozen;
  sim.run(9000);
  CHECK(sim.state() == ClusterState::kSuspect);
  CHECK(sim.machine().routedPrimary() == std::size_t{0});  // still routing while suspect
  REQUIRE(sim.runUntil(5000, [&] { return sim.visited(ClusterState::kPrimaryDown); }));
  const uint64_t detected = sim.now() - fault;
  CHECK(detected >= 10000);
  CHECK(detected <= 12000);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  const Event* witness = sim.lastEvent("witness");
  REQUIRE(witness != nullptr);
  CHECK(witness->result == "primary_lost");
  CHECK(witness->reason.find("nothing from the primary") != std::string::npos);
  CHECK(sim.machine().routedPrimary() == std::size_t{1});
  CHECK(sim.count(ActionKind::kPromote) == 1);
}

TEST_CASE("promote: a fast profile declares a frozen primary down sooner", "[unit][cluster]") {
  Settings s = walkSettings(FailoverMode::kPromote);
  s.dead_after_ms = 3000;
  s.unresponsive_after_ms = 5000;
  s.write_stuck_after_ms = 10000;
  s.witness_stale_ms = 5000;
  Sim sim = steadyCluster(s);
  const uint64_t fault = sim.now();
  sim.node(0).mode = FakeNode::Mode::kFrozen;
  REQUIRE(sim.runUntil(10000, [&] { return sim.visited(ClusterState::kPrimaryDown); }));
  CHECK(sim.now() - fault <= 7000);
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
}

TEST_CASE("promote: an unreachable old primary's SQL fence is not waited for", "[unit][cluster]") {
  Settings s = walkSettings(FailoverMode::kPromote);
  s.unresponsive_after_ms = 3000;
  s.witness_stale_ms = 3000;
  Sim sim = steadyCluster(s);
  sim.node(0).mode = FakeNode::Mode::kFrozen;  // the fence's connection never gets an answer
  REQUIRE(sim.runUntil(10000, [&] { return sim.visited(ClusterState::kFencing); }));
  const uint64_t fencing = sim.now();
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  // Promoted within the same step as the fence was sent, not after fence_timeout.
  const Event* promoting = nullptr;
  for (const Event& e : sim.events) {
    if (e.event == "state_change" && e.to == "PROMOTING") {
      promoting = &e;
    }
  }
  REQUIRE(promoting != nullptr);
  CHECK(promoting->mono_ms == fencing);
  CHECK(promoting->reason.find("does not answer") != std::string::npos);
  // The fence was still persisted and sent before the promotion.
  CHECK(sim.machine().routing().isFenced("db0:5432"));
  std::vector<ActionKind> order;
  for (const Action& a : sim.actions) {
    if (a.kind == ActionKind::kFence || a.kind == ActionKind::kPromote) {
      order.push_back(a.kind);
    }
  }
  CHECK(order == std::vector<ActionKind>{ActionKind::kFence, ActionKind::kPromote});
}

TEST_CASE("promote: with a fence_command the fence is waited for, up to fence_timeout",
          "[unit][cluster]") {
  Settings s = walkSettings(FailoverMode::kPromote);
  s.unresponsive_after_ms = 3000;
  s.witness_stale_ms = 3000;
  s.has_fence_command = true;
  Sim sim = steadyCluster(s);
  sim.node(0).mode = FakeNode::Mode::kFrozen;
  REQUIRE(sim.runUntil(10000, [&] { return sim.visited(ClusterState::kFencing); }));
  const uint64_t fencing = sim.now();
  sim.run(s.fence_timeout_ms - 500);
  CHECK(sim.state() == ClusterState::kFencing);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  CHECK(sim.lastEvent("promote")->mono_ms >= fencing + s.fence_timeout_ms);
}

TEST_CASE("promote: heartbeat writes stuck on I/O fail over without a witness", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(0).write_outcome = ProbeOutcome::kTimeout;  // fsfreeze: research fault 5
  sim.node(0).io_waiters = 3;
  sim.run(19000);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  REQUIRE(sim.runUntil(15000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  // The standby still streams from the stuck primary: a witness would have vetoed.
  CHECK_FALSE(sim.sawEvent("witness"));
  CHECK(sim.path().at(1) == "PRIMARY_DOWN");
  CHECK(sim.lastEvent("fence")->result == "ok");
  CHECK(sim.node(0).read_only);
}

TEST_CASE("promote: pg_promote() returning false waits for an operator, never a second promotion",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote), 2);
  sim.promote_status = ActionStatus::kFailed;
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  sim.run(60000);
  INFO(sim.dump());
  CHECK(sim.count(ActionKind::kPromote) == 1);
  CHECK(sim.state() == ClusterState::kWaitOperator);
  CHECK(sim.machine().clientsPaused());
  CHECK(sim.lastEvent("state_change")->reason.find("outcome is unknown") != std::string::npos);
}

TEST_CASE("promote: after a promotion with an unknown outcome, the promoted node is accepted",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.promote_status = ActionStatus::kFailed;  // still in recovery after 60 s...
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  sim.promoteExternally(1);  // ...but the promotion finished afterwards
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  CHECK(sim.machine().routedPrimary() == std::size_t{1});
  CHECK(sim.count(ActionKind::kPromote) == 1);
}

TEST_CASE("manual: detect and pause, then FAILOVER on the admin console promotes",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kManual));
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(10000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  sim.run(31000);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.machine().clientsPaused());
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kFailover});
  REQUIRE(out.admin);
  CHECK(out.admin->accepted);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  CHECK(sim.count(ActionKind::kPromote) == 1);
  CHECK(sim.sawEvent("pause_timeout"));  // clients waited past failover_pause_timeout
}

TEST_CASE("switchover: drain, catch up, fence, promote, verify, resume, with a verdict",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  const uint64_t start = sim.now();
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kSwitchover});
  REQUIRE(out.admin);
  CHECK(out.admin->accepted);
  const Action* pause = out.find(ActionKind::kPauseClients);
  REQUIRE(pause != nullptr);
  CHECK(pause->planned);  // transactions in flight finish: no client error
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  CHECK(sim.path() == std::vector<std::string>{"PAUSING", "ELECTING", "CATCHING_UP", "FENCING",
                                               "CATCHING_UP", "PROMOTING", "VERIFYING", "RESUMING",
                                               "STEADY"});
  CHECK(sim.machine().routedPrimary() == std::size_t{1});
  CHECK(sim.machine().routing().isFenced("db0:5432"));
  CHECK(sim.node(0).read_only);
  const Event* verdict = sim.lastEvent("switchover_complete");
  REQUIRE(verdict != nullptr);
  CHECK(verdict->result == "ok");
  CHECK(verdict->failover_id == "s-1-1");
  CHECK(*verdict->duration_ms <= sim.now() - start);
  CHECK(std::get<int64_t>(*findField(verdict->evidence, "possibly_lost_bytes_at_least")) == 0);
  CHECK_FALSE(sim.sawEvent("witness"));
  // A planned switchover does not count against the flap guard.
  sim.node(1).mode = FakeNode::Mode::kDead;
  sim.node(0).mode = FakeNode::Mode::kDead;
  sim.run(10000);
  CHECK_FALSE(sim.lastEvent("state_change")->reason.starts_with("flap guard"));
}

TEST_CASE("drill: a switchover that reports its verdict as a drill", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kManual));
  CHECK(sim.admin(AdminCommand{.kind = AdminKind::kDrill}).admin->accepted);
  REQUIRE(sim.runUntil(10000, [&] {
    return sim.state() == ClusterState::kSteady && sim.sawEvent("drill_complete");
  }));
  CHECK(sim.lastEvent("drill_complete")->failover_id == "d-1-1");
  CHECK(sim.lastEvent("drill_complete")->result == "ok");
}

TEST_CASE("switchover: a candidate that does not catch up aborts cleanly back to the primary",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  sim.node(1).replay_lag = 4 << 20;  // replay stuck far behind what it received
  CHECK(sim.admin(AdminCommand{.kind = AdminKind::kSwitchover}).admin->accepted);
  REQUIRE(sim.runUntil(20000, [&] { return sim.sawEvent("switchover_complete"); }));
  INFO(sim.dump());
  CHECK(sim.lastEvent("switchover_complete")->result == "aborted");
  CHECK(sim.state() == ClusterState::kSteady);
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  CHECK_FALSE(sim.machine().clientsPaused());
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.count(ActionKind::kFence) == 0);
}

TEST_CASE("switchover and failover are refused when they make no sense", "[unit][cluster]") {
  SECTION("follow mode switches over with the external manager") {
    Sim sim = steadyCluster(walkSettings(FailoverMode::kFollow));
    const Output out = sim.admin(AdminCommand{.kind = AdminKind::kSwitchover});
    CHECK_FALSE(out.admin->accepted);
    CHECK(out.admin->message.starts_with("failover_mode = follow"));
    CHECK_FALSE(sim.admin(AdminCommand{.kind = AdminKind::kFailover}).admin->accepted);
    CHECK(sim.state() == ClusterState::kSteady);
  }
  SECTION("no switchover to the primary itself, or outside STEADY") {
    Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
    CHECK_FALSE(
        sim.admin(AdminCommand{.kind = AdminKind::kSwitchover, .target = 0}).admin->accepted);
    CHECK_FALSE(
        sim.admin(AdminCommand{.kind = AdminKind::kSwitchover, .target = 7}).admin->accepted);
    CHECK_FALSE(sim.admin(AdminCommand{.kind = AdminKind::kResume}).admin->accepted);
    sim.node(0).mode = FakeNode::Mode::kFrozen;
    sim.run(2000);
    CHECK_FALSE(sim.admin(AdminCommand{.kind = AdminKind::kSwitchover}).admin->accepted);
  }
}

}  // namespace
}  // namespace pgpivot::cluster::test
