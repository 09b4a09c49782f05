// The session parameters pgpivot carries from a client to whichever server connection it
// gets: the ones PostgreSQL reports with ParameterStatus (so pgpivot always knows a
// server's current value) and that a client may set at start-up. PgBouncer tracks the
// same set. Not responsible for sending anything: the session code builds the SETs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::session {

// Parameter names compare case-insensitively in PostgreSQL; we keep the canonical
// spelling that ParameterStatus uses.
std::optional<std::string_view> canonicalTrackedParam(std::string_view name);

// name (canonical) -> value.
using ParamMap = std::map<std::string, std::string, std::less<>>;

// A client's values for the tracked parameters, kept in one string: for each parameter set,
// one byte (its index among the tracked names) followed by the value and a NUL (a
// PostgreSQL parameter value cannot contain one). Every idle client holds one of these, so
// it costs one small heap block where a map cost a node per parameter.
class TrackedParams final {
 public:
  // `name` in any case; nullopt when it is not tracked or not set.
  [[nodiscard]] std::optional<std::string_view> find(std::string_view name) const;
  // Sets a tracked parameter (any case); false (nothing kept) for a name not tracked.
  bool set(std::string_view name, std::string_view value);
  // Sets it only if it has no value yet.
  bool setIfAbsent(std::string_view name, std::string_view value);
  void clear() { packed_.clear(); }
  // Gives back spare capacity (once the login has set every value).
  void shrink() { packed_.shrink_to_fit(); }
  [[nodiscard]] bool empty() const { return packed_.empty(); }
  // Calls fn(canonical name, value) for each parameter set.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    std::size_t at = 0;
    while (at < packed_.size()) {
      const std::size_t end = packed_.find('\0', at + 1);
      fn(nameAt(at), std::string_view(packed_).substr(at + 1, end - at - 1));
      at = end + 1;
    }
  }

 private:
  // Where the entry for tracked index `index` starts, or npos.
  [[nodiscard]] std::size_t entryOf(std::size_t index) const;
  [[nodiscard]] std::string_view nameAt(std::size_t at) const;

  std::string packed_;
};

// The SET statements that make a server whose reported parameters are `server` match what
// the client asked for in `wanted`. Empty when they already match. Values are quoted as
// literals, so a client cannot smuggle SQL through a startup parameter.
std::string buildSetQuery(const TrackedParams& wanted, const ParamMap& server);

// Whether the server accepts every SET of buildSetQuery(wanted, server) whatever the values
// (only application_name differs). Such SETs need not be waited for: pgpivot sends them
// ahead of the client's first request and reads their answer before the client's.
bool setQueryCannotFail(const TrackedParams& wanted, const ParamMap& server);

// SQL string literal with quotes doubled; E'...' with backslashes doubled too when the
// value holds one, so it reads the same whatever standard_conforming_strings is.
std::string quoteLiteral(std::string_view value);

}  // namespace pgpivot::session
