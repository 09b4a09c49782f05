// NodeHealth: every classification rule of research §7.2 at its threshold, and the
// hysteresis of §7.4. Samples are built by hand; `t` is a simulated monotonic clock.
#include "pgpivot/cluster/node_health.hpp"

#include <catch2/catch.hpp>
#include <functional>
#include <optional>

namespace pgpivot::cluster {
namespace {

const std::string kSysid = "7712878630329562490";

ProbeSample okStats(uint64_t at, bool in_recovery = false) {
  ProbeSample s;
  s.at_ms = at;
  s.latency_ms = 3;
  s.in_recovery = in_recovery;
  s.timeline = 2;
  s.system_identifier = kSysid;
  s.current_lsn = in_recovery ? 0 : 0x5000000;
  s.max_connections = 100;
  return s;
}

ProbeSample failedStats(uint64_t at, ProbeOutcome outcome, std::string sqlstate = {}) {
  ProbeSample s;
  s.at_ms = at;
  s.outcome = outcome;
  s.sqlstate = std::move(sqlstate);
  s.latency_ms = outcome == ProbeOutcome::kTimeout ? 1000 : 1;
  return s;
}

ConnectSample conn(uint64_t at, ProbeOutcome outcome = ProbeOutcome::kOk,
                   std::string sqlstate = {}) {
  ConnectSample c;
  c.at_ms = at;
  c.outcome = outcome;
  c.sqlstate = std::move(sqlstate);
  c.latency_ms = outcome == ProbeOutcome::kTimeout ? 1000 : 2;
  return c;
}

WriteSample write(uint64_t at, ProbeOutcome outcome = ProbeOutcome::kOk,
                  std::string sqlstate = {}) {
  WriteSample w;
  w.at_ms = at;
  w.outcome = outcome;
  w.sqlstate = std::move(sqlstate);
  w.latency_ms = outcome == ProbeOutcome::kTimeout ? 1000 : 2;
  return w;
}

const NodeContext kPrimary{
    .expected_primary = true, .min_timeline = 2, .system_identifier = kSysid};
const NodeContext kStandby{
    .expected_primary = false, .min_timeline = 2, .system_identifier = kSysid};

// A node that has been healthy for a while (t = 0..3000) and is the expected primary.
struct Fixture {
  Settings settings;
  NodeHealth node{settings};
  uint64_t t = 0;

  explicit Fixture(Settings s = {}) : settings(s), node(settings) {
    for (; t < 3000; t += 1000) {
      node.onStats(okStats(t));
      node.onWrite(write(t));
      node.onConnect(conn(t));
    }
    node.evaluate(t, kPrimary);
  }

  NodeState at(uint64_t now, const NodeContext& ctx = kPrimary) {
    node.evaluate(now, ctx);
    return node.verdict().state;
  }

