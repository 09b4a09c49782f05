// Names of the failover vocabulary, as the event log and the admin console print them.
#include "pgpivot/cluster/failover_types.hpp"

namespace pgpivot::cluster {

std::string_view toString(ClusterState state) {
  switch (state) {
    case ClusterState::kDiscovering:
      return "DISCOVERING";
    case ClusterState::kSteady:
      return "STEADY";
    case ClusterState::kDegraded:
      return "DEGRADED";
    case ClusterState::kSuspect:
      return "SUSPECT";
    case ClusterState::kCrashRecovery:
      return "CRASH_RECOVERY";
    case ClusterState::kPrimaryDown:
      return "PRIMARY_DOWN";
    case ClusterState::kPausing:
      return "PAUSING";
    case ClusterState::kElecting:
      return "ELECTING";
    case ClusterState::kCatchingUp:
      return "CATCHING_UP";
    case ClusterState::kFencing:
      return "FENCING";
    case ClusterState::kPromoting:
      return "PROMOTING";
    case ClusterState::kVerifying:
      return "VERIFYING";
    case ClusterState::kSearchingPrimary:
      return "SEARCHING_PRIMARY";
    case ClusterState::kValidating:
      return "VALIDATING";
    case ClusterState::kResuming:
      return "RESUMING";
    case ClusterState::kPartitionedFromPrimary:
      return "PARTITIONED_FROM_PRIMARY";
    case ClusterState::kSplitBrain:
      return "SPLIT_BRAIN";
    case ClusterState::kWaitOperator:
      return "WAIT_OPERATOR";
  }
  return "UNKNOWN";
}

std::string_view toString(ActionKind kind) {
  switch (kind) {
    case ActionKind::kPersistState:
      return "persist_state";
    case ActionKind::kRoute:
      return "route";
    case ActionKind::kPauseClients:
      return "pause_clients";
    case ActionKind::kResumeClients:
      return "resume_clients";
    case ActionKind::kFence:
      return "fence";
    case ActionKind::kUnfence:
      return "unfence";
    case ActionKind::kPromote:
      return "promote";
    case ActionKind::kCheckpoint:
      return "checkpoint";
    case ActionKind::kAlert:
      return "alert";
    case ActionKind::kRefuseWrites:
      return "refuse_writes";
    case ActionKind::kReportBlockers:
      return "report_blockers";
    case ActionKind::kCancelBlocker:
      return "cancel_blocker";
    case ActionKind::kTerminateBlocker:
      return "terminate_blocker";
  }
  return "unknown";
}

std::string_view toString(AdminKind kind) {
  switch (kind) {
    case AdminKind::kSwitchover:
      return "switchover";
    case AdminKind::kDrill:
      return "drill";
    case AdminKind::kFailover:
      return "failover";
    case AdminKind::kSetPrimary:
      return "set_primary";
    case AdminKind::kResume:
      return "resume";
    case AdminKind::kFence:
      return "fence";
    case AdminKind::kUnfence:
      return "unfence";
  }
  return "unknown";
}

const Action* Output::find(ActionKind kind) const {
  for (const Action& a : actions) {
    if (a.kind == kind) {
      return &a;
    }
  }
  return nullptr;
}

}  // namespace pgpivot::cluster
