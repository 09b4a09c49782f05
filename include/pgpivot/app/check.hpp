// `pgpivot --check CONFIG [--connect]`: validate the configuration (and auth file) and
// report every diagnostic with file:line; with --connect, also log in to every server
// through libpq and report what it is. Runs before any worker exists, so blocking
// libpq calls are fine here.
#pragma once

#include <string>

namespace pgpivot::app {

// Returns the exit status: 0 valid (and, with connect, every node reachable), 1 otherwise.
int runCheck(const std::string& config_path, bool connect);

}  // namespace pgpivot::app
