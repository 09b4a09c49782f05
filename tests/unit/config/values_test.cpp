// Parsing of single values: every kind of value the config file has, at its edges.
#include "config/values.hpp"

#include <catch2/catch.hpp>

namespace pgpivot::config {
namespace {

using namespace std::chrono_literals;

TEST_CASE("integers parse in decimal with surrounding blanks and a sign", "[unit][config]") {
  CHECK(parseInteger("42", 0, 100).value() == 42);
  CHECK(parseInteger("  7 ", 0, 100).value() == 7);
  CHECK(parseInteger("+5", 0, 100).value() == 5);
  CHECK(parseInteger("-5", -10, 100).value() == -5);
  CHECK(parseInteger("007", 0, 100).value() == 7);  // decimal, not octal
}

TEST_CASE("integers refuse junk, fractions and values out of range", "[unit][config]") {
  const auto [text, reason] = GENERATE(table<std::string, std::string>({
      {"", "expected an integer"},
      {"abc", "expected an integer"},
      {"12abc", "expected an integer"},
      {"1.5", "expected an integer"},
      {"0x10", "expected an integer"},
      {"1 2", "expected an integer"},
      {"101", "must be between 0 and 100"},
      {"-1", "must be between 0 and 100"},
      {"99999999999999999999999", "must be between 0 and 100"},
  }));
  CAPTURE(text);
  const auto result = parseInteger(text, 0, 100);
  REQUIRE_FALSE(result);
  CHECK(result.error().message == reason);
}

TEST_CASE("an open upper bound reads as at least", "[unit][config]") {
  CHECK(parseInteger("0", 1, INT64_MAX).error().message == "must be at least 1");
}

TEST_CASE("booleans take every spelling PgBouncer and PostgreSQL users write", "[unit][config]") {
  for (const char* yes : {"1", "true", "TRUE", "yes", "on", " On "}) {
    CAPTURE(yes);
    CHECK(parseBool(yes).value());
  }
  for (const char* no : {"0", "false", "no", "off", "OFF"}) {
    CAPTURE(no);
    CHECK_FALSE(parseBool(no).value());
  }
  CHECK_FALSE(parseBool("2"));
  CHECK_FALSE(parseBool(""));
  CHECK_FALSE(parseBool("enabled"));
}

TEST_CASE("durations are PgBouncer seconds, fractional or with a unit", "[unit][config]") {
  const auto [text, ms] = GENERATE(table<std::string, int64_t>({
      {"15", 15'000},
      {"0", 0},
      {"0.5", 500},
      {"1.25", 1'250},
      {"500ms", 500},
      {"500 ms", 500},
      {"15s", 15'000},
      {"2min", 120'000},
      {"1h", 3'600'000},
      {"1d", 86'400'000},
      {"1500us", 2},  // rounded to the nearest millisecond
      {"1us", 1},     // but never down to 0: "on" stays on
      {"0.0001", 1},
      {" 3 ", 3'000},
  }));
  CAPTURE(text);
  CHECK(parseDuration(text).value() == Millis(ms));
}

TEST_CASE("durations refuse negative values, unknown units and junk", "[unit][config]") {
  const auto [text, reason] = GENERATE(table<std::string, std::string>({
      {"-1", "must not be negative"},
      {"5m", "unknown unit 'm' (use us, ms, s, min, h or d)"},
      {"1 hour", "unknown unit 'hour' (use us, ms, s, min, h or d)"},
      {"1e3", "unknown unit 'e3' (use us, ms, s, min, h or d)"},
      {"", "expected a duration such as 15 (seconds), 0.5, 500ms, 2min, 1h"},
      {"ms", "expected a duration such as 15 (seconds), 0.5, 500ms, 2min, 1h"},
      {"1000000d", "too large (at most 100 years)"},
  }));
  CAPTURE(text);
  const auto result = parseDuration(text);
  REQUIRE_FALSE(result);
  CHECK(result.error().message == reason);
}

TEST_CASE("durations format back as seconds, as PgBouncer's SHOW CONFIG", "[unit][config]") {
  CHECK(formatDuration(15s) == "15");
  CHECK(formatDuration(0ms) == "0");
  CHECK(formatDuration(500ms) == "0.5");
  CHECK(formatDuration(1250ms) == "1.25");
  CHECK(formatDuration(1ms) == "0.001");
  CHECK(parseDuration(formatDuration(123456ms)).value() == 123456ms);
}

TEST_CASE("sizes are bytes with optional binary units in any case", "[unit][config]") {
  const int64_t max = INT64_MAX;
  CHECK(parseSize("4096", 0, max).value() == 4096);
  CHECK(parseSize("8kB", 0, max).value() == 8192);
  CHECK(parseSize("8 KiB", 0, max).value() == 8192);
  CHECK(parseSize("16MB", 0, max).value() == 16 * 1024 * 1024);
  CHECK(parseSize("1GB", 0, max).value() == 1024LL * 1024 * 1024);
  CHECK(parseSize("2g", 0, max).value() == 2LL * 1024 * 1024 * 1024);
  CHECK(parseSize("10b", 0, max).value() == 10);
  CHECK(parseSize("1TB", 0, max).error().message == "unknown unit 'tb' (use B, kB, MB or GB)");
  CHECK(parseSize("512", 1024, 2048).error().message == "must be between 1024 and 2048 bytes");
  CHECK(parseSize("-1", 0, max).error().message == "must be at least 0 bytes");
  CHECK_FALSE(parseSize("99999999999GB", 0, max));  // overflow is refused, not wrapped
  CHECK_FALSE(parseSize("kB", 0, max));
}

TEST_CASE("lists split on commas and blanks and drop empty items", "[unit][config]") {
  using V = std::vector<std::string>;
  CHECK(parseList("a, b,,c") == V{"a", "b", "c"});
  CHECK(parseList("user2 someadmin") == V{"user2", "someadmin"});
  CHECK(parseList(" * ") == V{"*"});
  CHECK(parseList("").empty());
  CHECK(parseList(" , ").empty());
}

TEST_CASE("enums accept their config spellings in any case", "[unit][config]") {
  CHECK(parsePoolMode("Transaction").value() == PoolMode::kTransaction);
  CHECK(parsePoolMode("statement").value() == PoolMode::kStatement);
  CHECK(parsePoolMode("sessions").error().message ==
        "expected a pool mode: session, transaction, statement");
  CHECK(parseAuthType("scram-sha-256").value() == AuthType::kScramSha256);
  CHECK(parseAuthType("MD5").value() == AuthType::kMd5);
  CHECK(parseAuthType("any").value() == AuthType::kAny);
  CHECK(parseAuthType("pam").error().message == "auth_type pam is not supported by pgpivot");
  CHECK(parseAuthType("ldap").error().message == "auth_type ldap is not supported by pgpivot");
  CHECK(parseFailoverMode("promote").value() == FailoverMode::kPromote);
  CHECK(parseFailoverMode("manual").value() == FailoverMode::kManual);
  CHECK_FALSE(parseFailoverMode("auto"));
}

TEST_CASE("enum names round-trip through toString", "[unit][config]") {
  for (auto mode : {PoolMode::kSession, PoolMode::kTransaction, PoolMode::kStatement}) {
    CHECK(parsePoolMode(toString(mode)).value() == mode);
  }
  for (auto type : {AuthType::kTrust, AuthType::kAny, AuthType::kPlain, AuthType::kMd5,
                    AuthType::kScramSha256, AuthType::kCert, AuthType::kHba}) {
    CHECK(parseAuthType(toString(type)).value() == type);
  }
  for (auto mode : {FailoverMode::kFollow, FailoverMode::kPromote, FailoverMode::kManual}) {
    CHECK(parseFailoverMode(toString(mode)).value() == mode);
  }
}

TEST_CASE("ports are 1 to 65535, or 0 where 0 means off or any", "[unit][config]") {
  CHECK(parsePort("6432", false).value() == 6432);
  CHECK(parsePort("65535", false).value() == 65535);
  CHECK(parsePort("0", true).value() == 0);
  CHECK_FALSE(parsePort("0", false));
  CHECK_FALSE(parsePort("65536", true));
}

TEST_CASE("node addresses are host:port with 5432 by default and IPv6 in brackets",
          "[unit][config]") {
  auto node = [](std::string_view text) { return parseNodeAddress(text).value(); };
  CHECK(node("10.0.0.1:5433").host == "10.0.0.1");
  CHECK(node("10.0.0.1:5433").port == 5433);
  CHECK(node("db1.example.net").port == 5432);
  CHECK(node("[::1]:6000").host == "::1");
  CHECK(node("[::1]:6000").port == 6000);
  CHECK(node("[fe80::2]").port == 5432);
  CHECK(parseNodeAddress("::1:5432").error().message ==
        "'::1:5432': write IPv6 addresses in brackets, e.g. [::1]:5432");
  CHECK(parseNodeAddress("db1:0").error().message == "'db1:0': port must be between 1 and 65535");
  CHECK_FALSE(parseNodeAddress("[::1"));
  CHECK_FALSE(parseNodeAddress("[::1]5432"));
  CHECK_FALSE(parseNodeAddress(":5432"));
  CHECK_FALSE(parseNodeAddress("db 1:5432"));
  CHECK(formatNode(node("[::1]:6000")) == "[::1]:6000");
  CHECK(formatNode(node("db1")) == "db1:5432");
}

TEST_CASE("node lists are comma-separated and fail on the first bad node", "[unit][config]") {
  const auto nodes = parseNodeList("10.0.0.1:5432, 10.0.0.2 ,[::1]:7").value();
  REQUIRE(nodes.size() == 3);
  CHECK(nodes[1].host == "10.0.0.2");
  CHECK(nodes[2].port == 7);
  CHECK(parseNodeList("").value().empty());
  CHECK(parseNodeList("a:1, b:x").error().message == "'b:x': port expected an integer");
}

TEST_CASE("misspelt keys find the key that was meant, and nothing far away", "[unit][config]") {
  const std::vector<std::string_view> keys{"default_pool_size", "pool_mode", "host", "port"};
  CHECK(closestMatch("defualt_pool_size", keys) == "default_pool_size");
  CHECK(closestMatch("Pool_Mod", keys) == "pool_mode");
  CHECK(closestMatch("hots", keys).empty());  // a swap is two edits: too far for 4 letters
  CHECK(closestMatch("hostt", keys) == "host");
  CHECK(closestMatch("listen_port", keys).empty());
  CHECK(closestMatch("x", keys).empty());
  CHECK(editDistance("kitten", "sitting") == 3);
}

}  // namespace
}  // namespace pgpivot::config
