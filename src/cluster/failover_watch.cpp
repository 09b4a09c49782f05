// FailoverMachine, the routing half: watching the routed primary (STEADY, SUSPECT,
// DEGRADED, CRASH_RECOVERY), the other nodes (old primaries, split brain, re-admission),
// lock pile-ups, and finding and validating a primary (DISCOVERING, SEARCHING_PRIMARY,
// VALIDATING, RESUMING), plus the states that wait for something outside
// (PARTITIONED_FROM_PRIMARY, WAIT_OPERATOR).
#include <algorithm>
#include <map>

#include "format.hpp"
#include "pgpivot/cluster/failover.hpp"
#include "pgpivot/cluster/probe_sql.hpp"

namespace pgpivot::cluster {

// ---- the routed primary ------------------------------------------------------------------

void FailoverMachine::watchPrimary() {
  if (!primary_) {
    enter(ClusterState::kDiscovering, "no primary to watch", {}, true);
    return;
  }
  const std::size_t p = *primary_;
  if (scanOtherNodes()) {
    return;
  }
  const NodeHealth& h = nodes_[p];
  const NodeVerdict& v = h.verdict();
  if (v.state == NodeState::kNotPrimary || isDown(v.state)) {
    primaryDown(v.state, std::string(toString(v.state)) + ": " + v.reason, v.evidence);
    return;
  }
  if (v.state == NodeState::kCrashRecovery) {
    // PostgreSQL restarts every backend after one crashes and is back in ~0.3 s
    // (research fault 7): hold new transactions instead of failing them with 57P03.
    if (!paused_) {
      pause(p, false, "primary in crash recovery");
      crash_paused_ = true;
    }
    enter(ClusterState::kCrashRecovery, v.reason, v.evidence);
    return;
  }
  if (crash_paused_ && h.statsOk()) {
    resume("the primary answers again after crash recovery");
  }
  if (v.state == NodeState::kSuspect || v.state == NodeState::kUnknown) {
    std::string reason;
    Evidence evidence;
    if (fastPathDead(reason, evidence)) {
      primaryDown(NodeState::kDownDead, std::move(reason), std::move(evidence));
      return;
    }
    enter(ClusterState::kSuspect, v.reason, v.evidence);
  } else if (isDegraded(v.state)) {
    enter(ClusterState::kDegraded, std::string(toString(v.state)) + ": " + v.reason, v.evidence);
  } else {
    enter(ClusterState::kSteady, "primary healthy", v.evidence);
  }
  lockPolicy(v);
  readmitFenced();
}

// A refused postmaster that a standby's WAL receiver lost as well is dead: no timer to
// wait out (issue 4's kill -9 target). A restart of the primary looks the same; that is
// the price of a 1 s failover, and why manual mode exists.
bool FailoverMachine::fastPathDead(std::string& reason, Evidence& evidence) {
  const std::size_t p = *primary_;
  const NodeHealth& h = nodes_[p];
  const NodeVerdict& v = h.verdict();
  if (!v.connect_refused || h.statsOk() || !h.unreachableSinceMs()) {
    return false;
  }
  const auto vs = views();
  const Witness w = judgeWitness(vs, p, h.lastContactMs(), *h.unreachableSinceMs(),
                                 routing_.system_identifier, settings_);
  if (w.verdict != WitnessVerdict::kPrimaryLost) {
    return false;
  }
  reason = "DOWN:DEAD: connections refused (" + v.reason + ") and " + w.reason;
  evidence = v.evidence;
  evidence.emplace_back("witness", w.evidence);
  return true;
}

// Other nodes while routing: an old primary back on an older timeline is fenced (never
// routed), a writable node on the primary's timeline or newer at the same time is a
// split brain, and a standby on a newer timeline than the primary is a warning (it
// follows a primary pgpivot cannot see).
bool FailoverMachine::scanOtherNodes() {
  const std::size_t p = *primary_;
  const auto vs = views();
  const ProbeSample* ps = vs[p].stats;
  const uint32_t ptl = ps != nullptr ? ps->timeline : routing_.min_timeline;
  for (const NodeView& n : vs) {
    if (n.index == p || n.stats == nullptr) {
      continue;
    }
    const ProbeSample& s = *n.stats;
    if (!routing_.system_identifier.empty() && s.system_identifier != routing_.system_identifier) {
      continue;  // not this cluster: discovery warned; never a candidate
    }
    if (s.in_recovery) {
      old_primary_refenced_[n.index] = false;
      if (s.timeline > ptl && !hidden_primary_alerted_[n.index]) {
        hidden_primary_alerted_[n.index] = true;
        alert(AlertLevel::kWarning, std::string(n.name) + " follows timeline " +
                                        std::to_string(s.timeline) + ", newer than the primary's " +
                                        std::to_string(ptl) + ": is another primary running?");
      } else if (s.timeline <= ptl) {
        hidden_primary_alerted_[n.index] = false;
      }
      continue;
    }
    if (n.fenced || s.timeline < ptl || s.timeline < routing_.min_timeline) {
      fenceOldPrimary(n.index, std::string(n.name) + " is writable on timeline " +
                                   std::to_string(s.timeline) + ", the primary is on " +
                                   std::to_string(ptl));
      continue;
    }
    if (ps != nullptr && !ps->in_recovery) {
      const bool overlap = n.writable_since.value_or(s.at_ms) <= ps->at_ms &&
                           vs[p].writable_since.value_or(ps->at_ms) <= s.at_ms;
      if (overlap) {
        enterSplitBrain({p, n.index}, std::string(names_[p]) + " and " + std::string(n.name) +
                                          " are both writable (timelines " + std::to_string(ptl) +
                                          " and " + std::to_string(s.timeline) + ")");
        return true;
      }
    }
  }
  return false;
}

void FailoverMachine::fenceOldPrimary(std::size_t node, const std::string& reason) {
  const std::string& name = names_[node];
  const bool known = routing_.isFenced(name);
  if (known && old_primary_refenced_[node]) {
    return;
  }
  old_primary_refenced_[node] = true;
  if (!known) {
    routing_.fence(name);
    persist();
  }
  // Fenced again when it comes back: it was probably unreachable when first fenced, and
  // it accepts writes from anyone who connects to it directly (research fault 14).
  Action& a = addAction(ActionKind::kFence, node);
  a.reason = "old primary: " + reason;
  a.sql = sql::fenceSql(false);
  emit(Event{.event = "old_primary", .node = name, .role = "primary", .reason = reason});
  alert(AlertLevel::kCritical,
        "old primary " + name + " is writable again: " + reason +
            "; fenced, never routed to; rewind it (pg_rewind) and restart it as a standby");
}

void FailoverMachine::enterSplitBrain(const std::vector<std::size_t>& nodes,
                                      const std::string& reason) {
  writes_refused_ = true;
  routed_ = false;
  std::vector<Evidence> list;
  for (const std::size_t i : nodes) {
    const ProbeSample* s = nodes_[i].stats();
    Evidence e{{"node", names_[i]}};
    if (s != nullptr) {
      e.emplace_back("timeline", s->timeline);
      e.emplace_back("lsn", formatLsn(s->current_lsn));
    }
    list.push_back(std::move(e));
  }
  Action& a = addAction(ActionKind::kRefuseWrites);
  a.reason = "pgpivot: split brain in this cluster (" + reason + "); writes are refused";
  emit(Event{.event = "split_brain", .reason = reason, .evidence = Evidence{{"writable", list}}});
  alert(AlertLevel::kCritical,
        "split brain: " + reason + "; writes refused until SET PRIMARY or RESUME");
  enter(ClusterState::kSplitBrain, reason, Evidence{{"writable", std::move(list)}});
}

// Lock pile-ups are reported, with the blocker tree, and acted on per
// lock_pileup_action after lock_pileup_grace; they never start a failover.
void FailoverMachine::lockPolicy(const NodeVerdict& v) {
  const std::size_t p = *primary_;
  if (v.state == NodeState::kDegradedSyncRep && !syncrep_alerted_) {
    syncrep_alerted_ = true;
    alert(AlertLevel::kCritical, "commits on " + names_[p] + " wait for a synchronous standby (" +
                                     v.reason +
                                     "): check synchronous_standby_names; not failing over");
  } else if (v.state != NodeState::kDegradedSyncRep) {
    syncrep_alerted_ = false;
  }
  if (v.state != NodeState::kDegradedLocks) {
    if (lock_since_) {
      emit(Event{
          .event = "lock_pileup_cleared", .node = names_[p], .duration_ms = now_ - *lock_since_});
      lock_since_.reset();
    }
    return;
  }
  const auto report = [&] {
    last_blocker_report_ms_ = now_;
    addAction(ActionKind::kReportBlockers, p).sql = std::string(sql::kBlockerTree);
  };
  if (!lock_since_) {
    lock_since_ = now_;
    blocker_acted_ = false;
    emit(Event{
        .event = "lock_pileup", .node = names_[p], .reason = v.reason, .evidence = v.evidence});
    alert(v.lock_critical ? AlertLevel::kCritical : AlertLevel::kWarning,
          "lock pile-up on " + names_[p] + ": " + v.reason + "; not failing over");
    report();
  } else if (now_ - last_blocker_report_ms_ >= settings_.blocker_report_interval_ms) {
    report();
  }
  if (settings_.lock_pileup_action == config::LockPileupAction::kAlert || blocker_acted_ ||
      now_ - *lock_since_ < settings_.lock_pileup_grace_ms) {
    return;
  }
  blocker_acted_ = true;
  const bool terminate =
      settings_.lock_pileup_action == config::LockPileupAction::kTerminateBlocker;
  Action& a = addAction(terminate ? ActionKind::kTerminateBlocker : ActionKind::kCancelBlocker, p);
  a.sql = std::string(terminate ? sql::kTerminateRootBlockers : sql::kCancelRootBlockers);
  a.reason = "lock pile-up for " + formatSeconds(now_ - *lock_since_);
  emit(Event{.event = "lock_pileup_action",
             .node = names_[p],
             .reason = a.reason,
             .result = std::string(toString(settings_.lock_pileup_action))});
}

// A fenced node comes back only as a standby streaming on the newest timeline, after
// readmit_after of that (research §7.4). It is then a standby like any other.
void FailoverMachine::readmitFenced() {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    // A node an operator fenced (FENCE) waits for UNFENCE.
    if (!routing_.isFenced(names_[i]) || routing_.isHeld(names_[i]) ||
        (primary_ && *primary_ == i)) {
      readmit_since_[i].reset();
      continue;
    }
    const ProbeSample* s = fresh(i);
    const bool ok =
        s != nullptr && s->in_recovery && s->wal_receiver_streaming &&
        s->timeline == routing_.min_timeline &&
        (routing_.system_identifier.empty() || s->system_identifier == routing_.system_identifier);
    if (!ok) {
      readmit_since_[i].reset();
      continue;
    }
    if (!readmit_since_[i]) {
      readmit_since_[i] = now_;
    }
    if (now_ - *readmit_since_[i] >= settings_.readmit_after_ms) {
      routing_.unfence(names_[i]);
      persist();
      emit(Event{.event = "readmitted",
                 .node = names_[i],
                 .role = "standby",
                 .reason = "streaming on timeline " + std::to_string(s->timeline) + " for " +
                           formatSeconds(now_ - *readmit_since_[i])});
      readmit_since_[i].reset();
    }
  }
}

