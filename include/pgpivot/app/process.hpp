// The pgpivot process: logging, pid file, daemon mode, switching user, the workers, and
// the signals that steer them (SIGHUP reload, SIGINT safe shutdown, SIGTERM immediate
// shutdown, as PgBouncer). Runs on the main thread with its own small loop; it never
// touches a worker's loop, only posts to its mailbox.
#pragma once

#include <string>

namespace pgpivot::app {

struct ProcessOptions {
  std::string config_path;
  bool daemon = false;
  int verbose = 0;
  bool quiet = false;
  std::string user;  // -u: switch to this user after binding
};

// Loads the configuration and runs until shut down. Returns the exit status.
int runProcess(const ProcessOptions& options);

}  // namespace pgpivot::app
