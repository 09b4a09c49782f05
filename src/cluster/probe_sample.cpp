// Reading the L query's text columns into a ProbeSample. PQgetvalue gives text: booleans
// are "t"/"f", LSNs "X/Y" in hex, numbers decimal. Every malformed value is an error that
// names its column: a probe the parser cannot read must not look like a healthy one.
#include "pgpivot/cluster/probe_sample.hpp"

#include <charconv>
#include <limits>
#include <type_traits>

#include "pgpivot/cluster/evidence.hpp"

namespace pgpivot::cluster {

std::string_view toString(ProbeOutcome outcome) {
  switch (outcome) {
    case ProbeOutcome::kOk:
      return "ok";
    case ProbeOutcome::kTimeout:
      return "timeout";
    case ProbeOutcome::kRefused:
      return "refused";
    case ProbeOutcome::kReset:
      return "reset";
    case ProbeOutcome::kAuthFailed:
      return "auth_failed";
    case ProbeOutcome::kError:
      return "error";
  }
  return "error";
}

const Field::Value* findField(const Evidence& evidence, std::string_view key) {
  for (const Field& f : evidence) {
    if (f.key == key) {
      return &f.value;
    }
  }
  return nullptr;
}

void append(Evidence& evidence, const Evidence& more) {
  evidence.insert(evidence.end(), more.begin(), more.end());
}

std::optional<uint64_t> parseLsn(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) {
    return std::nullopt;
  }
  uint32_t hi = 0;
  uint32_t lo = 0;
  const char* end = text.data() + text.size();
  const auto r1 = std::from_chars(text.data(), text.data() + slash, hi, 16);
  const auto r2 = std::from_chars(text.data() + slash + 1, end, lo, 16);
  if (r1.ec != std::errc() || r1.ptr != text.data() + slash || r2.ec != std::errc() ||
      r2.ptr != end) {
    return std::nullopt;
  }
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

std::string formatLsn(uint64_t lsn) {
  char buf[32];
  char* p = buf;
  p = std::to_chars(p, buf + sizeof buf, static_cast<uint32_t>(lsn >> 32), 16).ptr;
  *p++ = '/';
  p = std::to_chars(p, buf + sizeof buf, static_cast<uint32_t>(lsn & 0xFFFFFFFFu), 16).ptr;
  std::string out(buf, p);
  for (char& c : out) {
    if (c >= 'a' && c <= 'f') {
      c = static_cast<char>(c - 'a' + 'A');  // as PostgreSQL prints it
    }
  }
  return out;
}

namespace {

// Reads the columns of one row, remembering the first problem.
class RowReader {
 public:
  explicit RowReader(const ColumnRow& row) : row_(row) {}

  // nullopt for NULL; records an error when the column is missing.
  std::optional<std::string_view> text(std::string_view column) {
    const auto it = row_.find(column);
    if (it == row_.end()) {
      note(column, "missing");
      return std::nullopt;
    }
    if (!it->second) {
      return std::nullopt;
    }
    return std::string_view(*it->second);
  }

  // A NULL reads as `fallback` where the query yields NULL on one role only.
  bool flag(std::string_view column, std::optional<bool> if_null = std::nullopt) {
    const auto v = text(column);
    if (!v) {
      return nullable(column, if_null, false);
    }
    if (*v == "t" || *v == "true") {
      return true;
    }
    if (*v != "f" && *v != "false") {
      note(column, "not a boolean");
    }
    return false;
  }

  template <class Int>
  Int number(std::string_view column, std::optional<Int> if_null = std::nullopt) {
    const auto v = text(column);
    if (!v) {
      return nullable(column, if_null, Int{0});
    }
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size() ||
        n < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        (n > 0 &&
         static_cast<uint64_t>(n) > static_cast<uint64_t>(std::numeric_limits<Int>::max()))) {
      note(column, "not a number in range");
      return Int{0};
    }
    return static_cast<Int>(n);
  }

  // Durations in ms may come out slightly negative when clocks of two backends disagree
  // by a hair (now() is the transaction start); clamp them to 0.
  uint64_t millis(std::string_view column) {
    const auto ms = number<int64_t>(column, int64_t{0});
    return ms > 0 ? static_cast<uint64_t>(ms) : 0;
  }