// ---- finding a primary -------------------------------------------------------------------

void FailoverMachine::discover() {
  const bool all_heard =
      std::all_of(nodes_.begin(), nodes_.end(), [](const NodeHealth& h) { return h.heard(); });
  if (!all_heard && inState() < settings_.discover_timeout_ms) {
    return;
  }
  if (routing_.system_identifier.empty()) {
    // First start: the cluster is what most nodes say it is; a node of another cluster
    // (a wrong address in `nodes`) is then never a candidate.
    std::map<std::string, int> votes;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (const ProbeSample* s = fresh(i)) {
        ++votes[s->system_identifier];
      }
    }
    if (votes.size() > 1) {
      alert(AlertLevel::kCritical, "the nodes belong to " + std::to_string(votes.size()) +
                                       " different clusters (system identifiers differ)");
    }
    if (!votes.empty()) {
      routing_.system_identifier =
          std::max_element(votes.begin(), votes.end(), [](const auto& a, const auto& b) {
            return a.second < b.second;
          })->first;
    }
  }
  const auto vs = views();
  const bool any_ours = std::any_of(vs.begin(), vs.end(), [&](const NodeView& n) {
    return n.stats != nullptr && n.stats->system_identifier == routing_.system_identifier;
  });
  const bool any_answer =
      std::any_of(vs.begin(), vs.end(), [](const NodeView& n) { return n.stats != nullptr; });
  if (any_answer && !any_ours) {
    alert(AlertLevel::kCritical, "no node has the cluster's system identifier " +
                                     routing_.system_identifier +
                                     " (from the state file): was the cluster rebuilt? Remove "
                                     "the state file to start over");
  }
  const PrimarySearch found = findPrimary(vs, routing_);
  for (const std::size_t i : found.old_primaries) {
    fenceOldPrimary(i, "found writable on an old timeline at discovery");
  }
  if (!found.split_brain.empty()) {
    enterSplitBrain(found.split_brain, found.reason);
    return;
  }
  if (found.primary) {
    candidate_ = found.primary;
    enter(ClusterState::kValidating, "discovered " + names_[*found.primary]);
    return;
  }
  enter(ClusterState::kSearchingPrimary, "no primary at discovery: " + found.reason);
}

