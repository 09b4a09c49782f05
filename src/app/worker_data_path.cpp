// Worker::trackDataPath: the data-path evidence of the cluster databases this worker
// serves (monitor/data_path.hpp), gathered by the janitor and posted to the health
// monitor. Nothing here touches a client's or a server's hot path: it reads byte
// counters and pool counters the data path keeps anyway.
#include <fmt/format.h>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::app {

void Worker::trackDataPath(uint64_t now) {
  if (config_->clusters.empty() || hooks_ == nullptr || !hooks_->data_path) {
    return;
  }
  // Pools of cluster databases, with the node they point at and the stall timeout.
  struct Seen {
    std::string cluster;
    std::string node;
    uint64_t stall_timeout_ms = 0;
  };
  std::unordered_map<const pool::Pool*, Seen> pools;
  for (const auto& [key, pool] : pools_) {
    const config::DatabaseEntry* db = entryFor(key.first);
    if (db == nullptr || db->cluster.empty()) {
      continue;
    }
    const auto cluster = config_->clusters.find(db->cluster);
    if (cluster == config_->clusters.end()) {
      continue;
    }
    const pool::ServerTarget& target = pool->target();
    pools[pool.get()] = Seen{db->cluster, fmt::format("{}:{}", target.host, target.port),
                             static_cast<uint64_t>(std::max<int64_t>(
                                 0, config::queryStallTimeout(cluster->second).count()))};
  }
  if (pools.empty()) {
    return;
  }
  data_path_.beginPass(now);
  for (const auto& [pool, seen] : pools) {
    data_path_.pool({.pool = pool,
                     .cluster = seen.cluster,
                     .node = seen.node,
                     .transactions = pool->stats().transactions,
                     .server_errors = pool->stats().server_errors});
  }
  for (auto& [ptr, owned] : servers_) {
    session::ServerConn& server = *ptr;
    const auto it = pools.find(&server.pool());
    if (it == pools.end()) {
      continue;
    }
    data_path_.server(
        {.id = server.id(),
         .cluster = it->second.cluster,
         .node = it->second.node,
         .owes_reply = server.state() == session::ServerState::kActive && server.outstanding() > 0,
         .bytes_in = server.stream().bytesIn(),
         .bytes_out = server.stream().bytesOut(),
         .stall_timeout_ms = it->second.stall_timeout_ms});
  }
  data_path_.endPass();
  if (data_path_.due(now)) {
    hooks_->data_path(data_path_.report(index_, now));
  }
}

}  // namespace pgpivot::app
