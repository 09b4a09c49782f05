// The [cluster.NAME] detection and failover keys: each profile's thresholds, explicit
// values overriding the profile in either order, the value checks, and the reference
// conf's commented defaults for these keys.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

using namespace std::chrono_literals;

const std::string kPrefix =
    "[pgpivot]\nauth_type = trust\n[databases]\nappdb = cluster=main\n"
    "[cluster.main]\nnodes = a, b\nmonitor_user = m\n";

LoadResult parseCluster(const std::string& lines) {
  return parseConfig(kPrefix + lines, "t.ini");
}

std::vector<std::string> diagnostics(const LoadResult& result) {
  std::vector<std::string> out;
  for (const Diagnostic& d : result.diagnostics) {
    out.push_back(d.toString());
  }
  return out;
}

TEST_CASE("each profile sets the three detection thresholds", "[unit][config]") {
  struct Row {
    const char* profile;
    Millis dead, unresponsive, write_stuck;
  };
  const Row row =
      GENERATE(Row{"fast", 3s, 3s, 10s}, Row{"default", 5s, 8s, 20s}, Row{"safe", 10s, 30s, 60s});
  CAPTURE(row.profile);
  const auto result = parseCluster(std::string("profile = ") + row.profile + "\n");
  INFO(result.report());
  REQUIRE(result.ok());
  const ClusterEntry& c = result.config.clusters.at("main");
  CHECK(c.dead_after == row.dead);
  CHECK(c.unresponsive_after == row.unresponsive);
  CHECK(c.write_stuck_after == row.write_stuck);
}

TEST_CASE("without a profile line the thresholds are the default profile's", "[unit][config]") {
  const auto result = parseCluster("");
  REQUIRE(result.ok());
  const ClusterEntry& c = result.config.clusters.at("main");
  CHECK(c.profile == "default");
  CHECK(c.dead_after == kProfileDefault.dead_after);
  CHECK(c.unresponsive_after == kProfileDefault.unresponsive_after);
  CHECK(c.write_stuck_after == kProfileDefault.write_stuck_after);
}

TEST_CASE("an explicit threshold wins over the profile whichever line comes first",
          "[unit][config]") {
  const std::string lines = GENERATE(std::string("profile = safe\ndead_after = 2\n"),
                                     std::string("dead_after = 2\nprofile = safe\n"));
  CAPTURE(lines);
  const auto result = parseCluster(lines);
  INFO(result.report());
  REQUIRE(result.ok());
  const ClusterEntry& c = result.config.clusters.at("main");
  CHECK(c.dead_after == 2s);
  CHECK(c.unresponsive_after == 30s);  // still the profile's
  CHECK(c.write_stuck_after == 60s);
}

TEST_CASE("the failover keys fill their ClusterEntry fields", "[unit][config]") {
  const auto result = parseCluster(
      "crash_recovery_grace = 45\nunresponsive_after = 7s\nwrite_stuck_after = 2min\n"
      "lock_waiters_warn = 25\noldest_lock_wait_warn = 1500ms\n"
      "lock_pileup_action = Terminate_Blocker\nlock_pileup_grace = 0\n"
      "max_lag_on_failover = 16MB\nfailover_cooldown = 0\nmax_failovers_per_hour = 5\n"
      "search_primary_timeout = 300\nfailover_pause_timeout = 10\ndrain_timeout = 1500ms\n"
      "state_file = /var/lib/pgpivot/main.state\n");
  INFO(result.report());
  REQUIRE(result.ok());
  const ClusterEntry& c = result.config.clusters.at("main");
  CHECK(c.crash_recovery_grace == 45s);
  CHECK(c.unresponsive_after == 7s);
  CHECK(c.write_stuck_after == 120s);
  CHECK(c.lock_waiters_warn == 25);
  CHECK(c.oldest_lock_wait_warn == 1500ms);
  CHECK(c.lock_pileup_action == LockPileupAction::kTerminateBlocker);
  CHECK(c.lock_pileup_grace == 0ms);
  CHECK(c.max_lag_on_failover == 16 * 1024 * 1024);
  CHECK(c.failover_cooldown == 0ms);
  CHECK(c.max_failovers_per_hour == 5);
  CHECK(c.search_primary_timeout == 300s);
  CHECK(c.failover_pause_timeout == 10s);
  CHECK(c.drain_timeout == 1500ms);
  CHECK(c.state_file == "/var/lib/pgpivot/main.state");
}

