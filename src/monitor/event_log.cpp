#include "event_log.hpp"

#include "pgpivot/log/log.hpp"

namespace pgpivot::monitor {

EventSink::EventSink(std::string path) : path_(std::move(path)) {
  if (!path_.empty()) {
    file_ = std::fopen(path_.c_str(), "a");
    if (file_ == nullptr) {
      PGPIVOT_LOG_ERROR("cannot open failover_log {}; failover events go to the main log", path_);
    }
  }
}

EventSink::~EventSink() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

void EventSink::writeLine(const std::string& line) {
  if (file_ != nullptr) {
    std::fprintf(file_, "%s\n", line.c_str());
    std::fflush(file_);
  } else {
    PGPIVOT_LOG_INFO("failover event {}", line);
  }
}

}  // namespace pgpivot::monitor
