// Helpers a backend uses to fill snapshots: SHOW CONFIG rows from a Config, and
// PgBouncer-style averages from two samples of a database's totals.
#include "pgpivot/admin/snapshot.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace pgpivot::admin {
namespace {

const ConfigRow& find(const std::vector<ConfigRow>& rows, const std::string& key) {
  for (const ConfigRow& row : rows) {
    if (row.key == key) {
      return row;
    }
  }
  FAIL("no config key " << key);
  return rows.front();
}

TEST_CASE("configRows shows value, default and whether SET may change it", "[unit][admin]") {
  config::Config config;
  config.listen_port = 7432;
  config.default_pool_size = 50;
  const auto rows = configRows(config);
  REQUIRE(rows.size() > 20);
  for (std::size_t i = 1; i < rows.size(); ++i) {
    CHECK(rows[i - 1].key < rows[i].key);  // PgBouncer lists keys sorted
  }
  const ConfigRow& port = find(rows, "listen_port");
  CHECK(port.value == "7432");
  CHECK(port.default_value == "6432");
  CHECK_FALSE(port.changeable);
  const ConfigRow& pool = find(rows, "default_pool_size");
  CHECK(pool.value == "50");
  CHECK(pool.default_value == "20");
  CHECK(pool.changeable);
  CHECK_FALSE(find(rows, "workers").changeable);
  CHECK(find(rows, "query_wait_timeout").value == "120");  // durations in seconds
}

TEST_CASE("computeAverages gives rates per second and means per event", "[unit][admin]") {
  StatTotals earlier{100, 300, 1000, 2000, 1'000'000, 600'000, 50'000};
  StatTotals later{160, 420, 7000, 8000, 1'600'000, 960'000, 110'000};
  const StatAverages avg = computeAverages(earlier, later, 60.0);
  CHECK(avg.xact_count == 1);
  CHECK(avg.query_count == 2);
  CHECK(avg.bytes_received == 100);
  CHECK(avg.bytes_sent == 100);
  CHECK(avg.xact_time_us == 10'000);  // 600 ms over 60 transactions
  CHECK(avg.query_time_us == 3'000);  // 360 ms over 120 queries
  CHECK(avg.wait_time_us == 1'000);   // 60 ms over 60 transactions

  SECTION("nothing happened") {
    const StatAverages idle = computeAverages(later, later, 60.0);
    CHECK(idle.xact_count == 0);
    CHECK(idle.xact_time_us == 0);
  }
  SECTION("a counter reset gives zero, not a negative rate") {
    const StatAverages reset = computeAverages(later, earlier, 60.0);
    CHECK(reset.xact_count == 0);
    CHECK(reset.bytes_sent == 0);
    CHECK(reset.query_time_us == 0);
  }
  SECTION("a zero period gives zero rates") {
    CHECK(computeAverages(earlier, later, 0.0).xact_count == 0);
  }
}

}  // namespace
}  // namespace pgpivot::admin
