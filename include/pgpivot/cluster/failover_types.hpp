// The vocabulary between the FailoverMachine (pure decisions) and the I/O side that
// carries them out: cluster states (research §7.5), the actions the I/O side executes and
// reports back on, admin commands, and the events that go to the event log. Values only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/cluster/evidence.hpp"

namespace pgpivot::cluster {

// Where the cluster is. "Routing" means new transactions go to the primary.
enum class ClusterState : uint8_t {
  kDiscovering,       // start or RESUME: probing every node for the one primary; clients wait
  kSteady,            // routing to a validated, healthy primary
  kDegraded,          // routing; the primary is DEGRADED:* (locks, syncrep, no new conns)
  kSuspect,           // routing; a probe of the primary failed, evidence is being collected
  kCrashRecovery,     // the primary restarts after a crash (57P03): clients wait, clock paused
  kPrimaryDown,       // the primary is DOWN or NOT_PRIMARY: clients wait; consulting the witness
  kPausing,           // promote path: waiting for the workers to confirm the pause
  kElecting,          // choosing the standby to promote (§4.2)
  kCatchingUp,        // switchover: waiting until the candidate replayed all the primary wrote
  kFencing,           // cutting the old primary off (§4.3 1)
  kPromoting,         // pg_promote() running on the candidate; single flight
  kVerifying,         // the promoted node must be writable on a newer timeline, W ok
  kSearchingPrimary,  // follow mode: waiting for the external manager's primary
  kValidating,        // checks §3.3 on the primary found; then route to it
  kResuming,          // routed to the new primary; waiting for the queue to drain
  kPartitionedFromPrimary,  // pgpivot lost the primary, a standby did not: no failover
  kSplitBrain,              // two writable nodes: writes refused until an operator decides
  kWaitOperator,            // something unsafe to do alone: clients wait, then get 57P03
};
// "STEADY", "PRIMARY_DOWN", ... as the research and the event log spell them.
std::string_view toString(ClusterState state);

// What the I/O side must do. Execute a batch in order; report a result (ActionResult)
// for every kind marked "result" below, with the action's id.
enum class ActionKind : uint8_t {
  // result. Write `payload` (serializeRoutingState) to state_file durably (write, fsync,
  // rename) BEFORE executing anything after it in the batch; on failure stop the batch
  // and report kFailed.
  kPersistState,
  // Route new transactions of the cluster to `node` under `epoch`; lifts kRefuseWrites.
  // Server connections of an older epoch are never reused.
  kRoute,
  // result. Stop handing out server connections of the cluster; queue new transactions
  // (each waits up to failover_pause_timeout, then 57P03). `node` (if set) is the old
  // primary: abort transactions in flight there (research §5.1) and close pgpivot's
  // connections to it. `planned`: let transactions in flight finish first (switchover).
  kPauseClients,
  // result when the queue has drained. Serve the queue on the current route.
  kResumeClients,
  // result (kOk, kFailed or kUnreachable). Fence `node`: close pgpivot's connections,
  // then where it answers sql::kFenceTerminateSessions, kFenceReadOnly + kReloadConf, and
  // fence_command (with a timeout, output logged). Never route to it again.
  kFence,
  // result. Undo a planned switchover's fence: kUnfenceReadOnly + kReloadConf.
  kUnfence,
  // result: kOk only once sql::kPromote ran without an error (the node left recovery). Single
  // flight.
  kPromote,
  // result, informational. sql::kCheckpoint on `node`, after a promotion.
  kCheckpoint,
  // Page someone: `level` and `reason`. Also written to the main log.
  kAlert,
  // Fail every write transaction of the cluster (25006-style error naming `reason`)
  // until the next kRoute. Reads may be served by standbys on the newest timeline.
  kRefuseWrites,
  // result, informational. Run sql::kBlockerTree on `node`; put the tree in the event
  // log and the admin console.
  kReportBlockers,
  // result, informational. sql::kCancelRootBlockers / kTerminateRootBlockers on `node`.
  kCancelBlocker,
  kTerminateBlocker,
};
std::string_view toString(ActionKind kind);

enum class AlertLevel : uint8_t { kWarning, kCritical };

// Every member below has an initializer, `= {}` included, so designated initializers may
// leave any of them out (GCC 12's -Wextra warns about omitted members otherwise).

struct Action {
  ActionKind kind = ActionKind::kAlert;
  uint64_t id = 0;  // quote it in the ActionResult
  std::optional<std::size_t> node = {};
  uint64_t epoch = 0;
  std::string failover_id = {};  // empty: not part of a failover
  bool planned = false;          // kPauseClients: drain first; kFence: a switchover's fence
  AlertLevel level = AlertLevel::kWarning;
  std::string reason = {};
  std::string sql = {};      // the statement(s) to run, as the event log quotes them
  std::string payload = {};  // kPersistState: the serialized RoutingState
};

enum class ActionStatus : uint8_t {
  kOk,
  kFailed,       // ran and failed (an error, pg_promote() returned false, a fence command
                 // exited non-zero)
  kUnreachable,  // the node could not be reached to run it
};

struct ActionResult {
  uint64_t id = 0;
  ActionStatus status = ActionStatus::kOk;
  uint64_t duration_ms = 0;
  std::string error = {};  // "SQLSTATE message", or the fence command's exit status and output
  Evidence details = {};   // e.g. {"in_flight_aborted": {"57P01": 12}, "queued": 3}
  // A switchover's kFence: the end of sql::kFlushWal's message, a record boundary that
  // every commit the old primary acknowledged precedes; 0 when not known.
  uint64_t flushed_lsn = 0;
};

enum class AdminKind : uint8_t {
  kSwitchover,  // planned: drain, catch up, fence, promote, verify, resume
  kDrill,       // a switchover that reports a verdict meant for a DR drill
  kFailover,    // unplanned, now: skips the witness and the flap guard
  kSetPrimary,  // the operator says which node is the primary (ends SPLIT_BRAIN)
  kResume,      // leave WAIT_OPERATOR / SPLIT_BRAIN / PARTITIONED: rediscover
  kFence,       // an operator fences `target` by hand (failover_admin.cpp says when)
  kUnfence,     // an operator lifts the fence of `target` (failover_admin.cpp says when)
};
std::string_view toString(AdminKind kind);

struct AdminCommand {
  AdminKind kind = AdminKind::kResume;
  std::optional<std::size_t> target = {};  // switchover/failover: the node to promote
};

// One pre-check of a switchover or drill, as the operator sees it.
struct AdminCheck {
  std::string name = {};  // "mode", "state", "primary_probe", "standby_eligible", ...
  bool passed = false;
  std::string detail = {};
};

struct AdminReply {
  bool accepted = false;
  std::string message = {};
  std::string incident_id = {};         // switchover/drill/failover accepted: its id
  std::vector<AdminCheck> checks = {};  // switchover/drill: the pre-checks, in order
};

// One line of the failover event log (research §7.7). Empty strings are left out of the
// JSON; the event log adds ts, proxy and cluster.
struct Event {
  std::string event = {};  // "state_change", "probe_verdict", "witness", "election", ...
  uint64_t mono_ms = 0;
  uint64_t epoch = 0;
  std::string failover_id = {};
  std::string from = {};
  std::string to = {};
  std::string node = {};
  std::string role = {};
  std::string reason = {};
  Evidence evidence = {};
  std::string sql = {};
  std::optional<uint64_t> duration_ms = {};
  std::string result = {};
  std::string error = {};
};

// What one call into the machine produced.
struct Output {
  std::vector<Action> actions = {};
  std::vector<Event> events = {};
  std::optional<AdminReply> admin = {};  // set by onAdmin only

  // The first action of `kind`, or null (tests and the admin console).
  [[nodiscard]] const Action* find(ActionKind kind) const;
};

}  // namespace pgpivot::cluster
