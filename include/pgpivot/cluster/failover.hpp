// FailoverMachine: one cluster's failover state machine (research §7.5), pure. The I/O
// side feeds it probe samples, the results of the actions it asked for, admin commands
// and timer ticks, each with the monotonic time; every call returns the Actions to carry
// out, in order, and the Events for the event log. It never touches a socket, a clock,
// a file or a thread. Modes:
//   follow   an external manager promotes; pgpivot pauses clients, searches for the new
//            primary, validates it (§3.3) and resumes
//   promote  pgpivot elects, fences, promotes (pg_promote), verifies and resumes itself;
//            only safe as the single decider (one pgpivot, or a lease: not here)
//   manual   pgpivot detects and pauses, then waits for an admin command
//
// Paths (states in failover_types.hpp):
//   DISCOVERING -> VALIDATING -> RESUMING -> STEADY        (start, RESUME)
//   STEADY <-> SUSPECT / DEGRADED / CRASH_RECOVERY          (no failover: hysteresis)
//   -> PRIMARY_DOWN -> (witness) -> PARTITIONED_FROM_PRIMARY
//                   follow:  SEARCHING_PRIMARY -> VALIDATING -> RESUMING -> STEADY
//                   promote: PAUSING -> ELECTING -> FENCING -> PROMOTING -> VERIFYING
//                            -> RESUMING -> STEADY
//                   manual / unsafe: WAIT_OPERATOR
//   switchover:  PAUSING (drain) -> ELECTING -> CATCHING_UP -> FENCING -> CATCHING_UP
//                (final) -> PROMOTING -> VERIFYING -> RESUMING -> STEADY, with a verdict
//   two writable nodes at once: SPLIT_BRAIN (writes refused until SET PRIMARY / RESUME)
// ELECTING comes before FENCING, unlike the research's order: a failover that has no
// eligible standby then waits for an operator without having fenced a primary that may
// still come back on its own (a frozen VM thawing): it can then simply be resumed.
//
// Safety rules kept here (§7.6): writes only ever go to a node that findPrimary accepts
// (election.hpp); one promotion at a time, and an unknown outcome waits for an operator;
// no promotion without a witness, an eligible candidate and the flap guard; a fenced node
// is re-admitted only as a standby streaming on the newest timeline for readmit_after;
// the RoutingState is persisted (kPersistState) before any action that relies on it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/cluster/election.hpp"
#include "pgpivot/cluster/failover_types.hpp"
#include "pgpivot/cluster/node_health.hpp"
#include "pgpivot/cluster/routing_state.hpp"
#include "pgpivot/cluster/settings.hpp"

namespace pgpivot::cluster {

// Which probes the I/O side should run on a node now (research §7.1).
struct ProbePlan {
  bool write = false;  // W: the routed primary, or the node being verified/validated
  uint64_t connect_interval_ms = 5000;
};

class FailoverMachine final {
 public:
  // `node_names` are "host:port", in config order (the election's tie-break priority).
  // `restored` is the state file's content, or a default RoutingState on first start.
  FailoverMachine(std::vector<std::string> node_names, const Settings& settings,
                  RoutingState restored);

  // Call once: pauses clients (no primary yet) and starts DISCOVERING.
  [[nodiscard]] Output start(uint64_t now_ms);

  [[nodiscard]] Output onStats(std::size_t node, const ProbeSample& sample, uint64_t now_ms);
  [[nodiscard]] Output onConnect(std::size_t node, const ConnectSample& sample, uint64_t now_ms);
  [[nodiscard]] Output onWrite(std::size_t node, const WriteSample& sample, uint64_t now_ms);
  [[nodiscard]] Output onHotStandbyReport(std::size_t node, bool in_hot_standby, uint64_t now_ms);
  // The data path's evidence about a node (stalled queries, completions, server errors).
  [[nodiscard]] Output onDataPath(std::size_t node, const DataPathSample& sample, uint64_t now_ms);
  [[nodiscard]] Output onActionResult(const ActionResult& result, uint64_t now_ms);
  [[nodiscard]] Output onAdmin(const AdminCommand& command, uint64_t now_ms);
  // At least every probe_interval / 4 (250 ms with the defaults): timeouts and the
  // DOWN clocks advance only when the machine is called.
  [[nodiscard]] Output tick(uint64_t now_ms);

