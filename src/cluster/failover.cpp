// FailoverMachine plumbing: the entry points, the step loop, state changes, and the
// helpers that turn decisions into Actions and Events. The decisions themselves live in
// failover_watch.cpp (routing, discovery, search), failover_promote.cpp (failing over)
// and failover_admin.cpp (operator commands).
#include "pgpivot/cluster/failover.hpp"

#include <algorithm>

namespace pgpivot::cluster {
namespace {

// Results the machine keeps the Action for, to log the SQL and to resume waiting states.
bool expectsResult(ActionKind kind) {
  switch (kind) {
    case ActionKind::kRoute:
    case ActionKind::kAlert:
    case ActionKind::kRefuseWrites:
      return false;
    default:
      return true;
  }
}

// The event-log name of an action's result.
std::string_view resultEvent(ActionKind kind) {
  switch (kind) {
    case ActionKind::kPauseClients:
      return "clients_paused";
    case ActionKind::kResumeClients:
      return "clients_resumed";
    case ActionKind::kPersistState:
      return "state_persisted";
    case ActionKind::kReportBlockers:
      return "blocker_tree";
    default:
      return toString(kind);
  }
}

std::string_view resultName(ActionStatus status) {
  switch (status) {
    case ActionStatus::kOk:
      return "ok";
    case ActionStatus::kFailed:
      return "failed";
    case ActionStatus::kUnreachable:
      return "unreachable";
  }
  return "failed";
}

constexpr std::size_t kMaxOutstanding = 256;  // a careless I/O side must not grow this forever

}  // namespace

FailoverMachine::FailoverMachine(std::vector<std::string> node_names, const Settings& settings,
                                 RoutingState restored)
    : names_(std::move(node_names)), settings_(settings), routing_(std::move(restored)) {
  nodes_.reserve(names_.size());
  for (std::size_t i = 0; i < names_.size(); ++i) {
    nodes_.emplace_back(settings_);
  }
  readmit_since_.resize(names_.size());
  hidden_primary_alerted_.resize(names_.size(), false);
  old_primary_refenced_.resize(names_.size(), false);
  write_probe_on_.resize(names_.size(), false);
  standby_lsn_seen_.resize(names_.size(), 0);
  primary_lsn_seen_.resize(names_.size(), 0);
}

// ---- entry points ----------------------------------------------------------------------

Output FailoverMachine::start(uint64_t now_ms) {
  begin(now_ms);
  state_ = ClusterState::kDiscovering;
  state_reason_ = "started: discovering the primary";
  state_since_ = now_ms;
  Evidence restored{{"epoch", routing_.epoch},
                    {"min_timeline", routing_.min_timeline},
                    {"expected_primary", routing_.expected_primary},
                    {"fenced", static_cast<int64_t>(routing_.fenced.size())}};
  emit(Event{.event = "started", .to = std::string(toString(state_)), .evidence = restored});
  if (!routing_.expected_primary.empty() &&
      std::find(names_.begin(), names_.end(), routing_.expected_primary) == names_.end()) {
    alert(AlertLevel::kWarning, "the state file's expected primary " + routing_.expected_primary +
                                    " is not among the nodes; a new primary is accepted only on "
                                    "a newer timeline or by SET PRIMARY");
  }
  pause(std::nullopt, false, "discovering the primary");
  step();
  return finish();
}

Output FailoverMachine::onStats(std::size_t node, const ProbeSample& sample, uint64_t now_ms) {
  begin(now_ms);
  if (node < nodes_.size()) {
    nodes_[node].onStats(sample);
    if (sample.ok() && sample.in_recovery) {
      standby_lsn_seen_[node] =
          std::max({standby_lsn_seen_[node], sample.receive_lsn, sample.replay_lsn});
      primary_lsn_seen_[node] = 0;  // a new writable episode starts from scratch
    } else if (sample.ok()) {
      primary_lsn_seen_[node] = std::max(primary_lsn_seen_[node], sample.current_lsn);
    }
  }
  step();
  return finish();
}

Output FailoverMachine::onConnect(std::size_t node, const ConnectSample& sample, uint64_t now_ms) {
  begin(now_ms);
  if (node < nodes_.size()) {
    nodes_[node].onConnect(sample);
  }
  step();
  return finish();
}

Output FailoverMachine::onWrite(std::size_t node, const WriteSample& sample, uint64_t now_ms) {
  begin(now_ms);
  if (node < nodes_.size()) {
    nodes_[node].onWrite(sample);
  }
  step();
  return finish();
}

Output FailoverMachine::onHotStandbyReport(std::size_t node, bool in_hot_standby, uint64_t now_ms) {
  begin(now_ms);
  if (node < nodes_.size()) {
    nodes_[node].onHotStandbyReport(in_hot_standby, now_ms);
  }
  step();
  return finish();
}

Output FailoverMachine::onDataPath(std::size_t node, const DataPathSample& sample,
                                   uint64_t now_ms) {
  begin(now_ms);
  if (node < nodes_.size()) {
    nodes_[node].onDataPath(sample);
  }
  step();
  return finish();
}

Output FailoverMachine::tick(uint64_t now_ms) {
  begin(now_ms);
  step();
  return finish();
}

Output FailoverMachine::onActionResult(const ActionResult& result, uint64_t now_ms) {
  begin(now_ms);
  const auto it = outstanding_.find(result.id);
  if (it == outstanding_.end()) {
    return finish();  // unknown or already answered: nothing waits for it
  }
  const Action action = it->second;
  outstanding_.erase(it);
  noteActionResult(action, result);
  if (result.id == pause_id_ && result.status == ActionStatus::kOk) {
    pause_acked_ms_ = now_ms;
  }
  if (result.id == resume_id_) {
    resume_acked_ = true;
  }
  if (result.id == pending_.id) {
    pending_.done = true;
    pending_.status = result.status;
    pending_.error = result.error;
    pending_.flushed_lsn = result.flushed_lsn;
  }
  if (action.kind == ActionKind::kPersistState && result.status != ActionStatus::kOk) {
    // The I/O side stopped the batch there: nothing that relied on the new state ran.
    // Without it a restart could route to a stale primary, so writes wait for an operator.
    writes_refused_ = true;
    routed_ = false;
    addAction(ActionKind::kRefuseWrites).reason = "pgpivot cannot persist its routing state";
    waitOperatorFor("cannot write the state file: " + result.error);
  }
  step();
  return finish();
}

void FailoverMachine::noteActionResult(const Action& action, const ActionResult& result) {
  Event e{.event = std::string(resultEvent(action.kind)),
          .sql = action.sql,
          .duration_ms = result.duration_ms,
          .result = std::string(resultName(result.status)),
          .error = result.error};
  if (action.node) {
    e.node = names_[*action.node];
  }
  e.evidence = result.details;
  emit(std::move(e));
}

// ---- the step loop ------------------------------------------------------------------------

void FailoverMachine::begin(uint64_t now_ms) {
  now_ = std::max(now_, now_ms);  // a clock that steps back must not run timers backwards
  out_ = Output{};
}

Output FailoverMachine::finish() {
  return std::move(out_);
}

void FailoverMachine::step() {
  evaluateNodes();
  // A state handler may change state; the new state's handler then runs in the same
  // call, so that e.g. PRIMARY_DOWN -> SEARCHING_PRIMARY -> VALIDATING happens at once
  // when the new primary is already known. Bounded: each handler changes state at most
  // once per run and the graph has no zero-time cycle longer than this.
  for (int guard = 0; guard < 12; ++guard) {
    const ClusterState before = state_;
    const bool entered_before = entered_;
    runState();
    if (state_ == before && entered_ == entered_before) {
      break;
    }
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const bool on = probePlan(i).write;
    if (on && !write_probe_on_[i]) {
      nodes_[i].resetWriteProbe();  // old W results are about another role
    }
    write_probe_on_[i] = on;
  }
}

void FailoverMachine::evaluateNodes() {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const NodeState before = nodes_[i].verdict().state;
    const NodeContext context{
        .expected_primary = primary_ && *primary_ == i && !routing_.isFenced(names_[i]),
        .min_timeline = routing_.min_timeline,
        .system_identifier = routing_.system_identifier};
    if (!nodes_[i].evaluate(now_, context)) {
      continue;
    }
    const NodeVerdict& v = nodes_[i].verdict();
    const ProbeSample* s = nodes_[i].stats();
    emit(Event{.event = "probe_verdict",
               .from = std::string(toString(before)),
               .to = std::string(toString(v.state)),
               .node = names_[i],
               .role = s == nullptr ? "unknown" : (s->in_recovery ? "standby" : "primary"),
               .reason = v.reason,
               .evidence = v.evidence});
  }
}

