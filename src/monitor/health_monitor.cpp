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
  mailbox_.post([this] {
    clusters_.clear();  // closes timers, polls and libpq connections
    mailbox_.close();
  });
  thread_.join();
}

}  // namespace pgpivot::monitor