  std::optional<uint64_t> optionalMillis(std::string_view column) {
    const auto v = text(column);
    if (!v) {
      return std::nullopt;
    }
    return millis(column);
  }

  uint64_t lsn(std::string_view column) {
    const auto v = text(column);
    if (!v) {
      return 0;  // NULL: not this role, or a standby that never received WAL
    }
    const auto parsed = parseLsn(*v);
    if (!parsed) {
      note(column, "not an LSN");
      return 0;
    }
    return *parsed;
  }

  [[nodiscard]] bool failed() const { return !problem_.empty(); }
  [[nodiscard]] const std::string& problem() const { return problem_; }

 private:
  template <class T>
  T nullable(std::string_view column, std::optional<T> if_null, T zero) {
    if (row_.find(column) == row_.end()) {
      return zero;  // already noted as missing
    }
    if (!if_null) {
      note(column, "is NULL");
      return zero;
    }
    return *if_null;
  }

  void note(std::string_view column, std::string_view what) {
    if (problem_.empty()) {
      problem_ = "stats query column " + std::string(column) + ": " + std::string(what);
    }
  }

  const ColumnRow& row_;
  std::string problem_;
};

}  // namespace

Result<ProbeSample> parseStatsRow(const ColumnRow& row, uint64_t at_ms, uint32_t latency_ms) {
  RowReader r(row);
  ProbeSample s;
  s.outcome = ProbeOutcome::kOk;
  s.at_ms = at_ms;
  s.latency_ms = latency_ms;
  s.in_recovery = r.flag("in_recovery");
  if (const auto id = r.text("system_identifier")) {
    s.system_identifier = std::string(*id);
  }
  s.server_version_num = r.number<int32_t>("server_version_num");
  s.timeline = r.number<uint32_t>("timeline");
  s.current_lsn = r.lsn("current_lsn");
  s.receive_lsn = r.lsn("receive_lsn");
  s.replay_lsn = r.lsn("replay_lsn");
  // Optional, so that rows made by hand (unit tests) need not carry it.
  if (row.find("recovery_end_lsn") != row.end()) {
    s.recovery_end_lsn = r.lsn("recovery_end_lsn");
  }
  s.replay_paused = r.flag("replay_paused", false);
  if (const auto status = r.text("wal_receiver_status")) {
    s.wal_receiver_streaming = *status == "streaming";
  }
  s.last_msg_receipt_age_ms = r.optionalMillis("last_msg_receipt_age_ms");
  s.default_read_only = r.flag("default_read_only");
  s.can_read_all_stats = r.flag("can_read_all_stats");
  s.max_connections = r.number<int32_t>("max_connections");
  s.active_backends = r.number<int32_t>("active_backends");
  s.blocked_backends = r.number<int32_t>("blocked_backends");
  s.io_waiters = r.number<int32_t>("io_waiters");
  s.syncrep_waiters = r.number<int32_t>("syncrep_waiters");
  s.idle_in_tx_holders = r.number<int32_t>("idle_in_tx");
  s.oldest_idle_in_tx_ms = r.millis("oldest_idle_in_tx_ms");
  s.lock_waiters = r.number<int32_t>("lock_waiters");
  s.oldest_lock_wait_ms = r.millis("oldest_lock_wait_ms");
  // pg_stat_database has no row for a database dropped under us: read as 0.
  s.deadlocks = r.number<int64_t>("deadlocks", int64_t{0});
  s.xact_total = r.number<int64_t>("xact_total", int64_t{0});
  s.streaming_standbys = r.number<int32_t>("streaming_standbys");
  s.sync_standbys = r.number<int32_t>("sync_standbys");
  if (r.failed()) {
    return fail(sqlstate::kProtocolViolation, r.problem());
  }
  if (s.system_identifier.empty() || s.timeline == 0) {
    return fail(sqlstate::kProtocolViolation,
                "stats query: no system identifier or timeline in the answer");
  }
  return s;
}

}  // namespace pgpivot::cluster