void FailoverMachine::runState() {
  switch (state_) {
    case ClusterState::kDiscovering:
      return discover();
    case ClusterState::kSteady:
    case ClusterState::kDegraded:
    case ClusterState::kSuspect:
    case ClusterState::kCrashRecovery:
      return watchPrimary();
    case ClusterState::kPrimaryDown:
      return decideFailover();
    case ClusterState::kPausing:
      return pausing();
    case ClusterState::kElecting:
      return electing();
    case ClusterState::kCatchingUp:
      return catchingUp();
    case ClusterState::kFencing:
      return fencing();
    case ClusterState::kPromoting:
      return promoting();
    case ClusterState::kVerifying:
      return verifying();
    case ClusterState::kSearchingPrimary:
      return searching();
    case ClusterState::kValidating:
      return validating();
    case ClusterState::kResuming:
      return resuming();
    case ClusterState::kPartitionedFromPrimary:
      return partitioned();
    case ClusterState::kSplitBrain:
      return;  // only an operator ends it (onAdmin)
    case ClusterState::kWaitOperator:
      return waitOperator();
  }
}

void FailoverMachine::enter(ClusterState to, std::string reason, Evidence evidence, bool again) {
  if (to == state_ && !again) {
    return;
  }
  if (to == ClusterState::kSearchingPrimary && state_ != ClusterState::kValidating) {
    search_started_ms_ = now_;  // VALIDATING -> SEARCHING does not restart the clock
  }
  emit(Event{.event = "state_change",
             .from = std::string(toString(state_)),
             .to = std::string(toString(to)),
             .reason = reason,
             .evidence = std::move(evidence)});
  state_ = to;
  state_reason_ = std::move(reason);
  state_since_ = now_;
  entered_ = false;
  pending_ = Pending{};
}