TEST_CASE("bad failover values are errors naming the line and the key", "[unit][config]") {
  const auto result = parseCluster(
      "dead_after = 0\nlock_pileup_action = kill\nmax_failovers_per_hour = 0\n"
      "max_lag_on_failover = lots\nlock_waiters_warn = -1\n");
  CHECK_FALSE(result.ok());
  CHECK(diagnostics(result) ==
        std::vector<std::string>{
            "t.ini:8: error: cluster main: dead_after: invalid value '0': must be greater than 0",
            "t.ini:9: error: cluster main: lock_pileup_action: invalid value 'kill': expected "
            "alert, cancel_blocker or terminate_blocker",
            "t.ini:10: error: cluster main: max_failovers_per_hour: invalid value '0': must be "
            "between 1 and 100",
            "t.ini:11: error: cluster main: max_lag_on_failover: invalid value 'lots': expected "
            "a size such as 4096, 8kB, 16MB or 1GB",
            "t.ini:12: error: cluster main: lock_waiters_warn: invalid value '-1': must be "
            "between 1 and 1000000",
        });
}

TEST_CASE("a bad threshold is not silently replaced by the profile's", "[unit][config]") {
  const auto result = parseCluster("unresponsive_after = soon\nprofile = fast\n");
  CHECK_FALSE(result.ok());
  // The error stands; the profile did not overwrite the key that failed.
  CHECK(result.config.clusters.at("main").unresponsive_after == kProfileDefault.unresponsive_after);
  CHECK(result.config.clusters.at("main").dead_after == kProfileFast.dead_after);
}

// The reference conf documents each of these keys as a commented default; uncommented,
// those lines must give exactly the defaults of a ClusterEntry.
TEST_CASE("the reference conf's commented failover defaults are the real defaults",
          "[unit][config]") {
  std::ifstream in(std::filesystem::path(PGPIVOT_SOURCE_DIR) / "conf" / "pgpivot.ini");
  std::string text;
  bool inside = false;
  static const std::regex kSetting(R"(^;([a-z_0-9]+) =(.*)$)");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("[")) {
      inside = line == "[cluster.main]";
    } else if (std::smatch m; inside && std::regex_match(line, m, kSetting)) {
      text += m[1].str() + " =" + m[2].str() + "\n";
    }
  }
  for (const char* key :
       {"dead_after", "unresponsive_after", "write_stuck_after", "crash_recovery_grace",
        "lock_waiters_warn", "oldest_lock_wait_warn", "lock_pileup_action", "lock_pileup_grace",
        "max_lag_on_failover", "failover_cooldown", "max_failovers_per_hour",
        "search_primary_timeout", "failover_pause_timeout", "drain_timeout", "state_file"}) {
    CAPTURE(key);
    CHECK(text.find(std::string(key) + " =") != std::string::npos);
  }
  const auto parsed = parseCluster(text);
  INFO(parsed.report());
  REQUIRE(parsed.ok());
  const ClusterEntry& got = parsed.config.clusters.at("main");
  const ClusterEntry want;
  CHECK(got.dead_after == want.dead_after);
  CHECK(got.unresponsive_after == want.unresponsive_after);
  CHECK(got.write_stuck_after == want.write_stuck_after);
  CHECK(got.crash_recovery_grace == want.crash_recovery_grace);
  CHECK(got.lock_waiters_warn == want.lock_waiters_warn);
  CHECK(got.oldest_lock_wait_warn == want.oldest_lock_wait_warn);
  CHECK(got.lock_pileup_action == want.lock_pileup_action);
  CHECK(got.lock_pileup_grace == want.lock_pileup_grace);
  CHECK(got.max_lag_on_failover == want.max_lag_on_failover);
  CHECK(got.failover_cooldown == want.failover_cooldown);
  CHECK(got.max_failovers_per_hour == want.max_failovers_per_hour);
  CHECK(got.search_primary_timeout == want.search_primary_timeout);
  CHECK(got.failover_pause_timeout == want.failover_pause_timeout);
  CHECK(got.drain_timeout == want.drain_timeout);
  CHECK(got.state_file == want.state_file);
}

}  // namespace
}  // namespace pgpivot::config
