#include "event_log.hpp"

#include <fmt/format.h>
#include <uv.h>

#include <chrono>
#include <ctime>

#include "pgpivot/log/log.hpp"

namespace pgpivot::monitor {

namespace {

bool looksBare(const std::string& value) {
  if (value == "true" || value == "false" || value == "null") {
    return true;
  }
  if (value.empty() || value.size() > 18) {
    return false;
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (!(c >= '0' && c <= '9') && !(i == 0 && c == '-' && value.size() > 1)) {
      return false;
    }
  }
  return value.size() == 1 || value[0] != '0';
}

std::string wallClock() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03d}Z", text, ms % 1000);
}

}  // namespace

std::string jsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

EventLog::EventLog(std::string path) : path_(std::move(path)) {
  if (!path_.empty()) {
    file_ = std::fopen(path_.c_str(), "a");
    if (file_ == nullptr) {
      PGPIVOT_LOG_ERROR("cannot open failover_log {}; failover events go to the main log", path_);
    }
  }
}

EventLog::~EventLog() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

void EventLog::write(const std::string& cluster, uint64_t epoch, const std::string& event,
                     const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string line =
      fmt::format(R"({{"ts":"{}","mono_ms":{},"cluster":"{}","epoch":{},"event":"{}")", wallClock(),
                  uv_hrtime() / 1000000, jsonEscape(cluster), epoch, jsonEscape(event));
  for (const auto& [key, value] : fields) {
    if (looksBare(value)) {
      line += fmt::format(R"(,"{}":{})", jsonEscape(key), value);
    } else {
      line += fmt::format(R"(,"{}":"{}")", jsonEscape(key), jsonEscape(value));
    }
  }
  line += "}";
  if (file_ != nullptr) {
    std::fprintf(file_, "%s\n", line.c_str());
    std::fflush(file_);
  } else {
    PGPIVOT_LOG_INFO("failover event {}", line);
  }
}

}  // namespace pgpivot::monitor
