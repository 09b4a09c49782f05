// Evidence: the ordered key/value facts behind a verdict or a decision ("L": "timeout",
// "latency_ms": 1001, ...), carried by node verdicts and events and written by the event
// log as a JSON object. A plain value type so that no JSON library leaks into the
// cluster module's interface; only event_log.cpp turns it into JSON.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgpivot::cluster {

struct Field;
// Ordered: the event log keeps the order in which the facts were added.
using Evidence = std::vector<Field>;

struct Field {
  // null, a flag, a number, text, a nested object, a list of objects (election
  // candidates), or a list of texts (an LSN range).
  using Value = std::variant<std::monostate, bool, int64_t, std::string, Evidence,
                             std::vector<Evidence>, std::vector<std::string>>;

  std::string key;
  Value value;

  Field(std::string k, std::nullptr_t) : key(std::move(k)) {}
  Field(std::string k, bool v) : key(std::move(k)), value(v) {}
  Field(std::string k, std::integral auto v) : key(std::move(k)), value(static_cast<int64_t>(v)) {}
  Field(std::string k, const char* v) : key(std::move(k)), value(std::string(v)) {}
  Field(std::string k, std::string_view v) : key(std::move(k)), value(std::string(v)) {}
  Field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  Field(std::string k, Evidence v) : key(std::move(k)), value(std::move(v)) {}
  Field(std::string k, std::vector<Evidence> v) : key(std::move(k)), value(std::move(v)) {}
  Field(std::string k, std::vector<std::string> v) : key(std::move(k)), value(std::move(v)) {}
};

// The value of `key`, or null when absent (tests and the admin console read evidence).
const Field::Value* findField(const Evidence& evidence, std::string_view key);

// Appends every field of `more`.
void append(Evidence& evidence, const Evidence& more);

}  // namespace pgpivot::cluster
