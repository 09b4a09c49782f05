#include "cluster_watch.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <variant>

#include "pgpivot/cluster/probe_sample.hpp"
#include "pgpivot/cluster/probe_sql.hpp"
#include "pgpivot/cluster/settings.hpp"
#include "pgpivot/log/log.hpp"

namespace pgpivot::monitor {

namespace {

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// PgProbe's verdict in the cluster module's words.
cluster::ProbeOutcome outcomeOf(const ProbeOutcome& probe) {
  switch (probe.kind) {
    case ProbeOutcome::Kind::kOk:
      return cluster::ProbeOutcome::kOk;
    case ProbeOutcome::Kind::kTimeout:
      return cluster::ProbeOutcome::kTimeout;
    case ProbeOutcome::Kind::kRefused:
      return probe.message.find("refused") != std::string::npos ||
                     probe.message.find("No such file") != std::string::npos
                 ? cluster::ProbeOutcome::kRefused
                 : cluster::ProbeOutcome::kReset;
    case ProbeOutcome::Kind::kError:
      if (probe.sqlstate.rfind("28", 0) == 0) {
        return cluster::ProbeOutcome::kAuthFailed;
      }
      return probe.sqlstate.empty() ? cluster::ProbeOutcome::kReset : cluster::ProbeOutcome::kError;
  }
  return cluster::ProbeOutcome::kError;
}

std::string nodeNameOf(const config::NodeAddress& node) {
  return fmt::format("{}:{}", node.host, node.port);
}

// The LSN range a completed failover may have lost (FailoverMachine::possiblyLost), for
// SHOW FAILOVERS; "" for every other event.
std::string possiblyLostOf(const cluster::Event& event) {
  const auto* v = cluster::findField(event.evidence, "possibly_lost");
  const auto* text = v != nullptr ? std::get_if<std::string>(v) : nullptr;
  return text != nullptr ? *text : std::string();
}

// The letter FailoverMachine::newIncidentId starts an id with says what the run was.
std::string_view incidentKindOf(std::string_view failover_id) {
  switch (failover_id.empty() ? '\0' : failover_id.front()) {
    case 'd':
      return "drill";
    case 's':
      return "switchover";
    default:
      return "failover";
  }
}

bool completesIncident(const cluster::Event& event) {
  return event.event.size() > 9 && event.event.ends_with("_complete");
}

}  // namespace

ClusterWatch::ClusterWatch(uv_loop_t* loop, const config::ClusterEntry& cluster,
                           HealthMonitor::Publish publish)
    : loop_(loop),
      cluster_(cluster),
      publish_(std::move(publish)),
      sink_(cluster.failover_log),
      formatter_(fmt::format("pgpivot-{}", ::getpid()), cluster.name),
      timer_(new uv_timer_t{}) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  std::vector<std::string> names;
  for (const auto& address : cluster_.nodes) {
    Node node;
    node.address = address;
    node.name = nodeNameOf(address);
    node.stats = std::make_unique<PgProbe>(loop_, params(address));
    node.connect = std::make_unique<PgProbe>(loop_, params(address));
    node.action = std::make_unique<PgProbe>(loop_, params(address));
    node.write = std::make_unique<PgProbe>(loop_, params(address));
    names.push_back(node.name);
    nodes_.push_back(std::move(node));
  }
  cluster::Settings settings = cluster::settingsFor(cluster_);
  // W needs its table (probe_sql.hpp): created by the operator, or by pgpivot with
  // heartbeat_create. A missing table is a setup error the machine leaves W out for
  // (verification then rests on the stats probe), logged once.
  settings.use_write_probe = !cluster_.heartbeat_table.empty();
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) {
    host[0] = '\0';
  }
  proxy_id_ = fmt::format("{}/{}", host, cluster_.name);
  machine_ = std::make_unique<cluster::FailoverMachine>(std::move(names), settings, restore());
  status_cluster_.name = cluster_.name;
  status_cluster_.failover_mode = std::string(config::toString(cluster_.failover_mode));
  status_cluster_.profile = cluster_.profile;
  status_cluster_.nodes = static_cast<int64_t>(nodes_.size());
}

ClusterWatch::~ClusterWatch() {
  stop();
}

std::vector<std::pair<std::string, std::string>> ClusterWatch::params(
    const config::NodeAddress& node) const {
  return {
      {"host", node.host},
      {"port", std::to_string(node.port)},
      {"dbname", cluster_.monitor_dbname},
      {"user", cluster_.monitor_user},
      {"password", cluster_.monitor_password},
      {"application_name", std::string(cluster::sql::kMonitorApplicationName)},
      {"sslmode", "disable"},
      {"connect_timeout", "10"},
      // A blackholed node must not hold a socket for minutes.
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "1"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", std::to_string(cluster_.probe_timeout.count() + 1000)},
  };
}

