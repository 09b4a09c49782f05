// The [databases] connection-string tokenizer follows PgBouncer's cstr_get_pair exactly, so
// a pgbouncer.ini line means the same thing to pgpivot.
#include "config/connstring.hpp"

#include <catch2/catch.hpp>

namespace pgpivot::config {
namespace {

std::vector<std::pair<std::string, std::string>> pairs(std::string_view text) {
  const auto params = tokenizeConnString(text);
  REQUIRE(params);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : *params) {
    out.emplace_back(p.key, p.value);
  }
  return out;
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST_CASE("connection strings split into key=value pairs on blanks", "[unit][config]") {
  CHECK(pairs("host=localhost port=5432 dbname=app") ==
        Pairs{{"host", "localhost"}, {"port", "5432"}, {"dbname", "app"}});
  CHECK(pairs("  host=a\tport=1  ") == Pairs{{"host", "a"}, {"port", "1"}});
  CHECK(pairs("").empty());
  CHECK(pairs("   ").empty());
}

TEST_CASE("blanks may surround the equals sign", "[unit][config]") {
  CHECK(pairs("host = localhost port= 1 dbname =x") ==
        Pairs{{"host", "localhost"}, {"port", "1"}, {"dbname", "x"}});
}

TEST_CASE("single quotes keep blanks, and two quotes inside make one", "[unit][config]") {
  CHECK(pairs("connect_query='SELECT 1' user=u") ==
        Pairs{{"connect_query", "SELECT 1"}, {"user", "u"}});
  CHECK(pairs("connect_query='SET search_path = ''app'''") ==
        Pairs{{"connect_query", "SET search_path = 'app'"}});
  CHECK(pairs("password='p=w d'") == Pairs{{"password", "p=w d"}});
}

TEST_CASE("backslashes are ordinary characters, as in PgBouncer", "[unit][config]") {
  CHECK(pairs(R"(password='a\b\' user=x)") == Pairs{{"password", R"(a\b\)"}, {"user", "x"}});
  CHECK(pairs(R"(password=a\'b)") == Pairs{{"password", R"(a\'b)"}});
}

TEST_CASE("a value that merely contains a quote is not quoted", "[unit][config]") {
  CHECK(pairs("password=it's") == Pairs{{"password", "it's"}});
}

TEST_CASE("connection string syntax errors say what is wrong", "[unit][config]") {
  const auto [text, reason] = GENERATE(table<std::string, std::string>({
      {"host=", "empty value for host"},
      {"host=''", "empty value for host"},
      {"host", "expected '=' after host"},
      {"host localhost", "expected '=' after host"},
      {"=x", "missing parameter name before '='"},
      {"host='localhost", "unterminated quoted value for host"},
      {"q='it''s", "unterminated quoted value for q"},
      {"host='a'port=1", "expected a blank after the quoted value of host"},
  }));
  CAPTURE(text);
  const auto result = tokenizeConnString(text);
  REQUIRE_FALSE(result);
  CHECK(result.error().message == reason);
}

}  // namespace
}  // namespace pgpivot::config
