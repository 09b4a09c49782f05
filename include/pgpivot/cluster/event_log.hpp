// The failover event log's format (research §7.7): one JSON object per line, fields in a
// fixed order (ts, mono_ms, proxy, cluster, epoch, failover_id, event, from, to, node,
// role, reason, evidence, sql, duration_ms, result, error), empty fields left out,
// failover_id null outside an incident. Also the one-line summary for the main log.
// Not here: the file, its rotation, or reading the clock (the caller passes the wall
// time the line is written at).
#pragma once

#include <cstdint>
#include <string>

#include "pgpivot/cluster/failover_types.hpp"

namespace pgpivot::cluster {

class EventLogFormatter final {
 public:
  EventLogFormatter(std::string proxy, std::string cluster)
      : proxy_(std::move(proxy)), cluster_(std::move(cluster)) {}

  // One JSON object without the trailing newline. `wall_ms`: Unix time in ms.
  [[nodiscard]] std::string line(const Event& event, int64_t wall_ms) const;
  // "cluster main f-7-1: STEADY -> SUSPECT: L timeout, C timeout for 1.2 s"
  [[nodiscard]] std::string summary(const Event& event) const;

 private:
  std::string proxy_;
  std::string cluster_;
};

// 1795775398065 -> "2026-11-27T10:29:58.065Z"
std::string formatUtcMillis(int64_t wall_ms);

}  // namespace pgpivot::cluster