cluster::RoutingState ClusterWatch::restore() {
  if (cluster_.state_file.empty()) {
    return {};
  }
  std::ifstream in(cluster_.state_file);
  if (!in) {
    return {};  // first start
  }
  std::stringstream text;
  text << in.rdbuf();
  auto state = cluster::parseRoutingState(text.str());
  if (!state) {
    PGPIVOT_LOG_ERROR("cluster {}: state file {} is unreadable ({}); starting without it",
                      cluster_.name, cluster_.state_file, state.error().message);
    return {};
  }
  return *state;
}

void ClusterWatch::start() {
  apply(machine_->start(uv_now(loop_)));
  // The machine wants to be called at least every probe_interval / 4.
  const auto interval = std::max<int64_t>(cluster_.probe_interval.count() / 4, 25);
  uv_timer_start(
      timer_, [](uv_timer_t* t) noexcept { static_cast<ClusterWatch*>(t->data)->tick(); }, 0,
      static_cast<uint64_t>(interval));
}

void ClusterWatch::stop() {
  if (timer_ == nullptr) {
    return;
  }
  uv_timer_stop(timer_);
  for (Waiter& w : waiters_) {
    if (w.done) {
      ReportDone done = std::move(w.done);
      done(fail(sqlstate::kAdminShutdown, "pgpivot: shutting down while " + w.id + " ran"));
    }
  }
  waiters_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
  nodes_.clear();  // each PgProbe closes its handles and its libpq connection
}

// --- probes ---------------------------------------------------------------------------------

void ClusterWatch::tick() {
  const uint64_t now = uv_now(loop_);
  const auto deadline = static_cast<uint64_t>(cluster_.probe_timeout.count());
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    Node& node = nodes_[i];
    if (now >= node.next_stats_ms && !node.stats->busy()) {
      node.next_stats_ms = now + static_cast<uint64_t>(cluster_.probe_interval.count());
      node.stats->run(std::string(cluster::sql::kStatsQuery), deadline,
                      [this, i, now](ProbeOutcome outcome) { onStats(i, now, outcome); });
    }
    const cluster::ProbePlan plan = machine_->probePlan(i);
    if (now >= node.next_connect_ms && !node.connect->busy()) {
      node.next_connect_ms = now + plan.connect_interval_ms;
      node.connect->run(
          std::string(cluster::sql::kConnectProbe), deadline,
          [this, i, now](ProbeOutcome outcome) { onConnect(i, now, outcome); }, true);
    }
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    scheduleWrite(i, now);
  }
  apply(machine_->tick(now));
  expireWaiters(uv_now(loop_));
}

void ClusterWatch::tickNow() {
  if (timer_ == nullptr || uv_is_active(reinterpret_cast<uv_handle_t*>(timer_)) == 0) {
    return;  // stopped, or not started yet
  }
  const auto interval = std::max<int64_t>(cluster_.probe_interval.count() / 4, 25);
  uv_timer_start(
      timer_, [](uv_timer_t* t) noexcept { static_cast<ClusterWatch*>(t->data)->tick(); }, 0,
      static_cast<uint64_t>(interval));
}

// W follows the machine's plan: on for the routed primary (and a node being verified or
// validated), off, with its connection closed, everywhere else. One write at a time per
// node: a stuck one is waited for, never abandoned (PgProbe::runPatient).
void ClusterWatch::scheduleWrite(std::size_t index, uint64_t now) {
  Node& node = nodes_[index];
  if (!machine_->probePlan(index).write) {
    if (node.write_on) {
      node.write_on = false;
      node.write_creating = false;
      ++node.write_run;
      node.write->reset(true);
    }
    return;
  }
  if (!node.write_on) {
    node.write_on = true;
    node.next_write_ms = 0;  // a node to verify: write at once
  }
  if (now < node.next_write_ms || node.write->busy()) {
    return;
  }
  node.next_write_ms = now + static_cast<uint64_t>(cluster_.probe_interval.count());
  startWrite(index, now);
}

void ClusterWatch::startWrite(std::size_t index, uint64_t now) {
  Node& node = nodes_[index];
  const uint64_t run = node.write_run;
  const bool creating = node.write_creating;
  const std::string sql = creating
                              ? cluster::sql::heartbeatCreate(cluster_.heartbeat_table)
                              : cluster::sql::heartbeatUpsert(cluster_.heartbeat_table, proxy_id_,
                                                              machine_->routing().epoch, node.name);
  // Research §7.1: W gets twice the stats probe's deadline (a commit flushes WAL).
  const auto deadline = static_cast<uint64_t>(2 * cluster_.probe_timeout.count());
  auto answer = [this, index, run, now, creating](ProbeOutcome outcome) {
    onWrite(index, run, now, creating, outcome);
  };
  node.write->runPatient(sql, deadline, answer, answer);
}