void FailoverMachine::searching() {
  const auto vs = views();
  const PrimarySearch found = findPrimary(vs, routing_);
  for (const std::size_t i : found.old_primaries) {
    fenceOldPrimary(i, "writable on an old timeline");
  }
  if (!found.split_brain.empty()) {
    enterSplitBrain(found.split_brain, found.reason);
    return;
  }
  if (found.primary) {
    candidate_ = found.primary;
    enter(ClusterState::kValidating, "found " + names_[*found.primary]);
    return;
  }
  if (now_ - search_started_ms_ >= settings_.search_primary_timeout_ms) {
    waitOperatorFor("no new primary within search_primary_timeout (" +
                    formatSeconds(settings_.search_primary_timeout_ms) + "): " + found.reason);
  }
}

// Research §3.3 on a fresh probe: findPrimary's rules, not read-only, and a heartbeat
// write that succeeded after validation started.
void FailoverMachine::validating() {
  const std::size_t x = *candidate_;
  const auto vs = views();
  const PrimarySearch found = findPrimary(vs, routing_);
  if (!found.split_brain.empty()) {
    enterSplitBrain(found.split_brain, found.reason);
    return;
  }
  const ProbeSample* s = vs[x].stats;
  std::string failed;
  if (!found.primary || *found.primary != x) {
    failed = found.primary ? names_[*found.primary] + " is the primary now" : found.reason;
  } else if (s->at_ms < state_since_) {
    failed = "no probe since validation started";
  } else if (s->default_read_only) {
    failed = "default_transaction_read_only is on (fenced?)";
  } else if (settings_.use_write_probe && !nodes_[x].writeMisconfigured()) {
    const auto w = nodes_[x].lastWriteOkMs();
    if (!w || *w < state_since_) {
      failed = "no heartbeat write since validation started";
    }
  }
  if (failed.empty()) {
    routeTo(x, *s);
    return;
  }
  if (inState() >= settings_.validate_timeout_ms) {
    candidate_.reset();
    enter(ClusterState::kSearchingPrimary, "validation of " + names_[x] + " failed: " + failed);
  }
}

