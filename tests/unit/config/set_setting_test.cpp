// The admin console's SET: one [pgpivot] key, set as a line of the file sets it.
#include <catch2/catch.hpp>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

TEST_CASE("setSetting changes one key as the file would, and names the key when it refuses",
          "[unit][config]") {
  Config config;
  REQUIRE(setSetting(config, "default_pool_size", " 7 "));
  CHECK(config.default_pool_size == 7);
  REQUIRE(setSetting(config, "Query_Timeout", "2.5"));
  CHECK(config.query_timeout.count() == 2500);
  REQUIRE(setSetting(config, "admin_users", "alice, bob"));
  CHECK(config.admin_users == std::vector<std::string>{"alice", "bob"});

  const auto bad = setSetting(config, "default_pool_size", "lots");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().sqlstate == "22023");
  CHECK_THAT(bad.error().message, Catch::StartsWith("default_pool_size: invalid value 'lots'"));
  CHECK(config.default_pool_size == 7);

  const auto unknown = setSetting(config, "default_pool_sise", "3");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().sqlstate == "22023");
  CHECK_THAT(unknown.error().message, Catch::Contains("did you mean 'default_pool_size'"));

  const auto ignored = setSetting(config, "transaction_timeout", "3");
  REQUIRE_FALSE(ignored);
  CHECK_THAT(ignored.error().message, Catch::Contains("not supported"));
}

}  // namespace
}  // namespace pgpivot::config
