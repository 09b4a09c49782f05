// FailoverMachine, operator commands from the admin console: SWITCHOVER and DRILL (planned),
// FAILOVER (now, without witness or flap guard), SET PRIMARY (the operator names the
// primary; ends a split brain), RESUME (rediscover), and FENCE / UNFENCE of one node by
// hand. Each is refused with a reason when the cluster's state makes it unsafe or
// meaningless.
//
// SWITCHOVER and DRILL run their pre-checks before pausing anyone (mode, state, a fresh
// probe of the primary, an eligible standby within max_lag_on_failover, streaming from
// the primary); a failed check refuses the command with that check's reason and changes
// nothing. Each check is in AdminReply::checks and, once accepted, in the event log.
//
// FENCE node: the fence is persisted (kPersistState) before anything acts on it, and held:
// the node is not re-admitted on its own (readmitFenced), only by UNFENCE.
//  - a standby (any node but the routed primary): taken out of elections and routing at
//    once; pgpivot's and other clients' sessions on it are closed (kFence). Refused while
//    it is the candidate of a running failover or switchover.
//  - the routed primary: only when nothing would fail over around the operator's back,
//    that is with failover_mode = manual, or while clients are already paused and the
//    machine waits for an operator (WAIT_OPERATOR, SPLIT_BRAIN, PARTITIONED). Clients are
//    paused, its transactions aborted, the node made read-only, and the cluster waits for
//    FAILOVER / SET_PRIMARY / UNFENCE. In follow and promote mode a hand fence of a healthy
//    primary would turn into an automatic failover decided outside its own checks: use
//    SWITCHOVER (planned) or FAILOVER (forced) there.
// UNFENCE node: refused while the node is writable and not the routed primary (a fenced
// former primary is routed again only once it streams as a standby on the current
// timeline, i.e. after pg_rewind); refused when no recent probe tells its role. A standby
// is unfenced at once; a primary that was fenced by hand (manual mode) is rediscovered:
// validated, then routed to again.
#include "format.hpp"
#include "pgpivot/cluster/failover.hpp"
#include "pgpivot/cluster/probe_sql.hpp"

