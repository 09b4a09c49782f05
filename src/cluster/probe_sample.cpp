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

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// The tokens of syncrep_scanner.l: NAME (identifier, "quoted", *), NUM, '(' ')' ','.
struct SyncToken {
  enum class Kind : uint8_t { kName, kNum, kOpen, kClose, kComma } kind;
  std::string text;
  bool quoted = false;
};

std::optional<std::vector<SyncToken>> syncTokens(std::string_view text) {
  std::vector<SyncToken> out;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (isSpace(c)) {
      ++i;
    } else if (c == '(' || c == ')' || c == ',') {
      out.push_back({c == '(' ? SyncToken::Kind::kOpen
                              : (c == ')' ? SyncToken::Kind::kClose : SyncToken::Kind::kComma),
                     std::string(1, c)});
      ++i;
    } else if (c == '*') {
      out.push_back({SyncToken::Kind::kName, "*"});
      ++i;
    } else if (c == '"') {
      std::string name;
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            name += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        name += text[i++];
      }
      if (!closed) {
        return std::nullopt;
      }
      out.push_back({SyncToken::Kind::kName, std::move(name), true});
    } else if (isNameChar(c)) {
      const std::size_t start = i;
      while (i < text.size() && isNameChar(text[i])) {
        ++i;
      }
      const std::string_view word = text.substr(start, i - start);
      bool digits = true;
      for (const char d : word) {
        digits = digits && isDigit(d);
      }
      out.push_back({digits ? SyncToken::Kind::kNum : SyncToken::Kind::kName, std::string(word)});
    } else {
      return std::nullopt;
    }
  }
  return out;
}

bool keyword(const SyncToken& t, std::string_view word) {
  if (t.kind != SyncToken::Kind::kName || t.quoted || t.text.size() != word.size()) {
    return false;
  }
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = t.text[i];
    if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) != word[i]) {
      return false;
    }
  }
  return true;
}

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

SyncStandbyNames parseSyncStandbyNames(std::string_view text) {
  SyncStandbyNames out;
  const auto tokens = syncTokens(text);
  if (!tokens) {
    out.method = SyncStandbyNames::Method::kUnknown;
    return out;
  }
  if (tokens->empty()) {
    return out;  // kOff
  }
  const std::vector<SyncToken>& t = *tokens;
  std::size_t i = 0;
  out.method = SyncStandbyNames::Method::kPriority;
  out.num = 1;
  const auto number = [&](const SyncToken& tok) {
    int32_t n = 0;
    const auto [end, ec] = std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), n);
    return ec == std::errc() && end == tok.text.data() + tok.text.size() ? n : -1;
  };
  bool parenthesised = false;
  if (t.size() >= 3 && (keyword(t[0], "ANY") || keyword(t[0], "FIRST")) &&
      t[1].kind == SyncToken::Kind::kNum && t[2].kind == SyncToken::Kind::kOpen) {
    out.method = keyword(t[0], "ANY") ? SyncStandbyNames::Method::kQuorum
                                      : SyncStandbyNames::Method::kPriority;
    out.num = number(t[1]);
    i = 3;
    parenthesised = true;
  } else if (t.size() >= 2 && t[0].kind == SyncToken::Kind::kNum &&
             t[1].kind == SyncToken::Kind::kOpen) {
    out.num = number(t[0]);
    i = 2;
    parenthesised = true;
  }
  // standby_list: name (',' name)*, then ')' when parenthesised, then the end.
  bool want_name = true;
  for (; i < t.size(); ++i) {
    const SyncToken& tok = t[i];
    if (want_name && (tok.kind == SyncToken::Kind::kName || tok.kind == SyncToken::Kind::kNum)) {
      out.names.push_back(tok.text);
      want_name = false;
    } else if (!want_name && tok.kind == SyncToken::Kind::kComma) {
      want_name = true;
    } else if (!want_name && parenthesised && tok.kind == SyncToken::Kind::kClose &&
               i + 1 == t.size()) {
      parenthesised = false;
    } else {
      break;
    }
  }
  if (i != t.size() || want_name || parenthesised || out.num <= 0) {
    return SyncStandbyNames{.method = SyncStandbyNames::Method::kUnknown};
  }
  return out;
}

Result<std::vector<ReplicaRow>> parseReplicaRows(std::string_view text) {
  std::vector<ReplicaRow> rows;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    // Five space-separated fields, then the application_name (the rest, maybe empty).
    std::string_view fields[5];
    bool complete = true;
    for (std::string_view& f : fields) {
      const std::size_t sp = line.find(' ');
      if (sp == std::string_view::npos) {
        complete = false;
        break;
      }
      f = line.substr(0, sp);
      line = line.substr(sp + 1);
    }
    const auto bad = [&](std::string_view what) {
      return fail(sqlstate::kProtocolViolation, "stats query column replicas, line " +
                                                    std::to_string(line_no) + ": " +
                                                    std::string(what));
    };
    if (!complete) {
      return bad("fewer than 6 fields");
    }
    ReplicaRow row;
    row.state = fields[0] == "-" ? "" : std::string(fields[0]);
    row.sync_state = fields[1] == "-" ? "" : std::string(fields[1]);
    uint64_t* lsns[] = {&row.write_lsn, &row.flush_lsn, &row.replay_lsn};
    for (std::size_t k = 0; k < 3; ++k) {
      if (fields[2 + k] == "-") {
        continue;
      }
      const auto lsn = parseLsn(fields[2 + k]);
      if (!lsn) {
        return bad("not an LSN: " + std::string(fields[2 + k]));
      }
      *lsns[k] = *lsn;
    }
    row.application_name = std::string(line);
    rows.push_back(std::move(row));
  }
  return rows;
}

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
  s.flush_lsn = r.lsn("flush_lsn");
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
  // Optional, so that rows made by hand (unit tests) need not carry them. A NULL replicas
  // is a primary without walsenders (string_agg of no rows) or a standby.
  if (row.find("replicas") != row.end()) {
    if (const auto text = r.text("replicas")) {
      auto rows = parseReplicaRows(*text);
      if (!rows) {
        return tl::unexpected(rows.error());
      }
      s.replicas = std::move(*rows);
    }
  }
  if (row.find("sync_standby_names") != row.end()) {
    s.sync_names = parseSyncStandbyNames(r.text("sync_standby_names").value_or(""));
  }
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
