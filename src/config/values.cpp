#include "values.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

namespace pgpivot::config {
namespace {

tl::unexpected<Error> invalid(std::string reason) {
  return fail(sqlstate::kConfigFileError, std::move(reason));
}

bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string rangeReason(int64_t lo, int64_t hi) {
  if (hi == std::numeric_limits<int64_t>::max()) {
    return "must be at least " + std::to_string(lo);
  }
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi);
}

// The longest duration accepted: 100 years is "forever" for every timeout pgpivot has, and
// keeps every later multiplication far away from int64 overflow.
constexpr double kMaxDurationMs = 100.0 * 365 * 24 * 3600 * 1000;

struct Unit {
  std::string_view name;
  double ms;
};
// PostgreSQL's time units (postgresql.conf). "m" is left out on purpose: minutes or
// milliseconds? PostgreSQL refuses it too.
constexpr std::array<Unit, 6> kDurationUnits{
    {{"us", 0.001}, {"ms", 1}, {"s", 1000}, {"min", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}}};

struct SizeUnit {
  std::string_view name;
  int64_t bytes;
};
constexpr std::array<SizeUnit, 10> kSizeUnits{{{"b", 1},
                                               {"k", 1024},
                                               {"kb", 1024},
                                               {"kib", 1024},
                                               {"m", 1024 * 1024},
                                               {"mb", 1024 * 1024},
                                               {"mib", 1024 * 1024},
                                               {"g", 1024 * 1024 * 1024},
                                               {"gb", 1024 * 1024 * 1024},
                                               {"gib", 1024 * 1024 * 1024}}};

template <class Enum, std::size_t N>
Result<Enum> lookup(std::string_view text,
                    const std::array<std::pair<std::string_view, Enum>, N>& map,
                    std::string_view what) {
  const std::string_view word = trim(text);
  std::string choices;
  for (const auto& [name, value] : map) {
    if (iequals(word, name)) {
      return value;
    }
    choices += choices.empty() ? "" : ", ";
    choices += name;
  }
  return invalid("expected a " + std::string(what) + ": " + choices);
}

constexpr std::array<std::pair<std::string_view, PoolMode>, 3> kPoolModes{
    {{"session", PoolMode::kSession},
     {"transaction", PoolMode::kTransaction},
     {"statement", PoolMode::kStatement}}};

constexpr std::array<std::pair<std::string_view, AuthType>, 7> kAuthTypes{
    {{"trust", AuthType::kTrust},
     {"any", AuthType::kAny},
     {"plain", AuthType::kPlain},
     {"md5", AuthType::kMd5},
     {"scram-sha-256", AuthType::kScramSha256},
     {"cert", AuthType::kCert},
     {"hba", AuthType::kHba}}};

constexpr std::array<std::pair<std::string_view, FailoverMode>, 3> kFailoverModes{
    {{"follow", FailoverMode::kFollow},
     {"promote", FailoverMode::kPromote},
     {"manual", FailoverMode::kManual}}};

}  // namespace

