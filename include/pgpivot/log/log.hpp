// The one spdlog logger and its set-up (STYLE.md 3.7). Connection-scoped lines carry a
// prefix such as "C-0000002a appdb/alice@127.0.0.1:51234" supplied by the caller.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "pgpivot/core/result.hpp"

namespace pgpivot::log {

struct LogOptions {
  int verbose = 0;      // 0 info, 1 debug, 2+ trace
  bool quiet = false;   // only warnings and errors
  std::string logfile;  // empty: stderr
};

// Configures the default logger; an error (a log file that cannot be opened) says why.
[[nodiscard]] Result<void> setup(const LogOptions& options);
// Applies a new verbosity (SIGHUP reload).
void setVerbosity(int verbose, bool quiet);

}  // namespace pgpivot::log

// The level is checked before the arguments are evaluated: a disabled DEBUG line must not
// pay for formatting its prefix (the connection paths log several per connection).
#define PGPIVOT_LOG_AT(level, ...)                                          \
  do {                                                                      \
    if (spdlog::default_logger_raw()->should_log(level)) {                  \
      SPDLOG_LOGGER_CALL(spdlog::default_logger_raw(), level, __VA_ARGS__); \
    }                                                                       \
  } while (false)
#define PGPIVOT_LOG_TRACE(...) PGPIVOT_LOG_AT(spdlog::level::trace, __VA_ARGS__)
#define PGPIVOT_LOG_DEBUG(...) PGPIVOT_LOG_AT(spdlog::level::debug, __VA_ARGS__)
#define PGPIVOT_LOG_INFO(...) PGPIVOT_LOG_AT(spdlog::level::info, __VA_ARGS__)
#define PGPIVOT_LOG_WARN(...) PGPIVOT_LOG_AT(spdlog::level::warn, __VA_ARGS__)
#define PGPIVOT_LOG_ERROR(...) PGPIVOT_LOG_AT(spdlog::level::err, __VA_ARGS__)