void FailoverMachine::emit(Event event) {
  event.mono_ms = now_;
  event.epoch = routing_.epoch;
  if (event.failover_id.empty() && incident_) {
    event.failover_id = incident_->id;
  }
  out_.events.push_back(std::move(event));
}

// ---- actions --------------------------------------------------------------------------------

Action& FailoverMachine::addAction(ActionKind kind, std::optional<std::size_t> node) {
  Action a;
  a.kind = kind;
  a.id = next_action_id_++;
  a.node = node;
  a.epoch = routing_.epoch;
  a.failover_id = incident_ ? incident_->id : std::string();
  if (expectsResult(kind)) {
    if (outstanding_.size() >= kMaxOutstanding) {
      outstanding_.erase(outstanding_.begin());
    }
    outstanding_[a.id] = a;
  }
  out_.actions.push_back(std::move(a));
  return out_.actions.back();
}

void FailoverMachine::waitFor(const Action& action) {
  pending_ = Pending{.id = action.id};
  // Keep the stored copy (for the result's event) in step with late edits of sql/reason.
  if (auto it = outstanding_.find(action.id); it != outstanding_.end()) {
    it->second = action;
  }
}

void FailoverMachine::persist() {
  Action& a = addAction(ActionKind::kPersistState);
  a.payload = serializeRoutingState(routing_);
}

