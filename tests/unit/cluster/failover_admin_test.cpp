// FailoverMachine operator commands: the pre-checks of DRILL and SWITCHOVER (a failed one
// refuses before anyone is paused), and FENCE / UNFENCE by hand with their safety rules.
#include <catch2/catch.hpp>

#include "sim.hpp"

namespace pgpivot::cluster::test {
namespace {

using config::FailoverMode;

// Index of the first action of `kind` in `out`, or -1.
int indexOf(const Output& out, ActionKind kind) {
  for (std::size_t i = 0; i < out.actions.size(); ++i) {
    if (out.actions[i].kind == kind) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

const AdminCheck* failedCheck(const AdminReply& reply) {
  for (const AdminCheck& c : reply.checks) {
    if (!c.passed) {
      return &c;
    }
  }
  return nullptr;
}

TEST_CASE("drill: every pre-check is reported and the drill's id is returned", "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kDrill});
  REQUIRE(out.admin);
  CHECK(out.admin->accepted);
  CHECK(out.admin->incident_id == "d-1-1");
  std::vector<std::string> names;
  for (const AdminCheck& c : out.admin->checks) {
    CHECK(c.passed);
    names.push_back(c.name);
  }
  CHECK(names == std::vector<std::string>{"mode", "state", "primary_probe", "standby_eligible",
                                          "standby_streaming"});
  // The checks are in the event log too, under the drill's id.
  const Event* precheck = sim.lastEvent("precheck");
  REQUIRE(precheck != nullptr);
  CHECK(precheck->failover_id == "d-1-1");
  CHECK(precheck->result == "passed");
  REQUIRE(sim.runUntil(10000, [&] { return sim.sawEvent("drill_complete"); }));
  INFO(sim.dump());
  const Event* done = sim.lastEvent("drill_complete");
  CHECK(done->result == "ok");
  // How long clients were held: from the pause to the resume, not to the end of the run.
  const auto* paused = std::get_if<int64_t>(findField(done->evidence, "paused_ms"));
  REQUIRE(paused != nullptr);
  CHECK(*paused > 0);
  CHECK(*paused <= static_cast<int64_t>(*done->duration_ms));
}

TEST_CASE("drill: a failed pre-check refuses before anyone is paused and says why",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  std::string expected_check;
  std::string expected_words;
  SECTION("the standby does not stream from the primary") {
    sim.node(1).upstream = -1;  // its WAL receiver stopped; it stays close in LSN
    expected_check = "standby_streaming";
    expected_words = "not streaming";
  }
  SECTION("the standby lags more than max_lag_on_failover") {
    sim.node(1).upstream = -1;
    sim.node(0).lsn += 8 * 1024 * 1024;
    expected_check = "standby_eligible";
    expected_words = "lag";
  }
  sim.run(3000);
  sim.clearLog();
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kDrill});
  REQUIRE(out.admin);
  INFO(out.admin->message);
  CHECK_FALSE(out.admin->accepted);
  CHECK(out.admin->incident_id.empty());
  const AdminCheck* failed = failedCheck(*out.admin);
  REQUIRE(failed != nullptr);
  CHECK(failed->name == expected_check);
  CHECK_THAT(failed->detail, Catch::Contains(expected_words));
  CHECK(out.admin->message == failed->detail);
  // Nothing happened: no pause, no fence, still routed to the primary.
  sim.run(5000);
  CHECK(sim.count(ActionKind::kPauseClients) == 0);
  CHECK(sim.count(ActionKind::kFence) == 0);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK_FALSE(sim.machine().clientsPaused());
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  CHECK(sim.lastEvent("admin")->result == "refused");
}

TEST_CASE("FENCE of a standby is persisted first, takes it out of elections and holds",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kFence, .target = 1});
  REQUIRE(out.admin);
  CHECK(out.admin->accepted);
  const int persisted = indexOf(out, ActionKind::kPersistState);
  const int fenced = indexOf(out, ActionKind::kFence);
  REQUIRE(persisted >= 0);
  REQUIRE(fenced >= 0);
  CHECK(persisted < fenced);
  CHECK_THAT(out.actions[static_cast<std::size_t>(persisted)].payload,
             Catch::Contains(R"("held":["db1:5432"])"));
  CHECK(sim.machine().routing().isHeld("db1:5432"));
  REQUIRE(sim.lastEvent("fenced") != nullptr);
  CHECK(sim.lastEvent("fenced")->node == "db1:5432");
  // The primary keeps its clients.
  CHECK_FALSE(sim.machine().clientsPaused());
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  // Streaming on the current timeline for longer than readmit_after: still fenced.
  sim.run(walkSettings(FailoverMode::kPromote).readmit_after_ms + 5000);
  CHECK(sim.machine().routing().isFenced("db1:5432"));
  CHECK_FALSE(sim.sawEvent("readmitted"));
  // Not a candidate any more: a switchover finds nobody.
  const Output refused = sim.admin(AdminCommand{.kind = AdminKind::kSwitchover});
  CHECK_FALSE(refused.admin->accepted);
  CHECK_THAT(refused.admin->message, Catch::Contains("no eligible standby"));
  CHECK_FALSE(sim.admin(AdminCommand{.kind = AdminKind::kFence, .target = 1}).admin->accepted);