void ClusterWatch::onWrite(std::size_t index, uint64_t run, uint64_t sent_ms, bool creating,
                           const ProbeOutcome& outcome) {
  if (index >= nodes_.size() || run != nodes_[index].write_run) {
    return;  // W was turned off on the node since: its old answers are about another role
  }
  Node& node = nodes_[index];
  const bool overdue = outcome.kind == ProbeOutcome::Kind::kTimeout && node.write->busy();
  if (creating && !overdue) {
    node.write_creating = false;
    if (outcome.kind == ProbeOutcome::Kind::kOk) {
      PGPIVOT_LOG_INFO("cluster {}: created the heartbeat table {} on {}", cluster_.name,
                       cluster_.heartbeat_table, node.name);
      node.next_write_ms = 0;
      return;
    }
  } else if (!creating && outcome.kind == ProbeOutcome::Kind::kError &&
             outcome.sqlstate == "42P01" && cluster_.heartbeat_create) {
    node.write_creating = true;  // the next W creates the table, then writes
    node.next_write_ms = 0;
    return;
  }
  cluster::WriteSample sample;
  sample.outcome = outcomeOf(outcome);
  sample.sqlstate = outcome.sqlstate;
  sample.error = outcome.message;
  sample.at_ms = sent_ms;
  sample.latency_ms = static_cast<uint32_t>(outcome.latency_ms);
  const bool setup = sample.outcome == cluster::ProbeOutcome::kAuthFailed ||
                     outcome.sqlstate.starts_with("42") || outcome.sqlstate.starts_with("28");
  if (setup && !write_setup_warned_) {
    write_setup_warned_ = true;
    PGPIVOT_LOG_WARN(
        "cluster {}: the heartbeat write on {} fails ({} {}); running without it. Create {} "
        "(see conf/pgpivot.ini, heartbeat_table) or set heartbeat_create = on",
        cluster_.name, node.name, outcome.sqlstate, outcome.message, cluster_.heartbeat_table);
  } else if (sample.ok()) {
    write_setup_warned_ = false;
  }
  apply(machine_->onWrite(index, sample, uv_now(loop_)));
}

void ClusterWatch::onStats(std::size_t index, uint64_t sent_ms, const ProbeOutcome& outcome) {
  cluster::ProbeSample sample;
  if (outcome.kind == ProbeOutcome::Kind::kOk && !outcome.rows.empty()) {
    cluster::ColumnRow row;
    for (std::size_t c = 0; c < outcome.columns.size() && c < outcome.rows.front().size(); ++c) {
      row[outcome.columns[c]] = outcome.rows.front()[c];
    }
    auto parsed = cluster::parseStatsRow(row, sent_ms, static_cast<uint32_t>(outcome.latency_ms));
    if (parsed) {
      sample = std::move(*parsed);
    } else {
      sample.outcome = cluster::ProbeOutcome::kError;
      sample.error = parsed.error().message;
    }
  } else {
    sample.outcome = outcomeOf(outcome);
    sample.sqlstate = outcome.sqlstate;
    sample.error = outcome.message;
  }
  sample.at_ms = sent_ms;
  sample.latency_ms = static_cast<uint32_t>(outcome.latency_ms);
  if (index < nodes_.size()) {
    nodes_[index].last = sample;
    // A failing primary: look again at once, from every side (fast path for kill -9).
    if (!sample.ok() && machine_->routedPrimary() == index) {
      for (auto& node : nodes_) {
        node.next_stats_ms = 0;
        node.next_connect_ms = 0;
      }
    }
  }
  apply(machine_->onStats(index, sample, uv_now(loop_)));
  if (index < nodes_.size() && nodes_[index].restats_on_answer) {
    nodes_[index].restats_on_answer = false;
    tickNow();
  }
}

void ClusterWatch::onConnect(std::size_t index, uint64_t sent_ms, const ProbeOutcome& outcome) {
  cluster::ConnectSample sample;
  sample.outcome = outcomeOf(outcome);
  sample.sqlstate = outcome.sqlstate;
  sample.error = outcome.message;
  sample.at_ms = sent_ms;
  sample.latency_ms = static_cast<uint32_t>(outcome.latency_ms);
  apply(machine_->onConnect(index, sample, uv_now(loop_)));
}

// --- actions ---------------------------------------------------------------------------------

