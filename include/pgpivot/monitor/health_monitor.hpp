// The health monitor: its own thread and libuv loop (never a worker's), one libpq probe
// connection per node of every [cluster.*], driven without blocking (PgProbe). It finds
// the primary, notices when it dies or stops being primary, follows the node that takes
// over, and tells the workers where writes go (ClusterRoute) through their mailboxes.
// Every decision goes to the failover event log as one JSON object per line.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pgpivot/admin/backend.hpp"
#include "pgpivot/admin/snapshot.hpp"
#include "pgpivot/cluster/failover_types.hpp"
#include "pgpivot/config/config.hpp"
#include "pgpivot/core/result.hpp"
#include "pgpivot/monitor/data_path.hpp"
#include "pgpivot/monitor/route.hpp"
#include "pgpivot/net/mailbox.hpp"

namespace pgpivot::monitor {

class ClusterWatch;

class HealthMonitor final {
 public:
  using Publish = std::function<void(const ClusterRoute&)>;

  // `publish` is called on the monitor's thread; it must only post to mailboxes.
  HealthMonitor(std::shared_ptr<const config::Config> config, Publish publish);
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;
  ~HealthMonitor();

  // Starts the thread (nothing to do when the config has no cluster).
  void start();
  // Any thread: stop probing, close every connection, join.
  void stop();

  // Any thread: what SHOW CLUSTERS / NODES / FAILOVERS show.
  // Any thread (a worker's janitor): what a worker saw of the clusters' nodes through its
  // server connections; summed over the workers and handed to each cluster's machine.
  void postDataPath(DataPathReport report);
  // Any thread (a worker): `worker` (of `workers`) answers the planned pause `drain_id`
  // (ClusterRoute::drain_id): no transaction of `cluster` runs there any more, or
  // `still_open` of them were still open when drain_timeout expired.
  void postDrained(const std::string& cluster, uint64_t drain_id, int worker, int workers,
                   int64_t transactions, int64_t still_open);
  void status(std::vector<admin::ClusterRow>& clusters, std::vector<admin::NodeRow>& nodes,
              std::vector<admin::FailoverStepRow>& steps) const;
  // Any thread: an admin command for `cluster`; `node` ("host:port") names the target
  // where the command takes one. `done` runs on the monitor's thread.
  // FENCE and UNFENCE name only a node: `cluster` may be empty, the node's cluster is found.
  void admin(const std::string& cluster, cluster::AdminKind kind, const std::string& node,
             std::function<void(pgpivot::Result<std::string>)> done);
  // Any thread: SWITCHOVER or DRILL, answered with its report once the run has ended (see
  // ClusterWatch::adminAndWait). `done` runs on the monitor's thread.
  void adminAndWait(const std::string& cluster, cluster::AdminKind kind, const std::string& node,
                    std::function<void(pgpivot::Result<admin::FailoverReport>)> done);

 private:
  void run();

  std::shared_ptr<const config::Config> config_;
  Publish publish_;
  uv_loop_t loop_{};
  net::Mailbox mailbox_;
  mutable std::mutex clusters_mutex_;  // the admin console reads status from other threads
  std::vector<std::unique_ptr<ClusterWatch>> clusters_;
  std::thread thread_;
  std::atomic<bool> running_{false};  // started and not stopping: other threads may post
};

}  // namespace pgpivot::monitor
