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

}  // namespace
}  // namespace pgpivot::cluster::test
