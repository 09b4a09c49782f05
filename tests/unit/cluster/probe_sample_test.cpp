// Reading the L query's text columns: the rows below are what PostgreSQL 15.18 returned
// to a pg_monitor member on a primary and on its streaming standby.
#include "pgpivot/cluster/probe_sample.hpp"

#include <catch2/catch.hpp>

#include "pgpivot/cluster/probe_sql.hpp"

namespace pgpivot::cluster {
namespace {

ColumnRow primaryRow() {
  return ColumnRow{
      {"in_recovery", "f"},
      {"system_identifier", "7712878630329562490"},
      {"server_version_num", "150018"},
      {"timeline", "1"},
      {"current_lsn", "0/3000FC0"},
      {"flush_lsn", "0/3000F80"},
      {"receive_lsn", std::nullopt},
      {"replay_lsn", std::nullopt},
      {"replay_paused", std::nullopt},
      {"wal_receiver_status", std::nullopt},
      {"last_msg_receipt_age_ms", std::nullopt},
      {"default_read_only", "f"},
      {"can_read_all_stats", "t"},
      {"max_connections", "300"},
      {"active_backends", "5"},
      {"blocked_backends", "3"},
      {"io_waiters", "0"},
      {"syncrep_waiters", "0"},
      {"idle_in_tx", "1"},
      {"oldest_idle_in_tx_ms", "2522"},
      {"lock_waiters", "3"},
      {"oldest_lock_wait_ms", "2522"},
      {"deadlocks", "0"},
      {"xact_total", "5"},
      {"streaming_standbys", "1"},
      {"sync_standbys", "0"},
  };
}

ColumnRow standbyRow() {
  ColumnRow row = primaryRow();
  row["in_recovery"] = "t";
  row["current_lsn"] = std::nullopt;
  row["flush_lsn"] = std::nullopt;
  row["receive_lsn"] = "0/3000FC0";
  row["replay_lsn"] = "0/3000F00";
  row["replay_paused"] = "f";
  row["wal_receiver_status"] = "streaming";
  row["last_msg_receipt_age_ms"] = "8054";
  row["streaming_standbys"] = "0";
  return row;
}

TEST_CASE("LSNs parse and print as PostgreSQL writes them", "[unit][cluster]") {
  CHECK(parseLsn("0/3000FC0") == 0x3000FC0u);
  CHECK(parseLsn("16/B374D848") == (uint64_t{0x16} << 32 | 0xB374D848u));
  CHECK(parseLsn("FFFFFFFF/FFFFFFFF") == ~uint64_t{0});
  CHECK(formatLsn(uint64_t{0x16} << 32 | 0xB374D848u) == "16/B374D848");
  CHECK(formatLsn(0) == "0/0");
  for (const char* bad : {"", "/", "0/", "/1", "0x1/2", "1/2/3", "G/1", "1 /2", "100000000/0"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseLsn(bad));
  }
}

TEST_CASE("a primary's stats row becomes a ProbeSample", "[unit][cluster]") {
  const auto s = parseStatsRow(primaryRow(), 1000, 4);
  REQUIRE(s);
  CHECK(s->ok());
  CHECK(s->at_ms == 1000);
  CHECK(s->doneMs() == 1004);
  CHECK_FALSE(s->in_recovery);
  CHECK(s->system_identifier == "7712878630329562490");
  CHECK(s->server_version_num == 150018);
  CHECK(s->timeline == 1);
  CHECK(s->current_lsn == 0x3000FC0u);
  CHECK(s->flush_lsn == 0x3000F80u);
  CHECK(s->receive_lsn == 0);
  CHECK_FALSE(s->wal_receiver_streaming);
  CHECK_FALSE(s->last_msg_receipt_age_ms);
  CHECK(s->max_connections == 300);
  CHECK(s->active_backends == 5);
  CHECK(s->blocked_backends == 3);
  CHECK(s->lock_waiters == 3);
  CHECK(s->oldest_lock_wait_ms == 2522);
  CHECK(s->idle_in_tx_holders == 1);
  CHECK(s->oldest_idle_in_tx_ms == 2522);
  CHECK(s->xact_total == 5);
  CHECK(s->streaming_standbys == 1);
  CHECK(s->can_read_all_stats);
}

TEST_CASE("a standby's stats row carries its WAL receiver", "[unit][cluster]") {
  const auto s = parseStatsRow(standbyRow(), 1000, 4);
  REQUIRE(s);
  CHECK(s->in_recovery);
  CHECK(s->current_lsn == 0);
  CHECK(s->receive_lsn == 0x3000FC0u);
  CHECK(s->replay_lsn == 0x3000F00u);
  CHECK(s->wal_receiver_streaming);
  CHECK(s->last_msg_receipt_age_ms == 8054u);
  CHECK_FALSE(s->replay_paused);
}

TEST_CASE("a standby without a WAL receiver reads as not streaming", "[unit][cluster]") {
  ColumnRow row = standbyRow();
  row["wal_receiver_status"] = std::nullopt;  // pg_stat_wal_receiver is empty
  row["last_msg_receipt_age_ms"] = std::nullopt;
  row["receive_lsn"] = std::nullopt;  // restored from the archive only
  const auto s = parseStatsRow(row, 1000, 4);
  REQUIRE(s);
  CHECK_FALSE(s->wal_receiver_streaming);
  CHECK_FALSE(s->last_msg_receipt_age_ms);
  CHECK(s->receive_lsn == 0);
}

TEST_CASE("a slightly negative duration reads as 0", "[unit][cluster]") {
  ColumnRow row = standbyRow();
  row["last_msg_receipt_age_ms"] = "-3";
  const auto s = parseStatsRow(row, 1000, 4);
  REQUIRE(s);
  CHECK(s->last_msg_receipt_age_ms == 0u);
}

TEST_CASE("the parser names the first missing or malformed column", "[unit][cluster]") {
  struct Case {
    const char* column;
    std::optional<std::string> value;  // nullopt: remove the column
    const char* message;
  };
  const Case c = GENERATE(
      Case{"timeline", std::nullopt, "stats query column timeline: missing"},
      Case{"in_recovery", "yes", "stats query column in_recovery: not a boolean"},
      Case{"lock_waiters", "many", "stats query column lock_waiters: not a number in range"},
      Case{"max_connections", "99999999999",
           "stats query column max_connections: not a number in range"},
      Case{"current_lsn", "0/XYZ", "stats query column current_lsn: not an LSN"},
      Case{"in_recovery", "NULL", "stats query column in_recovery: is NULL"},
      Case{"timeline", "-1", "stats query column timeline: not a number in range"});
  CAPTURE(c.column);
  ColumnRow row = primaryRow();
  if (!c.value) {
    row.erase(c.column);
  } else if (*c.value == "NULL") {
    row[c.column] = std::nullopt;
  } else {
    row[c.column] = *c.value;
  }
  const auto s = parseStatsRow(row, 0, 0);
  REQUIRE_FALSE(s);
  CHECK(s.error().message == c.message);
}

TEST_CASE("every column the parser reads is one the stats query selects", "[unit][cluster]") {
  for (const auto& [column, value] : primaryRow()) {
    CAPTURE(column);
    CHECK(sql::kStatsQuery.find(column) != std::string_view::npos);
  }
  // Unknown extra columns are ignored.
  ColumnRow row = primaryRow();
  row["something_new"] = "1";
  CHECK(parseStatsRow(row, 0, 0));
}

TEST_CASE("the monitor's own sessions are left out of the lock and backend counts",
          "[unit][cluster]") {
  // Research finding 4: an abandoned heartbeat must not show up as a lock waiter.
  CHECK(sql::kStatsQuery.find("application_name IS NOT DISTINCT FROM 'pgpivot-monitor' AS mon") !=
        std::string_view::npos);
  CHECK(sql::kStatsQuery.find("wait_event_type = 'Lock' AND NOT mon") != std::string_view::npos);
  CHECK(sql::kStatsQuery.find("a.application_name = 'pgpivot-monitor'") != std::string_view::npos);
  CHECK(sql::kMonitorApplicationName == "pgpivot-monitor");
}

TEST_CASE("probe outcomes have stable names for the event log", "[unit][cluster]") {
  CHECK(toString(ProbeOutcome::kOk) == "ok");
  CHECK(toString(ProbeOutcome::kTimeout) == "timeout");
  CHECK(toString(ProbeOutcome::kRefused) == "refused");
  CHECK(toString(ProbeOutcome::kReset) == "reset");
  CHECK(toString(ProbeOutcome::kAuthFailed) == "auth_failed");
  CHECK(toString(ProbeOutcome::kError) == "error");
}

}  // namespace
}  // namespace pgpivot::cluster
