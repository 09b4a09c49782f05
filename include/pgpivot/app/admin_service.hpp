// The admin console's and the metrics endpoint's view of the running process: implements
// admin::AdminBackend for one worker. A snapshot asks every worker (through its mailbox)
// for its own rows and sums them on the asking worker's loop; commands are carried out
// on every worker the same way. Process-level commands (RELOAD, SHUTDOWN) go to the
// supervisor through the hooks it installs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "pgpivot/admin/backend.hpp"
#include "pgpivot/cluster/failover_types.hpp"
#include "pgpivot/monitor/data_path.hpp"

namespace pgpivot::app {

class Worker;

// Set by the process; called on a worker's loop, must not block (they post elsewhere).
struct ProcessHooks {
  // Re-read config and auth file; `done` is called on the caller's loop with the
  // diagnostics (warnings) or the error.
  std::function<void(std::function<void(Result<std::vector<std::string>>)> done)> reload;
  std::function<void()> shutdown;
  // SET key = value: applied to a copy of the running config as a reload applies a new
  // file (until the next RELOAD re-reads the file); `done` as for reload.
  std::function<void(const std::string& key, const std::string& value,
                     std::function<void(Result<std::vector<std::string>>)> done)>
      set;
  // The health monitor's view (SHOW CLUSTERS / NODES / FAILOVERS); safe from any thread.
  std::function<void(std::vector<admin::ClusterRow>&, std::vector<admin::NodeRow>&,
                     std::vector<admin::FailoverStepRow>&)>
      cluster_status;
  // FAILOVER, SET_PRIMARY, RESUME_CLUSTER, FENCE, UNFENCE (cluster empty: found by node);
  // `done` runs on the monitor's thread.
  std::function<void(const std::string& cluster, cluster::AdminKind kind, const std::string& node,
                     std::function<void(Result<std::string>)> done)>
      cluster_admin;
  // SWITCHOVER and DRILL: `done` gets the run's report once it has ended, on the
  // monitor's thread.
  std::function<void(const std::string& cluster, cluster::AdminKind kind, const std::string& node,
                     std::function<void(Result<admin::FailoverReport>)> done)>
      cluster_run;
  // A worker's data-path evidence for the health monitor (monitor/data_path.hpp); any
  // thread, posts to the monitor's mailbox.
  std::function<void(monitor::DataPathReport)> data_path;
  // A planned pause (ClusterRoute::drain_id), this worker's one answer: no transaction
  // of `cluster` runs here any more (`still_open` 0), or drain_timeout expired with
  // `still_open` of them open. `transactions` were running when the pause came. Any
  // thread, posts to the monitor's mailbox.
  std::function<void(const std::string& cluster, uint64_t drain_id, int worker, int workers,
                     int64_t transactions, int64_t still_open)>
      drained;
};

class AdminService final : public admin::AdminBackend {
 public:
  explicit AdminService(Worker& worker) : worker_(worker) {}

  void snapshot(const admin::Parts& parts, admin::Completion<admin::Snapshot> done) override;
  void run(const admin::Command& command, admin::Completion<admin::CommandOutput> done) override;

  // From the worker's janitor: once every stats_period, this worker's totals are sampled
  // and the averages of the period that just ended replace the previous ones (PgBouncer's
  // avg_* columns; mergeSnapshot combines the workers').
  void sampleStats(uint64_t now_ms);
  // This worker's averages of the last complete stats period, by database.
  const std::map<std::string, admin::StatAverages>& averages() const { return averages_; }

 private:
  void runOnEveryWorker(const admin::Command& command,
                        admin::Completion<admin::CommandOutput> done);
  // SWITCHOVER / DRILL / FAILOVER: waits for the run and adds the failover errors clients got.
  void runIncident(const admin::Command& command, admin::Completion<admin::CommandOutput> done);
  // WAIT_CLOSE: completes once no server marked close_needed is left (bounded).
  void waitClose(const admin::Command& command, admin::Completion<admin::CommandOutput> done);
  // SUSPEND: every worker stops reading, then completes once their writes are flushed.
  void suspend(const admin::Command& command, admin::Completion<admin::CommandOutput> done);
  Worker& worker_;
  uint64_t sampled_at_ms_ = 0;  // loop time of the last sample; 0: none yet
  std::map<std::string, admin::StatTotals> sampled_;
  std::map<std::string, admin::StatAverages> averages_;
};

// Sums `part` into `total` (pools by database/user, stats by database, lists by name,
// databases by name; connection rows appended).
void mergeSnapshot(admin::Snapshot& total, admin::Snapshot&& part);

}  // namespace pgpivot::app