void ClusterWatch::apply(cluster::Output output) {
  backlog_.push_back(std::move(output));
  if (applying_) {
    return;  // the outer apply() takes it in order
  }
  applying_ = true;
  while (!backlog_.empty()) {
    cluster::Output next = std::move(backlog_.front());
    backlog_.pop_front();
    for (const auto& event : next.events) {
      sink_.writeLine(formatter_.line(event, wallMs()));
      noteForWaiters(event);
      if (event.event == "state_change" || completesIncident(event)) {
        PGPIVOT_LOG_INFO("{}", formatter_.summary(event));
      }
      std::lock_guard lock(status_mutex_);
      admin::FailoverStepRow step;
      step.cluster = cluster_.name;
      step.failover_id = event.failover_id;
      step.kind = incidentKindOf(event.failover_id);
      step.time_us = wallMs() * 1000;
      if (event.failover_id != history_incident_) {
        history_incident_ = event.failover_id;
        history_started_us_ = step.time_us;
      }
      step.elapsed_us = step.time_us - history_started_us_;
      step.step = event.event;
      step.result = event.result.empty() ? event.to : event.result;
      step.detail = event.reason;
      step.possibly_lost = possiblyLostOf(event);
      if (!event.failover_id.empty()) {
        steps_.push_back(std::move(step));
        if (steps_.size() > 1000) {
          steps_.erase(steps_.begin());
        }
      }
      if (event.event == "failover_complete" || event.event == "incident_complete") {
        ++failovers_;
      }
    }
    for (const auto& action : next.actions) {
      execute(action);
    }
  }
  applying_ = false;
  // A new state usually waits for a fresh probe (the witness, a promoted node to verify,
  // a primary to validate): probe every node now rather than at the next interval.
  // A probe in flight was sent before the state change: it runs again once it is in (a
  // switchover's catch-up otherwise waited a whole probe_interval for it, 1 s of writes
  // paused with the default profile).
  if (machine_->state() != last_state_) {
    last_state_ = machine_->state();
    if (timer_ != nullptr && uv_is_active(reinterpret_cast<uv_handle_t*>(timer_)) != 0) {
      for (auto& node : nodes_) {
        node.next_stats_ms = 0;
        node.restats_on_answer = node.stats->busy();
      }
      tickNow();
    }
  }
  refreshStatus();
}

void ClusterWatch::report(uint64_t id, cluster::ActionStatus status, std::string error,
                          uint64_t flushed_lsn) {
  if (const auto local = local_actions_.find(id); local != local_actions_.end()) {
    const cluster::Action action = local->second;
    local_actions_.erase(local);
    logEvent(
        cluster::Event{.event = "fence_sql",
                       .node = action.node ? nodes_[*action.node].name : std::string(),
                       .sql = action.sql,
                       .result = status == cluster::ActionStatus::kOk            ? "ok"
                                 : status == cluster::ActionStatus::kUnreachable ? "unreachable"
                                                                                 : "failed",
                       .error = error},
        action);
    return;
  }
  cluster::ActionResult result;
  result.id = id;
  result.status = status;
  result.error = std::move(error);
  result.flushed_lsn = flushed_lsn;
  apply(machine_->onActionResult(result, uv_now(loop_)));
}

void ClusterWatch::publishRoute(bool paused, bool drop_connections) {
  ClusterRoute route;
  route.cluster = cluster_.name;
  route.epoch = epoch_;
  route.paused = paused;
  route.pause_timeout = cluster_.failover_pause_timeout;
  route.drop_connections = drop_connections;
  route.drain_id = paused ? drain_id_ : 0;
  if (routed_) {
    route.primary = nodes_[*routed_].address;
  }
  publish_(route);
}

void ClusterWatch::execute(const cluster::Action& action) {
  using cluster::ActionKind;
  switch (action.kind) {
    case ActionKind::kPersistState: {
      std::string error;
      const bool ok = persist(action.payload, error);
      report(action.id, ok ? cluster::ActionStatus::kOk : cluster::ActionStatus::kFailed, error);
      return;
    }
    case ActionKind::kRoute:
      routed_ = action.node;
      epoch_ = action.epoch;
      PGPIVOT_LOG_INFO("cluster {}: writes go to {} (epoch {})", cluster_.name,
                       routed_ ? nodes_[*routed_].name : "nobody", epoch_);
      publishRoute(machine_->clientsPaused(), false);
      return;
    case ActionKind::kPauseClients:
      // Unplanned: the old primary's connections are closed, its transactions aborted.
      if (action.node && routed_ == action.node && !action.planned) {
        routed_.reset();
      }
      if (action.planned) {
        // Planned (switchover, drill): transactions running on the old primary finish
        // there; the pause is done once every worker says none runs any more (onDrained).
        // Each worker answers at drain_timeout at the latest, with what is still open.
        drain_id_ = action.id;
        drain_started_ms_ = uv_now(loop_);
        drained_workers_.clear();
        drained_transactions_ = 0;
        drain_left_open_ = 0;
        publishRoute(true, false);
        return;
      }
      publishRoute(true, action.node.has_value());
      report(action.id, cluster::ActionStatus::kOk);
      return;
    case ActionKind::kResumeClients:
      drain_id_ = 0;
      routed_ = machine_->routedPrimary();
      publishRoute(false, false);
      report(action.id, cluster::ActionStatus::kOk);
      return;
    case ActionKind::kRefuseWrites:
      routed_.reset();
      publishRoute(true, true);
      return;
    case ActionKind::kFence: {
      if (action.node && routed_ == action.node) {
        routed_.reset();
        publishRoute(true, true);
      }
      cluster::Action sql_fence = action;
      if (!cluster_.fence_command.empty() && action.node) {
        runFenceCommand(action);
        sql_fence.id = next_local_id_++;
        local_actions_[sql_fence.id] = sql_fence;
      }
      std::vector<std::string> statements;
      for (const std::string_view statement : cluster::sql::fenceStatements(action.planned)) {
        statements.emplace_back(statement);
      }
      runSql(sql_fence, std::move(statements));
      return;
    }
    case ActionKind::kUnfence:
      runSql(action,
             {std::string(cluster::sql::kUnfenceReadOnly), std::string(cluster::sql::kReloadConf)});
      return;
    case ActionKind::kPromote:
      // One statement that ends without an error only once the node is out of recovery.
      runSql(action, {std::string(cluster::sql::kPromote)});
      return;
    case ActionKind::kCheckpoint:
      runSql(action, {std::string(cluster::sql::kCheckpoint)});
      return;
    case ActionKind::kReportBlockers:
      runSql(action, {std::string(cluster::sql::kBlockerTree)});
      return;
    case ActionKind::kCancelBlocker:
      runSql(action, {std::string(cluster::sql::kCancelRootBlockers)});
      return;
    case ActionKind::kTerminateBlocker:
      runSql(action, {std::string(cluster::sql::kTerminateRootBlockers)});
      return;
    case ActionKind::kAlert:
      if (action.level == cluster::AlertLevel::kCritical) {
        PGPIVOT_LOG_ERROR("cluster {}: {}", cluster_.name, action.reason);
      } else {
        PGPIVOT_LOG_WARN("cluster {}: {}", cluster_.name, action.reason);
      }
      return;
  }
}

