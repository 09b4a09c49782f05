// track_extra_parameters (PgBouncer 1.20+): which names the key takes, what it refuses with
// file:line, what it warns about, and how SHOW CONFIG and the console's SET see it.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/values.hpp"
#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

using Names = std::vector<std::string>;

LoadResult parseLine(const std::string& value) {
  return parseConfig("[pgbouncer]\nauth_type = trust\ntrack_extra_parameters = " + value + "\n",
                     "t.ini");
}

std::vector<std::string> lines(const LoadResult& result) {
  std::vector<std::string> out;
  for (const Diagnostic& d : result.diagnostics) {
    out.push_back(d.toString());
  }
  return out;
}

std::string shown(const Config& config) {
  for (const Setting& setting : currentSettings(config)) {
    if (setting.name == "track_extra_parameters") {
      return setting.value;
    }
  }
  return "(not shown)";
}

TEST_CASE("track_extra_parameters defaults to PgBouncer's IntervalStyle and is in SHOW CONFIG",
          "[unit][config]") {
  const Config defaults;
  CHECK(defaults.track_extra_parameters == Names{"IntervalStyle"});
  CHECK(shown(defaults) == "IntervalStyle");
  const auto supported = supportedPgbouncerKeys();
  CHECK(std::find(supported.begin(), supported.end(), "track_extra_parameters") != supported.end());
}

TEST_CASE("track_extra_parameters takes a comma-separated list of parameter names",
          "[unit][config]") {
  const auto [value, names] = GENERATE(table<std::string, Names>({
      {"default_transaction_read_only", {"default_transaction_read_only"}},
      {" IntervalStyle ,  Default_Transaction_Read_Only",
       {"IntervalStyle", "Default_Transaction_Read_Only"}},
      {"myext.mode,myext._x$1", {"myext.mode", "myext._x$1"}},
      {"", {}},
      {"   ", {}},
  }));
  CAPTURE(value);
  const auto result = parseLine(value);
  CHECK(lines(result).empty());
  CHECK(result.config.track_extra_parameters == names);
}

TEST_CASE("track_extra_parameters refuses bad names with file:line, the key and the reason",
          "[unit][config]") {
  const auto [value, reason] = GENERATE(table<std::string, std::string>({
      {"IntervalStyle,,TimeZone", "empty parameter name"},
      {"IntervalStyle,", "empty parameter name"},
      {",IntervalStyle", "empty parameter name"},
      {"default transaction read only", "is not a parameter name"},
      {"1abc", "is not a parameter name"},
      {"$abc", "is not a parameter name"},
      {"a-b", "is not a parameter name"},
      {"a;SET x", "is not a parameter name"},
      {"\"quoted\"", "is not a parameter name"},
      {"myext..mode", "is not a parameter name"},
      {".mode", "is not a parameter name"},
      {"myext.", "ends with '.'"},
      {std::string(64, 'a'), "63-byte limit"},
      {"user", "is part of the login"},
      {"Database", "is part of the login"},
      {"options", "is part of the login"},
      {"server_version", "cannot be set by a client's session"},
      {"session_authorization", "cannot be set by a client's session"},
  }));
  CAPTURE(value);
  const auto result = parseLine(value);
  CHECK_FALSE(result.ok());
  REQUIRE(lines(result).size() == 1);
  CHECK_THAT(lines(result)[0], Catch::StartsWith("t.ini:3: error: track_extra_parameters: "
                                                 "invalid value") &&
                                   Catch::Contains(reason));
  CHECK(result.config.track_extra_parameters == Names{"IntervalStyle"});  // default stays
}

TEST_CASE("a 63-byte name is the longest track_extra_parameters takes", "[unit][config]") {
  const std::string name = "x." + std::string(61, 'a');
  const auto result = parseLine(name);
  CHECK(result.ok());
  CHECK(result.config.track_extra_parameters == Names{name});
}

TEST_CASE("track_extra_parameters warns about names PostgreSQL does not report", "[unit][config]") {
  const auto [value, warning] = GENERATE(table<std::string, std::string>({
      {"statement_timeout", "PostgreSQL does not report statement_timeout"},
      {"search_path", "only from version 18"},
      {"IntervalStyle, scram_iterations", "only from version 16"},
  }));
  CAPTURE(value);
  const auto result = parseLine(value);
  CHECK(result.ok());
  REQUIRE(lines(result).size() == 1);
  CHECK_THAT(lines(result)[0], Catch::StartsWith("t.ini:3: warning: track_extra_parameters: ") &&
                                   Catch::Contains(warning));
  // Reported ones, and an extension's (which pgpivot cannot know), pass in silence.
  CHECK(lines(parseLine("DateStyle, default_transaction_read_only, myext.mode")).empty());
}

TEST_CASE("the console's SET track_extra_parameters is checked as the file is", "[unit][config]") {
  Config config;
  REQUIRE(setSetting(config, "track_extra_parameters", "default_transaction_read_only"));
  CHECK(config.track_extra_parameters == Names{"default_transaction_read_only"});
  const auto bad = setSetting(config, "track_extra_parameters", "a,,b");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::StartsWith("track_extra_parameters: invalid value"));
  CHECK(config.track_extra_parameters == Names{"default_transaction_read_only"});
  // What SHOW CONFIG prints reads back as the same list.
  const auto again = parseLine(shown(config));
  CHECK(again.config.track_extra_parameters == config.track_extra_parameters);
}

TEST_CASE("parseParameterNames splits on commas only", "[unit][config]") {
  CHECK(parseParameterNames("a,b").value() == Names{"a", "b"});
  CHECK_FALSE(parseParameterNames("a b"));  // blanks do not separate names
  CHECK_FALSE(parseParameterNames("a,,b"));
  CHECK(parseParameterNames("").value().empty());
}

}  // namespace
}  // namespace pgpivot::config