  // Every probe fails the same way each second from `t` for `seconds`.
  void failAll(int seconds, ProbeOutcome outcome, std::string sqlstate = {}) {
    for (int i = 0; i < seconds; ++i, t += 1000) {
      node.onStats(failedStats(t, outcome, sqlstate));
      node.onWrite(write(t, outcome, sqlstate));
      node.onConnect(
          conn(t, outcome == ProbeOutcome::kReset ? ProbeOutcome::kRefused : outcome, sqlstate));
    }
  }
};

TEST_CASE("a node nobody has heard from is UNKNOWN, one good probe makes it HEALTHY",
          "[unit][cluster]") {
  Settings settings;
  NodeHealth node(settings);
  CHECK_FALSE(node.evaluate(0, kStandby));
  CHECK(node.verdict().state == NodeState::kUnknown);
  node.onStats(okStats(100, true));
  CHECK(node.evaluate(200, kStandby));
  CHECK(node.verdict().state == NodeState::kHealthy);
  CHECK(node.verdict().since_ms == 200);
  CHECK(node.heard());
}

TEST_CASE("refused everywhere: SUSPECT until dead_after, then DOWN:DEAD", "[unit][cluster]") {
  Fixture f;
  const uint64_t fault = f.t;
  f.failAll(6, ProbeOutcome::kReset);
  CHECK(f.at(fault + 4999) == NodeState::kSuspect);
  CHECK(f.node.verdict().connect_refused);
  CHECK(f.node.unreachableSinceMs() == fault);
  CHECK(f.at(fault + 5000) == NodeState::kDownDead);
  CHECK(f.node.verdict().reason.find("L reset") != std::string::npos);
  CHECK(f.node.verdict().reason.find("C refused") != std::string::npos);
}

TEST_CASE("57P01 from the kept connection counts as the server gone", "[unit][cluster]") {
  Fixture f;
  const uint64_t fault = f.t;
  f.failAll(6, ProbeOutcome::kError, "57P01");
  CHECK(f.at(fault + 5000) == NodeState::kDownDead);
}

TEST_CASE("timeouts everywhere: DOWN:UNRESPONSIVE after unresponsive_after, not dead_after",
          "[unit][cluster]") {
  Fixture f;
  const uint64_t fault = f.t;
  f.failAll(11, ProbeOutcome::kTimeout);
  CHECK(f.at(fault + 5000) == NodeState::kSuspect);
  CHECK(f.at(fault + 9999) == NodeState::kSuspect);
  CHECK(f.at(fault + 10000) == NodeState::kDownUnresponsive);
  CHECK_FALSE(f.node.verdict().connect_refused);
}

TEST_CASE("the profile thresholds move the DOWN verdicts", "[unit][cluster]") {
  const auto [dead, unresponsive] = GENERATE(std::pair<uint64_t, uint64_t>{3000, 5000},
                                             std::pair<uint64_t, uint64_t>{10000, 30000});
  Settings s;
  s.dead_after_ms = dead;
  s.unresponsive_after_ms = unresponsive;
  {
    Fixture f(s);
    const uint64_t fault = f.t;
    f.failAll(static_cast<int>(unresponsive / 1000) + 1, ProbeOutcome::kTimeout);
    CHECK(f.at(fault + unresponsive - 1) == NodeState::kSuspect);
    CHECK(f.at(fault + unresponsive) == NodeState::kDownUnresponsive);
  }
  {
    Fixture f(s);
    const uint64_t fault = f.t;
    f.failAll(static_cast<int>(dead / 1000) + 1, ProbeOutcome::kRefused);
    CHECK(f.at(fault + dead - 1) == NodeState::kSuspect);
    CHECK(f.at(fault + dead) == NodeState::kDownDead);
  }
}

TEST_CASE("a mix of timeouts and refusals waits for unresponsive_after", "[unit][cluster]") {
  Fixture f;
  const uint64_t fault = f.t;
  for (int i = 0; i < 11; ++i, f.t += 1000) {
    f.node.onStats(failedStats(f.t, ProbeOutcome::kTimeout));
    f.node.onConnect(conn(f.t, ProbeOutcome::kRefused));
    f.node.onWrite(write(f.t, ProbeOutcome::kTimeout));
  }
  CHECK(f.at(fault + 6000) == NodeState::kSuspect);
  CHECK(f.at(fault + 10000) == NodeState::kDownUnresponsive);
}

TEST_CASE("a failing kept connection with working fresh connections is never DOWN",
          "[unit][cluster]") {
  Fixture f;
  for (int i = 0; i < 60; ++i, f.t += 1000) {
    f.node.onStats(failedStats(f.t, ProbeOutcome::kTimeout));
    f.node.onConnect(conn(f.t));
    f.node.onWrite(write(f.t));
  }
  CHECK(f.at(f.t) == NodeState::kSuspect);
  CHECK_FALSE(f.node.unreachableSinceMs());
}

TEST_CASE("57P03 pauses the failure clock for crash_recovery_grace", "[unit][cluster]") {
  Fixture f;
  const uint64_t crash = f.t;
  f.node.onStats(failedStats(f.t, ProbeOutcome::kError, "57P02"));  // crash of another process
  f.node.onConnect(conn(f.t, ProbeOutcome::kError, "57P03"));
  f.t += 1000;
  for (; f.t < crash + 29000; f.t += 1000) {
    f.node.onStats(failedStats(f.t, ProbeOutcome::kError, "57P03"));
    f.node.onConnect(conn(f.t, ProbeOutcome::kError, "57P03"));
  }
  // Far past dead_after (5 s), still only recovering.
  CHECK(f.at(crash + 20000) == NodeState::kCrashRecovery);
  CHECK(f.at(crash + 29999) == NodeState::kCrashRecovery);
  CHECK(f.at(crash + 30000) == NodeState::kDownDead);
  CHECK(f.node.verdict().reason.find("crash recovery") != std::string::npos);
}

TEST_CASE("a crash that recovers is back to HEALTHY after the hysteresis", "[unit][cluster]") {
  Fixture f;
  f.node.onStats(failedStats(f.t, ProbeOutcome::kReset));
  f.node.onConnect(conn(f.t + 10, ProbeOutcome::kError, "57P03"));
  CHECK(f.at(f.t + 20) == NodeState::kCrashRecovery);
  f.t += 1000;
  f.node.onStats(okStats(f.t));
  f.node.onConnect(conn(f.t));
  CHECK(f.at(f.t + 10) == NodeState::kSuspect);  // 1 of 3 good probes
  f.t += 1000;
  f.node.onStats(okStats(f.t));
  f.node.onWrite(write(f.t));
  CHECK(f.at(f.t + 10) == NodeState::kSuspect);  // 2 of 3
  f.t += 1000;
  f.node.onStats(okStats(f.t));
  f.node.onWrite(write(f.t));
  CHECK(f.at(f.t + 10) == NodeState::kHealthy);
}

TEST_CASE("a postmaster that dies during crash recovery restarts the dead clock",
          "[unit][cluster]") {
  Fixture f;
  const uint64_t crash = f.t;
  for (; f.t < crash + 8000; f.t += 1000) {
    f.node.onStats(failedStats(f.t, ProbeOutcome::kError, "57P03"));
    f.node.onConnect(conn(f.t, ProbeOutcome::kError, "57P03"));
  }
  const uint64_t died = f.t;  // research fault 11: recovery fails, the postmaster exits
  for (; f.t < died + 6000; f.t += 1000) {
    f.node.onStats(failedStats(f.t, ProbeOutcome::kRefused));
    f.node.onConnect(conn(f.t, ProbeOutcome::kRefused));
  }
  CHECK(f.at(died + 4999) == NodeState::kSuspect);  // not 8 s + 5 s counted together
  CHECK(f.at(died + 5000) == NodeState::kDownDead);
}

TEST_CASE("a crash-restart loop of backends never makes the node DOWN", "[unit][cluster]") {
  Fixture f;
  const uint64_t start = f.t;
  for (int crash = 0; crash < 15; ++crash) {  // kill -9 of a backend every 2 s for 30 s
    f.node.onStats(failedStats(f.t, ProbeOutcome::kError, "57P02"));
    f.node.onConnect(conn(f.t + 100, ProbeOutcome::kError, "57P03"));
    CHECK_FALSE(isDown(f.at(f.t + 200)));
    f.node.onStats(okStats(f.t + 1000));
    f.node.onConnect(conn(f.t + 1000));
    CHECK_FALSE(isDown(f.at(f.t + 1100)));
    f.t += 2000;
  }
  CHECK(f.t - start == 30000);
}

TEST_CASE("SUSPECT back to HEALTHY needs recover_ok_probes good probes in a row",
          "[unit][cluster]") {
  Settings s;
  s.recover_ok_probes = 3;
  Fixture f(s);
  f.node.onStats(failedStats(f.t, ProbeOutcome::kTimeout));
  CHECK(f.at(f.t + 1000) == NodeState::kSuspect);
  f.t += 1000;
  f.node.onStats(okStats(f.t));
  f.node.onStats(okStats(f.t + 1000));
  CHECK(f.at(f.t + 1100) == NodeState::kSuspect);
  f.node.onStats(failedStats(f.t + 2000, ProbeOutcome::kTimeout));  // the streak starts over
  f.node.onStats(okStats(f.t + 3000));
  f.node.onStats(okStats(f.t + 4000));
  CHECK(f.at(f.t + 4100) == NodeState::kSuspect);
  f.node.onStats(okStats(f.t + 5000));
  CHECK(f.at(f.t + 5100) == NodeState::kHealthy);
}

TEST_CASE("NOT_PRIMARY is immediate on any sign the expected primary cannot take writes",
          "[unit][cluster]") {
  Fixture f;
  SECTION("in recovery") {
    f.node.onStats(okStats(f.t, true));
    CHECK(f.at(f.t + 10) == NodeState::kNotPrimary);
    CHECK(f.node.verdict().reason == "pg_is_in_recovery() is true");
  }
  SECTION("timeline older than the newest seen") {
    ProbeSample s = okStats(f.t);
    s.timeline = 1;
    f.node.onStats(s);
    CHECK(f.at(f.t + 10) == NodeState::kNotPrimary);
  }
  SECTION("another cluster's system identifier") {
    ProbeSample s = okStats(f.t);
    s.system_identifier = "42";
    f.node.onStats(s);
    CHECK(f.at(f.t + 10) == NodeState::kNotPrimary);
  }
  SECTION("the heartbeat write is refused as read only") {
    f.node.onWrite(write(f.t, ProbeOutcome::kError, "25006"));
    CHECK(f.at(f.t + 10) == NodeState::kNotPrimary);
  }
  SECTION("a server connection reports in_hot_standby=on") {
    f.node.onHotStandbyReport(true, f.t);
    CHECK(f.at(f.t + 10) == NodeState::kNotPrimary);
    f.node.onStats(okStats(f.t + 500));  // a newer L saying writable overrides it
    CHECK(f.at(f.t + 600) == NodeState::kHealthy);
  }
  SECTION("none of it applies to a node not expected to be the primary") {
    f.node.onStats(okStats(f.t, true));
    f.node.onWrite(write(f.t, ProbeOutcome::kError, "25006"));
    CHECK(f.at(f.t + 10, kStandby) == NodeState::kHealthy);
  }
}

// W failing while L answers, with f.node's latest stats set by `stats`.
NodeState writeFailing(Fixture& f, int seconds, ProbeOutcome outcome, std::string sqlstate,
                       const std::function<void(ProbeSample&)>& stats) {
  for (int i = 0; i <= seconds; ++i, f.t += 1000) {
    ProbeSample s = okStats(f.t);
    stats(s);
    f.node.onStats(s);
    f.node.onConnect(conn(f.t));
    f.node.onWrite(write(f.t, outcome, sqlstate));
  }
  return f.at(f.t - 1000);
}

TEST_CASE("heartbeat writes stuck on I/O: DOWN:WRITE_STUCK after write_stuck_after",
          "[unit][cluster]") {
  const auto io = [](ProbeSample& s) { s.io_waiters = 2; };
  {
    Fixture f;
    CHECK(writeFailing(f, 19, ProbeOutcome::kTimeout, "", io) == NodeState::kSuspect);
  }
  {
    Fixture f;
    CHECK(writeFailing(f, 20, ProbeOutcome::kTimeout, "", io) == NodeState::kDownWriteStuck);
    CHECK(f.node.verdict().reason.find("waiting on I/O") != std::string::npos);
  }
}

TEST_CASE("heartbeat writes failing with the WAL position frozen are write-stuck",
          "[unit][cluster]") {
  Fixture f;
  CHECK(writeFailing(f, 20, ProbeOutcome::kTimeout, "", [](ProbeSample&) {}) ==
        NodeState::kDownWriteStuck);
  CHECK(f.node.verdict().reason.find("WAL position frozen") != std::string::npos);
}

TEST_CASE("disk full on the heartbeat (53100) is write-stuck evidence", "[unit][cluster]") {
  Fixture f;
  CHECK(writeFailing(f, 20, ProbeOutcome::kError, "53100", [](ProbeSample& s) {
          s.current_lsn += s.at_ms;  // WAL still moving: only the error says why
        }) == NodeState::kDownWriteStuck);
}

TEST_CASE("heartbeat writes failing without a server-side cause stay SUSPECT", "[unit][cluster]") {
  Fixture f;
  CHECK(writeFailing(f, 60, ProbeOutcome::kTimeout, "",
                     [](ProbeSample& s) { s.current_lsn += s.at_ms; }) == NodeState::kSuspect);
  CHECK(f.node.verdict().reason.find("no server-side cause") != std::string::npos);
}

TEST_CASE("commits waiting for a synchronous standby: DEGRADED:SYNCREP, never DOWN",
          "[unit][cluster]") {
  const auto syncrep = [](ProbeSample& s) {
    s.syncrep_waiters = 3;
    s.current_lsn += s.at_ms;  // WAL is written locally; the commit waits for the standby
  };
  {
    Fixture f;
    CHECK(writeFailing(f, 4, ProbeOutcome::kTimeout, "", syncrep) == NodeState::kSuspect);
  }
  Fixture f;
  CHECK(writeFailing(f, 5, ProbeOutcome::kTimeout, "", syncrep) == NodeState::kDegradedSyncRep);
  CHECK(writeFailing(f, 120, ProbeOutcome::kTimeout, "", syncrep) == NodeState::kDegradedSyncRep);
}

// A primary probed by L and C only (W does not run: no heartbeat table), healthy until
// t = 3000; then `shape` applied to every L sample for `seconds`.
NodeState syncRepWithoutWrite(int seconds, uint64_t evaluate_after_ms,
                              const std::function<void(ProbeSample&)>& shape,
                              const std::optional<DataPathSample>& data_path = std::nullopt) {
  Settings settings;
  NodeHealth node(settings);
  uint64_t t = 0;
  for (; t < 3000; t += 1000) {
    node.onStats(okStats(t));
    node.onWrite(write(t, ProbeOutcome::kError, "42P01"));  // no heartbeat table
    node.onConnect(conn(t));
  }
  node.evaluate(t, kPrimary);
  REQUIRE(node.verdict().state == NodeState::kHealthy);
  const uint64_t start = t;
  for (int i = 0; i < seconds; ++i, t += 1000) {
    ProbeSample s = okStats(t);
    s.syncrep_waiters = 2;
    s.sync_standbys = 1;
    s.current_lsn += t;
    shape(s);
    node.onStats(s);
    node.onConnect(conn(t));
    if (data_path) {
      DataPathSample d = *data_path;
      d.at_ms = t;
      node.onDataPath(d);
    }
  }
  node.evaluate(start + evaluate_after_ms, kPrimary);
  return node.verdict().state;
}

TEST_CASE(
    "without a heartbeat write, commits stuck behind a synchronous standby are DEGRADED:SYNCREP "
    "from the stats probe, never DOWN",
    "[unit][cluster]") {
  // The synchronous standby is gone from pg_stat_replication: the commits cannot finish.
  const auto gone = [](ProbeSample& s) { s.sync_standbys = 0; };
  CHECK(syncRepWithoutWrite(5, 4999, gone) == NodeState::kSuspect);
  CHECK(syncRepWithoutWrite(6, 5000, gone) == NodeState::kDegradedSyncRep);
  CHECK(syncRepWithoutWrite(60, 59000, gone) == NodeState::kDegradedSyncRep);
  // Still connected (frozen, say), but pgpivot's own queries get no reply.
  DataPathSample stalled;
  stalled.stalled_queries = 1;
  stalled.oldest_stall_ms = 4000;
  stalled.stall_timeout_ms = 3000;
  CHECK(syncRepWithoutWrite(
            6, 5000, [](ProbeSample&) {}, stalled) == NodeState::kDegradedSyncRep);
  // A busy, healthy synchronous cluster: commits pass through SyncRep all the time, the
  // standby is connected and nothing is stalled.
  DataPathSample flowing;
  flowing.transactions_per_s = 500;
  flowing.queries_in_flight = 4;
  CHECK(syncRepWithoutWrite(
            60, 59000, [](ProbeSample&) {}, flowing) == NodeState::kHealthy);
  CHECK(syncRepWithoutWrite(60, 59000, [](ProbeSample&) {}) == NodeState::kHealthy);
  // One sample without waiters starts the count again.
  CHECK(syncRepWithoutWrite(6, 5000, [](ProbeSample& s) {
          s.sync_standbys = 0;
          if (s.at_ms == 5000) {
            s.syncrep_waiters = 0;
          }
        }) == NodeState::kSuspect);
}

TEST_CASE("the heartbeat's own lock_timeout (55P03) is a lock problem, never DOWN",
          "[unit][cluster]") {
  Fixture f;
  CHECK(writeFailing(f, 120, ProbeOutcome::kError, "55P03", [](ProbeSample&) {}) ==
        NodeState::kDegradedLocks);
}

TEST_CASE("lock pile-up: DEGRADED:LOCKS at either warn threshold, never DOWN", "[unit][cluster]") {
  Fixture f;
  SECTION("waiters") {
    ProbeSample s = okStats(f.t);
    s.lock_waiters = 9;
    f.node.onStats(s);
    CHECK(f.at(f.t + 10) == NodeState::kHealthy);
    s.lock_waiters = 10;
    s.at_ms += 1000;
    f.node.onStats(s);
    CHECK(f.at(f.t + 1010) == NodeState::kDegradedLocks);
    CHECK_FALSE(f.node.verdict().lock_critical);
  }
  SECTION("the oldest wait, then critical at 30 s") {
    ProbeSample s = okStats(f.t);
    s.lock_waiters = 1;
    s.oldest_lock_wait_ms = 4999;
    f.node.onStats(s);
    CHECK(f.at(f.t + 10) == NodeState::kHealthy);
    s.oldest_lock_wait_ms = 5000;
    s.at_ms += 1000;
    f.node.onStats(s);
    CHECK(f.at(f.t + 1010) == NodeState::kDegradedLocks);
    s.oldest_lock_wait_ms = 30000;
    s.at_ms += 1000;
    f.node.onStats(s);
    CHECK(f.at(f.t + 2010) == NodeState::kDegradedLocks);
    CHECK(f.node.verdict().lock_critical);
  }
  SECTION("critical at 25 % of max_connections") {
    ProbeSample s = okStats(f.t);
    s.lock_waiters = 25;
    f.node.onStats(s);
    f.at(f.t + 10);
    CHECK(f.node.verdict().lock_critical);
  }
  SECTION("heartbeat timeouts during a pile-up stay DEGRADED:LOCKS for minutes") {
    CHECK(writeFailing(f, 180, ProbeOutcome::kTimeout, "", [](ProbeSample& s) {
            s.lock_waiters = 40;
            s.oldest_lock_wait_ms = s.at_ms;
          }) == NodeState::kDegradedLocks);
  }
}

TEST_CASE("a degraded state clears only after degraded_clear_after below the threshold",
          "[unit][cluster]") {
  Fixture f;
  ProbeSample s = okStats(f.t);
  s.lock_waiters = 12;
  f.node.onStats(s);
  CHECK(f.at(f.t) == NodeState::kDegradedLocks);
  const uint64_t cleared = f.t + 1000;
  for (uint64_t t = cleared; t <= cleared + 31000; t += 1000) {
    f.node.onStats(okStats(t));
    f.node.onWrite(write(t));
    if (t < cleared + 30000) {
      CHECK(f.at(t) == NodeState::kDegradedLocks);
    }
  }
  CHECK(f.at(cleared + 30000) == NodeState::kHealthy);
}

TEST_CASE("fresh connections failing while the kept one works: DEGRADED:NO_NEW_CONN",
          "[unit][cluster]") {
  Fixture f;  // research fault 1: SIGSTOP of the postmaster only
  for (int i = 0; i < 3; ++i, f.t += 1000) {
    f.node.onStats(okStats(f.t));
    f.node.onWrite(write(f.t));
    f.node.onConnect(conn(f.t, ProbeOutcome::kTimeout));
    CHECK(f.at(f.t + 10) == (i < 2 ? NodeState::kHealthy : NodeState::kDegradedNoNewConn));
  }
  for (int i = 0; i < 60; ++i, f.t += 1000) {
    f.node.onStats(okStats(f.t));
    f.node.onWrite(write(f.t));
    f.node.onConnect(conn(f.t, ProbeOutcome::kTimeout));
  }
  CHECK(f.at(f.t) == NodeState::kDegradedNoNewConn);
}

TEST_CASE("answers that say nothing about health are UNKNOWN, never DOWN", "[unit][cluster]") {
  Fixture f;
  SECTION("the monitor's login is refused") {
    for (int i = 0; i < 30; ++i, f.t += 1000) {
      f.node.onStats(failedStats(f.t, ProbeOutcome::kAuthFailed, "28P01"));
      f.node.onConnect(conn(f.t, ProbeOutcome::kAuthFailed, "28P01"));
    }
    CHECK(f.at(f.t) == NodeState::kUnknown);
    CHECK_FALSE(f.node.unreachableSinceMs());
  }
  SECTION("the stats query lacks a privilege") {
    for (int i = 0; i < 30; ++i, f.t += 1000) {
      f.node.onStats(failedStats(f.t, ProbeOutcome::kError, "42501"));
      f.node.onConnect(conn(f.t));
    }
    CHECK(f.at(f.t) == NodeState::kUnknown);
  }
}

TEST_CASE("a heartbeat setup error (no table) leaves W out instead of failing the node",
          "[unit][cluster]") {
  Fixture f;
  for (int i = 0; i < 30; ++i, f.t += 1000) {
    f.node.onStats(okStats(f.t));
    f.node.onWrite(write(f.t, ProbeOutcome::kError, "42P01"));
  }
  CHECK(f.at(f.t) == NodeState::kHealthy);
  CHECK(f.node.writeMisconfigured());
  CHECK(findField(f.node.verdict().evidence, "W_setup_error") != nullptr);
}

TEST_CASE("a late answer to an older probe is dropped", "[unit][cluster]") {
  Fixture f;
  f.node.onStats(okStats(f.t + 1000));
  f.node.onStats(failedStats(f.t, ProbeOutcome::kTimeout));  // sent earlier, arrived later
  CHECK(f.at(f.t + 1100) == NodeState::kHealthy);
}

TEST_CASE("a drop in the deadlock counter is a statistics reset, not negative deadlocks",
          "[unit][cluster]") {
  Fixture f;
  ProbeSample s = okStats(f.t);
  s.deadlocks = 4;
  f.node.onStats(s);
  s.at_ms += 1000;
  s.deadlocks = 5;
  f.node.onStats(s);
  CHECK(f.node.deadlocksDelta() == 1);
  s.at_ms += 1000;
  s.deadlocks = 0;  // PG15 after a crash-restart (research §1.2 E)
  f.node.onStats(s);
  CHECK(f.node.deadlocksDelta() == 0);
}

TEST_CASE("the verdict's evidence carries the raw probe results", "[unit][cluster]") {
  Fixture f;
  f.failAll(1, ProbeOutcome::kTimeout);
  f.at(f.t);
  const Evidence& e = f.node.verdict().evidence;
  REQUIRE(findField(e, "L") != nullptr);
  const auto& l = std::get<Evidence>(*findField(e, "L"));
  CHECK(std::get<std::string>(*findField(l, "result")) == "timeout");
  CHECK(std::get<int64_t>(*findField(l, "consecutive_failures")) == 1);
  CHECK(findField(e, "W") != nullptr);
  CHECK(findField(e, "failing_for_ms") != nullptr);
  CHECK(std::get<int64_t>(*findField(e, "timeline")) == 2);
}

TEST_CASE("node states have the research's names", "[unit][cluster]") {
  CHECK(toString(NodeState::kDegradedLocks) == "DEGRADED:LOCKS");
  CHECK(toString(NodeState::kDegradedNoNewConn) == "DEGRADED:NO_NEW_CONN");
  CHECK(toString(NodeState::kDegradedSyncRep) == "DEGRADED:SYNCREP");
  CHECK(toString(NodeState::kDownDead) == "DOWN:DEAD");
  CHECK(toString(NodeState::kDownUnresponsive) == "DOWN:UNRESPONSIVE");
  CHECK(toString(NodeState::kDownWriteStuck) == "DOWN:WRITE_STUCK");
  CHECK(toString(NodeState::kNotPrimary) == "NOT_PRIMARY");
  CHECK(toString(NodeState::kCrashRecovery) == "CRASH_RECOVERY");
}

}  // namespace
}  // namespace pgpivot::cluster