void ClusterWatch::logEvent(cluster::Event event, const cluster::Action& action) {
  event.mono_ms = uv_now(loop_);
  event.epoch = action.epoch;
  event.failover_id = action.failover_id;
  sink_.writeLine(formatter_.line(event, wallMs()));
}

void ClusterWatch::runFenceCommand(const cluster::Action& action) {
  if (!fence_command_) {
    fence_command_ = std::make_unique<FenceCommand>(loop_);
  }
  const Node& node = nodes_[*action.node];
  if (fence_command_->running()) {
    report(action.id, cluster::ActionStatus::kFailed, "fence_command: another run is not done");
    return;
  }
  const FenceTarget target{.cluster = cluster_.name,
                           .host = node.address.host,
                           .port = node.address.port,
                           .failover_id = action.failover_id,
                           .epoch = action.epoch};
  const std::string command = substituteFenceCommand(cluster_.fence_command, target);
  PGPIVOT_LOG_WARN("cluster {}: fencing {}: running fence_command: {}", cluster_.name, node.name,
                   command);
  logEvent(cluster::Event{.event = "fence_command_started", .node = node.name, .sql = command},
           action);
  const uint64_t id = action.id;
  const std::string name = node.name;
  auto last_line = std::make_shared<std::string>();
  fence_command_->run(
      cluster_.fence_command, target, static_cast<uint64_t>(cluster_.fence_timeout.count()),
      [this, action, name, last_line](std::string_view stream, std::string_view line) {
        PGPIVOT_LOG_INFO("cluster {}: fence_command {} {}: {}", cluster_.name, name, stream, line);
        *last_line = std::string(line);
        logEvent(cluster::Event{.event = "fence_command_output",
                                .node = name,
                                .reason = std::string(line),
                                .result = std::string(stream)},
                 action);
      },
      [this, action, id, name, last_line](const FenceOutcome& outcome) {
        std::string error = outcome.error;
        if (!outcome.ok() && !last_line->empty()) {
          error += ": " + *last_line;
        }
        if (outcome.ok()) {
          PGPIVOT_LOG_INFO("cluster {}: fence_command fenced {} in {} ms", cluster_.name, name,
                           outcome.duration_ms);
        } else {
          PGPIVOT_LOG_ERROR("cluster {}: fence_command on {} failed: {}", cluster_.name, name,
                            error);
        }
        logEvent(cluster::Event{.event = "fence_command",
                                .node = name,
                                .duration_ms = outcome.duration_ms,
                                .result = outcome.ok() ? "ok" : "failed",
                                .error = error},
                 action);
        report(id, outcome.ok() ? cluster::ActionStatus::kOk : cluster::ActionStatus::kFailed,
               error);
      });
}

void ClusterWatch::runSql(const cluster::Action& action, std::vector<std::string> statements) {
  if (!action.node || *action.node >= nodes_.size()) {
    report(action.id, cluster::ActionStatus::kFailed, "no node");
    return;
  }
  if (nodes_[*action.node].action->busy()) {
    report(action.id, cluster::ActionStatus::kFailed, "another action is running on the node");
    return;
  }
  runStatements(*action.node, action.id, action.kind == cluster::ActionKind::kPromote,
                std::move(statements), 0);
}

