// Parsing of single configuration values: integers, booleans, durations, sizes, lists,
// enums and host:port addresses. Each returns the value or an Error whose message is the
// reason alone ("expected an integer"); the caller adds file:line and the key.
// Not here: which key takes which kind of value (keys.cpp) or cross-field rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/config/config.hpp"
#include "pgpivot/core/result.hpp"

namespace pgpivot::config {

std::string_view trim(std::string_view text);
std::string toLower(std::string_view text);
bool iequals(std::string_view a, std::string_view b);

// Decimal, optional sign, surrounding blanks allowed; [lo, hi] inclusive.
[[nodiscard]] Result<int64_t> parseInteger(std::string_view text, int64_t lo, int64_t hi);

// 0/1, true/false, yes/no, on/off, in any case.
[[nodiscard]] Result<bool> parseBool(std::string_view text);

// PgBouncer's form is seconds, possibly fractional ("15", "0.5"). A unit may follow, as in
// PostgreSQL: us, ms, s, min, h, d ("500ms", "2min"). Never negative. A non-zero value below
// 1 ms becomes 1 ms, so "on" never silently turns into "off".
[[nodiscard]] Result<Millis> parseDuration(std::string_view text);

// Bytes, optionally with a binary unit: "4096", "8kB", "16MB", "1GB" (also k/KiB, M/MiB,
// G/GiB, B; any case). [lo, hi] inclusive, in bytes.
[[nodiscard]] Result<int64_t> parseSize(std::string_view text, int64_t lo, int64_t hi);

// Items separated by commas and/or blanks; empty items are dropped ("a, b,,c" -> a b c).
std::vector<std::string> parseList(std::string_view text);

// PostgreSQL's NAMEDATALEN - 1: a longer parameter name is not one PostgreSQL has.
inline constexpr std::size_t kMaxParameterNameLength = 63;

// A comma-separated list of PostgreSQL parameter names ("IntervalStyle, myext.mode"):
// each an identifier, or identifiers joined by dots. Blanks around names are dropped; an
// empty name (",," or a trailing comma) is an error. Empty text: no names.
[[nodiscard]] Result<std::vector<std::string>> parseParameterNames(std::string_view text);

[[nodiscard]] Result<PoolMode> parsePoolMode(std::string_view text);
[[nodiscard]] Result<AuthType> parseAuthType(std::string_view text);
[[nodiscard]] Result<FailoverMode> parseFailoverMode(std::string_view text);
[[nodiscard]] Result<uint16_t> parsePort(std::string_view text, bool allow_zero);

// "host", "host:port", "[v6]" or "[v6]:port"; the port defaults to 5432. A bare IPv6
// address is refused because "::1:5432" cannot be split unambiguously.
[[nodiscard]] Result<NodeAddress> parseNodeAddress(std::string_view text);
// A comma-separated list of node addresses; fails on the first bad one, naming it.
[[nodiscard]] Result<std::vector<NodeAddress>> parseNodeList(std::string_view text);

// Seconds, as PgBouncer's SHOW CONFIG shows them: 15000ms -> "15", 500ms -> "0.5".
std::string formatDuration(Millis value);
// "host:port", with brackets around an IPv6 host.
std::string formatNode(const NodeAddress& node);

// Levenshtein distance, for "did you mean" hints on misspelt keys.
std::size_t editDistance(std::string_view a, std::string_view b);
// The candidate closest to `word` if it is a plausible typo of it, else empty.
std::string_view closestMatch(std::string_view word,
                              const std::vector<std::string_view>& candidates);

}  // namespace pgpivot::config
