// One [cluster.*] under watch: a probe connection per node, a tick every probe_interval,
// and the follow-mode routing decision: which node takes writes, when the primary is lost,
// and which node took over. Lives on the health monitor's loop.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "pgpivot/config/config.hpp"
#include "pgpivot/monitor/health_monitor.hpp"
#include "pgpivot/monitor/pg_probe.hpp"

namespace pgpivot::monitor {

// What the last probe of a node said.
struct NodeView {
  config::NodeAddress address;
  std::unique_ptr<PgProbe> probe;
  bool reachable = false;
  bool in_recovery = false;
  int timeline = 0;
  std::string lsn;
  std::string system_id;
  std::string last_error;
  uint64_t latency_ms = 0;
  uint64_t failing_since = 0;  // loop time of the first failure in a row; 0 while healthy
  bool fenced = false;         // a former primary: never routed to again
  bool probed = false;         // at least one answer since start
};

class ClusterWatch final {
 public:
  ClusterWatch(uv_loop_t* loop, const config::ClusterEntry& cluster,
               HealthMonitor::Publish publish);
  ClusterWatch(const ClusterWatch&) = delete;
  ClusterWatch& operator=(const ClusterWatch&) = delete;
  ~ClusterWatch();

  void start();
  void stop();

 private:
  void tick();
  void onProbe(std::size_t index, const ProbeOutcome& outcome);
  void decide();
  void route(std::optional<std::size_t> primary, const std::string& reason);
  std::string nodeName(std::size_t index) const;

  uv_loop_t* loop_;
  config::ClusterEntry cluster_;
  HealthMonitor::Publish publish_;
  EventLog events_;
  uv_timer_t* timer_;
  std::vector<NodeView> nodes_;
  std::optional<std::size_t> primary_;  // the node writes go to
  uint64_t epoch_ = 0;
  int min_timeline_ = 0;            // never route to a primary on an older timeline
  std::string expected_system_id_;  // every node of one cluster shares it
  uint64_t lost_at_ = 0;            // when the primary was declared lost; 0: not lost
  bool published_once_ = false;
};

}  // namespace pgpivot::monitor