void ClusterWatch::runStatements(std::size_t node, uint64_t id, bool long_running,
                                 std::vector<std::string> statements, std::size_t next) {
  const uint64_t deadline = long_running ? 65000 : 5000;  // sql::kPromote waits up to 60 s
  const std::string sql = statements[next];
  nodes_[node].action->run(
      sql, deadline,
      [this, node, id, long_running, statements = std::move(statements),
       next](ProbeOutcome outcome) mutable {
        if (outcome.kind != ProbeOutcome::Kind::kOk) {
          const bool unreachable = outcome.kind == ProbeOutcome::Kind::kRefused ||
                                   outcome.kind == ProbeOutcome::Kind::kTimeout;
          report(id,
                 unreachable ? cluster::ActionStatus::kUnreachable : cluster::ActionStatus::kFailed,
                 fmt::format("{} {}", outcome.sqlstate, outcome.message));
          return;
        }
        if (next + 1 < statements.size()) {
          runStatements(node, id, long_running, std::move(statements), next + 1);
          return;
        }
        uint64_t flushed_lsn = 0;  // sql::kFlushWal's answer, when it ran last
        if (const auto lsn = outcome.value("flushed_lsn")) {
          flushed_lsn = cluster::parseLsn(*lsn).value_or(0);
        }
        report(id, cluster::ActionStatus::kOk, {}, flushed_lsn);
      },
      next == 0);
}

bool ClusterWatch::persist(const std::string& payload, std::string& error) {
  if (cluster_.state_file.empty()) {
    return true;  // kept in memory only (documented in conf/pgpivot.ini)
  }
  // write, fsync, rename: a crash leaves the old file or the new one, never half of one.
  const std::string temp = cluster_.state_file + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    error = fmt::format("cannot write {}: {}", temp, std::strerror(errno));
    return false;
  }
  const std::string line = payload + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const bool synced = written && ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(temp.c_str(), cluster_.state_file.c_str()) != 0) {
    error = fmt::format("cannot write {}: {}", cluster_.state_file, std::strerror(errno));
    return false;
  }
  return true;
}

// --- admin and status ------------------------------------------------------------------------

cluster::AdminReply ClusterWatch::admin(const cluster::AdminCommand& command) {
  cluster::Output output = machine_->onAdmin(command, uv_now(loop_));
  cluster::AdminReply reply = output.admin.value_or(cluster::AdminReply{});
  apply(std::move(output));
  return reply;
}

void ClusterWatch::adminAndWait(const cluster::AdminCommand& command, ReportDone done) {
  const uint64_t now = uv_now(loop_);
  cluster::Output output = machine_->onAdmin(command, now);
  const cluster::AdminReply reply = output.admin.value_or(cluster::AdminReply{});
  Waiter waiter;
  waiter.report.cluster = cluster_.name;
  waiter.report.kind = std::string(cluster::toString(command.kind));
  if (!reply.accepted || reply.incident_id.empty()) {
    apply(std::move(output));
    for (const cluster::AdminCheck& check : reply.checks) {
      waiter.report.checks.push_back({check.name, check.passed, check.detail});
    }
    waiter.report.verdict = "refused before pausing anyone: " + reply.message;
    done(std::move(waiter.report));
    return;
  }
  // Bounded by the timeouts the run can meet, one after the other (a run that ends in
  // WAIT_OPERATOR is answered when it gets there).
  const cluster::Settings s = cluster::settingsFor(cluster_);
  waiter.id = reply.incident_id;
  waiter.started_ms = now;
  waiter.deadline_ms = now + s.drain_timeout_ms + s.elect_timeout_ms + 2 * s.catchup_timeout_ms +
                       s.fence_timeout_ms + s.promote_timeout_ms + s.verify_timeout_ms +
                       s.failover_pause_timeout_ms + 5000;
  waiter.report.failover_id = reply.incident_id;
  waiter.done = std::move(done);
  waiters_.push_back(std::move(waiter));
  apply(std::move(output));
}

