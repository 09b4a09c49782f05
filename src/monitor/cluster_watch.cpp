#include "cluster_watch.hpp"

#include <fmt/format.h>

#include "pgpivot/log/log.hpp"

namespace pgpivot::monitor {

namespace {

// One round trip per node and tick. The timeline of a primary comes from the name of the
// WAL file being written (its first 8 hex digits), which changes the moment a promotion
// ends, unlike pg_control_checkpoint() which waits for the next checkpoint.
constexpr const char* kProbeSql =
    "SELECT pg_is_in_recovery() AS in_recovery, "
    "CASE WHEN pg_is_in_recovery() "
    "THEN (SELECT received_tli FROM pg_stat_wal_receiver) "
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END "
    "AS timeline, "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END "
    "AS lsn, "
    "(SELECT system_identifier FROM pg_control_system()) AS system_id";

}  // namespace

ClusterWatch::ClusterWatch(uv_loop_t* loop, const config::ClusterEntry& cluster,
                           HealthMonitor::Publish publish)
    : loop_(loop),
      cluster_(cluster),
      publish_(std::move(publish)),
      events_(cluster.failover_log),
      timer_(new uv_timer_t{}) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  for (const auto& node : cluster_.nodes) {
    NodeView view;
    view.address = node;
    std::vector<std::pair<std::string, std::string>> params = {
        {"host", node.host},
        {"port", std::to_string(node.port)},
        {"dbname", cluster_.monitor_dbname},
        {"user", cluster_.monitor_user},
        {"password", cluster_.monitor_password},
        {"application_name", "pgpivot-monitor"},
        {"sslmode", "disable"},
        {"connect_timeout", "10"},
        // A blackholed node must not hold a socket for minutes.
        {"keepalives", "1"},
        {"keepalives_idle", "5"},
        {"keepalives_interval", "1"},
        {"keepalives_count", "3"},
        {"tcp_user_timeout", std::to_string(cluster_.probe_timeout.count() + 1000)},
    };
    view.probe = std::make_unique<PgProbe>(loop_, std::move(params));
    nodes_.push_back(std::move(view));
  }
}

ClusterWatch::~ClusterWatch() {
  stop();
}

void ClusterWatch::start() {
  events_.write(cluster_.name, epoch_, "monitor_started",
                {{"nodes", std::to_string(nodes_.size())},
                 {"failover_mode", std::string(config::toString(cluster_.failover_mode))},
                 {"probe_interval_ms", std::to_string(cluster_.probe_interval.count())}});
  uv_timer_start(
      timer_, [](uv_timer_t* t) noexcept { static_cast<ClusterWatch*>(t->data)->tick(); }, 0,
      static_cast<uint64_t>(std::max<int64_t>(cluster_.probe_interval.count(), 50)));
}

void ClusterWatch::stop() {
  if (timer_ == nullptr) {
    return;
  }
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
  nodes_.clear();  // each PgProbe closes its handles and its libpq connection
}

std::string ClusterWatch::nodeName(std::size_t index) const {
  return fmt::format("{}:{}", nodes_[index].address.host, nodes_[index].address.port);
}

void ClusterWatch::tick() {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].probe->busy()) {
      continue;  // its deadline will answer
    }
    nodes_[i].probe->run(kProbeSql, static_cast<uint64_t>(cluster_.probe_timeout.count()),
                         [this, i](ProbeOutcome outcome) { onProbe(i, outcome); });
  }
}

void ClusterWatch::onProbe(std::size_t index, const ProbeOutcome& outcome) {
  NodeView& node = nodes_[index];
  const bool was_reachable = node.reachable || !node.probed;
  node.probed = true;
  node.latency_ms = outcome.latency_ms;
  if (outcome.kind == ProbeOutcome::Kind::kOk) {
    node.reachable = true;
    node.failing_since = 0;
    node.in_recovery = outcome.value("in_recovery").value_or("f") == "t";
    node.timeline = std::atoi(outcome.value("timeline").value_or("0").c_str());
    node.lsn = outcome.value("lsn").value_or("");
    node.system_id = outcome.value("system_id").value_or("");
    if (!was_reachable) {
      events_.write(cluster_.name, epoch_, "node_reachable",
                    {{"node", nodeName(index)},
                     {"role", node.in_recovery ? "standby" : "primary"},
                     {"timeline", std::to_string(node.timeline)}});
    }
  } else {
    const uint64_t now = uv_now(loop_);
    if (node.failing_since == 0) {
      node.failing_since = now;
    }
    node.reachable = false;
    node.last_error = outcome.message;
    if (was_reachable) {
      const char* kinds[] = {"ok", "timeout", "refused", "error"};
      events_.write(cluster_.name, epoch_, "probe_failed",
                    {{"node", nodeName(index)},
                     {"result", kinds[static_cast<int>(outcome.kind)]},
                     {"sqlstate", outcome.sqlstate},
                     {"error", outcome.message},
                     {"latency_ms", std::to_string(outcome.latency_ms)}});
    }
  }
  decide();
}

