// Where failover event-log lines go: the `failover_log` file (appended, flushed per line)
// or, when that is not set, the main log. Formatting is the cluster module's
// (EventLogFormatter); this only writes.
#pragma once

#include <cstdio>
#include <string>

namespace pgpivot::monitor {

class EventSink final {
 public:
  explicit EventSink(std::string path);
  EventSink(const EventSink&) = delete;
  EventSink& operator=(const EventSink&) = delete;
  ~EventSink();

  void writeLine(const std::string& line);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace pgpivot::monitor