void FailoverMachine::routeTo(std::size_t x, const ProbeSample& s) {
  // A new epoch whenever writes move (or move back after a failover): server
  // connections of the old epoch are never reused.
  if (incident_ || routing_.epoch == 0 || routing_.expected_primary != names_[x]) {
    ++routing_.epoch;
  }
  if (routing_.system_identifier.empty()) {
    routing_.system_identifier = s.system_identifier;
  }
  notePromotedAt(x, s);
  routing_.expected_primary = names_[x];
  routing_.min_timeline = std::max(routing_.min_timeline, s.timeline);
  routing_.unfence(names_[x]);
  persist();
  primary_ = x;
  candidate_.reset();
  writes_refused_ = false;
  routed_ = true;
  lock_since_.reset();
  syncrep_alerted_ = false;
  std::fill(hidden_primary_alerted_.begin(), hidden_primary_alerted_.end(), false);
  addAction(ActionKind::kRoute, x);
  Evidence e{{"timeline", s.timeline},
             {"lsn", formatLsn(s.current_lsn)},
             {"system_identifier", s.system_identifier}};
  if (settings_.use_write_probe && nodes_[x].writeMisconfigured()) {
    e.emplace_back("heartbeat", "not configured: create pgpivot_heartbeat (see probe_sql.hpp)");
  }
  emit(Event{.event = "route", .node = names_[x], .role = "primary", .evidence = std::move(e)});
  if (paused_) {
    resume("routing to " + names_[x]);
    enter(ClusterState::kResuming, "routing to " + names_[x]);
  } else {
    enter(ClusterState::kSteady, "routing to " + names_[x]);
  }
}