std::string_view trim(std::string_view text) {
  while (!text.empty() && isBlank(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && isBlank(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

std::string toLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && toLower(a) == toLower(b);
}

Result<int64_t> parseInteger(std::string_view text, int64_t lo, int64_t hi) {
  std::string_view digits = trim(text);
  if (!digits.empty() && digits.front() == '+') {
    digits.remove_prefix(1);  // from_chars takes '-' but not '+'
  }
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || end != digits.data() + digits.size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return invalid("expected an integer");
  }
  if (ec == std::errc::result_out_of_range || value < lo || value > hi) {
    return invalid(rangeReason(lo, hi));
  }
  return value;
}

Result<bool> parseBool(std::string_view text) {
  const std::string word = toLower(trim(text));
  if (word == "1" || word == "true" || word == "yes" || word == "on") {
    return true;
  }
  if (word == "0" || word == "false" || word == "no" || word == "off") {
    return false;
  }
  return invalid("expected a boolean (0/1, true/false, yes/no, on/off)");
}

Result<Millis> parseDuration(std::string_view text) {
  const std::string_view word = trim(text);
  constexpr std::string_view kForm =
      "expected a duration such as 15 (seconds), 0.5, 500ms, 2min, 1h";
  double number = 0;
  const auto [end, ec] =
      std::from_chars(word.data(), word.data() + word.size(), number, std::chars_format::fixed);
  if (word.empty() || ec != std::errc() || !std::isfinite(number)) {
    return invalid(std::string(kForm));
  }
  const std::string_view unit = trim(word.substr(static_cast<std::size_t>(end - word.data())));
  double factor = 1000;  // no unit: seconds, as PgBouncer
  if (!unit.empty()) {
    const auto* found = std::find_if(kDurationUnits.begin(), kDurationUnits.end(),
                                     [&](const Unit& u) { return u.name == unit; });
    if (found == kDurationUnits.end()) {
      return invalid("unknown unit '" + std::string(unit) + "' (use us, ms, s, min, h or d)");
    }
    factor = found->ms;
  }
  if (number < 0) {
    return invalid("must not be negative");
  }
  const double ms = number * factor;
  if (ms > kMaxDurationMs) {
    return invalid("too large (at most 100 years)");
  }
  const auto rounded = static_cast<int64_t>(std::llround(ms));
  return Millis(rounded == 0 && ms > 0 ? 1 : rounded);
}

Result<int64_t> parseSize(std::string_view text, int64_t lo, int64_t hi) {
  const std::string_view word = trim(text);
  int64_t number = 0;
  const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), number);
  if (word.empty() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return invalid("expected a size such as 4096, 8kB, 16MB or 1GB");
  }
  const std::string unit = toLower(trim(word.substr(static_cast<std::size_t>(end - word.data()))));
  int64_t factor = 1;
  if (!unit.empty()) {
    const auto* found = std::find_if(kSizeUnits.begin(), kSizeUnits.end(),
                                     [&](const SizeUnit& u) { return u.name == unit; });
    if (found == kSizeUnits.end()) {
      return invalid("unknown unit '" + unit + "' (use B, kB, MB or GB)");
    }
    factor = found->bytes;
  }
  if (ec == std::errc::result_out_of_range || number < 0 ||
      number > std::numeric_limits<int64_t>::max() / factor) {
    return invalid(rangeReason(lo, hi) + " bytes");
  }
  const int64_t bytes = number * factor;
  if (bytes < lo || bytes > hi) {
    return invalid(rangeReason(lo, hi) + " bytes");
  }
  return bytes;
}