namespace pgpivot::cluster {
namespace {

AdminReply refuse(std::string why) {
  return AdminReply{false, std::move(why)};
}

}  // namespace

Output FailoverMachine::onAdmin(const AdminCommand& command, uint64_t now_ms) {
  begin(now_ms);
  AdminReply reply;
  if (command.target && *command.target >= names_.size()) {
    reply = refuse("no such node");
  } else {
    switch (command.kind) {
      case AdminKind::kSwitchover:
      case AdminKind::kDrill:
        reply = switchover(command);
        break;
      case AdminKind::kFailover:
        reply = failover(command);
        break;
      case AdminKind::kSetPrimary:
        reply = setPrimary(command);
        break;
      case AdminKind::kResume:
        reply = resumeCommand();
        break;
      case AdminKind::kFence:
        reply = fenceCommand(command);
        break;
      case AdminKind::kUnfence:
        reply = unfenceCommand(command);
        break;
    }
  }
  const bool known = command.target && *command.target < names_.size();
  Event e{.event = "admin",
          .node = known ? names_[*command.target] : std::string(),
          .reason = std::string(toString(command.kind)) + ": " + reply.message,
          .result = reply.accepted ? "accepted" : "refused"};
  emit(std::move(e));
  out_.admin = reply;
  step();
  return finish();
}

AdminReply FailoverMachine::switchover(const AdminCommand& command) {
  const bool drill = command.kind == AdminKind::kDrill;
  std::vector<AdminCheck> checks;
  const auto refused = [&](std::string name, std::string why) {
    checks.push_back(AdminCheck{.name = std::move(name), .passed = false, .detail = why});
    AdminReply r = refuse(std::move(why));
    r.checks = std::move(checks);
    return r;
  };
  const auto passed = [&](std::string name, std::string detail) {
    checks.push_back(AdminCheck{.name = std::move(name), .passed = true, .detail = detail});
  };
  if (settings_.mode == config::FailoverMode::kFollow) {
    return refused("mode",
                   "failover_mode = follow: switch over with the external manager; pgpivot "
                   "follows it");
  }
  passed("mode", "failover_mode = " + std::string(config::toString(settings_.mode)));
  if (state_ != ClusterState::kSteady && state_ != ClusterState::kDegraded) {
    return refused("state", "the cluster is " + std::string(toString(state_)) +
                                "; a switchover needs STEADY or DEGRADED");
  }
  passed("state", std::string(toString(state_)));
  const std::size_t p = *primary_;
  const ProbeSample* ps = fresh(p);
  if (ps == nullptr) {
    return refused("primary_probe", "the primary has no recent probe");
  }
  passed("primary_probe", names_[p] + " answers, timeline " + std::to_string(ps->timeline) +
                              ", LSN " + formatLsn(ps->current_lsn));
  if (command.target && (*command.target == p || routing_.isFenced(names_[*command.target]))) {
    return refused("target", names_[*command.target] + " cannot be the new primary");
  }
  // The same election the switchover runs after the pause, on the samples at hand: a
  // standby that could not win now is not worth pausing clients for.
  const Election e = elect(views(), ElectionInput{.old_primary = p,
                                                  .timeline = routing_.min_timeline,
                                                  .primary_lsn = ps->current_lsn,
                                                  .max_lag = settings_.max_lag_on_failover,
                                                  .system_identifier = routing_.system_identifier,
                                                  .target = command.target});
  if (!e.chosen) {
    return refused("standby_eligible", "no eligible standby: " + e.whyNone());
  }
  const std::size_t c = *e.chosen;
  uint64_t lag = 0;
  for (const Candidate& cand : e.candidates) {
    if (cand.node == c) {
      lag = cand.lag_bytes;
    }
  }
  passed("standby_eligible", names_[c] + " on timeline " + std::to_string(routing_.min_timeline) +
                                 ", lag " + std::to_string(lag) + " bytes (max_lag_on_failover " +
                                 std::to_string(settings_.max_lag_on_failover) + ")");
  const ProbeSample* cs = fresh(c);
  if (cs == nullptr || !cs->wal_receiver_streaming) {
    return refused("standby_streaming",
                   names_[c] + ": WAL receiver not streaming from the primary; it cannot catch up");
  }
  passed("standby_streaming", names_[c] + " streams from the primary");
  Incident inc;
  inc.id = newIncidentId(drill ? 'd' : 's');
  inc.started_ms = now_;
  inc.cause = nodes_[p].verdict().state;
  inc.reason = drill ? "drill" : "switchover";
  inc.old_primary = p;
  inc.planned = true;
  inc.drill = drill;
  inc.target = command.target;
  inc.primary_lsn = ps->current_lsn;
  inc.from_timeline = routing_.min_timeline;
  incident_ = std::move(inc);
  for (const AdminCheck& check : checks) {
    emit(Event{.event = "precheck",
               .reason = check.name + ": " + check.detail,
               .result = check.passed ? "passed" : "failed"});
  }
  pause(p, true, "switchover: letting transactions in flight finish");
  enter(ClusterState::kPausing, incident_->reason + " requested by an operator");
  AdminReply reply{true, incident_->reason + " " + incident_->id + " started"};
  reply.incident_id = incident_->id;
  reply.checks = std::move(checks);
  return reply;
}

AdminReply FailoverMachine::failover(const AdminCommand& command) {
  if (settings_.mode == config::FailoverMode::kFollow) {
    return refuse(
        "failover_mode = follow: promote with the external manager; pgpivot follows "
        "it (or SET PRIMARY)");
  }
  if (state_ == ClusterState::kFencing || state_ == ClusterState::kPromoting ||
      state_ == ClusterState::kVerifying) {
    return refuse("a promotion is already in flight (" + std::string(toString(state_)) + ")");
  }
  if (incident_ && incident_->planned) {
    return refuse("a switchover is running");
  }
  if (command.target && primary_ && *command.target == *primary_) {
    return refuse(names_[*command.target] + " is the primary");
  }
  if (!incident_) {
    Incident inc;
    inc.id = newIncidentId('f');
    inc.started_ms = now_;
    inc.cause = primary_ ? nodes_[*primary_].verdict().state : NodeState::kUnknown;
    inc.reason = "failover requested by an operator";
    inc.old_primary = primary_;
    if (primary_) {
      if (const ProbeSample* s = nodes_[*primary_].stats(); s != nullptr && !s->in_recovery) {
        inc.primary_lsn = s->current_lsn;
      }
    }
    inc.from_timeline = routing_.min_timeline;
    incident_ = std::move(inc);
  }
  incident_->forced = true;
  incident_->target = command.target;
  // Naming the node is the operator accepting its lag (and the commits it may lack).
  incident_->ignore_lag = command.target.has_value();
  pause(primary_, false, "failover requested by an operator");
  enter(ClusterState::kPausing, "failover requested by an operator", {}, true);
  AdminReply reply{true, "failover " + incident_->id + " started"};
  reply.incident_id = incident_->id;
  return reply;
}

AdminReply FailoverMachine::setPrimary(const AdminCommand& command) {
  if (!command.target) {
    return refuse("SET PRIMARY needs a node");
  }
  if (state_ == ClusterState::kPromoting || state_ == ClusterState::kVerifying) {
    return refuse("a promotion is in flight (" + std::string(toString(state_)) + ")");
  }
  const std::size_t x = *command.target;
  const ProbeSample* s = fresh(x);
  if (s == nullptr || s->in_recovery) {
    return refuse(names_[x] + " is not a writable node right now");
  }
  if (!routing_.system_identifier.empty() && s->system_identifier != routing_.system_identifier) {
    return refuse(names_[x] + " belongs to another cluster (system identifier " +
                  s->system_identifier + ")");
  }
  // Every other writable node loses: fenced, never routed, as an old primary.
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const ProbeSample* o = fresh(i);
    if (i != x && o != nullptr && !o->in_recovery) {
      routing_.fence(names_[i]);
      old_primary_refenced_[i] = false;
      fenceOldPrimary(i, "SET PRIMARY " + names_[x] + " by an operator");
    }
  }
  routing_.unfence(names_[x]);
  const uint32_t before = routing_.min_timeline;
  routing_.min_timeline = s->timeline;  // may lower it: the operator's decision, logged
  routing_.expected_primary = names_[x];
  persist();
  if (!incident_) {
    Incident inc;
    inc.id = newIncidentId('f');
    inc.started_ms = now_;
    inc.reason = "SET PRIMARY by an operator";
    inc.old_primary = primary_;
    incident_ = std::move(inc);
  }
  incident_->forced = true;
  pause(primary_, false, "SET PRIMARY " + names_[x]);
  candidate_ = x;
  enter(ClusterState::kValidating, "operator set the primary to " + names_[x],
        Evidence{{"timeline", s->timeline}, {"min_timeline_before", before}}, true);
  return AdminReply{true, names_[x] + " is being validated as the primary"};
}