void ClusterWatch::decide() {
  const uint64_t now = uv_now(loop_);
  // 1. The routed primary: still the primary, and alive?
  if (primary_) {
    NodeView& current = nodes_[*primary_];
    const bool demoted = current.reachable && current.in_recovery;
    const bool dead =
        !current.reachable && current.failing_since != 0 &&
        now - current.failing_since >= static_cast<uint64_t>(cluster_.dead_after.count());
    // Another node promoted on a newer timeline: the external manager moved the primary.
    bool superseded = false;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i != *primary_ && nodes_[i].reachable && !nodes_[i].in_recovery &&
          nodes_[i].timeline > current.timeline && nodes_[i].timeline >= min_timeline_) {
        superseded = true;
      }
    }
    if (demoted || dead || superseded) {
      const std::string reason = demoted ? "primary is in recovery (NOT_PRIMARY)"
                                 : dead  ? "primary unreachable for dead_after (DOWN)"
                                         : "another node was promoted on a newer timeline";
      current.fenced = true;  // a former primary comes back only as a standby
      events_.write(
          cluster_.name, epoch_, "primary_lost",
          {{"node", nodeName(*primary_)},
           {"reason", reason},
           {"evidence", current.reachable
                            ? "in_recovery=" + std::string(current.in_recovery ? "t" : "f")
                            : current.last_error},
           {"timeline", std::to_string(current.timeline)}});
      events_.write(cluster_.name, epoch_, "fence",
                    {{"node", nodeName(*primary_)}, {"method", "stop_routing,close_connections"}});
      lost_at_ = now;
      route(std::nullopt, reason);
    } else {
      return;
    }
  }
  // 2. No primary routed: find the one valid primary (follow mode waits for an external
  //    manager to promote; research §3.3: not in recovery, timeline >= the highest seen,
  //    not fenced, same system).
  std::vector<std::size_t> candidates;
  int best_timeline = min_timeline_;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const NodeView& node = nodes_[i];
    if (!node.reachable || node.in_recovery || node.fenced || node.timeline < min_timeline_) {
      continue;
    }
    if (!expected_system_id_.empty() && node.system_id != expected_system_id_) {
      continue;
    }
    best_timeline = std::max(best_timeline, node.timeline);
    candidates.push_back(i);
  }
  std::vector<std::size_t> newest;
  for (const std::size_t i : candidates) {
    if (nodes_[i].timeline == best_timeline) {
      newest.push_back(i);
    }
  }
  if (newest.size() == 1) {
    route(newest.front(), lost_at_ != 0 ? "new primary found" : "primary discovered");
    return;
  }
  if (newest.size() > 1) {
    if (published_once_ || primary_) {
      events_.write(cluster_.name, epoch_, "split_brain",
                    {{"nodes", fmt::format("{} writable nodes on timeline {}", newest.size(),
                                           best_timeline)}});
    }
    if (!published_once_) {
      route(std::nullopt, "split brain: more than one writable node");
    }
    return;
  }
  // Nobody can take writes yet. Publish once so workers hold clients instead of sending
  // them to a node that is not primary.
  bool all_probed = true;
  for (const auto& node : nodes_) {
    all_probed = all_probed && node.probed;
  }
  if (!published_once_ && all_probed) {
    route(std::nullopt, "no primary found");
  }
}

void ClusterWatch::route(std::optional<std::size_t> primary, const std::string& reason) {
  const bool changed = primary != primary_ || !published_once_;
  if (!changed) {
    return;
  }
  ClusterRoute update;
  update.cluster = cluster_.name;
  update.pause_timeout = cluster_.failover_pause_timeout;
  update.reason = reason;
  if (primary) {
    ++epoch_;
    const NodeView& node = nodes_[*primary];
    min_timeline_ = std::max(min_timeline_, node.timeline);
    if (expected_system_id_.empty()) {
      expected_system_id_ = node.system_id;
    }
    update.primary = node.address;
    const uint64_t took = lost_at_ != 0 ? uv_now(loop_) - lost_at_ : 0;
    events_.write(cluster_.name, epoch_, lost_at_ != 0 ? "failover_complete" : "route",
                  {{"node", nodeName(*primary)},
                   {"role", "primary"},
                   {"timeline", std::to_string(node.timeline)},
                   {"lsn", node.lsn},
                   {"reason", reason},
                   {"duration_ms", std::to_string(took)}});
    PGPIVOT_LOG_INFO("cluster {}: writes go to {} (timeline {}, epoch {}): {}", cluster_.name,
                     nodeName(*primary), node.timeline, epoch_, reason);
    lost_at_ = 0;
  } else {
    update.paused = true;
    events_.write(cluster_.name, epoch_, "clients_paused", {{"reason", reason}});
    PGPIVOT_LOG_WARN("cluster {}: no primary, clients wait: {}", cluster_.name, reason);
  }
  update.epoch = epoch_;
  primary_ = primary;
  published_once_ = true;
  publish_(update);
}

}  // namespace pgpivot::monitor
