// One [cluster.*] under watch, on the health monitor's loop: it runs the probes the
// cluster module asks for (stats, fresh connection) on every node through non-blocking
// libpq, feeds the results to the FailoverMachine, and carries out the machine's actions:
// persisting the routing state, telling the workers where writes go (ClusterRoute),
// pausing and resuming clients, fencing, promoting. All decisions are the machine's.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "fence_command.hpp"
#include "pgpivot/admin/backend.hpp"
#include "pgpivot/admin/snapshot.hpp"
#include "pgpivot/cluster/event_log.hpp"
#include "pgpivot/cluster/failover.hpp"
#include "pgpivot/config/config.hpp"
#include "pgpivot/monitor/health_monitor.hpp"
#include "pgpivot/monitor/pg_probe.hpp"

namespace pgpivot::monitor {

class ClusterWatch final {
 public:
  ClusterWatch(uv_loop_t* loop, const config::ClusterEntry& cluster,
               HealthMonitor::Publish publish);
  ClusterWatch(const ClusterWatch&) = delete;
  ClusterWatch& operator=(const ClusterWatch&) = delete;
  ~ClusterWatch();

  void start();
  void stop();
  const std::string& name() const { return cluster_.name; }

  // An admin command (SWITCHOVER, FAILOVER, DRILL, SET_PRIMARY, RESUME, FENCE, UNFENCE)
  // for this cluster.
  cluster::AdminReply admin(const cluster::AdminCommand& command);
  // A worker's data-path report (the part about this cluster's nodes).
  void onDataPath(const DataPathReport& report);
  // A worker's answer to the planned pause `drain_id`: the pause action is reported done
  // once all `workers` have answered, each with the transactions that were running at
  // the pause and those still open (drain_timeout expired there; 0: drained).
  void onDrained(uint64_t drain_id, int worker, int workers, int64_t transactions,
                 int64_t still_open);
  // SWITCHOVER or DRILL, answered once the run has ended: completed or aborted, stopped
  // waiting for an operator, or still running after every state timeout it could meet.
  // A refused run is answered at once, with the pre-checks (failover_id empty). `done`
  // runs on this loop.
  using ReportDone = std::function<void(Result<admin::FailoverReport>)>;
  void adminAndWait(const cluster::AdminCommand& command, ReportDone done);
  // Copies of what SHOW CLUSTERS / SHOW NODES / SHOW FAILOVERS show.
  void status(std::vector<admin::ClusterRow>& clusters, std::vector<admin::NodeRow>& nodes,
              std::vector<admin::FailoverStepRow>& steps) const;
  std::optional<std::size_t> nodeIndex(const std::string& host_port) const;

 private:
  struct Node {
    config::NodeAddress address;
    std::string name;                  // "host:port"
    std::unique_ptr<PgProbe> stats;    // L: persistent connection
    std::unique_ptr<PgProbe> connect;  // C: a fresh connection each time
    std::unique_ptr<PgProbe> action;   // fence, promote, checkpoint, blockers
    std::unique_ptr<PgProbe> write;    // W: the heartbeat, on its own kept connection
    uint64_t next_stats_ms = 0;
    // The machine changed state while L was in flight here: that answer predates the new
    // state, so L runs again as soon as it is in rather than at the next tick.
    bool restats_on_answer = false;
    uint64_t next_connect_ms = 0;
    uint64_t next_write_ms = 0;
    bool write_on = false;        // the machine wants W on this node now
    uint64_t write_run = 0;       // answers of an older run (before a reset) are dropped
    bool write_creating = false;  // heartbeat_create: the CREATE is running
    std::optional<cluster::ProbeSample> last;  // for SHOW NODES
    cluster::DataPathSample data_path;         // summed over the workers, for SHOW NODES
  };

  void tick();
  void tickNow();  // a tick at once (next loop turn), then every probe_interval / 4
  void onStats(std::size_t index, uint64_t sent_ms, const ProbeOutcome& outcome);
  void onConnect(std::size_t index, uint64_t sent_ms, const ProbeOutcome& outcome);
  void scheduleWrite(std::size_t index, uint64_t now);
  void startWrite(std::size_t index, uint64_t now);
  void onWrite(std::size_t index, uint64_t run, uint64_t sent_ms, bool creating,
               const ProbeOutcome& outcome);
  void apply(cluster::Output output);
  void execute(const cluster::Action& action);
  void report(uint64_t id, cluster::ActionStatus status, std::string error = {},
              uint64_t flushed_lsn = 0);
  // Runs `statements` one after the other on the node's action connection; the action is
  // kOk once the last one ran without an error.
  void runSql(const cluster::Action& action, std::vector<std::string> statements);
  // kFence with a fence_command: the command's exit status is the action's result; the
  // SQL fence runs beside it and its result is only logged.
  void runFenceCommand(const cluster::Action& action);
  void logEvent(cluster::Event event, const cluster::Action& action);
  void runStatements(std::size_t node, uint64_t id, bool long_running,
                     std::vector<std::string> statements, std::size_t next);
  void publishRoute(bool paused, bool drop_connections);
  bool persist(const std::string& payload, std::string& error);
  cluster::RoutingState restore();
  std::vector<std::pair<std::string, std::string>> params(const config::NodeAddress& node) const;
  void refreshStatus();
  // Runs being waited for (adminAndWait): collects their steps, answers when they end.
  struct Waiter {
    std::string id;
    uint64_t started_ms = 0;
    uint64_t deadline_ms = 0;
    admin::FailoverReport report;
    ReportDone done;
    int64_t left_open = 0;  // transactions the drain gave up on (drain_timeout)
  };
  void noteForWaiters(const cluster::Event& event);
  void expireWaiters(uint64_t now);
  void answer(Waiter& waiter);

  uv_loop_t* loop_;
  config::ClusterEntry cluster_;
  HealthMonitor::Publish publish_;
  EventSink sink_;
  cluster::EventLogFormatter formatter_;
  std::unique_ptr<cluster::FailoverMachine> machine_;
  uv_timer_t* timer_;
  std::vector<Node> nodes_;
  std::vector<Waiter> waiters_;
  std::map<int, DataPathReport> data_path_;  // each worker's newest report
  std::unique_ptr<FenceCommand> fence_command_;
  uint64_t next_local_id_ = uint64_t{1} << 62;  // SQL run beside a fence_command
  std::map<uint64_t, cluster::Action> local_actions_;
  std::deque<cluster::Output> backlog_;  // outputs produced while one is being applied
  bool applying_ = false;
  std::optional<std::size_t> routed_;  // what the workers were last told
  std::string proxy_id_;               // the heartbeat row's key: host name and cluster
  bool write_setup_warned_ = false;    // a heartbeat setup error is logged once
  cluster::ClusterState last_state_ = cluster::ClusterState::kDiscovering;
  uint64_t epoch_ = 0;

  // A planned pause (kPauseClients, planned) waiting for the workers' drained answers.
  uint64_t drain_id_ = 0;  // the action's id; 0: none
  uint64_t drain_started_ms_ = 0;
  std::set<int> drained_workers_;
  int64_t drained_transactions_ = 0;
  int64_t drain_left_open_ = 0;

  mutable std::mutex status_mutex_;  // guards the copies below (read by the admin console)
  admin::ClusterRow status_cluster_;
  std::vector<admin::NodeRow> status_nodes_;
  std::vector<admin::FailoverStepRow> steps_;
  std::string history_incident_;    // the run the newest row of steps_ belongs to
  int64_t history_started_us_ = 0;  // and when its first row was written
  uint64_t failovers_ = 0;
};

}  // namespace pgpivot::monitor