AdminReply FailoverMachine::resumeCommand() {
  if (state_ != ClusterState::kWaitOperator && state_ != ClusterState::kSplitBrain &&
      state_ != ClusterState::kPartitionedFromPrimary) {
    return refuse("nothing to resume: the cluster is " + std::string(toString(state_)));
  }
  enter(ClusterState::kDiscovering, "RESUME by an operator", {}, true);
  return AdminReply{true, "rediscovering the primary"};
}

AdminReply FailoverMachine::fenceCommand(const AdminCommand& command) {
  if (!command.target) {
    return refuse("FENCE needs a node");
  }
  const std::size_t x = *command.target;
  const std::string& name = names_[x];
  if (routing_.isHeld(name)) {
    return refuse(name + " is already fenced by an operator");
  }
  if (candidate_ && *candidate_ == x) {
    return refuse(name + " is being " +
                  (state_ == ClusterState::kValidating ? "validated" : "promoted") + " (" +
                  std::string(toString(state_)) + "); wait for the outcome");
  }
  const bool is_primary = primary_ && *primary_ == x && !routing_.isFenced(name);
  const bool operator_waits = state_ == ClusterState::kWaitOperator ||
                              state_ == ClusterState::kSplitBrain ||
                              state_ == ClusterState::kPartitionedFromPrimary;
  if (is_primary) {
    if (incident_ && !operator_waits) {
      return refuse("a failover of " + name + " is running (" + std::string(toString(state_)) +
                    "); it fences the old primary itself");
    }
    if (settings_.mode != config::FailoverMode::kManual && !(paused_ && operator_waits)) {
      return refuse(name + " is the routed primary: FENCE of the primary needs failover_mode = " +
                    "manual or a cluster waiting for an operator; use SWITCHOVER or FAILOVER");
    }
  }
  routing_.hold(name);  // persisted before the fence runs
  persist();
  old_primary_refenced_[x] = true;  // the fence below is the one a writable node gets
  Action& a = addAction(ActionKind::kFence, x);
  a.reason = "fenced by an operator";
  a.sql = sql::fenceSql(false);
  emit(Event{.event = "fenced",
             .node = name,
             .role = is_primary ? "primary" : "standby",
             .reason = "FENCE by an operator"});
  if (!is_primary) {
    return AdminReply{true, name + " fenced: not routed to and not elected until UNFENCE"};
  }
  routed_ = false;
  if (!paused_) {
    pause(x, false, "the primary " + name + " was fenced by an operator");
  }
  if (!operator_waits) {
    waitOperatorFor("the primary " + name +
                    " was fenced by an operator; run FAILOVER, SET_PRIMARY or UNFENCE");
  }
  return AdminReply{true, name + " fenced; clients wait for FAILOVER, SET_PRIMARY or UNFENCE"};
}

