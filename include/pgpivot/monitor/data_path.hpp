// The data path's evidence for failover (DESIGN.md "Failover, in outline" step 2): what the
// workers see of each cluster node through their own server connections. A worker's
// janitor fills a DataPathTracker from its server connections and pools, and every
// kReportIntervalMs posts the DataPathReport to the health monitor (HealthMonitor::
// postDataPath, a mailbox), which adds up the workers and hands each node's sum to the
// FailoverMachine as a cluster::DataPathSample.
//
// Nothing here runs on the hot path: a connection is "stalled" when it owes a reply
// (ReadyForQuery outstanding) and neither byte counter of its stream moved for longer
// than query_stall_timeout, as seen by the janitor (every 100 ms): no timestamp is taken
// per query. Values only; no sockets, no threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgpivot::monitor {

// One node, as one worker saw it over one report interval.
struct DataPathNode {
  std::string cluster;
  std::string node;              // "host:port", as the cluster's `nodes` name it
  int64_t stalled = 0;           // connections owing a reply, silent > query_stall_timeout
  uint64_t oldest_stall_ms = 0;  // how long the most silent of them has been
  int64_t owing = 0;             // connections owing a reply at all (queries in flight)
  uint64_t transactions = 0;     // completed during the interval
  uint64_t server_errors = 0;    // 57P0x and 08xxx ErrorResponses during the interval
};

struct DataPathReport {
  int worker = 0;
  uint64_t at_ms = 0;        // loop time of the worker (uv_now: the monotonic clock)
  uint64_t interval_ms = 0;  // since the worker's previous report
  std::vector<DataPathNode> nodes;
};

class DataPathTracker final {
 public:
  static constexpr uint64_t kReportIntervalMs = 500;

  // One server connection of a cluster database, seen at `now_ms`.
  struct ServerSeen {
    uint64_t id = 0;
    std::string_view cluster;
    std::string_view node;
    bool owes_reply = false;  // active, and a ReadyForQuery is outstanding
    uint64_t bytes_in = 0;    // the stream's counters
    uint64_t bytes_out = 0;
    uint64_t stall_timeout_ms = 0;
  };
  // One pool of a cluster database: its cumulative counters.
  struct PoolSeen {
    const void* pool = nullptr;
    std::string_view cluster;
    std::string_view node;
    uint64_t transactions = 0;
    uint64_t server_errors = 0;
  };

  // Every janitor tick: remembers when each connection last moved a byte.
  void beginPass(uint64_t now_ms);
  void server(const ServerSeen& seen);
  void pool(const PoolSeen& seen);
  // Forgets connections and pools not seen in this pass.
  void endPass();

  // A report is due (kReportIntervalMs since the last one).
  [[nodiscard]] bool due(uint64_t now_ms) const {
    return now_ms >= last_report_ms_ + kReportIntervalMs;
  }
  // The report for the interval that ends now; starts the next interval.
  DataPathReport report(int worker, uint64_t now_ms);

 private:
  struct Conn {
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t quiet_since = 0;  // when a byte last moved while a reply was owed; 0: owes none
    uint64_t pass = 0;
  };
  struct PoolCounters {
    uint64_t transactions = 0;  // at the last report
    uint64_t server_errors = 0;
    uint64_t pass = 0;
  };
  DataPathNode& node(std::string_view cluster, std::string_view node);

  uint64_t now_ = 0;
  uint64_t pass_ = 0;
  uint64_t last_report_ms_ = 0;
  std::unordered_map<uint64_t, Conn> conns_;
  std::unordered_map<const void*, PoolCounters> pools_;
  std::vector<DataPathNode> current_;  // this interval's, filled by the passes
};

}  // namespace pgpivot::monitor
