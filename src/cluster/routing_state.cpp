// RoutingState <-> one line of JSON, with nlohmann::json (Debian's nlohmann-json3-dev)
// in its non-throwing mode: errors are values here as everywhere else.
#include "pgpivot/cluster/routing_state.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

namespace pgpivot::cluster {
namespace {

constexpr int kVersion = 1;

tl::unexpected<Error> bad(const std::string& why) {
  return fail(sqlstate::kConfigFileError, "state file: " + why);
}

}  // namespace

bool RoutingState::isFenced(std::string_view node) const {
  return std::binary_search(fenced.begin(), fenced.end(), node);
}

void RoutingState::fence(const std::string& node) {
  const auto it = std::lower_bound(fenced.begin(), fenced.end(), node);
  if (it == fenced.end() || *it != node) {
    fenced.insert(it, node);
  }
}

bool RoutingState::isHeld(std::string_view node) const {
  return std::binary_search(held.begin(), held.end(), node);
}

void RoutingState::hold(const std::string& node) {
  fence(node);
  const auto it = std::lower_bound(held.begin(), held.end(), node);
  if (it == held.end() || *it != node) {
    held.insert(it, node);
  }
}

void RoutingState::unfence(std::string_view node) {
  const auto it = std::lower_bound(fenced.begin(), fenced.end(), node);
  if (it != fenced.end() && *it == node) {
    fenced.erase(it);
  }
  const auto h = std::lower_bound(held.begin(), held.end(), node);
  if (h != held.end() && *h == node) {
    held.erase(h);
  }
}

std::string serializeRoutingState(const RoutingState& state) {
  nlohmann::ordered_json j;
  j["version"] = kVersion;
  j["epoch"] = state.epoch;
  j["min_timeline"] = state.min_timeline;
  j["system_identifier"] = state.system_identifier;
  j["expected_primary"] = state.expected_primary;
  j["fenced"] = state.fenced;
  if (!state.held.empty()) {
    j["held"] = state.held;  // left out when empty: files stay as before FENCE existed
  }
  return j.dump();
}

Result<RoutingState> parseRoutingState(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return bad("not a JSON object");
  }
  const auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() || version->get<int64_t>() != kVersion) {
    return bad("unknown version (this pgpivot writes version 1)");
  }
  RoutingState state;
  const auto epoch = j.find("epoch");
  const auto timeline = j.find("min_timeline");
  if (epoch == j.end() || !epoch->is_number_unsigned()) {
    return bad("epoch is missing or not a number");
  }
  if (timeline == j.end() || !timeline->is_number_unsigned() ||
      timeline->get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
    return bad("min_timeline is missing or not a timeline");
  }
  state.epoch = epoch->get<uint64_t>();
  state.min_timeline = static_cast<uint32_t>(timeline->get<uint64_t>());
  for (const char* key : {"system_identifier", "expected_primary"}) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return bad(std::string(key) + " is missing or not text");
    }
  }
  state.system_identifier = j["system_identifier"].get<std::string>();
  state.expected_primary = j["expected_primary"].get<std::string>();
  const auto fenced = j.find("fenced");
  if (fenced == j.end() || !fenced->is_array()) {
    return bad("fenced is missing or not a list");
  }
  for (const auto& node : *fenced) {
    if (!node.is_string()) {
      return bad("fenced holds something other than node names");
    }
    state.fence(node.get<std::string>());
  }
  if (const auto held = j.find("held"); held != j.end()) {
    if (!held->is_array()) {
      return bad("held is not a list");
    }
    for (const auto& node : *held) {
      if (!node.is_string()) {
        return bad("held holds something other than node names");
      }
      state.hold(node.get<std::string>());
    }
  }
  return state;
}

}  // namespace pgpivot::cluster
