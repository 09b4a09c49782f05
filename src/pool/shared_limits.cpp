#include "pgpivot/pool/shared_limits.hpp"

namespace pgpivot::pool {

SharedLimits::Counter& SharedLimits::counter(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto& slot = counters_[key];
  if (!slot) {
    slot = std::make_unique<Counter>(0);
  }
  return *slot;
}

bool SharedLimits::tryAcquire(Counter& counter, int limit) {
  int current = counter.load(std::memory_order_acquire);
  do {
    if (limit > 0 && current >= limit) {
      return false;
    }
  } while (!counter.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel));
  return true;
}

}  // namespace pgpivot::pool
