// The one spdlog logger and its set-up (STYLE.md 3.7). Connection-scoped lines carry a
// prefix such as "C-0000002a appdb/alice@127.0.0.1:51234" supplied by the caller.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace pgpivot::log {

struct LogOptions {
  int verbose = 0;      // 0 info, 1 debug, 2+ trace
  bool quiet = false;   // only warnings and errors
  std::string logfile;  // empty: stderr
};

// Configures the default logger. Throws only at start-up (bad log file path).
void setup(const LogOptions& options);
// Applies a new verbosity (SIGHUP reload).
void setVerbosity(int verbose, bool quiet);

}  // namespace pgpivot::log

#define PGPIVOT_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define PGPIVOT_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define PGPIVOT_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define PGPIVOT_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define PGPIVOT_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
