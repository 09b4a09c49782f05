// The client's tracked parameters in their packed form, and the SETs built from them.
#include "pgpivot/session/params.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

namespace pgpivot::session {
namespace {

std::vector<std::pair<std::string, std::string>> entries(const TrackedParams& params) {
  std::vector<std::pair<std::string, std::string>> out;
  params.forEach([&](std::string_view name, std::string_view value) {
    out.emplace_back(std::string(name), std::string(value));
  });
  return out;
}

TEST_CASE("TrackedParams keeps tracked parameters only, under their canonical name",
          "[unit][params]") {
  TrackedParams params;
  CHECK(params.empty());
  CHECK(params.set("DATESTYLE", "ISO, MDY"));
  CHECK(params.set("application_name", "app"));
  CHECK_FALSE(params.set("search_path", "x"));
  CHECK(params.find("datestyle") == std::optional<std::string_view>("ISO, MDY"));
  CHECK(params.find("DateStyle") == std::optional<std::string_view>("ISO, MDY"));
  CHECK_FALSE(params.find("search_path"));
  CHECK_FALSE(params.find("TimeZone"));
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(entries(params) == Entries{{"DateStyle", "ISO, MDY"}, {"application_name", "app"}});
}

TEST_CASE("TrackedParams replaces a value in place, longer or shorter, and keeps the others",
          "[unit][params]") {
  TrackedParams params;
  params.set("client_encoding", "UTF8");
  params.set("TimeZone", "UTC");
  params.set("application_name", "");
  params.set("TimeZone", "America/Argentina/Buenos_Aires");
  CHECK(params.find("TimeZone") ==
        std::optional<std::string_view>("America/Argentina/Buenos_Aires"));
  params.set("client_encoding", "");
  CHECK(params.find("client_encoding") == std::optional<std::string_view>(""));
  params.set("TimeZone", "UTC");
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(entries(params) ==
        Entries{{"client_encoding", ""}, {"TimeZone", "UTC"}, {"application_name", ""}});
  params.shrink();
  CHECK(params.find("application_name") == std::optional<std::string_view>(""));
  params.clear();
  CHECK(params.empty());
  CHECK(entries(params).empty());
}

TEST_CASE("TrackedParams::setIfAbsent leaves a value the client chose", "[unit][params]") {
  TrackedParams params;
  params.set("application_name", "mine");
  CHECK_FALSE(params.setIfAbsent("application_name", "server default"));
  CHECK(params.setIfAbsent("IntervalStyle", "postgres"));
  CHECK_FALSE(params.setIfAbsent("server_version", "15.0"));
  CHECK(params.find("application_name") == std::optional<std::string_view>("mine"));
  CHECK(params.find("intervalstyle") == std::optional<std::string_view>("postgres"));
}

TEST_CASE("buildSetQuery sets what differs from the server, quoted", "[unit][params]") {
  TrackedParams wanted;
  wanted.set("DateStyle", "ISO, MDY");
  wanted.set("application_name", "it's");
  wanted.set("TimeZone", "UTC");
  const ParamMap server = {{"DateStyle", "ISO, MDY"}, {"TimeZone", "Europe/Paris"}};
  CHECK(buildSetQuery(wanted, server) == "SET application_name = 'it''s';SET TimeZone = 'UTC';");
  const ParamMap same = {
      {"DateStyle", "ISO, MDY"}, {"TimeZone", "UTC"}, {"application_name", "it's"}};
  CHECK(buildSetQuery(wanted, same).empty());
}

TEST_CASE("quoteLiteral reads the same whatever standard_conforming_strings is", "[unit][params]") {
  CHECK(quoteLiteral("plain") == "'plain'");
  CHECK(quoteLiteral("it's") == "'it''s'");
  // A backslash would escape the closing quote with the setting off: E'' with it doubled.
  CHECK(quoteLiteral("a\\'; DROP TABLE t; --") == "E'a\\\\''; DROP TABLE t; --'");
  CHECK(quoteLiteral("\\") == "E'\\\\'");
}

TEST_CASE("setQueryCannotFail: only an application_name to set may go unwaited", "[unit][params]") {
  TrackedParams wanted;
  wanted.set("application_name", "pgbench");
  wanted.set("TimeZone", "UTC");
  const ParamMap after_reset = {{"application_name", ""}, {"TimeZone", "UTC"}};
  CHECK(setQueryCannotFail(wanted, after_reset));
  const ParamMap other_zone = {{"application_name", ""}, {"TimeZone", "Europe/Paris"}};
  CHECK_FALSE(setQueryCannotFail(wanted, other_zone));  // a time zone may be refused
  const ParamMap same = {{"application_name", "pgbench"}, {"TimeZone", "UTC"}};
  CHECK(setQueryCannotFail(wanted, same));  // nothing to set at all
}

TEST_CASE("canonicalTrackedParam: built-in names, then track_extra_parameters in any case",
          "[unit][params]") {
  const std::vector<std::string> extra = {"default_transaction_read_only", "myext.Mode",
                                          "intervalstyle"};
  CHECK(canonicalTrackedParam("datestyle", extra) == std::optional<std::string_view>("DateStyle"));
  CHECK(canonicalTrackedParam("intervalstyle", extra) ==
        std::optional<std::string_view>("IntervalStyle"));
  CHECK(canonicalTrackedParam("DEFAULT_TRANSACTION_READ_ONLY", extra) ==
        std::optional<std::string_view>("default_transaction_read_only"));
  CHECK(canonicalTrackedParam("myext.mode", extra) ==
        std::optional<std::string_view>("myext.Mode"));
  CHECK_FALSE(canonicalTrackedParam("default_transaction_read_only"));
  CHECK_FALSE(canonicalTrackedParam("search_path", extra));
  CHECK_FALSE(canonicalTrackedParam("default_transaction_read_onl", extra));
}

TEST_CASE("TrackedParams keeps an extra parameter only when listed, then updates it as a built-in",
          "[unit][params]") {
  const std::vector<std::string> extra = {"Default_Transaction_Read_Only"};
  TrackedParams params;
  // Not listed (no list given: a ParameterStatus after login) -> not kept.
  CHECK_FALSE(params.set("default_transaction_read_only", "on"));
  CHECK(params.set("TimeZone", "UTC"));
  CHECK(params.set("default_transaction_read_only", "on", extra));
  CHECK(params.set("application_name", "app"));
  using Entries = std::vector<std::pair<std::string, std::string>>;
  // Kept under the list's spelling until the server spells it.
  CHECK(entries(params) == Entries{{"TimeZone", "UTC"},
                                   {"Default_Transaction_Read_Only", "on"},
                                   {"application_name", "app"}});
  // From now on a plain set() (the server's ParameterStatus) updates it, in place.
  CHECK(params.set("default_transaction_read_only", "off"));
  CHECK(params.set("DEFAULT_TRANSACTION_READ_ONLY", "a much longer value than before"));
  CHECK(params.find("default_transaction_read_only") ==
        std::optional<std::string_view>("a much longer value than before"));
  CHECK(params.set("TimeZone", "Europe/Paris"));
  CHECK(params.find("TimeZone") == std::optional<std::string_view>("Europe/Paris"));
  CHECK(params.find("application_name") == std::optional<std::string_view>("app"));
  CHECK_FALSE(params.find("search_path"));
  // A value cut at a NUL, as for a built-in one.
  CHECK(params.set("default_transaction_read_only", std::string_view("on\0x", 4)));
  CHECK(params.find("default_transaction_read_only") == std::optional<std::string_view>("on"));
}

TEST_CASE("TrackedParams::setIfAbsent adds listed extras under the server's spelling",
          "[unit][params]") {
  const std::vector<std::string> extra = {"DEFAULT_TRANSACTION_READ_ONLY", "myext.mode"};
  TrackedParams params;
  params.set("myext.MODE", "fast", extra);  // the login's value, the client's spelling
  // The welcome: every reported parameter, server spelling; only tracked ones are kept.
  CHECK(params.setIfAbsent("default_transaction_read_only", "off", extra));
  CHECK_FALSE(params.setIfAbsent("myext.mode", "slow", extra));  // the login's stays
  CHECK_FALSE(params.setIfAbsent("in_hot_standby", "off", extra));
  CHECK_FALSE(params.setIfAbsent("default_transaction_read_only", "on", extra));
  CHECK(params.setIfAbsent("DateStyle", "ISO, MDY", extra));
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(entries(params) == Entries{{"myext.mode", "fast"},
                                   {"default_transaction_read_only", "off"},
                                   {"DateStyle", "ISO, MDY"}});
  params.shrink();
  CHECK(params.find("MYEXT.MODE") == std::optional<std::string_view>("fast"));
}

TEST_CASE("buildSetQuery sets extra parameters by quoted name, matching the server in any case",
          "[unit][params]") {
  const std::vector<std::string> extra = {"Default_Transaction_Read_Only", "myext.mode"};
  TrackedParams wanted;
  wanted.set("default_transaction_read_only", "on", extra);
  wanted.set("application_name", "a");
  const ParamMap server = {{"application_name", "a"}, {"default_transaction_read_only", "off"}};
  CHECK(buildSetQuery(wanted, server) == "SET \"Default_Transaction_Read_Only\" = 'on';");
  CHECK_FALSE(setQueryCannotFail(wanted, server));  // only application_name may go unwaited
  const ParamMap same = {{"application_name", "a"}, {"default_transaction_read_only", "on"}};
  CHECK(buildSetQuery(wanted, same).empty());
  CHECK(setQueryCannotFail(wanted, same));
  // A parameter the server does not report is set every time (it cannot be compared).
  wanted.set("myext.mode", "x'y", extra);
  CHECK(buildSetQuery(wanted, same) == "SET \"myext.mode\" = 'x''y';");
}

}  // namespace
}  // namespace pgpivot::session
