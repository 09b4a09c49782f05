// ClusterEntry -> Settings: the configured keys, and the module's fixed defaults for the
// rest (settings.hpp says why each default is what it is).
#include "pgpivot/cluster/settings.hpp"

#include <algorithm>

namespace pgpivot::cluster {
namespace {

uint64_t ms(config::Millis value) {
  return value.count() > 0 ? static_cast<uint64_t>(value.count()) : 0;
}

}  // namespace

Settings settingsFor(const config::ClusterEntry& entry) {
  Settings s;
  s.mode = entry.failover_mode;
  s.probe_interval_ms = std::max<uint64_t>(ms(entry.probe_interval), 1);
  s.probe_timeout_ms = std::max<uint64_t>(ms(entry.probe_timeout), 1);
  s.connect_interval_suspect_ms = s.probe_interval_ms;
  s.connect_interval_ms = std::max<uint64_t>(5 * s.probe_interval_ms, 1000);
  s.dead_after_ms = ms(entry.dead_after);
  s.unresponsive_after_ms = ms(entry.unresponsive_after);
  s.write_stuck_after_ms = ms(entry.write_stuck_after);
  s.crash_recovery_grace_ms = ms(entry.crash_recovery_grace);
  s.lock_waiters_warn = entry.lock_waiters_warn;
  s.oldest_lock_wait_warn_ms = ms(entry.oldest_lock_wait_warn);
  s.oldest_lock_wait_critical_ms = std::max<uint64_t>(30000, 6 * s.oldest_lock_wait_warn_ms);
  s.witness_stale_ms = s.unresponsive_after_ms;
  s.max_lag_on_failover =
      entry.max_lag_on_failover > 0 ? static_cast<uint64_t>(entry.max_lag_on_failover) : 0;
  s.failover_cooldown_ms = ms(entry.failover_cooldown);
  s.max_failovers_per_hour = entry.max_failovers_per_hour;
  s.lock_pileup_action = entry.lock_pileup_action;
  s.lock_pileup_grace_ms = ms(entry.lock_pileup_grace);
  s.search_primary_timeout_ms = ms(entry.search_primary_timeout);
  s.failover_pause_timeout_ms = ms(entry.failover_pause_timeout);
  s.drain_timeout_ms = std::max<uint64_t>(ms(entry.drain_timeout), 1);
  s.has_fence_command = !entry.fence_command.empty();
  s.fence_timeout_ms = std::max<uint64_t>(ms(entry.fence_timeout), 1);
  return s;
}

}  // namespace pgpivot::cluster
