// NodeHealth: the per-node classifier of research §7.2 with the hysteresis of §7.4. Fed
// the node's L, C and W samples (probe_sample.hpp) in arrival order, it says what state
// the node is in, why, and on what evidence. It decides nothing about the cluster (that
// is the FailoverMachine's job) and reads no clock: `now_ms` comes in with each call.
//
// The rules, in order of precedence:
//   NOT_PRIMARY          expected primary, and L says in recovery, or its timeline is
//                        below the newest seen, or the system identifier differs, or W
//                        got 25006 (read only), or a server connection reported
//                        in_hot_standby=on; immediate, no timer
//   CRASH_RECOVERY       unreachable, and the newest failure is 57P03 ("starting up") or
//                        57P02; the failure clock is paused for crash_recovery_grace
//   DOWN:UNRESPONSIVE    L and C (and W) all failing, one of them by timeout, for
//                        unresponsive_after
//   DOWN:DEAD            L and C (and W) all failing by refused/reset/57P01/08xxx for
//                        dead_after, or crash recovery outlasted its grace
//   DOWN:WRITE_STUCK     L fine, W failing for write_stuck_after with a server-side cause
//                        (I/O waits, WAL position frozen, 53xxx/58xxx); never when the
//                        cause is locks or a synchronous standby
//   DEGRADED:SYNCREP     W failing with commits waiting in IPC/SyncRep for syncrep_after;
//                        or, where W does not run (no heartbeat table), commits in SyncRep
//                        in every L sample for syncrep_after while no synchronous standby
//                        is connected or queries through pgpivot are stalled
//   DEGRADED:NO_NEW_CONN C failing no_new_conn_failures times in a row while L is fine
//   DEGRADED:LOCKS       lock waiters or the oldest lock wait at the warn threshold, or W
//                        refused by our own lock_timeout (55P03), or queries through
//                        pgpivot stalled (no byte back for query_stall_timeout) while L
//                        shows sessions waiting on locks. Locks never make a node
//                        DOWN: a pile-up is the application's, and a failover would only
//                        move it to the new primary (research finding 2)
//   SUSPECT              any L or W failure not yet above; also a node recovering, until
//                        recover_ok_probes good L probes in a row
//   UNKNOWN              no answer yet, or probes answered with errors that say nothing
//                        about health (monitor login refused, missing privileges)
//   HEALTHY
// A degraded state, once raised, clears only after degraded_clear_after below its
// threshold, so a pile-up hovering around the threshold is reported once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pgpivot/cluster/evidence.hpp"
#include "pgpivot/cluster/probe_sample.hpp"
#include "pgpivot/cluster/settings.hpp"

namespace pgpivot::cluster {

enum class NodeState : uint8_t {
  kUnknown,
  kHealthy,
  kSuspect,
  kDegradedLocks,
  kDegradedNoNewConn,
  kDegradedSyncRep,
  kCrashRecovery,
  kDownDead,
  kDownUnresponsive,
  kDownWriteStuck,
  kNotPrimary,
};
// As the research and the event log spell them: "HEALTHY", "DEGRADED:LOCKS", "DOWN:DEAD".
std::string_view toString(NodeState state);
bool isDown(NodeState state);
bool isDegraded(NodeState state);

// What the cluster expects of this node; the machine passes it to evaluate().
struct NodeContext {
  bool expected_primary = false;  // W and the NOT_PRIMARY rules apply
  uint32_t min_timeline = 0;
  std::string_view system_identifier;  // the cluster's; empty: not known yet
};

struct NodeVerdict {
  NodeState state = NodeState::kUnknown;
  std::string reason;            // one line for people: "L timeout, C timeout for 10.2 s"
  Evidence evidence;             // the raw probe results behind it
  uint64_t since_ms = 0;         // when the node entered `state`
  bool lock_critical = false;    // DEGRADED:LOCKS past the critical threshold
  bool connect_refused = false;  // the newest C was refused: no postmaster listens
};

class NodeHealth final {
 public:
  explicit NodeHealth(const Settings& settings) : settings_(settings) {}

  // Samples of one kind must come in the order they were sent; an older one is dropped.
  void onStats(const ProbeSample& sample);
  void onConnect(const ConnectSample& sample);
  void onWrite(const WriteSample& sample);
  // A pooled server connection's ParameterStatus in_hot_standby (PG14+): a free,
  // immediate role signal (research finding 9). Only "on" matters; a later L overrides.
  void onHotStandbyReport(bool in_hot_standby, uint64_t at_ms);
  // The data path's evidence (DataPathSample): stalled queries explain a lock pile-up
  // below the lock thresholds, and corroborate a write stall; they are in the evidence.
  // Alone they never make a node anything: a long query is not a stuck server.
  void onDataPath(const DataPathSample& sample) { data_path_ = sample; }
  // The W probe starts or stops running on this node: forget old W results.
  void resetWriteProbe();

