#include "pgpivot/session/params.hpp"

#include <strings.h>

#include <array>

namespace pgpivot::session {
namespace {

// GUC_REPORT parameters a client can set at start-up (PostgreSQL 15, protocol 55.2.
// "Asynchronous Operations" lists what the server reports).
constexpr std::array<std::string_view, 6> kTracked = {
    "client_encoding", "DateStyle",        "TimeZone",
    "IntervalStyle",   "application_name", "standard_conforming_strings",
};

std::optional<std::size_t> trackedIndex(std::string_view name) {
  for (std::size_t i = 0; i < kTracked.size(); ++i) {
    if (kTracked[i].size() == name.size() &&
        ::strncasecmp(kTracked[i].data(), name.data(), name.size()) == 0) {
      return i;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> canonicalTrackedParam(std::string_view name) {
  if (const auto index = trackedIndex(name)) {
    return kTracked[*index];
  }
  return std::nullopt;
}

std::size_t TrackedParams::entryOf(std::size_t index) const {
  std::size_t at = 0;
  while (at < packed_.size()) {
    if (static_cast<unsigned char>(packed_[at]) == index + 1) {
      return at;
    }
    at = packed_.find('\0', at + 1) + 1;
  }
  return std::string::npos;
}

std::string_view TrackedParams::nameAt(std::size_t at) const {
  return kTracked[static_cast<unsigned char>(packed_[at]) - 1U];
}

std::optional<std::string_view> TrackedParams::find(std::string_view name) const {
  const auto index = trackedIndex(name);
  if (!index) {
    return std::nullopt;
  }
  const std::size_t at = entryOf(*index);
  if (at == std::string::npos) {
    return std::nullopt;
  }
  const std::size_t end = packed_.find('\0', at + 1);
  return std::string_view(packed_).substr(at + 1, end - at - 1);
}

bool TrackedParams::set(std::string_view name, std::string_view value) {
  const auto index = trackedIndex(name);
  if (!index) {
    return false;
  }
  // A value with a NUL cannot come from PostgreSQL or a startup packet; cut it there.
  value = value.substr(0, value.find('\0'));
  if (const std::size_t at = entryOf(*index); at != std::string::npos) {
    const std::size_t end = packed_.find('\0', at + 1);
    packed_.replace(at + 1, end - at - 1, value);
    return true;
  }
  packed_.push_back(static_cast<char>(*index + 1));  // never NUL: entries split on it
  packed_.append(value);
  packed_.push_back('\0');
  return true;
}

bool TrackedParams::setIfAbsent(std::string_view name, std::string_view value) {
  const auto index = trackedIndex(name);
  if (!index || entryOf(*index) != std::string::npos) {
    return false;
  }
  return set(name, value);
}

std::string quoteLiteral(std::string_view value) {
  // With standard_conforming_strings off (a client may SET it) a backslash in '...'
  // escapes the next character: a value holding one goes in an E'' literal, which reads
  // backslashes the same way whatever the setting.
  const bool escape = value.find('\\') != std::string_view::npos;
  std::string out;
  out.reserve(value.size() + 3);
  if (escape) {
    out.push_back('E');
  }
  out.push_back('\'');
  for (const char c : value) {
    out.push_back(c);
    if (c == '\'' || (escape && c == '\\')) {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

std::string buildSetQuery(const TrackedParams& wanted, const ParamMap& server) {
  std::string sql;
  wanted.forEach([&](std::string_view name, std::string_view value) {
    const auto it = server.find(name);
    if (it != server.end() && it->second == value) {
      return;
    }
    sql += "SET ";
    sql += name;
    sql += " = ";
    sql += quoteLiteral(value);
    sql += ";";
  });
  return sql;
}

bool setQueryCannotFail(const TrackedParams& wanted, const ParamMap& server) {
  bool cannot_fail = true;
  wanted.forEach([&](std::string_view name, std::string_view value) {
    const auto it = server.find(name);
    if (it != server.end() && it->second == value) {
      return;
    }
    // PostgreSQL takes any application_name: it replaces what is not printable ASCII and
    // truncates what is too long, but never refuses one. Every other tracked parameter
    // has values it refuses (a time zone it does not know, an encoding, a DateStyle).
    cannot_fail = cannot_fail && name == "application_name";
  });
  return cannot_fail;
}

}  // namespace pgpivot::session