void FailoverMachine::resuming() {
  if (!resume_acked_ && inState() < settings_.failover_pause_timeout_ms) {
    return;
  }
  completeIncident("ok", resume_acked_ ? "clients resumed" : "resume not confirmed in time");
  enter(ClusterState::kSteady, "clients resumed on " + names_[*primary_]);
}

void FailoverMachine::completeIncident(std::string_view result, std::string reason) {
  if (!incident_) {
    return;
  }
  const Incident& inc = *incident_;
  Evidence e;
  if (inc.old_primary) {
    e.emplace_back("old_primary", names_[*inc.old_primary]);
  }
  if (primary_) {
    e.emplace_back("primary", names_[*primary_]);
  }
  e.emplace_back("timeline", routing_.min_timeline);
  if (inc.promote_ms != 0) {
    e.emplace_back("promote_ms", inc.promote_duration_ms);
  }
  e.emplace_back("paused_ms", (paused_ ? now_ : std::max(pause_ended_ms_, pause_started_ms_)) -
                                  pause_started_ms_);
  possiblyLost(e);
  std::string name = "failover_complete";
  if (inc.planned) {
    name = inc.drill ? "drill_complete" : "switchover_complete";
  }
  emit(Event{.event = std::move(name),
             .reason = std::move(reason),
             .evidence = std::move(e),
             .duration_ms = now_ - inc.started_ms,
             .result = std::string(result)});
  incident_.reset();
}

// Writes moved from the old primary to `x`: where x's timeline forked off the old one.
// Follow mode learns it here only (an external manager promoted x); promote mode knew the
// candidate's last received position at pg_promote() and now learns the exact point.
void FailoverMachine::notePromotedAt(std::size_t x, const ProbeSample& s) {
  if (!incident_ || !incident_->old_primary || *incident_->old_primary == x) {
    return;
  }
  Incident& inc = *incident_;
  // A promoted node's pg_last_wal_replay_lsn() stays where its recovery ended: the switch
  // point of its new timeline (research §4.5: what the old primary wrote past it is gone
  // once it is rewound). After a restart of the new primary it is NULL (then the last
  // position seen while x was a standby bounds the switch point from below).
  if (s.recovery_end_lsn != 0) {
    inc.promoted_at_lsn = s.recovery_end_lsn;
    inc.promoted_at_source = "pg_last_wal_replay_lsn";
  } else if (standby_lsn_seen_[x] != 0) {
    inc.promoted_at_lsn = std::max(inc.promoted_at_lsn, standby_lsn_seen_[x]);
    inc.promoted_at_source = "last_standby_lsn_seen";
  }
  // A switchover's old primary was fenced and caught up to (catchingUp): its later WAL
  // (its own checkpoints) is no client's write. After a failure, every position it was
  // seen writing counts, probes after the one that declared it down included.
  if (!inc.planned) {
    inc.primary_lsn = std::max(inc.primary_lsn, primary_lsn_seen_[*inc.old_primary]);
  }
  // Whether its commits waited for a standby (synchronous_standby_names): then none of
  // them was acknowledged before a standby had it.
  if (const ProbeSample* old = nodes_[*inc.old_primary].stats();
      old != nullptr && !old->in_recovery) {
    inc.old_sync_standbys = old->sync_standbys;
  }
}