  // Re-classifies at `now_ms`. Returns true when the state changed.
  bool evaluate(uint64_t now_ms, const NodeContext& context);
  [[nodiscard]] const NodeVerdict& verdict() const { return verdict_; }

  // A server connection reported in_hot_standby=on after the newest L sample.
  [[nodiscard]] bool reportedStandby() const { return hot_standby_at_.has_value(); }
  // Some L or C sample arrived (an answer or a failure).
  [[nodiscard]] bool heard() const { return l_.seen || c_.seen; }
  // The newest successful L sample, or null.
  [[nodiscard]] const ProbeSample* stats() const {
    return last_ok_stats_ ? &*last_ok_stats_ : nullptr;
  }
  // The newest L sample was a success.
  [[nodiscard]] bool statsOk() const { return l_.seen && l_.outcome == ProbeOutcome::kOk; }
  // When the node last answered anything (monotonic, completion time); 0: never.
  [[nodiscard]] uint64_t lastContactMs() const { return last_contact_ms_; }
  // Since when every probe has been failing, if they all are.
  [[nodiscard]] std::optional<uint64_t> unreachableSinceMs() const { return unreach_since_; }
  // Completion time of the newest successful W, if the newest W succeeded.
  [[nodiscard]] std::optional<uint64_t> lastWriteOkMs() const;
  // W answers with an error that is about pgpivot's setup (no heartbeat table, no rights).
  [[nodiscard]] bool writeMisconfigured() const { return w_misconfigured_; }
  // at_ms of the first L sample of the current run of "writable" (not in recovery) ones.
  [[nodiscard]] std::optional<uint64_t> writableSinceMs() const { return writable_since_; }
  // The newest data-path sample, if it is recent (two report intervals at most behind
  // the newest probe time seen).
  [[nodiscard]] const DataPathSample* dataPath(uint64_t now_ms) const;
  // pg_stat_database.deadlocks increase between the last two L samples (0 after a reset).
  [[nodiscard]] int64_t deadlocksDelta() const { return deadlocks_delta_; }

 private:
  // One probe kind's recent history.
  struct Track {
    bool seen = false;
    uint64_t last_at = 0;
    ProbeOutcome outcome = ProbeOutcome::kOk;
    std::string sqlstate;
    std::string error;
    uint32_t latency_ms = 0;
    int consecutive_failures = 0;
    uint64_t fail_since = 0;  // at_ms of the first failure of the current run
    uint64_t last_ok_done = 0;
  };
  struct Classified {
    NodeState state = NodeState::kUnknown;
    std::string reason;
    bool lock_critical = false;
  };

  bool accept(Track& track, ProbeOutcome outcome, const std::string& sqlstate,
              const std::string& error, uint64_t at_ms, uint32_t latency_ms);
  void noteFailureClock(uint64_t at_ms, bool crash_class);
  void noteContact(uint64_t done_ms);
  void updateLocks(const ProbeSample& sample);

  Classified classify(uint64_t now_ms, const NodeContext& context);
  std::optional<Classified> notPrimary(const NodeContext& context) const;
  Classified unreachable(uint64_t now_ms, bool expected_primary) const;
  Classified reachable(uint64_t now_ms, bool expected_primary);
  std::optional<Classified> writeFailing(uint64_t now_ms) const;
  std::optional<Classified> syncRepWithoutWrite(uint64_t now_ms) const;
  Classified holdDegraded(uint64_t now_ms, Classified raw);
  Evidence evidence(uint64_t now_ms, bool expected_primary) const;
  bool lockWarn() const;
  bool stalledBehindLocks(uint64_t now_ms) const;
  bool lockCritical() const;

  Settings settings_;
  Track l_, c_, w_;
  std::optional<ProbeSample> last_ok_stats_;
  std::optional<DataPathSample> data_path_;
  uint64_t last_contact_ms_ = 0;
  std::optional<uint64_t> unreach_since_;
  std::optional<uint64_t> crash_since_;  // first crash-class failure since last contact
  bool in_crash_ = false;                // the newest failure is crash-class
  int ok_streak_ = 0;                    // good L probes in a row (W not failing)
  int c_fail_with_l_ok_ = 0;             // C failures in a row while L was fine
  bool recovering_ = false;              // a failure was seen; healthy after ok_streak_
  bool locks_raised_ = false;
  std::optional<uint64_t> locks_clear_since_;
  std::optional<NodeState> degraded_held_;
  std::optional<uint64_t> degraded_clear_since_;
  uint64_t w_fail_lsn_ = 0;  // the primary's WAL position when W started failing
  bool w_misconfigured_ = false;
  std::optional<uint64_t> hot_standby_at_;
  std::optional<uint64_t> writable_since_;
  std::optional<uint64_t> syncrep_since_;  // first of the L samples in a row with SyncRep waiters
  int64_t deadlocks_delta_ = 0;
  int64_t xact_delta_ = 0;
  NodeVerdict verdict_;
};

}  // namespace pgpivot::cluster
