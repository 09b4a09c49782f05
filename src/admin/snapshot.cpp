#include "pgpivot/admin/snapshot.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::admin {
namespace {

int64_t delta(int64_t earlier, int64_t later) {
  return later > earlier ? later - earlier : 0;
}

int64_t perSecond(int64_t earlier, int64_t later, double seconds) {
  return seconds > 0 ? static_cast<int64_t>(static_cast<double>(delta(earlier, later)) / seconds)
                     : 0;
}

int64_t mean(int64_t total, int64_t count) {
  return count > 0 ? total / count : 0;
}

// Settings a running process cannot change: they shape sockets or threads made at start.
constexpr std::array<std::string_view, 11> kFixedAtStart{
    "admin_listen_addr", "admin_port",      "listen_addr", "listen_backlog",
    "listen_port",       "metrics_port",    "pidfile",     "pkt_buf",
    "tcp_defer_accept",  "unix_socket_dir", "workers",
};

}  // namespace

StatAverages computeAverages(const StatTotals& earlier, const StatTotals& later, double seconds) {
  const int64_t xacts = delta(earlier.xact_count, later.xact_count);
  const int64_t queries = delta(earlier.query_count, later.query_count);
  StatAverages avg;
  avg.xact_count = perSecond(earlier.xact_count, later.xact_count, seconds);
  avg.query_count = perSecond(earlier.query_count, later.query_count, seconds);
  avg.bytes_received = perSecond(earlier.bytes_received, later.bytes_received, seconds);
  avg.bytes_sent = perSecond(earlier.bytes_sent, later.bytes_sent, seconds);
  avg.xact_time_us = mean(delta(earlier.xact_time_us, later.xact_time_us), xacts);
  avg.query_time_us = mean(delta(earlier.query_time_us, later.query_time_us), queries);
  avg.wait_time_us = mean(delta(earlier.wait_time_us, later.wait_time_us), xacts);
  return avg;
}

bool changeableAtRuntime(std::string_view key) {
  return std::find(kFixedAtStart.begin(), kFixedAtStart.end(), key) == kFixedAtStart.end();
}

std::vector<ConfigRow> configRows(const config::Config& config) {
  const auto current = config::currentSettings(config);
  const auto defaults = config::currentSettings(config::Config{});
  std::vector<ConfigRow> rows;
  rows.reserve(current.size());
  for (const config::Setting& setting : current) {
    ConfigRow row;
    row.key = std::string(setting.name);
    row.value = setting.value;
    const auto d = std::find_if(defaults.begin(), defaults.end(),
                                [&](const config::Setting& s) { return s.name == setting.name; });
    if (d != defaults.end()) {
      row.default_value = d->value;
    }
    row.changeable = changeableAtRuntime(setting.name);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace pgpivot::admin
