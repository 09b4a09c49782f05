// NodeHealth: samples in, one classified state out (node_health.hpp lists the rules).
// The samples only update counters and clocks; classify() applies the rules at `now`,
// so a timer tick with no new sample can still move a node to DOWN.
#include "pgpivot/cluster/node_health.hpp"

#include <algorithm>

#include "format.hpp"

namespace pgpivot::cluster {
namespace {

// What a failed probe says about the node.
enum class FailKind : uint8_t {
  kNone,      // it succeeded
  kTimeout,   // silence: frozen, black-holed, overloaded
  kHard,      // refused, reset, 57P01, 08xxx: the server (or its postmaster) is gone
  kCrash,     // 57P03 starting up / in recovery, 57P02 crash of another process
  kAnswered,  // the server answered with an error: it is alive
};

FailKind kindOf(ProbeOutcome outcome, std::string_view sqlstate) {
  switch (outcome) {
    case ProbeOutcome::kOk:
      return FailKind::kNone;
    case ProbeOutcome::kTimeout:
      return FailKind::kTimeout;
    case ProbeOutcome::kRefused:
    case ProbeOutcome::kReset:
      return FailKind::kHard;
    case ProbeOutcome::kAuthFailed:
      return FailKind::kAnswered;
    case ProbeOutcome::kError:
      break;
  }
  if (sqlstate == "57P03" || sqlstate == "57P02") {
    return FailKind::kCrash;
  }
  if (sqlstate == "57P01" || sqlstate.starts_with("08")) {
    return FailKind::kHard;
  }
  return FailKind::kAnswered;
}

// A W error about pgpivot's own setup (no heartbeat table, no INSERT right, login
// refused): it says nothing about the server, so W is left out until it is fixed.
bool setupError(ProbeOutcome outcome, std::string_view sqlstate) {
  return outcome == ProbeOutcome::kAuthFailed || sqlstate.starts_with("42") ||
         sqlstate.starts_with("28");
}

// Errors that show the write path itself failing: insufficient resources (53100 disk
// full) and system errors (58030 I/O error).
bool serverWriteError(std::string_view sqlstate) {
  return sqlstate.starts_with("53") || sqlstate.starts_with("58");
}

std::string describe(std::string_view probe, ProbeOutcome outcome, std::string_view sqlstate) {
  std::string out(probe);
  out += ' ';
  out += toString(outcome);
  if (!sqlstate.empty()) {
    out += " (" + std::string(sqlstate) + ")";
  }
  return out;
}

}  // namespace

std::string_view toString(NodeState state) {
  switch (state) {
    case NodeState::kUnknown:
      return "UNKNOWN";
    case NodeState::kHealthy:
      return "HEALTHY";
    case NodeState::kSuspect:
      return "SUSPECT";
    case NodeState::kDegradedLocks:
      return "DEGRADED:LOCKS";
    case NodeState::kDegradedNoNewConn:
      return "DEGRADED:NO_NEW_CONN";
    case NodeState::kDegradedSyncRep:
      return "DEGRADED:SYNCREP";
    case NodeState::kCrashRecovery:
      return "CRASH_RECOVERY";
    case NodeState::kDownDead:
      return "DOWN:DEAD";
    case NodeState::kDownUnresponsive:
      return "DOWN:UNRESPONSIVE";
    case NodeState::kDownWriteStuck:
      return "DOWN:WRITE_STUCK";
    case NodeState::kNotPrimary:
      return "NOT_PRIMARY";
  }
  return "UNKNOWN";
}

bool isDown(NodeState state) {
  return state == NodeState::kDownDead || state == NodeState::kDownUnresponsive ||
         state == NodeState::kDownWriteStuck;
}

bool isDegraded(NodeState state) {
  return state == NodeState::kDegradedLocks || state == NodeState::kDegradedNoNewConn ||
         state == NodeState::kDegradedSyncRep;
}

// ---- samples ---------------------------------------------------------------------------

bool NodeHealth::accept(Track& track, ProbeOutcome outcome, const std::string& sqlstate,
                        const std::string& error, uint64_t at_ms, uint32_t latency_ms) {
  if (track.seen && at_ms < track.last_at) {
    return false;  // a late answer to an older probe: the newer one already counted
  }
  track.seen = true;
  track.last_at = at_ms;
  track.outcome = outcome;
  track.sqlstate = sqlstate;
  track.error = error;
  track.latency_ms = latency_ms;
  if (outcome == ProbeOutcome::kOk) {
    track.consecutive_failures = 0;
    track.last_ok_done = at_ms + latency_ms;
  } else {
    if (track.consecutive_failures == 0) {
      track.fail_since = at_ms;
    }
    ++track.consecutive_failures;
  }
  return true;
}

void NodeHealth::noteContact(uint64_t done_ms) {
  last_contact_ms_ = std::max(last_contact_ms_, done_ms);
  unreach_since_.reset();
  crash_since_.reset();
  in_crash_ = false;
}

// The failure clock behind DOWN:DEAD and DOWN:UNRESPONSIVE starts at the first failure
// after the last contact. Crash-recovery answers (57P03) pause it: when the node then
// fails in another way (the postmaster gave up: research fault 11), the clock starts
// again from that failure instead of counting the recovery time.
void NodeHealth::noteFailureClock(uint64_t at_ms, bool crash_class) {
  const uint64_t start = std::max(at_ms, last_contact_ms_);
  if (crash_class) {
    crash_since_ = crash_since_.value_or(at_ms);
    in_crash_ = true;
    if (!unreach_since_) {
      unreach_since_ = start;
    }
    return;
  }
  if (in_crash_) {
    in_crash_ = false;
    unreach_since_ = start;
  } else if (!unreach_since_) {
    unreach_since_ = start;
  }
}

void NodeHealth::onStats(const ProbeSample& s) {
  if (!accept(l_, s.outcome, s.sqlstate, s.error, s.at_ms, s.latency_ms)) {
    return;
  }
  if (!s.ok()) {
    ok_streak_ = 0;
    recovering_ = true;
    const FailKind kind = kindOf(s.outcome, s.sqlstate);
    if (kind == FailKind::kAnswered) {
      noteContact(s.doneMs());
    } else {
      noteFailureClock(s.at_ms, kind == FailKind::kCrash);
    }
    return;
  }
  noteContact(s.doneMs());
  if (last_ok_stats_) {
    // PG15 throws cumulative statistics away after a crash (research §1.2 E): a negative
    // delta is a reset, not negative deadlocks.
    deadlocks_delta_ = std::max<int64_t>(0, s.deadlocks - last_ok_stats_->deadlocks);
    xact_delta_ = std::max<int64_t>(0, s.xact_total - last_ok_stats_->xact_total);
  }
  if (s.in_recovery) {
    writable_since_.reset();
  } else if (!writable_since_) {
    writable_since_ = s.at_ms;
  }
  if (hot_standby_at_ && *hot_standby_at_ < s.at_ms) {
    hot_standby_at_.reset();
  }
  if (s.syncrep_waiters > 0) {
    syncrep_since_ = syncrep_since_.value_or(s.at_ms);
  } else {
    syncrep_since_.reset();
  }
  last_ok_stats_ = s;
  const bool w_failing = w_.seen && w_.outcome != ProbeOutcome::kOk && !w_misconfigured_;
  ok_streak_ = w_failing ? 0 : ok_streak_ + 1;
  if (ok_streak_ >= settings_.recover_ok_probes) {
    recovering_ = false;
  }
}

void NodeHealth::onConnect(const ConnectSample& s) {
  if (!accept(c_, s.outcome, s.sqlstate, s.error, s.at_ms, s.latency_ms)) {
    return;
  }
  const FailKind kind = kindOf(s.outcome, s.sqlstate);
  // DEGRADED:NO_NEW_CONN counts only failures while the kept connection works: those
  // during an outage (or crash recovery) are the outage's, not a postmaster problem.
  c_fail_with_l_ok_ = s.ok() ? 0 : (statsOk() ? c_fail_with_l_ok_ + 1 : 0);
  if (kind == FailKind::kNone || kind == FailKind::kAnswered) {
    noteContact(s.doneMs());  // 53300 "too many connections" is an answer too
  } else {
    noteFailureClock(s.at_ms, kind == FailKind::kCrash);
  }
}

void NodeHealth::onWrite(const WriteSample& s) {
  if (!accept(w_, s.outcome, s.sqlstate, s.error, s.at_ms, s.latency_ms)) {
    return;
  }
  if (s.ok()) {
    w_misconfigured_ = false;
    noteContact(s.doneMs());
    return;
  }
  w_misconfigured_ = setupError(s.outcome, s.sqlstate);
  if (w_misconfigured_ || s.sqlstate == "25006") {
    // About pgpivot's setup, or about the node's role (NOT_PRIMARY's business): the
    // node answered, its health is not in question.
    noteContact(s.doneMs());
    return;
  }
  if (w_.consecutive_failures == 1) {
    w_fail_lsn_ = last_ok_stats_ ? last_ok_stats_->current_lsn : 0;
  }
  ok_streak_ = 0;
  recovering_ = true;
  const FailKind kind = kindOf(s.outcome, s.sqlstate);
  if (kind == FailKind::kAnswered) {
    noteContact(s.doneMs());
  } else {
    noteFailureClock(s.at_ms, kind == FailKind::kCrash);
  }
}

void NodeHealth::onHotStandbyReport(bool in_hot_standby, uint64_t at_ms) {
  if (in_hot_standby && (!last_ok_stats_ || at_ms > last_ok_stats_->at_ms)) {
    hot_standby_at_ = at_ms;
  }
}

void NodeHealth::resetWriteProbe() {
  w_ = Track{};
  w_misconfigured_ = false;
  w_fail_lsn_ = 0;
}

const DataPathSample* NodeHealth::dataPath(uint64_t now_ms) const {
  constexpr uint64_t kFreshMs = 2000;  // workers report every 500 ms
  if (!data_path_ || data_path_->at_ms + kFreshMs < now_ms) {
    return nullptr;
  }
  return &*data_path_;
}

std::optional<uint64_t> NodeHealth::lastWriteOkMs() const {
  if (w_.seen && w_.outcome == ProbeOutcome::kOk) {
    return w_.last_ok_done;
  }
  return std::nullopt;
}

// ---- classification --------------------------------------------------------------------

bool NodeHealth::evaluate(uint64_t now_ms, const NodeContext& context) {
  const Classified c = classify(now_ms, context);
  const bool changed = c.state != verdict_.state;
  if (changed) {
    verdict_.since_ms = now_ms;
  }
  verdict_.state = c.state;
  verdict_.reason = c.reason;
  verdict_.lock_critical = c.lock_critical;
  verdict_.connect_refused = c_.seen && c_.outcome == ProbeOutcome::kRefused;
  verdict_.evidence = evidence(now_ms, context.expected_primary);
  return changed;
}

NodeHealth::Classified NodeHealth::classify(uint64_t now_ms, const NodeContext& context) {
  if (!l_.seen && !c_.seen) {
    return {NodeState::kUnknown, "no probe has answered yet"};
  }
  if (context.expected_primary) {
    if (auto np = notPrimary(context)) {
      return *np;
    }
  }
  const auto failing = [](const Track& t) {
    return t.seen && t.outcome != ProbeOutcome::kOk &&
           kindOf(t.outcome, t.sqlstate) != FailKind::kAnswered;
  };
  if (unreach_since_ && failing(l_) && failing(c_)) {
    return unreachable(now_ms, context.expected_primary);
  }
  return reachable(now_ms, context.expected_primary);
}

std::optional<NodeHealth::Classified> NodeHealth::notPrimary(const NodeContext& context) const {
  if (statsOk()) {
    const ProbeSample& s = *last_ok_stats_;
    if (s.in_recovery) {
      return Classified{NodeState::kNotPrimary, "pg_is_in_recovery() is true"};
    }
    if (!context.system_identifier.empty() && s.system_identifier != context.system_identifier) {
      return Classified{NodeState::kNotPrimary, "system identifier " + s.system_identifier +
                                                    " is not the cluster's " +
                                                    std::string(context.system_identifier)};
    }
    if (s.timeline < context.min_timeline) {
      return Classified{NodeState::kNotPrimary, "timeline " + std::to_string(s.timeline) +
                                                    " is older than the newest " +
                                                    std::to_string(context.min_timeline)};
    }
  }
  if (w_.seen && w_.outcome == ProbeOutcome::kError && w_.sqlstate == "25006") {
    return Classified{NodeState::kNotPrimary, "heartbeat write refused: read only (25006)"};
  }
  if (hot_standby_at_) {
    return Classified{NodeState::kNotPrimary, "a server connection reported in_hot_standby=on"};
  }
  return std::nullopt;
}

NodeHealth::Classified NodeHealth::unreachable(uint64_t now_ms, bool expected_primary) const {
  if (in_crash_ && crash_since_) {
    const uint64_t recovering_for = now_ms > *crash_since_ ? now_ms - *crash_since_ : 0;
    if (recovering_for < settings_.crash_recovery_grace_ms) {
      const std::string& code = c_.sqlstate.starts_with("57P0") ? c_.sqlstate : l_.sqlstate;
      return {NodeState::kCrashRecovery, "crash recovery (" + code + ") for " +
                                             formatSeconds(recovering_for) +
                                             ", failure clock paused"};
    }
    return {NodeState::kDownDead,
            "still in crash recovery after " + formatSeconds(settings_.crash_recovery_grace_ms)};
  }
  const bool w_failing = expected_primary && w_.seen && w_.outcome != ProbeOutcome::kOk;
  const bool timeout = l_.outcome == ProbeOutcome::kTimeout ||
                       c_.outcome == ProbeOutcome::kTimeout ||
                       (w_failing && w_.outcome == ProbeOutcome::kTimeout);
  const uint64_t down_for = now_ms > *unreach_since_ ? now_ms - *unreach_since_ : 0;
  std::string what =
      describe("L", l_.outcome, l_.sqlstate) + ", " + describe("C", c_.outcome, c_.sqlstate);
  if (w_failing) {
    what += ", " + describe("W", w_.outcome, w_.sqlstate);
  }
  what += " for " + formatSeconds(down_for);
  const uint64_t limit = timeout ? settings_.unresponsive_after_ms : settings_.dead_after_ms;
  if (down_for >= limit) {
    return {timeout ? NodeState::kDownUnresponsive : NodeState::kDownDead, what};
  }
  return {NodeState::kSuspect, what + " (DOWN after " + formatSeconds(limit) + ")"};
}

NodeHealth::Classified NodeHealth::reachable(uint64_t now_ms, bool expected_primary) {
  if (!statsOk()) {
    if (l_.seen && kindOf(l_.outcome, l_.sqlstate) == FailKind::kAnswered) {
      return {NodeState::kUnknown,
              "stats probe answered with an error: " + describe("L", l_.outcome, l_.sqlstate) +
                  (l_.error.empty() ? "" : " " + l_.error)};
    }
    if (!l_.seen) {
      return {NodeState::kUnknown, "no stats probe has answered yet"};
    }
    return {NodeState::kSuspect, describe("L", l_.outcome, l_.sqlstate) + ", node reachable"};
  }
  std::optional<Classified> raw;
  if (expected_primary) {
    raw = writeFailing(now_ms);
    if (!raw) {
      raw = syncRepWithoutWrite(now_ms);
    }
  }
  if (!raw && c_fail_with_l_ok_ >= settings_.no_new_conn_failures) {
    raw = Classified{NodeState::kDegradedNoNewConn,
                     "fresh connections failed " + std::to_string(c_fail_with_l_ok_) +
                         " times in a row (" + describe("C", c_.outcome, c_.sqlstate) +
                         ") while L is fine"};
  }
  if (!raw && lockWarn()) {
    const ProbeSample& s = *last_ok_stats_;
    raw = Classified{NodeState::kDegradedLocks,
                     std::to_string(s.lock_waiters) + " lock waiters, oldest waiting " +
                         formatSeconds(s.oldest_lock_wait_ms),
                     lockCritical()};
  }
  if (!raw && stalledBehindLocks(now_ms)) {
    // Below the lock thresholds, but pgpivot's own clients are stuck behind the locks:
    // the data path says the pile-up is hurting now.
    const DataPathSample& d = *dataPath(now_ms);
    raw = Classified{
        NodeState::kDegradedLocks,
        std::to_string(d.stalled_queries) + " queries through pgpivot without a reply for over " +
            formatSeconds(d.stall_timeout_ms) + " (oldest " + formatSeconds(d.oldest_stall_ms) +
            "), " + std::to_string(last_ok_stats_->lock_waiters) + " sessions waiting on locks",
        lockCritical()};
  }
  if (raw) {
    if (isDegraded(raw->state)) {
      degraded_held_ = raw->state;
      degraded_clear_since_.reset();
    }
    return *raw;
  }
  if (recovering_ && ok_streak_ < settings_.recover_ok_probes) {
    return holdDegraded(now_ms,
                        {NodeState::kSuspect, "recovering: " + std::to_string(ok_streak_) + " of " +
                                                  std::to_string(settings_.recover_ok_probes) +
                                                  " good probes in a row"});
  }
  return holdDegraded(now_ms, {NodeState::kHealthy, "L ok"});
}

// W failing while L answers: locks, a synchronous standby, or the server's write path.
std::optional<NodeHealth::Classified> NodeHealth::writeFailing(uint64_t now_ms) const {
  if (!w_.seen || w_.outcome == ProbeOutcome::kOk || w_misconfigured_) {
    return std::nullopt;
  }
  const ProbeSample& s = *last_ok_stats_;
  const uint64_t failing_for = now_ms > w_.fail_since ? now_ms - w_.fail_since : 0;
  const std::string w =
      describe("W", w_.outcome, w_.sqlstate) + " for " + formatSeconds(failing_for);
  if (w_.sqlstate == "55P03" || w_.sqlstate == "40P01") {
    return Classified{NodeState::kDegradedLocks, "heartbeat write hit a lock: " + w};
  }
  if (s.syncrep_waiters > 0) {
    // Promoting would not help: the configuration names a missing synchronous standby, and
    // the standby it waits for may be the one that is missing (research §7.2).
    const NodeState state = failing_for >= settings_.syncrep_after_ms ? NodeState::kDegradedSyncRep
                                                                      : NodeState::kSuspect;
    return Classified{state, w + ", " + std::to_string(s.syncrep_waiters) +
                                 " commits waiting for a synchronous standby"};
  }
  if (lockWarn()) {
    return Classified{NodeState::kDegradedLocks,
                      w + " during a lock pile-up (" + std::to_string(s.lock_waiters) + " waiters)",
                      lockCritical()};
  }
  std::string cause;
  if (w_.outcome == ProbeOutcome::kTimeout || serverWriteError(w_.sqlstate)) {
    if (s.io_waiters > 0) {
      cause = std::to_string(s.io_waiters) + " backends waiting on I/O";
    } else if (w_fail_lsn_ != 0 && s.current_lsn == w_fail_lsn_ && s.at_ms > w_.fail_since) {
      cause = "WAL position frozen at " + formatLsn(s.current_lsn);
    } else if (serverWriteError(w_.sqlstate)) {
      cause = "write error " + w_.sqlstate;
    } else if (const DataPathSample* d = dataPath(now_ms);
               d != nullptr && d->stalled_queries > 0 && d->transactions_per_s == 0) {
      cause = std::to_string(d->stalled_queries) +
              " queries through pgpivot stalled and no transaction completing";
    }
  }
  if (cause.empty()) {
    return Classified{NodeState::kSuspect, w + ", no server-side cause seen"};
  }
  if (failing_for >= settings_.write_stuck_after_ms) {
    return Classified{NodeState::kDownWriteStuck, w + ": " + cause};
  }
  return Classified{NodeState::kSuspect, w + ": " + cause + " (DOWN after " +
                                             formatSeconds(settings_.write_stuck_after_ms) + ")"};
}

// Without a heartbeat write (no table: W answers 42P01 and is left out, or W is off) a
// commit stuck behind a synchronous standby shows only in L: the same stall W would have
// seen. Commits pass through SyncRep briefly on a healthy synchronous cluster, so waiters
// in every sample are not enough alone: no synchronous standby connected, or queries
// through pgpivot with no reply for query_stall_timeout, say the commits are stuck.
std::optional<NodeHealth::Classified> NodeHealth::syncRepWithoutWrite(uint64_t now_ms) const {
  const bool w_runs = w_.seen && !w_misconfigured_;
  if (w_runs || !syncrep_since_ || !last_ok_stats_) {
    return std::nullopt;
  }
  const ProbeSample& s = *last_ok_stats_;
  const DataPathSample* d = dataPath(now_ms);
  const bool no_sync_standby = s.sync_standbys == 0;
  const bool stalled = d != nullptr && d->stalled_queries > 0;
  if (!no_sync_standby && !stalled) {
    return std::nullopt;
  }
  const uint64_t waiting_for = now_ms > *syncrep_since_ ? now_ms - *syncrep_since_ : 0;
  std::string reason =
      std::to_string(s.syncrep_waiters) +
      " commits waiting for a synchronous standby in every probe for " +
      formatSeconds(waiting_for) + ", " +
      (no_sync_standby ? std::string("no synchronous standby connected")
                       : std::to_string(d->stalled_queries) + " queries through pgpivot stalled") +
      " (no heartbeat write to confirm)";
  if (waiting_for < settings_.syncrep_after_ms) {
    return Classified{NodeState::kSuspect, std::move(reason)};
  }
  return Classified{NodeState::kDegradedSyncRep, std::move(reason)};
}

// Keeps a degraded state that just cleared for degraded_clear_after, so that a value
// hovering at the threshold does not flap (research §7.4).
NodeHealth::Classified NodeHealth::holdDegraded(uint64_t now_ms, Classified raw) {
  if (!degraded_held_) {
    return raw;
  }
  if (!degraded_clear_since_) {
    degraded_clear_since_ = now_ms;
  }
  const uint64_t clear_for = now_ms - *degraded_clear_since_;
  if (clear_for >= settings_.degraded_clear_after_ms) {
    degraded_held_.reset();
    degraded_clear_since_.reset();
    return raw;
  }
  return {*degraded_held_, "below the threshold for " + formatSeconds(clear_for) +
                               " (clears after " +
                               formatSeconds(settings_.degraded_clear_after_ms) + ")"};
}

bool NodeHealth::lockWarn() const {
  if (!last_ok_stats_) {
    return false;
  }
  return last_ok_stats_->lock_waiters >= settings_.lock_waiters_warn ||
         last_ok_stats_->oldest_lock_wait_ms >= settings_.oldest_lock_wait_warn_ms;
}

// Queries through pgpivot stalled while sessions wait on locks: the stall is the locks'.
bool NodeHealth::stalledBehindLocks(uint64_t now_ms) const {
  const DataPathSample* d = dataPath(now_ms);
  return d != nullptr && d->stalled_queries > 0 && last_ok_stats_ &&
         last_ok_stats_->lock_waiters > 0;
}

bool NodeHealth::lockCritical() const {
  if (!last_ok_stats_) {
    return false;
  }
  const ProbeSample& s = *last_ok_stats_;
  return s.oldest_lock_wait_ms >= settings_.oldest_lock_wait_critical_ms ||
         (s.max_connections > 0 &&
          int64_t{s.lock_waiters} * 100 >=
              int64_t{settings_.lock_waiters_critical_percent} * s.max_connections);
}

Evidence NodeHealth::evidence(uint64_t now_ms, bool expected_primary) const {
  Evidence e;
  const auto probe = [](const Track& t) {
    Evidence p{{"result", toString(t.outcome)}, {"latency_ms", t.latency_ms}};
    if (!t.sqlstate.empty()) {
      p.emplace_back("sqlstate", t.sqlstate);
    }
    if (t.consecutive_failures > 0) {
      p.emplace_back("consecutive_failures", t.consecutive_failures);
    }
    return p;
  };
  if (l_.seen) {
    e.emplace_back("L", probe(l_));
  }
  if (c_.seen) {
    e.emplace_back("C", probe(c_));
  }
  if (expected_primary && w_.seen) {
    e.emplace_back("W", probe(w_));
  }
  if (unreach_since_) {
    e.emplace_back("failing_for_ms", now_ms > *unreach_since_ ? now_ms - *unreach_since_ : 0);
  }
  if (last_ok_stats_) {
    const ProbeSample& s = *last_ok_stats_;
    e.emplace_back("in_recovery", s.in_recovery);
    e.emplace_back("timeline", s.timeline);
    e.emplace_back("lsn", formatLsn(s.in_recovery ? s.receive_lsn : s.current_lsn));
    e.emplace_back("lock_waiters", s.lock_waiters);
    e.emplace_back("oldest_lock_wait_ms", s.oldest_lock_wait_ms);
    e.emplace_back("blocked_backends", s.blocked_backends);
    e.emplace_back("active_backends", s.active_backends);
    e.emplace_back("io_waiters", s.io_waiters);
    e.emplace_back("syncrep_waiters", s.syncrep_waiters);
    e.emplace_back("idle_in_tx", s.idle_in_tx_holders);
    e.emplace_back("deadlocks_delta", deadlocks_delta_);
    e.emplace_back("xact_delta", xact_delta_);
    e.emplace_back("stats_age_ms", now_ms > s.at_ms ? now_ms - s.at_ms : 0);
    if (!s.can_read_all_stats) {
      e.emplace_back("warning", "monitor_user lacks pg_read_all_stats: backend counts read 0");
    }
  }
  if (w_misconfigured_) {
    e.emplace_back("W_setup_error", w_.sqlstate + " " + w_.error);
  }
  if (const DataPathSample* d = dataPath(now_ms)) {
    e.emplace_back("data_path", Evidence{{"stalled_queries", d->stalled_queries},
                                         {"oldest_stall_ms", d->oldest_stall_ms},
                                         {"query_stall_timeout_ms", d->stall_timeout_ms},
                                         {"queries_in_flight", d->queries_in_flight},
                                         {"transactions_per_s", d->transactions_per_s},
                                         {"server_errors", d->server_errors}});
  }
  return e;
}

}  // namespace pgpivot::cluster