std::vector<std::string> parseList(std::string_view text) {
  std::vector<std::string> items;
  std::string current;
  for (const char c : text) {
    if (c == ',' || isBlank(c)) {
      if (!current.empty()) {
        items.push_back(std::move(current));
        current.clear();
      }
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) {
    items.push_back(std::move(current));
  }
  return items;
}

Result<std::vector<std::string>> parseParameterNames(std::string_view text) {
  std::vector<std::string> names;
  if (trim(text).empty()) {
    return names;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string_view name = trim(text.substr(start, comma - start));
    if (name.empty()) {
      return invalid("empty parameter name (a comma with no name before or after it)");
    }
    if (name.size() > kMaxParameterNameLength) {
      return invalid("'" + std::string(name) + "' is longer than PostgreSQL's " +
                     std::to_string(kMaxParameterNameLength) + "-byte limit for a name");
    }
    // Each part: a letter or _, then letters, digits, _ or $ (an unquoted SQL identifier).
    bool part_start = true;
    for (const char c : name) {
      const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_';
      const bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '$';
      const bool ok = part_start ? letter : (letter || digit || c == '.');
      if (!ok) {
        return invalid("'" + std::string(name) +
                       "' is not a parameter name (letters, digits, _ and $, not starting "
                       "with a digit; an extension's parameter as extension.name)");
      }
      part_start = c == '.';
    }
    if (part_start) {  // ends with a dot
      return invalid("'" + std::string(name) + "' is not a parameter name (ends with '.')");
    }
    names.emplace_back(name);
    if (comma == std::string_view::npos) {
      return names;
    }
    start = comma + 1;
  }
}

Result<PoolMode> parsePoolMode(std::string_view text) {
  return lookup(text, kPoolModes, "pool mode");
}

Result<AuthType> parseAuthType(std::string_view text) {
  const std::string word = toLower(trim(text));
  if (word == "ldap" || word == "pam") {
    return invalid("auth_type " + word + " is not supported by pgpivot");
  }
  return lookup(text, kAuthTypes, "auth type");
}

Result<FailoverMode> parseFailoverMode(std::string_view text) {
  return lookup(text, kFailoverModes, "failover mode");
}

Result<uint16_t> parsePort(std::string_view text, bool allow_zero) {
  auto port = parseInteger(text, allow_zero ? 0 : 1, 65535);
  if (!port) {
    return tl::unexpected(port.error());
  }
  return static_cast<uint16_t>(*port);
}

Result<NodeAddress> parseNodeAddress(std::string_view text) {
  const std::string_view word = trim(text);
  NodeAddress node;
  std::string_view rest;
  if (!word.empty() && word.front() == '[') {
    const std::size_t close = word.find(']');
    if (close == std::string_view::npos) {
      return invalid("'" + std::string(word) + "': missing ']' after the IPv6 address");
    }
    node.host = std::string(word.substr(1, close - 1));
    rest = word.substr(close + 1);
  } else {
    const std::size_t colon = word.find(':');
    if (colon != std::string_view::npos && word.find(':', colon + 1) != std::string_view::npos) {
      return invalid("'" + std::string(word) +
                     "': write IPv6 addresses in brackets, e.g. [::1]:5432");
    }
    node.host = std::string(word.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : word.substr(colon);
  }
  if (node.host.empty() ||
      std::any_of(node.host.begin(), node.host.end(), [](char c) { return isBlank(c); })) {
    return invalid("'" + std::string(word) + "': expected host:port");
  }
  if (!rest.empty()) {
    if (rest.front() != ':') {
      return invalid("'" + std::string(word) + "': expected host:port");
    }
    auto port = parsePort(rest.substr(1), false);
    if (!port) {
      return invalid("'" + std::string(word) + "': port " + port.error().message);
    }
    node.port = *port;
  }
  return node;
}

Result<std::vector<NodeAddress>> parseNodeList(std::string_view text) {
  std::vector<NodeAddress> nodes;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = trim(text.substr(start, comma - start));
    if (!item.empty()) {
      auto node = parseNodeAddress(item);
      if (!node) {
        return tl::unexpected(node.error());
      }
      nodes.push_back(std::move(*node));
    }
    start = comma + 1;
  }
  return nodes;
}

std::string formatDuration(Millis value) {
  const int64_t ms = value.count();
  std::string out = std::to_string(ms / 1000);
  if (const int64_t frac = ms % 1000; frac != 0) {
    std::string digits = std::to_string(frac + 1000).substr(1);  // zero-padded to 3
    while (digits.back() == '0') {
      digits.pop_back();
    }
    out += "." + digits;
  }
  return out;
}

std::string formatNode(const NodeAddress& node) {
  const bool v6 = node.host.find(':') != std::string::npos;
  return (v6 ? "[" + node.host + "]" : node.host) + ":" + std::to_string(node.port);
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string_view closestMatch(std::string_view word,
                              const std::vector<std::string_view>& candidates) {
  // A third of the word's length, at most 3 edits: "pool_szie" finds pool_size, but "port"
  // does not turn into "host".
  const std::size_t limit = std::min<std::size_t>(3, std::max<std::size_t>(1, word.size() / 3));
  std::string_view best;
  std::size_t best_distance = limit + 1;
  const std::string lower = toLower(word);
  for (const std::string_view candidate : candidates) {
    const std::size_t d = editDistance(lower, candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace pgpivot::config