void ClusterWatch::noteForWaiters(const cluster::Event& event) {
  for (Waiter& w : waiters_) {
    if (event.failover_id != w.id || !w.done) {
      continue;
    }
    admin::FailoverStepRow row;
    row.failover_id = w.id;
    row.cluster = cluster_.name;
    row.kind = w.report.kind;
    row.time_us = wallMs() * 1000;
    row.elapsed_us =
        static_cast<int64_t>(event.mono_ms - std::min(event.mono_ms, w.started_ms)) * 1000;
    const bool state_change = event.event == "state_change";
    row.step = state_change ? event.to : event.event;
    row.result = event.result.empty() ? "ok" : event.result;
    row.detail = event.node;
    if (!event.reason.empty()) {
      row.detail += (row.detail.empty() ? "" : ": ") + event.reason;
    }
    if (event.duration_ms.value_or(0) > 0) {
      row.detail += (row.detail.empty() ? "" : "; ") + std::to_string(*event.duration_ms) + " ms";
    }
    if (!event.error.empty()) {
      row.detail += "; " + event.error;
    }
    row.possibly_lost = possiblyLostOf(event);
    w.report.steps.push_back(std::move(row));
    admin::FailoverReport& r = w.report;
    if (const auto* v = cluster::findField(event.evidence, "transactions_drained")) {
      // A planned pause's answer (onDrained): the transactions it let finish, or those
      // drain_timeout gave up on.
      const int64_t* drained = std::get_if<int64_t>(v);
      const auto* open_field = cluster::findField(event.evidence, "transactions_open");
      const int64_t* open = open_field != nullptr ? std::get_if<int64_t>(open_field) : nullptr;
      const std::string running = std::to_string(drained != nullptr ? *drained : 0) +
                                  " transaction(s) running at the pause";
      w.left_open = open != nullptr ? *open : 0;
      if (w.left_open > 0) {
        r.checks.push_back(
            {"drained", false,
             "drain_timeout (" + std::to_string(cluster_.drain_timeout.count()) +
                 " ms) expired with " + std::to_string(w.left_open) +
                 " transaction(s) still open on the old primary; the fence aborts them and "
                 "their clients get 40001 (not committed) at their next statement (" +
                 running + ")"});
      } else {
        r.checks.push_back({"drained", event.result == "ok",
                            running + " finished on the old primary before the promotion, in " +
                                std::to_string(event.duration_ms.value_or(0)) + " ms"});
      }
    }
    if (completesIncident(event)) {
      r.completed = event.result == "ok";
      r.duration_us = static_cast<int64_t>(event.duration_ms.value_or(0)) * 1000;
      if (const auto* v = cluster::findField(event.evidence, "paused_ms")) {
        if (const auto* ms = std::get_if<int64_t>(v)) {
          r.paused_us = *ms * 1000;
        }
      }
      if (const auto* v = cluster::findField(event.evidence, "primary")) {
        if (const auto* name = std::get_if<std::string>(v)) {
          r.new_primary = *name;
        }
      }
      r.checks.push_back({"completed", r.completed,
                          (r.completed ? "" : std::string(event.result) + ": ") + event.reason});
      r.verdict = r.completed ? "completed" : event.result + ": " + event.reason;
      if (r.completed && w.left_open > 0) {
        r.verdict += "; the drain timed out with " + std::to_string(w.left_open) +
                     " transaction(s) still open (aborted by the fence; 40001 at their " +
                     "client's next statement)";
      }
      answer(w);
    } else if (state_change && (event.to == "WAIT_OPERATOR" || event.to == "SPLIT_BRAIN")) {
      r.duration_us = row.elapsed_us;
      r.paused_us = r.duration_us;  // still paused: clients wait for the operator
      r.checks.push_back({"completed", false, "stopped in " + event.to + ": " + event.reason});
      r.verdict = "stopped, an operator is needed: " + event.reason;
      answer(w);
    }
  }
  std::erase_if(waiters_, [](const Waiter& w) { return !w.done; });
}

void ClusterWatch::expireWaiters(uint64_t now) {
  for (Waiter& w : waiters_) {
    if (w.done && now >= w.deadline_ms) {
      w.report.duration_us = static_cast<int64_t>(now - w.started_ms) * 1000;
      w.report.checks.push_back({"completed", false,
                                 "still " + std::string(cluster::toString(machine_->state())) +
                                     " after " + std::to_string((now - w.started_ms) / 1000) +
                                     " s; see SHOW FAILOVERS"});
      w.report.verdict = "did not end in time";
      answer(w);
    }
  }
  std::erase_if(waiters_, [](const Waiter& w) { return !w.done; });
}

void ClusterWatch::answer(Waiter& waiter) {
  ReportDone done = std::move(waiter.done);
  waiter.done = nullptr;
  waiter.report.passed = std::all_of(waiter.report.checks.begin(), waiter.report.checks.end(),
                                     [](const admin::FailoverCheck& c) { return c.passed; });
  done(std::move(waiter.report));
}

void ClusterWatch::onDrained(uint64_t drain_id, int worker, int workers, int64_t transactions,
                             int64_t still_open) {
  if (drain_id == 0 || drain_id != drain_id_ || !drained_workers_.insert(worker).second) {
    return;  // an answer to an older pause, or this worker's again (the route was re-sent)
  }
  drained_transactions_ += transactions;
  drain_left_open_ += still_open;
  if (static_cast<int>(drained_workers_.size()) < workers) {
    return;
  }
  drain_id_ = 0;
  cluster::ActionResult result;
  result.id = drain_id;
  result.duration_ms = uv_now(loop_) - drain_started_ms_;
  result.details = cluster::Evidence{{"transactions_drained", drained_transactions_},
                                     {"transactions_open", drain_left_open_},
                                     {"workers", static_cast<int64_t>(workers)}};
  if (drain_left_open_ > 0) {
    // The switchover goes on: the fence aborts what is still open (a client idle in its
    // transaction would otherwise hold a planned switchover forever).
    result.error = "drain_timeout expired with " + std::to_string(drain_left_open_) +
                   " transaction(s) still open";
  }
  apply(machine_->onActionResult(result, uv_now(loop_)));
}

