// FailoverMachine walks in follow mode: an external manager promotes, pgpivot finds,
// validates and routes to the new primary.
#include <catch2/catch.hpp>

#include "sim.hpp"

namespace pgpivot::cluster::test {
namespace {

using config::FailoverMode;

TEST_CASE("follow: start-up discovers the primary, persists, routes and resumes",
          "[unit][cluster]") {
  Sim sim(walkSettings(FailoverMode::kFollow), {FakeNode::primary(), FakeNode::standby(0)});
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSteady; }));
  INFO(sim.path().size());
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  CHECK(sim.machine().routing().epoch == 1);
  CHECK(sim.machine().routing().min_timeline == 1);
  CHECK(sim.machine().routing().expected_primary == "db0:5432");
  CHECK(sim.machine().routing().system_identifier == kSysid);
  // The state is persisted before the route is published.
  std::size_t persist_at = 0, route_at = 0;
  for (std::size_t i = 0; i < sim.actions.size(); ++i) {
    if (sim.actions[i].kind == ActionKind::kPersistState && persist_at == 0) {
      persist_at = i + 1;
    }
    if (sim.actions[i].kind == ActionKind::kRoute && route_at == 0) {
      route_at = i + 1;
    }
  }
  CHECK(persist_at > 0);
  CHECK(persist_at < route_at);
  CHECK(sim.path() == std::vector<std::string>{"VALIDATING", "RESUMING", "STEADY"});
}

TEST_CASE("follow: kill -9 of the primary, confirmed by the standby, then the manager promotes",
          "[unit][cluster]") {
  Sim sim(walkSettings(FailoverMode::kFollow), {FakeNode::primary(), FakeNode::standby(0)});
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSteady; }));
  sim.clearLog();
  const uint64_t fault = sim.now();
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(3000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  // Refused and confirmed by the standby's WAL receiver: no dead_after wait.
  CHECK(sim.now() - fault < 2500);
  CHECK(sim.machine().clientsPaused());
  CHECK_FALSE(sim.machine().routedPrimary());
  CHECK(sim.count(ActionKind::kPromote) == 0);
  const Event* witness = sim.lastEvent("witness");
  REQUIRE(witness != nullptr);
  CHECK(witness->result == "primary_lost");
  sim.promoteExternally(1);
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSteady; }));
  CHECK(sim.machine().routedPrimary() == std::size_t{1});
  CHECK(sim.machine().routing().min_timeline == 2);
  CHECK(sim.machine().routing().epoch == 2);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.count(ActionKind::kFence) == 0);
  CHECK(sim.sawEvent("failover_complete"));
  INFO(sim.path().size());
  CHECK(sim.path() == std::vector<std::string>{"SUSPECT", "PRIMARY_DOWN", "SEARCHING_PRIMARY",
                                               "VALIDATING", "RESUMING", "STEADY"});
}

Sim steadyCluster(std::size_t standbys = 1) {
  return test::steadyCluster(walkSettings(FailoverMode::kFollow), standbys);
}

TEST_CASE("follow: a manager's switchover (demote, then promote) is followed at once",
          "[unit][cluster]") {
  Sim sim = steadyCluster();
  sim.node(0).in_recovery = true;  // Patroni restarts the old primary as a standby...
  sim.node(0).upstream = 1;
  sim.promoteExternally(1);  // ...and promotes the other node
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
  INFO(sim.dump());
  CHECK(sim.path() == std::vector<std::string>{"PRIMARY_DOWN", "SEARCHING_PRIMARY", "VALIDATING",
                                               "RESUMING", "STEADY"});
  CHECK(sim.events.front().reason == "pg_is_in_recovery() is true");
  CHECK_FALSE(sim.sawEvent("witness"));  // the node said so itself: no witness needed
  CHECK(sim.machine().routing().min_timeline == 2);
  CHECK_FALSE(sim.machine().routing().isFenced("db0:5432"));  // follow mode fences nobody
}

TEST_CASE("follow: in_hot_standby=on from a server connection stops writes immediately",
          "[unit][cluster]") {
  Sim sim = steadyCluster();
  const Output out = sim.machine().onHotStandbyReport(0, true, sim.now());
  CHECK(sim.machine().clientsPaused());
  CHECK(out.find(ActionKind::kPauseClients) != nullptr);
  CHECK(sim.machine().state() == ClusterState::kSearchingPrimary);
}

TEST_CASE("follow: a primary restarted in place on the same timeline is taken back",
          "[unit][cluster]") {
  Sim sim = steadyCluster();
  sim.node(0).mode = FakeNode::Mode::kDead;  // e.g. the manager restarts PostgreSQL
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  sim.run(3000);
  sim.node(0).mode = FakeNode::Mode::kUp;
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 0); }));
  CHECK(sim.machine().routing().epoch == 2);  // the old epoch's server connections are gone
  CHECK(sim.machine().routing().min_timeline == 1);
}

TEST_CASE(
    "follow: no new primary within search_primary_timeout waits for an operator, and "
    "takes the late one",
    "[unit][cluster]") {
  Sim sim = steadyCluster();
  sim.node(0).mode = FakeNode::Mode::kDead;
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  const uint64_t searching = sim.now();
  REQUIRE(sim.runUntil(70000, [&] { return sim.state() == ClusterState::kWaitOperator; }));
  CHECK(sim.now() - searching >= 60000);
  CHECK(sim.now() - searching <= 61000);
  CHECK(sim.lastAction(ActionKind::kAlert)->level == AlertLevel::kCritical);
  sim.promoteExternally(1);
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
}

TEST_CASE("follow: a frozen primary confirmed by the standby's silence, then followed",
          "[unit][cluster]") {
  Sim sim = steadyCluster();
  sim.node(0).mode = FakeNode::Mode::kFrozen;
  sim.run(9000);
  CHECK(sim.state() == ClusterState::kSuspect);
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSearchingPrimary; }));
  CHECK(sim.lastEvent("witness")->result == "primary_lost");
  sim.promoteExternally(1);
  REQUIRE(sim.runUntil(5000, [&] { return steadyOn(sim, 1); }));
  // The old primary thaws on timeline 1: never routed, fenced as an old primary.
  sim.node(0).mode = FakeNode::Mode::kUp;
  sim.run(10000);
  INFO(sim.dump());
  CHECK(steadyOn(sim, 1));
  CHECK(sim.machine().routing().isFenced("db0:5432"));
}

TEST_CASE("follow: partitioned from the primary, then the manager fails over", "[unit][cluster]") {
  Sim sim = steadyCluster();
  sim.node(0).mode = FakeNode::Mode::kPartitioned;
  REQUIRE(
      sim.runUntil(15000, [&] { return sim.state() == ClusterState::kPartitionedFromPrimary; }));
  sim.run(5000);
  CHECK(sim.state() == ClusterState::kPartitionedFromPrimary);
  sim.node(0).mode = FakeNode::Mode::kDead;
  sim.node(1).upstream = -1;
  sim.promoteExternally(1);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
}

}  // namespace
}  // namespace pgpivot::cluster::test