AdminReply FailoverMachine::unfenceCommand(const AdminCommand& command) {
  if (!command.target) {
    return refuse("UNFENCE needs a node");
  }
  const std::size_t x = *command.target;
  const std::string& name = names_[x];
  if (!routing_.isFenced(name)) {
    return refuse(name + " is not fenced");
  }
  const ProbeSample* s = fresh(x);
  if (s == nullptr) {
    return refuse(name + " has no recent probe: its role is unknown, so it stays fenced");
  }
  const bool was_primary = primary_ && *primary_ == x;
  if (!s->in_recovery && !was_primary) {
    return refuse(name + " is writable and not the routed primary: rewind it (pg_rewind) and " +
                  "start it as a standby on timeline " + std::to_string(routing_.min_timeline) +
                  " first");
  }
  if (s->in_recovery && s->timeline < routing_.min_timeline) {
    return refuse(name + " is a standby on timeline " + std::to_string(s->timeline) +
                  ", older than the cluster's " + std::to_string(routing_.min_timeline));
  }
  routing_.unfence(name);
  persist();
  old_primary_refenced_[x] = false;
  Action& a = addAction(ActionKind::kUnfence, x);
  a.sql = std::string(sql::kUnfenceReadOnly) + "; " + std::string(sql::kReloadConf);
  a.reason = "UNFENCE by an operator";
  emit(Event{.event = "unfenced",
             .node = name,
             .role = s->in_recovery ? "standby" : "primary",
             .reason = "UNFENCE by an operator"});
  if (!s->in_recovery && state_ == ClusterState::kWaitOperator && !incident_) {
    // The primary an operator fenced in manual mode: find it again, validate, route.
    enter(ClusterState::kDiscovering, "UNFENCE of the primary by an operator", {}, true);
    return AdminReply{true, name + " unfenced; validating it as the primary"};
  }
  return AdminReply{true, name + " unfenced"};
}

}  // namespace pgpivot::cluster
