// FailoverMachine, operator commands from the admin console: SWITCHOVER and DRILL (planned),
// FAILOVER (now, without witness or flap guard), SET PRIMARY (the operator names the
// primary; ends a split brain) and RESUME (rediscover). Each is refused with a reason
// when the cluster's state makes it unsafe or meaningless.
#include "pgpivot/cluster/failover.hpp"

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
  if (settings_.mode == config::FailoverMode::kFollow) {
    return refuse(
        "failover_mode = follow: switch over with the external manager; pgpivot "
        "follows it");
  }
  if (state_ != ClusterState::kSteady && state_ != ClusterState::kDegraded) {
    return refuse("the cluster is " + std::string(toString(state_)) +
                  "; a switchover needs STEADY or DEGRADED");
  }
  const std::size_t p = *primary_;
  const ProbeSample* ps = fresh(p);
  if (ps == nullptr) {
    return refuse("the primary has no recent probe");
  }
  if (command.target && (*command.target == p || routing_.isFenced(names_[*command.target]))) {
    return refuse(names_[*command.target] + " cannot be the new primary");
  }
  Incident inc;
  inc.id = newIncidentId(command.kind == AdminKind::kDrill ? 'd' : 's');
  inc.started_ms = now_;
  inc.cause = nodes_[p].verdict().state;
  inc.reason = command.kind == AdminKind::kDrill ? "drill" : "switchover";
  inc.old_primary = p;
  inc.planned = true;
  inc.drill = command.kind == AdminKind::kDrill;
  inc.target = command.target;
  inc.primary_lsn = ps->current_lsn;
  inc.from_timeline = routing_.min_timeline;
  incident_ = std::move(inc);
  pause(p, true, "switchover: letting transactions in flight finish");
  enter(ClusterState::kPausing, incident_->reason + " requested by an operator");
  return AdminReply{true, incident_->reason + " " + incident_->id + " started"};
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
  return AdminReply{true, "failover " + incident_->id + " started"};
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

}  // namespace pgpivot::cluster
