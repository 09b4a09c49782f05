// DataPathTracker: the worker's half of the data-path evidence (data_path.hpp).
#include "pgpivot/monitor/data_path.hpp"

#include <algorithm>

namespace pgpivot::monitor {

DataPathNode& DataPathTracker::node(std::string_view cluster, std::string_view name) {
  for (DataPathNode& n : current_) {
    if (n.cluster == cluster && n.node == name) {
      return n;
    }
  }
  current_.push_back(DataPathNode{.cluster = std::string(cluster), .node = std::string(name)});
  return current_.back();
}

void DataPathTracker::beginPass(uint64_t now_ms) {
  now_ = now_ms;
  ++pass_;
  if (last_report_ms_ == 0) {
    last_report_ms_ = now_ms;
  }
  // Stall counts are a snapshot of the newest pass; counters add up over the interval.
  for (DataPathNode& n : current_) {
    n.stalled = 0;
    n.oldest_stall_ms = 0;
    n.owing = 0;
  }
}

void DataPathTracker::server(const ServerSeen& seen) {
  Conn& c = conns_[seen.id];
  c.pass = pass_;
  const bool moved = c.bytes_in != seen.bytes_in || c.bytes_out != seen.bytes_out;
  c.bytes_in = seen.bytes_in;
  c.bytes_out = seen.bytes_out;
  if (!seen.owes_reply) {
    c.quiet_since = 0;
    return;
  }
  // The janitor sees the query at most one tick after it was sent: the clock starts then.
  if (c.quiet_since == 0 || moved) {
    c.quiet_since = now_;
  }
  DataPathNode& n = node(seen.cluster, seen.node);
  ++n.owing;
  const uint64_t quiet_for = now_ - c.quiet_since;
  if (seen.stall_timeout_ms > 0 && quiet_for > seen.stall_timeout_ms) {
    ++n.stalled;
    n.oldest_stall_ms = std::max(n.oldest_stall_ms, quiet_for);
  }
}

void DataPathTracker::pool(const PoolSeen& seen) {
  auto [it, inserted] = pools_.try_emplace(seen.pool);
  PoolCounters& p = it->second;
  p.pass = pass_;
  if (inserted) {
    // First sight: count from here, not the pool's whole history.
    p.transactions = seen.transactions;
    p.server_errors = seen.server_errors;
  }
  DataPathNode& n = node(seen.cluster, seen.node);
  // A pool's counters only grow; a smaller value is a new pool at the same address.
  n.transactions += seen.transactions >= p.transactions ? seen.transactions - p.transactions : 0;
  n.server_errors +=
      seen.server_errors >= p.server_errors ? seen.server_errors - p.server_errors : 0;
  p.transactions = seen.transactions;
  p.server_errors = seen.server_errors;
}

void DataPathTracker::endPass() {
  std::erase_if(conns_, [&](const auto& entry) { return entry.second.pass != pass_; });
  std::erase_if(pools_, [&](const auto& entry) { return entry.second.pass != pass_; });
}

DataPathReport DataPathTracker::report(int worker, uint64_t now_ms) {
  DataPathReport r;
  r.worker = worker;
  r.at_ms = now_ms;
  r.interval_ms = now_ms - std::min(now_ms, last_report_ms_);
  r.nodes = std::move(current_);
  current_.clear();
  last_report_ms_ = now_ms;
  return r;
}

}  // namespace pgpivot::monitor
