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

}  // namespace
}  // namespace pgpivot::session
