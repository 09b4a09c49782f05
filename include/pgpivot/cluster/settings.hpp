// The numbers the cluster module's pure logic works with: detection thresholds (research
// §7.2), hysteresis (§7.4), the failover decision (§7.3) and each failover state's
// timeout (§7.5). Built from a config::ClusterEntry by settingsFor(); tests build their
// own. All times are milliseconds of a monotonic clock. Not here: parsing (config/), or
// the probes themselves (the I/O side).
#pragma once

#include <cstdint>

#include "pgpivot/config/config.hpp"

namespace pgpivot::cluster {

struct Settings {
  config::FailoverMode mode = config::FailoverMode::kFollow;
  uint64_t probe_interval_ms = 1000;
  uint64_t probe_timeout_ms = 1000;
  // C runs this often on a healthy node and this often on one under suspicion (§7.1).
  uint64_t connect_interval_ms = 5000;
  uint64_t connect_interval_suspect_ms = 1000;
  // W runs on the primary only. Off: verification and validation skip the heartbeat
  // check (research §3.3 item 6 then rests on default_transaction_read_only alone).
  bool use_write_probe = true;

  // --- NodeHealth (§7.2) ---------------------------------------------------------------
  uint64_t dead_after_ms = 5000;
  uint64_t unresponsive_after_ms = 10000;
  uint64_t write_stuck_after_ms = 20000;
  uint64_t crash_recovery_grace_ms = 30000;
  int recover_ok_probes = 3;         // SUSPECT -> HEALTHY after this many good L probes in a row
  int no_new_conn_failures = 3;      // C failing this many times in a row while L is fine
  uint64_t syncrep_after_ms = 5000;  // W failing with commits in IPC/SyncRep this long
  int lock_waiters_warn = 10;
  uint64_t oldest_lock_wait_warn_ms = 5000;
  uint64_t oldest_lock_wait_critical_ms = 30000;
  int lock_waiters_critical_percent = 25;    // of max_connections
  uint64_t degraded_clear_after_ms = 30000;  // below the warn threshold this long to clear

  // --- witness (§7.3 2) ---------------------------------------------------------------
  // A standby whose last message from the primary is this old has lost it too. Equal to
  // unresponsive_after by default: a frozen primary has then been silent to the standby
  // about as long as to pgpivot. An idle primary sends nothing until the standby pings
  // it every wal_receiver_timeout/2 (60 s/2 by default), so standbys need
  // wal_receiver_timeout <= unresponsive_after for "alive" to be told from "lost" when
  // nothing is written.
  uint64_t witness_stale_ms = 10000;
  // A standby that heard from the primary this much later than pgpivot last did proves
  // the primary alive (pgpivot is partitioned from it).
  uint64_t witness_slack_ms = 1000;

  // --- failover decision (§7.3, §4.2) ------------------------------------------------
  uint64_t max_lag_on_failover = 1024 * 1024;
  uint64_t failover_cooldown_ms = 600000;
  int max_failovers_per_hour = 2;
  config::LockPileupAction lock_pileup_action = config::LockPileupAction::kAlert;
  uint64_t lock_pileup_grace_ms = 60000;
  uint64_t blocker_report_interval_ms = 10000;
  // A fenced node streaming as a standby on the newest timeline this long is re-admitted
  // (as a standby, and so as a future candidate) (§7.4).
  uint64_t readmit_after_ms = 60000;

  // --- state timeouts (§7.5) -----------------------------------------------------------
  uint64_t discover_timeout_ms = 10000;
  uint64_t pause_timeout_ms = 2000;   // PAUSING -> go on without the ack
  uint64_t drain_timeout_ms = 10000;  // switchover: transactions in flight must finish
  // A fence_command (STONITH) is configured: FENCING waits for its exit status (up to
  // fence_timeout) even when the old primary is unreachable. Without one, the SQL fence of
  // an unreachable old primary is not waited for (it cannot run until the node answers).
  bool has_fence_command = false;
  uint64_t fence_timeout_ms = 5000;
  uint64_t elect_timeout_ms = 5000;
  uint64_t catchup_timeout_ms = 10000;  // switchover: candidate replays everything
  uint64_t promote_timeout_ms = 65000;  // sql::kPromote gives up after 60 s; plus slack
  uint64_t verify_timeout_ms = 10000;
  uint64_t validate_timeout_ms = 5000;
  uint64_t search_primary_timeout_ms = 60000;
  uint64_t failover_pause_timeout_ms = 30000;

  // A sample older than this says nothing about the node now (two missed probes).
  [[nodiscard]] uint64_t staleAfterMs() const { return 2 * probe_interval_ms + probe_timeout_ms; }
};

// The cluster's config with the module's fixed defaults for what has no key.
Settings settingsFor(const config::ClusterEntry& entry);

}  // namespace pgpivot::cluster
