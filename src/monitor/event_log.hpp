// The failover event log (research/failover.md §7.7): one JSON object per line, each with
// a wall-clock and a monotonic timestamp, the cluster, its epoch and the event, to
// `failover_log` or, when that is not set, to the main log.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace pgpivot::monitor {

class EventLog final {
 public:
  explicit EventLog(std::string path);
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;
  ~EventLog();

  // Fields are written in order after ts, mono_ms, cluster, epoch and event. Values that
  // look like JSON numbers or booleans are written bare, the rest as strings.
  void write(const std::string& cluster, uint64_t epoch, const std::string& event,
             const std::vector<std::pair<std::string, std::string>>& fields);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

std::string jsonEscape(const std::string& text);

}  // namespace pgpivot::monitor
