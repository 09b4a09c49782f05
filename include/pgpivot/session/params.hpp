// The session parameters pgpivot carries from a client to whichever server connection it
// gets: the ones PostgreSQL reports with ParameterStatus (so pgpivot always knows a
// server's current value) and that a client may set at start-up. PgBouncer tracks the
// same set, plus the names of its track_extra_parameters (PgBouncer 1.20+), which pgpivot
// takes from the same key. Not responsible for sending anything: the session code builds
// the SETs.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::session {

// The names of track_extra_parameters (config::Config::track_extra_parameters) as the
// config spells them; they are checked there (identifiers, none that PostgreSQL refuses
// to change). Built-in names among them change nothing.
using ExtraParams = std::span<const std::string>;

// Parameter names compare case-insensitively in PostgreSQL; we keep the canonical
// spelling that ParameterStatus uses: one of the built-in names, or the entry of `extra`
// that `name` matches. nullopt when `name` is not tracked.
std::optional<std::string_view> canonicalTrackedParam(std::string_view name,
                                                      ExtraParams extra = {});

// name (canonical) -> value.
using ParamMap = std::map<std::string, std::string, std::less<>>;

// A client's values for the tracked parameters, kept in one string. A built-in parameter
// is one byte (its index among the built-in names, plus one) followed by the value and a
// NUL (a PostgreSQL parameter value cannot contain one). A parameter of
// track_extra_parameters is the byte kExtra, its name, a NUL, the value and a NUL: the
// entry names itself, so it stays readable whatever a later RELOAD makes of the list.
// Every idle client holds one of these, so it costs one small heap block where a map cost
// a node per parameter.
//
// Which extra parameters a client tracks is decided at its login, by the list the config
// had then (set and setIfAbsent with `extra`); later, set() without it only updates what
// the client already tracks. A RELOAD therefore changes the list for clients that log in
// after it, and a client already in keeps following (and re-applying) what it had.
class TrackedParams final {
 public:
  // `name` in any case; nullopt when it is not tracked or not set.
  [[nodiscard]] std::optional<std::string_view> find(std::string_view name) const;
  // Sets a built-in parameter, an extra one this client already tracks, or one listed in
  // `extra` (any case; a new entry takes the list's spelling). False (nothing kept) for
  // any other name.
  bool set(std::string_view name, std::string_view value, ExtraParams extra = {});
  // Sets it only if it has no value yet. A new extra entry takes `name`'s spelling (the
  // server's, in ParameterStatus), and an extra entry already there is renamed to it.
  bool setIfAbsent(std::string_view name, std::string_view value, ExtraParams extra = {});
  void clear() { packed_.clear(); }
  // Gives back spare capacity (once the login has set every value).
  void shrink() { packed_.shrink_to_fit(); }
  [[nodiscard]] bool empty() const { return packed_.empty(); }
  // Calls fn(canonical name, value) for each parameter set.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    std::size_t at = 0;
    while (at < packed_.size()) {
      const std::size_t value_at = valueAt(at);
      const std::size_t end = packed_.find('\0', value_at);
      fn(nameAt(at), std::string_view(packed_).substr(value_at, end - value_at));
      at = end + 1;
    }
  }

 private:
  static constexpr unsigned char kExtra = 0xFF;

  // Where the entry for `name` starts, or npos.
  [[nodiscard]] std::size_t entryOf(std::string_view name) const;
  [[nodiscard]] std::string_view nameAt(std::size_t at) const;
  // Where the value of the entry at `at` starts.
  [[nodiscard]] std::size_t valueAt(std::size_t at) const;
  // Replaces the value of the entry at `at`.
  void replaceValue(std::size_t at, std::string_view value);
  // Appends an entry for canonical `name`.
  void append(std::string_view name, std::string_view value);

  std::string packed_;
};

// The SET statements that make a server whose reported parameters are `server` match what
// the client asked for in `wanted`. Empty when they already match. Values are quoted as
// literals, so a client cannot smuggle SQL through a startup parameter; the name of an
// extra parameter is quoted as an identifier.
std::string buildSetQuery(const TrackedParams& wanted, const ParamMap& server);

// Whether the server accepts every SET of buildSetQuery(wanted, server) whatever the values
// (only application_name differs). Such SETs need not be waited for: pgpivot sends them
// ahead of the client's first request and reads their answer before the client's.
bool setQueryCannotFail(const TrackedParams& wanted, const ParamMap& server);

// SQL string literal with quotes doubled; E'...' with backslashes doubled too when the
// value holds one, so it reads the same whatever standard_conforming_strings is.
std::string quoteLiteral(std::string_view value);

}  // namespace pgpivot::session