  [[nodiscard]] ClusterState state() const { return state_; }
  // Why the machine is in state() (the reason of the last state change): SHOW CLUSTERS.
  [[nodiscard]] const std::string& stateReason() const { return state_reason_; }
  // Where new transactions go now; null while clients are paused or writes refused.
  [[nodiscard]] std::optional<std::size_t> routedPrimary() const;
  [[nodiscard]] bool clientsPaused() const { return paused_; }
  [[nodiscard]] bool writesRefused() const { return writes_refused_; }
  [[nodiscard]] const RoutingState& routing() const { return routing_; }
  [[nodiscard]] const NodeHealth& health(std::size_t node) const { return nodes_[node]; }
  [[nodiscard]] std::string_view nodeName(std::size_t node) const { return names_[node]; }
  [[nodiscard]] std::size_t nodeCount() const { return names_.size(); }
  // The current incident's id ("f-7-1", switchovers "s-7-1"); empty when none.
  [[nodiscard]] std::string failoverId() const;
  [[nodiscard]] ProbePlan probePlan(std::size_t node) const;

 private:
  // One failover or switchover, from PRIMARY_DOWN (or the admin command) to STEADY.
  struct Incident {
    std::string id;
    uint64_t started_ms = 0;
    NodeState cause = NodeState::kUnknown;
    std::string reason;
    std::optional<std::size_t> old_primary;
    bool planned = false;  // switchover or drill
    bool drill = false;
    bool forced = false;  // admin FAILOVER: no witness, no flap guard
    bool witness_lost = false;
    std::optional<std::size_t> target;
    bool ignore_lag = false;
    uint64_t primary_lsn = 0;
    uint32_t from_timeline = 0;
    bool fence_sent = false;
    uint64_t fence_persist_id = 0;  // the kPersistState that recorded the fence
    bool fence_done = false;        // switchover: fence confirmed, final catch-up next
    uint64_t fence_done_ms = 0;
    uint64_t fence_flushed_lsn = 0;  // the fence's WAL flush (sql::kFlushWal); 0 unknown
    uint64_t promote_ms = 0;         // when sql::kPromote returned: out of recovery
    uint64_t promote_duration_ms = 0;
    uint64_t promoted_at_lsn = 0;
    // Where promoted_at_lsn comes from: "pg_last_wal_replay_lsn" (the new primary's end of
    // recovery, its timeline switch point) or "last_standby_lsn_seen" (the last WAL
    // position pgpivot saw it receive as a standby: the switch point is at or past it).
    std::string promoted_at_source;
    int32_t old_sync_standbys = -1;  // the old primary's last sample; -1: never seen
  };
  // The one action a waiting state waits for.
  struct Pending {
    uint64_t id = 0;
    bool done = false;
    ActionStatus status = ActionStatus::kOk;
    std::string error = {};
    uint64_t flushed_lsn = 0;
  };

  // ---- plumbing (failover.cpp) -------------------------------------------------------
  void begin(uint64_t now_ms);
  Output finish();
  void step();
  void evaluateNodes();
  void runState();
  void enter(ClusterState to, std::string reason, Evidence evidence = {}, bool again = false);
  void emit(Event event);
  Action& addAction(ActionKind kind, std::optional<std::size_t> node = std::nullopt);
  void persist();
  void pause(std::optional<std::size_t> old_primary, bool planned, std::string reason);
  void resume(std::string reason);
  void alert(AlertLevel level, std::string reason);
  void waitFor(const Action& action);
  [[nodiscard]] std::vector<NodeView> views() const;
  [[nodiscard]] const ProbeSample* fresh(std::size_t node) const;
  [[nodiscard]] bool steadyFamily() const;
  [[nodiscard]] uint64_t inState() const { return now_ - state_since_; }
  // kind: 'f' failover, 's' switchover, 'd' drill; SHOW FAILOVERS reads it back.
  [[nodiscard]] std::string newIncidentId(char kind);
  void noteActionResult(const Action& action, const ActionResult& result);

