// Reading pgpivot's INI file (a PgBouncer pgbouncer.ini works unchanged: [pgbouncer] is read
// as [pgpivot]) into a Config, and the cross-field rules a runnable setup must meet.
// Not here: applying a config (app/ does reload) or reading the auth file (auth/).
//
// Every problem becomes a Diagnostic; nothing throws. Unknown keys and PgBouncer keys that
// pgpivot does not implement yet are warnings; bad values and broken rules are errors, and a
// result with any error must not be started.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/config/config.hpp"
#include "pgpivot/config/diagnostics.hpp"
#include "pgpivot/core/result.hpp"

namespace pgpivot::config {

struct LoadResult {
  Config config;
  std::vector<Diagnostic> diagnostics;  // in file order, then validate()'s

  [[nodiscard]] bool ok() const;             // no errors; warnings are allowed
  [[nodiscard]] std::string report() const;  // every diagnostic, one per line
};

// Parses INI text; `filename` is used in diagnostics and to find %include files (relative
// to its directory). Calls validate() at the end. Paths such as auth_file stay as written.
[[nodiscard]] LoadResult parseConfig(std::string_view text, std::string_view filename);

// Reads and parses `path`. A read failure is a diagnostic (line 0). Relative auth_file,
// logfile, pidfile and failover_log paths are made absolute against the directory of the
// file they are written in (PgBouncer uses its working directory; pgpivot does not, so the
// same file means the same thing from any directory and under systemd). Config::path is
// made absolute too, so a reload finds the file again. Also checks that an auth_file the
// auth_type needs can be read. Blocking I/O: start-up and reload only.
[[nodiscard]] LoadResult loadConfig(const std::string& path);

// Cross-field rules: authentication has a password source, clusters exist and can fail
// over, pool sizes and ports are consistent. Diagnostics name the line from
// Config::sources, or Config::path with line 0 for a rule that fails on a default.
[[nodiscard]] std::vector<Diagnostic> validate(const Config& config);

// The [pgpivot] keys, for the README's migration notes and `SHOW CONFIG`. Sorted.
std::vector<std::string_view> supportedPgbouncerKeys();    // PgBouncer keys pgpivot honours
std::vector<std::string_view> unsupportedPgbouncerKeys();  // accepted with a warning, ignored
std::vector<std::string_view> pgpivotKeys();               // keys PgBouncer does not have
std::vector<std::string_view> clusterKeys();               // keys of [cluster.NAME]

// The effective value of every supported [pgpivot] key, formatted as it would be written in
// the file (durations in seconds, as PgBouncer's SHOW CONFIG), in key order.
struct Setting {
  std::string_view name;
  std::string value;
};
std::vector<Setting> currentSettings(const Config& config);

// The admin console's SET: one [pgpivot] key set as a line of the file would set it. The
// warning the value deserves (empty if none), or an error (message without a prefix) for
// an unknown key, a key pgpivot does not implement, or a bad value naming the key.
[[nodiscard]] Result<std::string> setSetting(Config& config, std::string_view key,
                                             std::string_view value);

}  // namespace pgpivot::config
