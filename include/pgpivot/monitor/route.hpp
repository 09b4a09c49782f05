// What the health monitor tells the workers about one cluster: where writes go now, and
// whether clients must wait (a failover is under way) or be refused (no safe primary).
// An immutable value, posted to every worker's mailbox; workers never ask for it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pgpivot/config/config.hpp"

namespace pgpivot::monitor {

struct ClusterRoute {
  std::string cluster;
  std::optional<config::NodeAddress> primary;  // nullopt: no node may take writes now
  uint64_t epoch = 0;                          // bumped at every change of primary
  bool paused = false;                         // hold new transactions (failover running)
  bool drop_connections = false;               // close every server of the cluster now
  // A planned pause (switchover, drill): nonzero while the monitor waits for every worker
  // to say, with this id, that no transaction of the cluster runs any more (drained).
  uint64_t drain_id = 0;
  config::Millis pause_timeout{30000};  // failover_pause_timeout
  std::string reason;                   // why, for logs and errors
};

}  // namespace pgpivot::monitor
