#include "pgpivot/session/params.hpp"

#include <array>
#include <cctype>

namespace pgpivot::session {
namespace {

// GUC_REPORT parameters a client can set at start-up (PostgreSQL 15, protocol 55.2.
// "Asynchronous Operations" lists what the server reports).
constexpr std::array<std::string_view, 6> kTracked = {
    "client_encoding", "DateStyle",        "TimeZone",
    "IntervalStyle",   "application_name", "standard_conforming_strings",
};

// ASCII case-insensitive, as PostgreSQL compares parameter names (guc_name_compare).
bool sameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (x != y && std::tolower(x) != std::tolower(y)) {
      return false;
    }
  }
  return true;
}

std::optional<std::size_t> trackedIndex(std::string_view name) {
  for (std::size_t i = 0; i < kTracked.size(); ++i) {
    if (sameName(kTracked[i], name)) {
      return i;
    }
  }
  return std::nullopt;
}

// The server's value of `name`: ParameterStatus spells it canonically, but the name of an
// extra parameter may be spelt otherwise in the config (and so in a client's entry).
const std::string* serverValue(const ParamMap& server, std::string_view name) {
  if (const auto it = server.find(name); it != server.end()) {
    return &it->second;
  }
  for (const auto& [reported, value] : server) {
    if (sameName(reported, name)) {
      return &value;
    }
  }
  return nullptr;
}

// A double-quoted identifier: names that are keywords (or hold a dot, as an extension's
// do) still name the parameter, which PostgreSQL looks up in any case.
std::string quoteIdent(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    out.push_back(c);
    if (c == '"') {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

std::optional<std::string_view> canonicalTrackedParam(std::string_view name, ExtraParams extra) {
  if (const auto index = trackedIndex(name)) {
    return kTracked[*index];
  }
  for (const std::string& listed : extra) {
    if (sameName(listed, name)) {
      return listed;
    }
  }
  return std::nullopt;
}

std::size_t TrackedParams::entryOf(std::string_view name) const {
  const auto index = trackedIndex(name);
  std::size_t at = 0;
  while (at < packed_.size()) {
    const auto tag = static_cast<unsigned char>(packed_[at]);
    if (index ? tag == *index + 1 : tag == kExtra && sameName(nameAt(at), name)) {
      return at;
    }
    at = packed_.find('\0', valueAt(at)) + 1;
  }
  return std::string::npos;
}

std::string_view TrackedParams::nameAt(std::size_t at) const {
  const auto tag = static_cast<unsigned char>(packed_[at]);
  if (tag != kExtra) {
    return kTracked[tag - 1U];
  }
  const std::size_t end = packed_.find('\0', at + 1);
  return std::string_view(packed_).substr(at + 1, end - at - 1);
}

std::size_t TrackedParams::valueAt(std::size_t at) const {
  if (static_cast<unsigned char>(packed_[at]) != kExtra) {
    return at + 1;
  }
  return packed_.find('\0', at + 1) + 1;
}

void TrackedParams::replaceValue(std::size_t at, std::string_view value) {
  const std::size_t value_at = valueAt(at);
  const std::size_t end = packed_.find('\0', value_at);
  packed_.replace(value_at, end - value_at, value);
}

void TrackedParams::append(std::string_view name, std::string_view value) {
  if (const auto index = trackedIndex(name)) {
    packed_.push_back(static_cast<char>(*index + 1));  // never NUL: entries split on it
  } else {
    packed_.push_back(static_cast<char>(kExtra));
    packed_.append(name);
    packed_.push_back('\0');
  }
  packed_.append(value);
  packed_.push_back('\0');
}

std::optional<std::string_view> TrackedParams::find(std::string_view name) const {
  const std::size_t at = entryOf(name);
  if (at == std::string::npos) {
    return std::nullopt;
  }
  const std::size_t value_at = valueAt(at);
  const std::size_t end = packed_.find('\0', value_at);
  return std::string_view(packed_).substr(value_at, end - value_at);
}

bool TrackedParams::set(std::string_view name, std::string_view value, ExtraParams extra) {
  // A value with a NUL cannot come from PostgreSQL or a startup packet; cut it there.
  value = value.substr(0, value.find('\0'));
  if (const std::size_t at = entryOf(name); at != std::string::npos) {
    replaceValue(at, value);
    return true;
  }
  const auto canonical = canonicalTrackedParam(name, extra);
  if (!canonical) {
    return false;
  }
  append(*canonical, value);
  return true;
}

bool TrackedParams::setIfAbsent(std::string_view name, std::string_view value, ExtraParams extra) {
  if (const std::size_t at = entryOf(name); at != std::string::npos) {
    if (static_cast<unsigned char>(packed_[at]) == kExtra && nameAt(at) != name) {
      // The login's value stays; the name takes the server's spelling.
      packed_.replace(at + 1, nameAt(at).size(), name);
    }
    return false;
  }
  if (!canonicalTrackedParam(name, extra)) {
    return false;
  }
  append(name, value.substr(0, value.find('\0')));
  return true;
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
    const std::string* current = serverValue(server, name);
    if (current != nullptr && *current == value) {
      return;
    }
    sql += "SET ";
    sql += trackedIndex(name) ? std::string(name) : quoteIdent(name);
    sql += " = ";
    sql += quoteLiteral(value);
    sql += ";";
  });
  return sql;
}

bool setQueryCannotFail(const TrackedParams& wanted, const ParamMap& server) {
  bool cannot_fail = true;
  wanted.forEach([&](std::string_view name, std::string_view value) {
    const std::string* current = serverValue(server, name);
    if (current != nullptr && *current == value) {
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