// Each worker reports every DataPathTracker::kReportIntervalMs; a report older than four
// intervals is from a worker that stopped (or has no client of this cluster any more).
void ClusterWatch::onDataPath(const DataPathReport& report) {
  data_path_[report.worker] = report;
  const uint64_t now = uv_now(loop_);
  constexpr uint64_t kFresh = 4 * DataPathTracker::kReportIntervalMs;
  std::vector<cluster::DataPathSample> sums(nodes_.size());
  std::vector<double> rates(nodes_.size(), 0.0);
  for (const auto& [worker, r] : data_path_) {
    if (r.at_ms + kFresh < now) {
      continue;
    }
    for (const DataPathNode& n : r.nodes) {
      const auto index = n.cluster == cluster_.name ? nodeIndex(n.node) : std::nullopt;
      if (!index) {
        continue;
      }
      cluster::DataPathSample& s = sums[*index];
      s.stalled_queries += n.stalled;
      s.oldest_stall_ms = std::max(s.oldest_stall_ms, n.oldest_stall_ms);
      s.queries_in_flight += n.owing;
      s.server_errors += static_cast<int64_t>(n.server_errors);
      if (r.interval_ms > 0) {
        rates[*index] +=
            static_cast<double>(n.transactions) * 1000.0 / static_cast<double>(r.interval_ms);
      }
    }
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    cluster::DataPathSample& s = sums[i];
    s.at_ms = now;
    s.stall_timeout_ms = static_cast<uint64_t>(config::queryStallTimeout(cluster_).count());
    s.transactions_per_s = static_cast<int64_t>(rates[i] + 0.5);
    nodes_[i].data_path = s;
    apply(machine_->onDataPath(i, s, now));
  }
}

std::optional<std::size_t> ClusterWatch::nodeIndex(const std::string& host_port) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].name == host_port) {
      return i;
    }
  }
  return std::nullopt;
}

void ClusterWatch::refreshStatus() {
  std::lock_guard lock(status_mutex_);
  status_cluster_.state = std::string(cluster::toString(machine_->state()));
  status_cluster_.reason = machine_->stateReason();
  status_cluster_.primary = routed_ ? nodes_[*routed_].name : "";
  status_cluster_.paused = machine_->clientsPaused();
  status_cluster_.failovers = static_cast<int64_t>(failovers_);
  int64_t healthy = 0;
  status_nodes_.clear();
  uint64_t primary_lsn = 0;
  for (const auto& node : nodes_) {
    if (node.last && node.last->ok() && !node.last->in_recovery) {
      primary_lsn = std::max(primary_lsn, node.last->current_lsn);
    }
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    admin::NodeRow row;
    row.cluster = cluster_.name;
    row.node = node.name;
    const cluster::NodeVerdict& verdict = machine_->health(i).verdict();
    row.health = std::string(cluster::toString(verdict.state));
    row.fenced = std::find(machine_->routing().fenced.begin(), machine_->routing().fenced.end(),
                           node.name) != machine_->routing().fenced.end();
    if (verdict.state == cluster::NodeState::kHealthy) {
      ++healthy;
    }
    if (node.last && node.last->ok()) {
      const cluster::ProbeSample& s = *node.last;
      row.role = s.in_recovery ? "standby" : "primary";
      row.timeline = s.timeline;
      const uint64_t lsn = s.in_recovery ? s.replay_lsn : s.current_lsn;
      row.lsn = cluster::formatLsn(lsn);
      if (primary_lsn > 0) {
        row.lag_bytes = static_cast<int64_t>(primary_lsn > lsn ? primary_lsn - lsn : 0);
      }
      row.probe_latency_us = static_cast<int64_t>(s.latency_ms) * 1000;
      row.lock_waiters = s.lock_waiters;
      row.oldest_lock_wait_us = static_cast<int64_t>(s.oldest_lock_wait_ms) * 1000;
      row.blocked_backends = s.blocked_backends;
      row.active_backends = s.active_backends;
      row.server_version = std::to_string(s.server_version_num);
    } else {
      row.role = "unknown";
    }
    row.stalled_queries = node.data_path.stalled_queries;
    row.last_probe_time_us = wallMs() * 1000;
    status_nodes_.push_back(std::move(row));
  }
  status_cluster_.healthy_nodes = healthy;
}

void ClusterWatch::status(std::vector<admin::ClusterRow>& clusters,
                          std::vector<admin::NodeRow>& nodes,
                          std::vector<admin::FailoverStepRow>& steps) const {
  std::lock_guard lock(status_mutex_);
  clusters.push_back(status_cluster_);
  nodes.insert(nodes.end(), status_nodes_.begin(), status_nodes_.end());
  steps.insert(steps.end(), steps_.begin(), steps_.end());
}

}  // namespace pgpivot::monitor