  const Output lifted = sim.admin(AdminCommand{.kind = AdminKind::kUnfence, .target = 1});
  CHECK(lifted.admin->accepted);
  CHECK(indexOf(lifted, ActionKind::kPersistState) >= 0);
  CHECK(indexOf(lifted, ActionKind::kUnfence) >= 0);
  CHECK_FALSE(sim.machine().routing().isFenced("db1:5432"));
  CHECK(sim.admin(AdminCommand{.kind = AdminKind::kSwitchover}).admin->accepted);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
}

TEST_CASE("FENCE of the routed primary is refused where the machine would fail over by itself",
          "[unit][cluster]") {
  const FailoverMode mode = GENERATE(FailoverMode::kPromote, FailoverMode::kFollow);
  Sim sim = steadyCluster(walkSettings(mode));
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kFence, .target = 0});
  REQUIRE(out.admin);
  CHECK_FALSE(out.admin->accepted);
  CHECK_THAT(out.admin->message, Catch::Contains("failover_mode = manual"));
  CHECK(out.actions.empty());
  CHECK_FALSE(sim.machine().routing().isFenced("db0:5432"));
  CHECK(sim.machine().routedPrimary() == std::size_t{0});
  CHECK_FALSE(sim.admin(AdminCommand{.kind = AdminKind::kFence}).admin->accepted);  // no node
  CHECK_FALSE(
      sim.admin(AdminCommand{.kind = AdminKind::kUnfence, .target = 1}).admin->accepted);  // not
}

TEST_CASE("in manual mode FENCE of the primary pauses clients until an operator decides",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kManual));
  const Output out = sim.admin(AdminCommand{.kind = AdminKind::kFence, .target = 0});
  REQUIRE(out.admin);
  CHECK(out.admin->accepted);
  const int persisted = indexOf(out, ActionKind::kPersistState);
  const int fenced = indexOf(out, ActionKind::kFence);
  REQUIRE(persisted >= 0);
  REQUIRE(fenced >= 0);
  CHECK(persisted < fenced);
  CHECK(sim.state() == ClusterState::kWaitOperator);
  CHECK(sim.machine().clientsPaused());
  CHECK_FALSE(sim.machine().routedPrimary());
  sim.run(10000);
  CHECK(sim.state() == ClusterState::kWaitOperator);
  CHECK(sim.count(ActionKind::kPromote) == 0);
  CHECK(sim.count(ActionKind::kRoute) == 0);

  SECTION("UNFENCE routes to it again after validating it") {
    const Output lifted = sim.admin(AdminCommand{.kind = AdminKind::kUnfence, .target = 0});
    CHECK(lifted.admin->accepted);
    REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 0); }));
    CHECK_FALSE(sim.machine().routing().isFenced("db0:5432"));
    CHECK_FALSE(sim.node(0).read_only);
  }
  SECTION("FAILOVER promotes the standby; the fenced primary stays fenced") {
    CHECK(sim.admin(AdminCommand{.kind = AdminKind::kFailover}).admin->accepted);
    REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
    INFO(sim.dump());
    CHECK(sim.machine().routing().isHeld("db0:5432"));
  }
}

TEST_CASE("UNFENCE of a writable former primary waits until it streams as a standby",
          "[unit][cluster]") {
  Sim sim = steadyCluster(walkSettings(FailoverMode::kPromote));
  REQUIRE(sim.admin(AdminCommand{.kind = AdminKind::kSwitchover}).admin->accepted);
  REQUIRE(sim.runUntil(10000, [&] { return steadyOn(sim, 1); }));
  REQUIRE(sim.machine().routing().isFenced("db0:5432"));
  // Still writable (fenced read-only, but out of recovery): refused.
  const Output refused = sim.admin(AdminCommand{.kind = AdminKind::kUnfence, .target = 0});
  CHECK_FALSE(refused.admin->accepted);
  CHECK_THAT(refused.admin->message, Catch::Contains("writable and not the routed primary"));
  CHECK(refused.actions.empty());
  CHECK(sim.machine().routing().isFenced("db0:5432"));
  // pg_rewind and a restart as a standby of the new primary, on its timeline.
  FakeNode& old = sim.node(0);
  old.in_recovery = true;
  old.upstream = 1;
  old.timeline = sim.node(1).timeline;
  sim.run(3000);
  const Output lifted = sim.admin(AdminCommand{.kind = AdminKind::kUnfence, .target = 0});
  CHECK(lifted.admin->accepted);
  CHECK_FALSE(sim.machine().routing().isFenced("db0:5432"));
  CHECK(sim.machine().routedPrimary() == std::size_t{1});
}

}  // namespace
}  // namespace pgpivot::cluster::test
