// FailoverMachine, the failing-over half: PRIMARY_DOWN (witness, mode, flap guard) and
// the promote path PAUSING -> ELECTING -> (CATCHING_UP) -> FENCING -> PROMOTING ->
// VERIFYING, shared by automatic failovers and planned switchovers.
#include "format.hpp"
#include "pgpivot/cluster/failover.hpp"
#include "pgpivot/cluster/probe_sql.hpp"

namespace pgpivot::cluster {

void FailoverMachine::primaryDown(NodeState cause, std::string reason, Evidence evidence) {
  const std::size_t p = *primary_;
  if (!incident_) {
    Incident inc;
    inc.id = newIncidentId('f');
    inc.started_ms = now_;
    inc.cause = cause;
    inc.reason = reason;
    inc.old_primary = p;
    // The last position pgpivot saw on the old primary: the election measures lag
    // against it (research §4.2).
    if (const ProbeSample* s = nodes_[p].stats(); s != nullptr && !s->in_recovery) {
      inc.primary_lsn = s->current_lsn;
    }
    inc.from_timeline = routing_.min_timeline;
    incident_ = std::move(inc);
  }
  pause(p, false, reason);
  lock_since_.reset();
  enter(ClusterState::kPrimaryDown, std::move(reason), std::move(evidence));
}

void FailoverMachine::decideFailover() {
  Incident& inc = *incident_;
  const std::size_t p = *primary_;
  const NodeHealth& h = nodes_[p];
  const NodeState s = h.verdict().state;
  if (!inc.forced && inc.cause != NodeState::kNotPrimary && h.statsOk() && !isDown(s) &&
      s != NodeState::kNotPrimary && s != NodeState::kCrashRecovery) {
    emit(
        Event{.event = "failover_cancelled", .node = names_[p], .reason = "primary answers again"});
    resume("the primary answers again");
    incident_.reset();
    enter(ClusterState::kSuspect, "primary answers again before any failover step");
    return;
  }
  // Witness: only for a primary pgpivot cannot reach. A write-stuck primary answers,
  // and NOT_PRIMARY is the node's own word.
  const bool needs_witness =
      !inc.forced && !inc.witness_lost &&
      (inc.cause == NodeState::kDownDead || inc.cause == NodeState::kDownUnresponsive);
  if (needs_witness) {
    const Witness w =
        judgeWitness(views(), p, h.lastContactMs(), h.unreachableSinceMs().value_or(inc.started_ms),
                     routing_.system_identifier, settings_);
    if (w.verdict == WitnessVerdict::kUndecided) {
      return;  // ask again with the next standby sample
    }
    emit(Event{.event = "witness",
               .node = w.node ? names_[*w.node] : std::string(),
               .reason = w.reason,
               .evidence = w.evidence,
               .result = std::string(toString(w.verdict))});
    if (w.verdict == WitnessVerdict::kPrimaryAlive) {
      alert(AlertLevel::kCritical,
            "pgpivot cannot reach " + names_[p] + " but " + w.reason + ": not failing over");
      enter(ClusterState::kPartitionedFromPrimary, w.reason, w.evidence);
      return;
    }
    if (w.verdict == WitnessVerdict::kNoWitness &&
        settings_.mode == config::FailoverMode::kPromote) {
      waitOperatorFor(
          "no standby answers, so a dead primary cannot be told from a partition; "
          "not promoting");
      return;
    }
    inc.witness_lost = w.verdict == WitnessVerdict::kPrimaryLost;
  }
  // A primary that turned into a standby was demoted by someone: find who took over
  // rather than promote on top of it.
  if (settings_.mode == config::FailoverMode::kFollow || inc.cause == NodeState::kNotPrimary) {
    enter(ClusterState::kSearchingPrimary, "waiting for the new primary: " + inc.reason);
    return;
  }
  if (settings_.mode == config::FailoverMode::kManual && !inc.forced) {
    waitOperatorFor("failover_mode = manual: " + inc.reason +
                    "; run FAILOVER, SET PRIMARY or RESUME on the admin console");
    return;
  }
  if (!inc.forced) {
    if (const auto why = flapGuard()) {
      waitOperatorFor("flap guard: " + *why);
      return;
    }
  }
  enter(ClusterState::kPausing, "failing over: " + inc.reason);
}

std::optional<std::string> FailoverMachine::flapGuard() const {
  constexpr uint64_t kHour = 3600 * 1000;
  if (!automatic_failovers_ms_.empty() && settings_.failover_cooldown_ms > 0 &&
      now_ - automatic_failovers_ms_.back() < settings_.failover_cooldown_ms) {
    return "the last automatic failover was " +
           formatSeconds(now_ - automatic_failovers_ms_.back()) + " ago (failover_cooldown " +
           formatSeconds(settings_.failover_cooldown_ms) + ")";
  }
  int last_hour = 0;
  for (const uint64_t at : automatic_failovers_ms_) {
    if (now_ - at < kHour) {
      ++last_hour;
    }
  }
  if (last_hour >= settings_.max_failovers_per_hour) {
    return std::to_string(last_hour) + " automatic failovers in the last hour " +
           "(max_failovers_per_hour " + std::to_string(settings_.max_failovers_per_hour) + ")";
  }
  return std::nullopt;
}

void FailoverMachine::pausing() {
  const Incident& inc = *incident_;
  if (pause_acked_ms_) {
    enter(ClusterState::kElecting, "clients paused");
    return;
  }
  // Planned: every worker answers by drain_timeout, with the transactions still open
  // (the switchover then goes on and the fence aborts them). No answer at all after
  // pause_timeout more means a worker cannot be heard: the switchover stops.
  const uint64_t limit = inc.planned ? settings_.drain_timeout_ms + settings_.pause_timeout_ms
                                     : settings_.pause_timeout_ms;
  if (inState() < limit) {
    return;
  }
  if (inc.planned) {
    abortSwitchover("the workers did not answer the drain within " + formatSeconds(limit));
    return;
  }
  enter(ClusterState::kElecting, "pause not confirmed within " + formatSeconds(limit) +
                                     "; going on (the old primary is not routed to)");
}

void FailoverMachine::electing() {
  Incident& inc = *incident_;
  ElectionInput in{.old_primary = inc.old_primary,
                   .timeline = inc.from_timeline,
                   .primary_lsn = inc.primary_lsn,
                   .max_lag = settings_.max_lag_on_failover,
                   .system_identifier = routing_.system_identifier,
                   .target = inc.target,
                   .ignore_lag = inc.ignore_lag};
  if (inc.planned && inc.old_primary) {
    if (const ProbeSample* ps = fresh(*inc.old_primary)) {
      in.primary_lsn = ps->current_lsn;
    }
  }
  const Election e = elect(views(), in);
  if (e.chosen) {
    candidate_ = e.chosen;
    emit(Event{.event = "election", .node = names_[*e.chosen], .evidence = e.evidence()});
    if (inc.planned) {
      enter(ClusterState::kCatchingUp, names_[*e.chosen] + " elected; waiting for it to catch up");
    } else {
      enter(ClusterState::kFencing, names_[*e.chosen] + " elected");
    }
    return;
  }
  if (inState() < settings_.elect_timeout_ms) {
    return;  // a standby may still answer, or catch up on WAL it received
  }
  emit(Event{
      .event = "election", .reason = e.whyNone(), .evidence = e.evidence(), .result = "none"});
  if (inc.planned) {
    abortSwitchover("no eligible standby: " + e.whyNone());
  } else {
    waitOperatorFor("no eligible standby: " + e.whyNone());
  }
}

namespace {
// What a promotion replays in a few milliseconds: the rest of a record cut by a flush
// position, or a replay a little behind what arrived.
constexpr uint64_t kReplaySlackBytes = 1024 * 1024;
}  // namespace

// Switchover only: the candidate must have everything the old primary wrote, first with
// clients paused, then again after the fence (nothing can write any more, and the fence
// flushed the WAL of every commit it acknowledged: sql::kFlushWal).
//  - Before the fence, the target is the old primary's flushed position in a probe sent
//    after the pause: WAL beyond it is not sent before the WAL writer's next round (up to
//    3 x wal_writer_delay away), and the fence's flush brings it. A flush position may
//    cut a record in two, which no standby can replay before the rest comes; so here the
//    candidate only has to have *received* that far, and replayed to within
//    kReplaySlackBytes of it (a standby whose replay is stuck is not worth a fence).
//  - After the fence, the target is the end of the fence's flush message: a record
//    boundary after every acknowledged commit, which the candidate must have *replayed*.
//    (When the fence's answer carries no such position, as with a fence_command: the
//    flushed position of a probe sent after the fence, received; a promotion replays all
//    it received first.)
// The candidate's sample only has to show it got that far, whenever it was taken: its
// positions never go back, so an older sample that is already there proves it. (It once
// had to be newer than the target's sample too; the two nodes' probes run on their own
// schedules, so that cost up to a probe_interval of writes paused: 1 s in 1 of 6
// default-profile switchovers.)
void FailoverMachine::catchingUp() {
  Incident& inc = *incident_;
  const std::size_t p = *inc.old_primary;
  const std::size_t c = *candidate_;
  std::optional<uint64_t> target;
  bool replayed = false;  // must the candidate have replayed up to target, or received?
  if (inc.fence_done && inc.fence_flushed_lsn != 0) {
    target = inc.fence_flushed_lsn;
    replayed = true;
  } else {
    // After the fence, a probe sent in the very millisecond its answer came may have been
    // sent before it (timers run before I/O in a loop pass): only a later one counts.
    const uint64_t after =
        inc.fence_done ? inc.fence_done_ms + 1 : pause_acked_ms_.value_or(state_since_);
    if (const ProbeSample* ps = fresh(p); ps != nullptr && ps->at_ms >= after && !ps->in_recovery) {
      target = ps->flush_lsn;
    } else if (inc.fence_done && !nodes_[p].statsOk() && nodes_[p].stats() != nullptr) {
      target = nodes_[p].stats()->flush_lsn;  // the fence stopped it: its last position
    }
  }
  const ProbeSample* cs = fresh(c);
  const uint64_t reached = cs == nullptr ? 0 : replayed ? cs->replay_lsn : cs->receive_lsn;
  const bool replay_near =
      replayed || (cs != nullptr && target && cs->replay_lsn + kReplaySlackBytes >= *target);
  if (target && cs != nullptr && cs->in_recovery && reached >= *target && replay_near) {
    inc.primary_lsn = *target;
    if (!inc.fence_done) {
      enter(ClusterState::kFencing, names_[c] + " received up to " + formatLsn(*target));
    } else {
      enter(ClusterState::kPromoting,
            names_[c] + " has everything the old primary wrote (" + formatLsn(*target) + ")");
    }
    return;
  }
  if (inState() >= settings_.catchup_timeout_ms) {
    std::string lag = "no recent probe";
    if (target && cs != nullptr) {
      lag = "lag " + std::to_string(*target > reached ? *target - reached : 0) + " bytes";
    }
    abortSwitchover(names_[c] + " did not catch up within " +
                    formatSeconds(settings_.catchup_timeout_ms) + " (" + lag + ")");
  }
}

void FailoverMachine::fencing() {
  Incident& inc = *incident_;
  if (!inc.old_primary) {
    enter(ClusterState::kPromoting, "no old primary to fence");
    return;
  }
  const std::size_t p = *inc.old_primary;
  if (!entered_) {
    entered_ = true;
    routing_.fence(names_[p]);  // persisted before the fence runs: never routed again
    persist();
    inc.fence_persist_id = out_.actions.back().id;
    Action& a = addAction(ActionKind::kFence, p);
    a.planned = inc.planned;
    a.reason = inc.reason;
    a.sql = sql::fenceSql(inc.planned);
    waitFor(a);
    inc.fence_sent = true;
    return;
  }
  if (pending_.done && pending_.status == ActionStatus::kOk) {
    if (inc.planned) {
      inc.fence_done = true;
      inc.fence_done_ms = now_;
      inc.fence_flushed_lsn = pending_.flushed_lsn;
      enter(ClusterState::kCatchingUp, "old primary fenced; final catch-up");
    } else {
      enter(ClusterState::kPromoting, names_[p] + " fenced");
    }
    return;
  }
  const bool lost = inc.cause == NodeState::kDownDead || inc.cause == NodeState::kDownUnresponsive;
  // Only once the fence is known to be persisted (a failed write stops everything).
  const bool fence_persisted = outstanding_.count(inc.fence_persist_id) == 0;
  if (!pending_.done && !inc.planned && lost && (inc.witness_lost || inc.forced) &&
      fence_persisted && !settings_.has_fence_command && unreachable(p)) {
    // The SQL fence needs the old primary to answer, and it has answered nothing for
    // unresponsive_after (or refused): waiting fence_timeout for it would only add that
    // much to the failover (a frozen primary took 10.3 s instead of 5.3 s). The fence
    // keeps running and its result is logged when it comes; pgpivot routes nothing to
    // the node, which is fenced and persisted. A fence_command (STONITH) is waited for.
    enter(ClusterState::kPromoting, names_[p] +
                                        " does not answer; its SQL fence runs in the "
                                        "background and a standby lost it too");
    return;
  }
  if (!pending_.done && inState() < settings_.fence_timeout_ms) {
    return;
  }
  const std::string why = pending_.done ? pending_.error : "no answer within fence_timeout";
  if (inc.planned) {
    abortSwitchover("could not fence " + names_[p] + ": " + why);
    return;
  }
  if (inc.witness_lost || inc.forced) {
    // Unreachable is the usual case after kill -9: pgpivot routes nothing to it, and a
    // standby confirmed it is gone (research §4.3 1).
    enter(ClusterState::kPromoting, "fence not confirmed (" + why +
                                        "); a standby lost the primary too and pgpivot routes "
                                        "nothing to it");
    return;
  }
  waitOperatorFor("could not fence " + names_[p] + ", which may still be alive: " + why);
}

// The old primary answers nothing at all now: every probe since the last contact timed
// out or was refused (not a crash recovery, which answers 57P03). A statement sent to it
// cannot run until it comes back.
bool FailoverMachine::unreachable(std::size_t node) const {
  const NodeHealth& h = nodes_[node];
  return !h.statsOk() && h.unreachableSinceMs().has_value() &&
         h.verdict().state != NodeState::kCrashRecovery;
}

void FailoverMachine::promoting() {
  Incident& inc = *incident_;
  const std::size_t c = *candidate_;
  if (!entered_) {
    entered_ = true;
    // Still eligible right before the point of no return?
    const Election e = elect(views(), ElectionInput{.old_primary = inc.old_primary,
                                                    .timeline = inc.from_timeline,
                                                    .primary_lsn = inc.primary_lsn,
                                                    .max_lag = settings_.max_lag_on_failover,
                                                    .system_identifier = routing_.system_identifier,
                                                    .target = c,
                                                    .ignore_lag = inc.ignore_lag});
    if (!e.chosen) {
      const std::string why = names_[c] + " is no longer eligible: " + e.whyNone();
      if (inc.planned) {
        abortSwitchover(why);
      } else {
        waitOperatorFor(why);
      }
      return;
    }
    for (const Candidate& cand : e.candidates) {
      if (cand.node == c) {
        inc.promoted_at_lsn = cand.receive_lsn;  // exact once it is verified (routeTo)
        inc.promoted_at_source = "last_standby_lsn_seen";
      }
    }
    if (!inc.planned && !inc.forced) {
      automatic_failovers_ms_.push_back(now_);
    }
    Action& a = addAction(ActionKind::kPromote, c);
    a.sql = std::string(sql::kPromote);
    a.reason = inc.reason;
    waitFor(a);
    return;
  }
  if (pending_.done) {
    if (pending_.status == ActionStatus::kOk) {
      inc.promote_ms = now_;
      inc.promote_duration_ms = inState();
      enter(ClusterState::kVerifying, names_[c] + " left recovery after pg_promote()");
    } else {
      // pg_promote() refused or returned false, or recovery had not ended after 60 s.
      // Single flight: the candidate may still finish promoting; a second promotion could
      // make two primaries (research §7.6 2).
      waitOperatorFor("pg_promote() on " + names_[c] + " failed (" + pending_.error +
                      "); its outcome is unknown, so no other node is promoted");
    }
    return;
  }
  if (inState() >= settings_.promote_timeout_ms) {
    waitOperatorFor("pg_promote() on " + names_[c] + " did not answer within " +
                    formatSeconds(settings_.promote_timeout_ms) + "; outcome unknown");
  }
}

// §4.3 3: writable, on a newer timeline, heartbeat written; then CHECKPOINT so pg_rewind
// of the old primary reads the new timeline (§4.3 4).
void FailoverMachine::verifying() {
  const Incident& inc = *incident_;
  const std::size_t c = *candidate_;
  const auto vs = views();
  const ProbeSample* s = vs[c].stats;
  std::string failed;
  if (s == nullptr || s->at_ms < state_since_) {
    failed = "no probe since the promotion";
  } else if (s->in_recovery) {
    failed = "still in recovery";
  } else if (s->timeline <= inc.from_timeline) {
    failed = "timeline " + std::to_string(s->timeline) + " is not newer than " +
             std::to_string(inc.from_timeline);
  } else if (s->default_read_only) {
    failed = "default_transaction_read_only is on";
  } else if (const PrimarySearch found = findPrimary(vs, routing_);
             !found.primary || *found.primary != c) {
    failed = found.reason.empty() ? "another node is the primary" : found.reason;
  } else if (settings_.use_write_probe && !nodes_[c].writeMisconfigured()) {
    const auto w = nodes_[c].lastWriteOkMs();
    if (!w || *w < state_since_) {
      failed = "no heartbeat write since the promotion";
    }
  }
  if (failed.empty()) {
    emit(Event{
        .event = "verified",
        .node = names_[c],
        .role = "primary",
        .evidence = Evidence{{"in_recovery", false},
                             {"timeline", s->timeline},
                             {"system_id", s->system_identifier},
                             {"heartbeat", nodes_[c].writeMisconfigured() ? "skipped" : "ok"}}});
    routeTo(c, *s);
    addAction(ActionKind::kCheckpoint, c).sql = std::string(sql::kCheckpoint);
    return;
  }
  if (inState() >= settings_.verify_timeout_ms) {
    waitOperatorFor("promoted " + names_[c] + " did not verify: " + failed);
  }
}

void FailoverMachine::abortSwitchover(std::string reason) {
  const Incident& inc = *incident_;
  if (inc.fence_sent && inc.old_primary) {
    const std::size_t p = *inc.old_primary;
    routing_.unfence(names_[p]);
    persist();
    Action& a = addAction(ActionKind::kUnfence, p);
    a.sql = std::string(sql::kUnfenceReadOnly) + "; " + std::string(sql::kReloadConf);
  }
  candidate_.reset();
  resume("switchover aborted");
  completeIncident("aborted", reason);
  enter(ClusterState::kSteady, "switchover aborted: " + reason);
}

}  // namespace pgpivot::cluster