  // ---- routing and watching the primary (failover_watch.cpp) --------------------------
  void watchPrimary();
  bool scanOtherNodes();
  bool fastPathDead(std::string& reason, Evidence& evidence);
  void fenceOldPrimary(std::size_t node, const std::string& reason);
  void enterSplitBrain(const std::vector<std::size_t>& nodes, const std::string& reason);
  void lockPolicy(const NodeVerdict& verdict);
  void readmitFenced();
  void discover();
  void searching();
  void validating();
  void routeTo(std::size_t node, const ProbeSample& stats);
  void resuming();
  void partitioned();
  void waitOperator();
  bool acceptReturningPrimary();
  void completeIncident(std::string_view result, std::string reason);
  void notePromotedAt(std::size_t node, const ProbeSample& stats);
  void possiblyLost(Evidence& evidence) const;

  // ---- failing over (failover_promote.cpp) ------------------------------------------------
  void primaryDown(NodeState cause, std::string reason, Evidence evidence);
  void decideFailover();
  void pausing();
  void electing();
  void catchingUp();
  void fencing();
  void promoting();
  void verifying();
  void abortSwitchover(std::string reason);
  [[nodiscard]] bool unreachable(std::size_t node) const;
  void waitOperatorFor(std::string reason);
  [[nodiscard]] std::optional<std::string> flapGuard() const;

  // ---- admin (failover_admin.cpp) ---------------------------------------------------------
  AdminReply switchover(const AdminCommand& command);
  AdminReply failover(const AdminCommand& command);
  AdminReply setPrimary(const AdminCommand& command);
  AdminReply resumeCommand();
  AdminReply fenceCommand(const AdminCommand& command);
  AdminReply unfenceCommand(const AdminCommand& command);

  std::vector<std::string> names_;
  Settings settings_;
  std::vector<NodeHealth> nodes_;
  RoutingState routing_;

  uint64_t now_ = 0;
  Output out_;
  ClusterState state_ = ClusterState::kDiscovering;
  std::string state_reason_;
  uint64_t state_since_ = 0;
  bool entered_ = false;  // the current state's entry work is done

  std::optional<std::size_t> primary_;    // routed to (or being failed over from)
  std::optional<std::size_t> candidate_;  // being elected/promoted/validated
  bool routed_ = false;
  bool paused_ = false;
  bool crash_paused_ = false;  // paused for CRASH_RECOVERY: resume when it answers again
  uint64_t pause_started_ms_ = 0;
  uint64_t pause_ended_ms_ = 0;  // the last resume; with pause_started_ms_, how long it held
  uint64_t pause_id_ = 0;
  std::optional<uint64_t> pause_acked_ms_;
  bool pause_timeout_reported_ = false;
  uint64_t resume_id_ = 0;
  bool resume_acked_ = false;
  bool writes_refused_ = false;
  Pending pending_;
  uint64_t search_started_ms_ = 0;

  std::optional<Incident> incident_;
  uint32_t incident_seq_ = 0;
  std::vector<uint64_t> automatic_failovers_ms_;  // flap guard

  std::optional<uint64_t> lock_since_;  // current DEGRADED:LOCKS episode of the primary
  uint64_t last_blocker_report_ms_ = 0;
  bool blocker_acted_ = false;
  bool syncrep_alerted_ = false;
  std::vector<std::optional<uint64_t>> readmit_since_;
  std::vector<bool> hidden_primary_alerted_;
  std::vector<bool> old_primary_refenced_;  // fenced again in this writable episode
  std::vector<bool> write_probe_on_;
  // Per node: the newest WAL position seen received or replayed while it was a standby,
  // and the newest position seen written while it was writable (the LSN range a failover
  // may have lost runs from the one to the other).
  std::vector<uint64_t> standby_lsn_seen_;
  std::vector<uint64_t> primary_lsn_seen_;

  uint64_t next_action_id_ = 1;
  std::map<uint64_t, Action> outstanding_;  // actions whose result is still to come
};

}  // namespace pgpivot::cluster
