// State shared by the section handlers while one file (and its %include files) is read:
// the Config being filled, the diagnostics collected so far, and where the current line is.
// Private to the config module.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/config/config.hpp"
#include "pgpivot/config/diagnostics.hpp"

namespace pgpivot::config {

struct ParseContext {
  Config& config;
  std::vector<Diagnostic>& diagnostics;
  // Keys (named as in Config::sources) whose value was rejected: validate() skips the rules
  // that read them, so one typo is reported once and not again as a broken rule.
  std::set<std::string> failed;
  SourceLine where;           // the line being handled
  std::string section_label;  // "pgpivot" or "pgbouncer", as the file spells it

  void error(std::string message) { add(Diagnostic::Level::kError, std::move(message)); }
  void warning(std::string message) { add(Diagnostic::Level::kWarning, std::move(message)); }

  // Records where `key` was set. When it was set before, warns (the last value wins, as
  // in PgBouncer) and says where.
  void noteSource(const std::string& key, std::string_view what);

  // "line 12" when `earlier` is in the current file, else "other.ini:12".
  [[nodiscard]] std::string describe(const SourceLine& earlier) const;

 private:
  void add(Diagnostic::Level level, std::string message) {
    diagnostics.push_back(Diagnostic{level, where.file, where.line, std::move(message)});
  }
};

// Section handlers (sections.cpp); each is called once per `name = value` line.
void applyDatabaseLine(ParseContext& ctx, std::string_view name, std::string_view value);
void applyUserLine(ParseContext& ctx, std::string_view name, std::string_view value);
void applyClusterLine(ParseContext& ctx, ClusterEntry& cluster, std::string_view key,
                      std::string_view value);

// The [pgpivot] / [pgbouncer] section (keys.cpp).
void applyMainLine(ParseContext& ctx, std::string_view key, std::string_view value);

// validate() with the set of keys whose values were rejected while parsing (validate.cpp).
std::vector<Diagnostic> validateParsed(const Config& config, const std::set<std::string>& failed);

}  // namespace pgpivot::config
