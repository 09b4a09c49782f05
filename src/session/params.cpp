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

}  // namespace

std::optional<std::string_view> canonicalTrackedParam(std::string_view name) {
  for (const auto tracked : kTracked) {
    if (tracked.size() == name.size() &&
        ::strncasecmp(tracked.data(), name.data(), name.size()) == 0) {
      return tracked;
    }
  }
  return std::nullopt;
}

std::string quoteLiteral(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('\'');
  for (const char c : value) {
    out.push_back(c);
    if (c == '\'') {
      out.push_back('\'');
    }
  }
  out.push_back('\'');
  return out;
}

std::string buildSetQuery(const ParamMap& wanted, const ParamMap& server) {
  std::string sql;
  for (const auto& [name, value] : wanted) {
    const auto it = server.find(name);
    if (it != server.end() && it->second == value) {
      continue;
    }
    sql += "SET ";
    sql += name;
    sql += " = ";
    sql += quoteLiteral(value);
    sql += ";";
  }
  return sql;
}

}  // namespace pgpivot::session
