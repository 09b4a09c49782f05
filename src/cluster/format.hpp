// Small text helpers shared by the cluster module's reasons and log lines. Private to
// src/cluster.
#pragma once

#include <cstdint>
#include <string>

namespace pgpivot::cluster {

// 10250 -> "10.2 s", 800 -> "0.8 s": reasons are read by people, tenths are enough.
inline std::string formatSeconds(uint64_t ms) {
  const uint64_t tenths = (ms + 50) / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
}

}  // namespace pgpivot::cluster
