#include "pgpivot/log/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace pgpivot::log {
namespace {

spdlog::level::level_enum levelFor(int verbose, bool quiet) {
  if (quiet) {
    return spdlog::level::warn;
  }
  if (verbose >= 2) {
    return spdlog::level::trace;
  }
  return verbose == 1 ? spdlog::level::debug : spdlog::level::info;
}

}  // namespace

Result<void> setup(const LogOptions& options) {
  std::shared_ptr<spdlog::logger> logger;
  try {
    spdlog::drop("pgpivot");  // a second set-up (tests) replaces the first
    if (options.logfile.empty()) {
      logger = spdlog::stderr_logger_mt("pgpivot");
    } else {
      logger = spdlog::basic_logger_mt("pgpivot", options.logfile);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return fail(sqlstate::kConfigFileError,
                fmt::format("cannot open logfile {}: {}", options.logfile, e.what()));
  }
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %P %^%l%$ %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  setVerbosity(options.verbose, options.quiet);
  return {};
}

void setVerbosity(int verbose, bool quiet) {
  spdlog::set_level(levelFor(verbose, quiet));
}

}  // namespace pgpivot::log