// Asynchronous replication: the old primary's WAL past the new timeline's switch point
// is lost once it is rewound (acknowledged commits included); with a synchronous standby
// promoted there is none. At least this much: the old primary may have written more after
// its last probe. Event-log fields after research §7.7 (possible_lost_commits_lsn_range).
void FailoverMachine::possiblyLost(Evidence& e) const {
  const Incident& inc = *incident_;
  if (!inc.old_primary || !primary_ || *primary_ == *inc.old_primary) {
    return;  // writes did not move: nothing forked
  }
  const std::string from = inc.promoted_at_lsn != 0 ? formatLsn(inc.promoted_at_lsn) : "unknown";
  const std::string to = inc.primary_lsn != 0 ? formatLsn(inc.primary_lsn) : "unknown";
  e.emplace_back("possible_lost_commits_lsn_range", std::vector<std::string>{from, to});
  e.emplace_back("old_primary_last_lsn", to);
  e.emplace_back("promoted_at_lsn", from);
  if (!inc.promoted_at_source.empty()) {
    e.emplace_back("promoted_at_source", inc.promoted_at_source);
  }
  if (inc.old_sync_standbys >= 0) {
    e.emplace_back("old_primary_sync_standbys", inc.old_sync_standbys);
  }
  std::string text;
  if (inc.promoted_at_lsn == 0 || inc.primary_lsn == 0) {
    text = "unknown (promoted at " + from + ", old primary last seen at " + to + ")";
  } else if (inc.primary_lsn > inc.promoted_at_lsn) {
    const uint64_t bytes = inc.primary_lsn - inc.promoted_at_lsn;
    e.emplace_back("possibly_lost_bytes_at_least", bytes);
    text = "LSN " + from + " .. " + to + " (" + std::to_string(bytes) + " bytes)";
  } else {
    e.emplace_back("possibly_lost_bytes_at_least", 0);
    text = "none (promoted at " + from + ", old primary last seen at " + to + ")";
  }
  e.emplace_back("possibly_lost", std::move(text));
}

// ---- waiting for the world ---------------------------------------------------------------

void FailoverMachine::partitioned() {
  const std::size_t p = *primary_;
  const NodeHealth& h = nodes_[p];
  const NodeState s = h.verdict().state;
  if (h.statsOk() && !isDown(s) && s != NodeState::kNotPrimary && s != NodeState::kCrashRecovery) {
    emit(Event{
        .event = "failover_cancelled", .node = names_[p], .reason = "primary reachable again"});
    resume("the primary is reachable again");
    incident_.reset();
    enter(ClusterState::kSuspect, "primary reachable again");
    return;
  }
  const Witness w =
      judgeWitness(views(), p, h.lastContactMs(), h.unreachableSinceMs().value_or(state_since_),
                   routing_.system_identifier, settings_);
  if (w.verdict == WitnessVerdict::kPrimaryLost) {
    emit(Event{.event = "witness",
               .node = w.node ? names_[*w.node] : std::string(),
               .reason = w.reason,
               .evidence = w.evidence,
               .result = std::string(toString(w.verdict))});
    incident_->witness_lost = true;
    enter(ClusterState::kPrimaryDown, "the witness lost the primary too: " + w.reason);
    return;
  }
  if (settings_.mode == config::FailoverMode::kFollow) {
    const PrimarySearch found = findPrimary(views(), routing_);
    if (found.primary && *found.primary != p) {
      candidate_ = found.primary;
      enter(ClusterState::kValidating, "a new primary appeared: " + names_[*found.primary]);
    }
  }
}

void FailoverMachine::waitOperatorFor(std::string reason) {
  if (!paused_) {
    pause(primary_, false, reason);
  }
  alert(AlertLevel::kCritical, "operator needed: " + reason);
  enter(ClusterState::kWaitOperator, std::move(reason), {}, state_ == ClusterState::kWaitOperator);
}

void FailoverMachine::waitOperator() {
  if (paused_ && !pause_timeout_reported_ &&
      now_ - pause_started_ms_ >= settings_.failover_pause_timeout_ms) {
    pause_timeout_reported_ = true;
    emit(Event{.event = "pause_timeout",
               .reason = "clients waited failover_pause_timeout; they now get 57P03"});
  }
  acceptReturningPrimary();
}

// WAIT_OPERATOR resolves itself when it safely can: the expected primary (not fenced)
// answers again, or (follow and promote mode) a node is writable on a newer timeline:
// the external manager's late primary, or ours after a promotion with an unknown outcome.
bool FailoverMachine::acceptReturningPrimary() {
  const PrimarySearch found = findPrimary(views(), routing_);
  if (!found.primary) {
    return false;
  }
  const std::size_t x = *found.primary;
  const bool expected = names_[x] == routing_.expected_primary;
  if (expected) {
    const NodeState s = nodes_[x].verdict().state;
    if (!nodes_[x].statsOk() || isDown(s) || s == NodeState::kNotPrimary ||
        s == NodeState::kCrashRecovery) {
      return false;
    }
  } else if (settings_.mode == config::FailoverMode::kManual) {
    return false;  // manual: a new primary is the operator's call (SET PRIMARY)
  }
  candidate_ = x;
  enter(ClusterState::kValidating,
        names_[x] + (expected ? " answers again" : " is the new primary"));
  return true;
}

}  // namespace pgpivot::cluster