void FailoverMachine::pause(std::optional<std::size_t> old_primary, bool planned,
                            std::string reason) {
  if (paused_) {
    return;
  }
  paused_ = true;
  routed_ = false;
  pause_started_ms_ = now_;
  pause_acked_ms_.reset();
  pause_timeout_reported_ = false;
  Action& a = addAction(ActionKind::kPauseClients, old_primary);
  a.planned = planned;
  a.reason = std::move(reason);
  pause_id_ = a.id;
}

void FailoverMachine::resume(std::string reason) {
  if (!paused_) {
    return;
  }
  paused_ = false;
  pause_ended_ms_ = now_;
  crash_paused_ = false;
  routed_ = primary_.has_value() && !writes_refused_;
  Action& a = addAction(ActionKind::kResumeClients, primary_);
  a.reason = std::move(reason);
  resume_id_ = a.id;
  resume_acked_ = false;
}

void FailoverMachine::alert(AlertLevel level, std::string reason) {
  emit(Event{.event = "alert",
             .reason = reason,
             .result = level == AlertLevel::kCritical ? "critical" : "warning"});
  Action& a = addAction(ActionKind::kAlert);
  a.level = level;
  a.reason = std::move(reason);
}

// ---- read side ------------------------------------------------------------------------------

std::optional<std::size_t> FailoverMachine::routedPrimary() const {
  if (!routed_ || paused_ || writes_refused_) {
    return std::nullopt;
  }
  return primary_;
}

std::string FailoverMachine::failoverId() const {
  return incident_ ? incident_->id : std::string();
}

bool FailoverMachine::steadyFamily() const {
  return state_ == ClusterState::kSteady || state_ == ClusterState::kDegraded ||
         state_ == ClusterState::kSuspect || state_ == ClusterState::kCrashRecovery;
}

ProbePlan FailoverMachine::probePlan(std::size_t node) const {
  ProbePlan plan;
  const bool is_primary = primary_ && *primary_ == node;
  const bool is_candidate = candidate_ && *candidate_ == node;
  if (settings_.use_write_probe) {
    // A switchover stops W on the old primary: our own heartbeat would keep its WAL
    // position moving while the candidate catches up.
    plan.write = (is_primary && steadyFamily() && !routing_.isFenced(names_[node]) &&
                  !(incident_ && incident_->planned)) ||
                 (is_candidate &&
                  (state_ == ClusterState::kValidating || state_ == ClusterState::kVerifying));
  }
  const bool watched =
      is_primary && state_ != ClusterState::kSteady && state_ != ClusterState::kDegraded;
  const NodeState s = nodes_[node].verdict().state;
  const bool doubtful = s != NodeState::kHealthy && s != NodeState::kUnknown && !isDegraded(s);
  plan.connect_interval_ms =
      watched || doubtful ? settings_.connect_interval_suspect_ms : settings_.connect_interval_ms;
  return plan;
}

const ProbeSample* FailoverMachine::fresh(std::size_t node) const {
  const NodeHealth& h = nodes_[node];
  const ProbeSample* s = h.stats();
  // A newer in_hot_standby=on report makes the sample's role stale too.
  if (s == nullptr || !h.statsOk() || s->at_ms + settings_.staleAfterMs() < now_ ||
      h.reportedStandby()) {
    return nullptr;
  }
  return s;
}

std::vector<NodeView> FailoverMachine::views() const {
  std::vector<NodeView> out;
  out.reserve(nodes_.size());
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    out.push_back(NodeView{.index = i,
                           .name = names_[i],
                           .stats = fresh(i),
                           .last_ok = nodes_[i].stats(),
                           .state = nodes_[i].verdict().state,
                           .fenced = routing_.isFenced(names_[i]),
                           .writable_since = nodes_[i].writableSinceMs()});
  }
  return out;
}

std::string FailoverMachine::newIncidentId(char kind) {
  return std::string(1, kind) + "-" + std::to_string(routing_.epoch) + "-" +
         std::to_string(++incident_seq_);
}

}  // namespace pgpivot::cluster
