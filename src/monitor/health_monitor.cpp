#include "pgpivot/monitor/health_monitor.hpp"

#include "cluster_watch.hpp"
#include "pgpivot/log/log.hpp"

namespace pgpivot::monitor {

HealthMonitor::HealthMonitor(std::shared_ptr<const config::Config> config, Publish publish)
    : config_(std::move(config)), publish_(std::move(publish)) {}

HealthMonitor::~HealthMonitor() {
  stop();
}

void HealthMonitor::start() {
  if (config_->clusters.empty()) {
    return;
  }
  uv_loop_init(&loop_);
  (void)mailbox_.init(&loop_);
  for (const auto& [name, cluster] : config_->clusters) {
    clusters_.push_back(std::make_unique<ClusterWatch>(&loop_, cluster, publish_));
  }
  thread_ = std::thread([this] { run(); });
  // Workers post data-path reports from their own threads, and start before this: they
  // read this flag, never thread_, which only the main thread touches.
  running_.store(true, std::memory_order_release);
}

void HealthMonitor::run() {
  for (auto& cluster : clusters_) {
    cluster->start();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void HealthMonitor::stop() {
  if (!thread_.joinable()) {
    return;
  }
  running_.store(false, std::memory_order_release);
  mailbox_.post([this] {
    std::lock_guard lock(clusters_mutex_);
    clusters_.clear();  // closes timers, polls and libpq connections
    mailbox_.close();
  });
  thread_.join();
}

void HealthMonitor::postDataPath(DataPathReport report) {
  if (!running_.load(std::memory_order_acquire)) {
    return;
  }
  mailbox_.post([this, report = std::move(report)] {
    for (auto& watch : clusters_) {
      watch->onDataPath(report);
    }
  });
}

void HealthMonitor::postDrained(const std::string& cluster, uint64_t drain_id, int worker,
                                int workers, int64_t transactions, int64_t still_open) {
  if (!running_.load(std::memory_order_acquire)) {
    return;
  }
  mailbox_.post([this, cluster, drain_id, worker, workers, transactions, still_open] {
    for (auto& watch : clusters_) {
      if (watch->name() == cluster) {
        watch->onDrained(drain_id, worker, workers, transactions, still_open);
      }
    }
  });
}

void HealthMonitor::status(std::vector<admin::ClusterRow>& clusters,
                           std::vector<admin::NodeRow>& nodes,
                           std::vector<admin::FailoverStepRow>& steps) const {
  std::lock_guard lock(clusters_mutex_);
  for (const auto& cluster : clusters_) {
    cluster->status(clusters, nodes, steps);
  }
}

void HealthMonitor::admin(const std::string& cluster, cluster::AdminKind kind,
                          const std::string& node, std::function<void(Result<std::string>)> done) {
  if (!running_.load(std::memory_order_acquire)) {
    done(fail(sqlstate::kFeatureNotSupported, "pgpivot: no [cluster.*] is configured"));
    return;
  }
  mailbox_.post([this, cluster, kind, node, done = std::move(done)] {
    const bool by_node = kind == cluster::AdminKind::kFence || kind == cluster::AdminKind::kUnfence;
    for (auto& watch : clusters_) {
      if (by_node ? !watch->nodeIndex(node) : watch->name() != cluster) {
        continue;
      }
      cluster::AdminCommand command;
      command.kind = kind;
      if (!node.empty()) {
        command.target = watch->nodeIndex(node);
        if (!command.target) {
          done(fail("42704", "pgpivot: cluster " + cluster + " has no node " + node));
          return;
        }
      }
      const cluster::AdminReply reply = watch->admin(command);
      if (!reply.accepted) {
        done(fail("55000", "pgpivot: " + reply.message));
        return;
      }
      done(reply.message);
      return;
    }
    done(fail("42704", by_node ? "pgpivot: no cluster has a node " + node
                               : "pgpivot: no cluster named " + cluster));
  });
}

void HealthMonitor::adminAndWait(const std::string& cluster, cluster::AdminKind kind,
                                 const std::string& node,
                                 std::function<void(Result<admin::FailoverReport>)> done) {
  if (!running_.load(std::memory_order_acquire)) {
    done(fail(sqlstate::kFeatureNotSupported, "pgpivot: no [cluster.*] is configured"));
    return;
  }
  mailbox_.post([this, cluster, kind, node, done = std::move(done)]() mutable {
    for (auto& watch : clusters_) {
      if (watch->name() != cluster) {
        continue;
      }
      cluster::AdminCommand command;
      command.kind = kind;
      if (!node.empty()) {
        command.target = watch->nodeIndex(node);
        if (!command.target) {
          done(fail("42704", "pgpivot: cluster " + cluster + " has no node " + node));
          return;
        }
      }
      watch->adminAndWait(command, std::move(done));
      return;
    }
    done(fail("42704", "pgpivot: no cluster named " + cluster));
  });
}

}  // namespace pgpivot::monitor
