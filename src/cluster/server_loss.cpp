// The verdict on a broken server connection: the rules are in server_loss.hpp.
#include "pgpivot/cluster/server_loss.hpp"

#include <utility>

namespace pgpivot::cluster {

std::string_view toString(LossCause cause) {
  switch (cause) {
    case LossCause::kPending:
      return "pending";
    case LossCause::kServerLost:
      return "server_lost";
    case LossCause::kFailover:
      return "failover";
    case LossCause::kCrashRestart:
      return "crash_restart";
  }
  return "pending";
}

ServerLoss::ServerLoss(bool moved_by_failover, bool crash_restart, PoolSignals pool,
                       uint64_t now_ms, LossTiming timing)
    : at_loss_(std::move(pool)), lost_at_ms_(now_ms), timing_(timing) {
  if (moved_by_failover) {
    cause_ = LossCause::kFailover;
  } else if (crash_restart) {
    cause_ = LossCause::kCrashRestart;
  }
}

LossCause ServerLoss::decide(const PoolSignals& pool, uint64_t now_ms) {
  if (cause_ != LossCause::kPending) {
    return cause_;
  }
  const uint64_t elapsed = now_ms > lost_at_ms_ ? now_ms - lost_at_ms_ : 0;
  if (pool.primary != at_loss_.primary) {
    cause_ = LossCause::kFailover;  // moved to another primary since
    return cause_;
  }
  if (pool.paused) {
    if (!was_paused_) {
      was_paused_ = true;
      paused_since_ms_ = now_ms;
    }
    if (now_ms - paused_since_ms_ >= timing_.pause_limit_ms) {
      cause_ = LossCause::kFailover;  // held past failover_pause_timeout: one is under way
    }
    return cause_;
  }
  if (was_paused_) {
    cause_ = LossCause::kServerLost;  // the pause ended on the same primary
    return cause_;
  }
  if (elapsed >= timing_.alive_grace_ms) {
    if (!have_baseline_) {
      have_baseline_ = true;
      baseline_transactions_ = pool.transactions;
    } else if (pool.transactions > baseline_transactions_) {
      cause_ = LossCause::kServerLost;  // the primary serves on
      return cause_;
    }
  }
  if (elapsed >= timing_.decide_within_ms) {
    cause_ = LossCause::kServerLost;  // no failover was declared in the time it takes
  }
  return cause_;
}

}  // namespace pgpivot::cluster
