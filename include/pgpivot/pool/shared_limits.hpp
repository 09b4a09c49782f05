// Limits that hold across all workers (STYLE.md 3.2): pool_size per (database, user),
// max_db_connections, max_user_connections and max_client_conn. Pools are per worker, so
// each server connection reserves a slot in these process-wide counters before it is
// opened, with a compare-and-swap, and gives it back when it closes. The lock guards only
// the first lookup of a counter; the data path touches the atomics alone.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace pgpivot::pool {

class SharedLimits final {
 public:
  using Counter = std::atomic<int>;

  // The counter for `key` (e.g. "pool:appdb/alice", "db:appdb", "user:alice"), created at
  // zero on first use. The reference stays valid for the life of this object.
  Counter& counter(const std::string& key);

  // Takes one slot if fewer than `limit` are taken (limit <= 0: no limit). Lock-free.
  [[nodiscard]] static bool tryAcquire(Counter& counter, int limit);
  static void release(Counter& counter) { counter.fetch_sub(1, std::memory_order_acq_rel); }

  Counter& clients() { return clients_; }

 private:
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Counter>> counters_;
  Counter clients_{0};
};

// A server connection's reservation in the three counters; released exactly once.
class ServerSlot final {
 public:
  ServerSlot() = default;
  ServerSlot(SharedLimits::Counter* pool, SharedLimits::Counter* db, SharedLimits::Counter* user)
      : pool_(pool), db_(db), user_(user) {}
  ServerSlot(const ServerSlot&) = delete;
  ServerSlot& operator=(const ServerSlot&) = delete;
  ServerSlot(ServerSlot&& other) noexcept { *this = std::move(other); }
  ServerSlot& operator=(ServerSlot&& other) noexcept {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    db_ = std::exchange(other.db_, nullptr);
    user_ = std::exchange(other.user_, nullptr);
    return *this;
  }
  ~ServerSlot() { release(); }

  void release() {
    for (auto** counter : {&pool_, &db_, &user_}) {
      if (*counter != nullptr) {
        SharedLimits::release(**counter);
        *counter = nullptr;
      }
    }
  }

 private:
  SharedLimits::Counter* pool_ = nullptr;
  SharedLimits::Counter* db_ = nullptr;
  SharedLimits::Counter* user_ = nullptr;
};

}  // namespace pgpivot::pool
