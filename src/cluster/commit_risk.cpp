#include "pgpivot/cluster/commit_risk.hpp"

#include <array>
#include <optional>

namespace pgpivot::cluster {

namespace {

bool isWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool wordEquals(std::string_view word, std::string_view keyword) {
  if (word.size() != keyword.size()) {
    return false;
  }
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (lower(word[i]) != keyword[i]) {
      return false;
    }
  }
  return true;
}

// The NUL-terminated string at the start of `body`, and what follows it.
std::optional<std::string_view> cstring(std::string_view& body) {
  const std::size_t end = body.find('\0');
  if (end == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view value = body.substr(0, end);
  body.remove_prefix(end + 1);
  return value;
}

}  // namespace

bool sqlMayCommit(std::string_view sql) {
  // COMMIT [AND CHAIN], END, COMMIT PREPARED and PREPARE TRANSACTION; ABORT and ROLLBACK
  // never commit. Scanned word by word, quotes and comments not parsed (conservative).
  static constexpr std::array<std::string_view, 3> kKeywords = {"commit", "end", "prepare"};
  std::size_t i = 0;
  while (i < sql.size()) {
    if (!isWordChar(sql[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < sql.size() && isWordChar(sql[i])) {
      ++i;
    }
    const std::string_view word = sql.substr(start, i - start);
    for (const std::string_view keyword : kKeywords) {
      if (wordEquals(word, keyword)) {
        return true;
      }
    }
  }
  return false;
}

bool CommitRisk::noteMessage(char tag, std::string_view body, bool complete) {
  switch (tag) {
    case 'Q':
      // A simple query: one or more statements, any of which may be a COMMIT.
      return !complete || sqlMayCommit(body);
    case 'P': {
      // Parse: name, query, parameter types. Parsing runs nothing; a later Bind does.
      const std::optional<std::string_view> name = cstring(body);
      if (!name) {
        lost_track_ = true;
        return false;
      }
      const std::optional<std::string_view> query = cstring(body);
      if (!query || sqlMayCommit(*query)) {
        committing_.emplace(*name);
      } else {
        committing_.erase(std::string(*name));
      }
      return false;
    }
    case 'B': {
      // Bind: portal name, statement name, ...
      if (lost_track_) {
        return true;
      }
      const std::optional<std::string_view> portal = cstring(body);
      const std::optional<std::string_view> statement = portal ? cstring(body) : std::nullopt;
      if (!statement) {
        return true;
      }
      return committing_.count(std::string(*statement)) > 0;
    }
    default:
      // Execute runs what its Bind chose; FunctionCall, Describe, Close, Sync and COPY
      // data cannot end a transaction block.
      return false;
  }
}

}  // namespace pgpivot::cluster
