// What a client is told when its server connection to a cluster's primary breaks, and
// when. "pgpivot: failover: ..." must be true: a failover of that cluster is under way or
// happened. The moment a connection breaks rarely says so by itself:
//  - pgpivot closed it to move the client (a failover's kFailover close): failover;
//  - the server said 57P02 (another backend crashed, PostgreSQL restarts): crash-restart;
//  - otherwise (pg_terminate_backend's 57P01, the backend's own crash, a silent EOF, a
//    reset) it may be the primary dying (kill -9 shows no different to one client before
//    the monitor has decided) or this one backend ending while the primary serves on.
// For the last kind the answer waits (the client's statement stays unanswered, its next
// bytes unread) for evidence from its pool, checked on the worker's janitor tick:
//  - the pool moved to a new primary (its target changed; not its generation, which a
//    crash recovery's dropped connections bump too): failover;
//  - the pool is not paused and transactions completed on it after `alive_grace` (a
//    backend orphaned by a dead postmaster finishes at most the statement it runs, so
//    only a live primary keeps completing them): the server connection was lost, no
//    failover;
//  - the pool is not paused `decide_within` after the loss (the monitor would have
//    declared a dead primary by then): lost, no failover;
//  - the pool stays paused (the monitor holds clients: a failover or a crash recovery is
//    being decided) until the pause ends (moved: failover; not: lost), or past
//    `pause_limit`, failover_pause_timeout (a failover waiting for an operator): failover.
// Telling "server connection lost" when a failover follows later is less specific but
// true; telling "failover" when none happens is what this refuses to do. Pure: the
// session feeds it its pool's numbers and the loop time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgpivot::cluster {

enum class LossCause : uint8_t {
  kPending,       // not known yet: ask again
  kServerLost,    // this connection ended; the primary was not replaced (08006)
  kFailover,      // a failover of the cluster is under way or happened
  kCrashRestart,  // PostgreSQL on the primary restarts after a backend crash (57P02)
};
std::string_view toString(LossCause cause);

// What the session sees of its pool at one moment.
struct PoolSignals {
  std::string primary;        // where its servers connect ("host:port"): moves at a failover
  bool paused = false;        // Pool::paused(): clients held (failover, crash recovery)
  uint64_t transactions = 0;  // PoolStats::transactions: completed, cumulative
};

struct LossTiming {
  uint64_t alive_grace_ms = 1000;
  uint64_t decide_within_ms = 10000;  // the cluster's detection time (dead/unresponsive +)
  uint64_t pause_limit_ms = 30000;    // failover_pause_timeout
};

class ServerLoss final {
 public:
  // At the loss: `moved_by_failover` when pgpivot closed the connection for a failover,
  // `crash_restart` when the server said 57P02.
  ServerLoss(bool moved_by_failover, bool crash_restart, PoolSignals pool, uint64_t now_ms,
             LossTiming timing);

  // The verdict now; once it is not kPending it never changes.
  LossCause decide(const PoolSignals& pool, uint64_t now_ms);
  [[nodiscard]] LossCause cause() const { return cause_; }

 private:
  LossCause cause_ = LossCause::kPending;
  PoolSignals at_loss_;
  uint64_t lost_at_ms_ = 0;
  LossTiming timing_;
  bool have_baseline_ = false;  // transactions counted at lost_at + alive_grace
  uint64_t baseline_transactions_ = 0;
  bool was_paused_ = false;
  uint64_t paused_since_ms_ = 0;
};

}  // namespace pgpivot::cluster
