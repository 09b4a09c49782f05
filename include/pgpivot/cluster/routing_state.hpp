// RoutingState: what write safety depends on across a restart of pgpivot (research §3.3,
// §7.6 item 6): the failover epoch, the newest timeline routed to, the cluster's system
// identifier, the expected primary and the fenced nodes. The FailoverMachine changes it
// and asks the I/O side (Action kPersistState) to write it to `state_file`, durably,
// before acting on the change; at start the I/O side reads the file back with
// parseRoutingState. Nodes are named "host:port", so reordering `nodes` in the config
// keeps the file valid. Not here: file I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/core/result.hpp"

namespace pgpivot::cluster {

struct RoutingState {
  uint64_t epoch = 0;               // failover generation; +1 whenever writes move
  uint32_t min_timeline = 0;        // no write goes to a node on an older timeline
  std::string system_identifier;    // the cluster's; empty until the first discovery
  std::string expected_primary;     // "host:port"; empty: none routed yet
  std::vector<std::string> fenced;  // sorted; never written to again until re-admitted
  // Sorted; the subset of `fenced` an operator fenced by hand (FENCE): never re-admitted
  // on its own, only by UNFENCE (or SET PRIMARY naming it).
  std::vector<std::string> held;

  [[nodiscard]] bool isFenced(std::string_view node) const;
  [[nodiscard]] bool isHeld(std::string_view node) const;
  void fence(const std::string& node);
  // Fenced, and held until an operator lifts it.
  void hold(const std::string& node);
  // Lifts the fence and the hold.
  void unfence(std::string_view node);

  bool operator==(const RoutingState&) const = default;
};

// One JSON object on one line:
// {"version":1,"epoch":7,"min_timeline":2,"system_identifier":"7712...",
//  "expected_primary":"db-b:5432","fenced":["db-a:5432"],"held":[]}
// ("held" may be missing: files written before FENCE existed.)
std::string serializeRoutingState(const RoutingState& state);
// Refuses anything it does not fully understand (a newer version, a wrong type): a
// restart must not guess at fencing state.
[[nodiscard]] Result<RoutingState> parseRoutingState(std::string_view text);

}  // namespace pgpivot::cluster
