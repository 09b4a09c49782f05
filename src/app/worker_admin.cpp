// The worker's side of the admin console: its share of a snapshot, and admin commands
// applied to its own pools and sessions (AdminService sums and fans out).
#include <fmt/format.h>

#include <chrono>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/config/parser.hpp"
#include "pgpivot/session/client_session.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::app {

namespace {

int64_t wallNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "host:port" or "[v6]:port" into its parts.
void splitPeer(const std::string& peer, std::string& addr, int64_t& port) {
  const auto colon = peer.rfind(':');
  if (colon == std::string::npos) {
    addr = peer;
    return;
  }
  addr = peer.substr(0, colon);
  if (!addr.empty() && addr.front() == '[') {
    addr = addr.substr(1, addr.size() - 2);
  }
  port = std::atoll(peer.c_str() + colon + 1);
}

std::string clientState(const session::ClientSession& client) {
  switch (client.state()) {
    case session::ClientState::kStartup:
    case session::ClientState::kAuthenticating:
      return "login";
    case session::ClientState::kWaitingForServer:
      return "waiting";
    case session::ClientState::kActive:
    case session::ClientState::kAdmin:
      return "active";
    case session::ClientState::kIdle:
      return "idle";
    case session::ClientState::kClosing:
      return "closing";
  }
  return "?";
}

std::string serverState(const session::ServerConn& server) {
  switch (server.state()) {
    case session::ServerState::kResolving:
    case session::ServerState::kConnecting:
    case session::ServerState::kLogin:
      return "login";
    case session::ServerState::kIdle:
      return "idle";
    case session::ServerState::kSyncingParams:
    case session::ServerState::kActive:
      return "active";
    case session::ServerState::kResetting:
    case session::ServerState::kChecking:
      return "tested";
    case session::ServerState::kClosing:
      return "closing";
  }
  return "?";
}

}  // namespace

admin::Snapshot Worker::collectSnapshot(const admin::Parts& parts) {
  admin::Snapshot snapshot;
  const uint64_t now = uv_now(&loop_);
  const int64_t wall = wallNowUs();
  // Loop time (ms since an arbitrary point) into Unix microseconds.
  const auto toWall = [&](uint64_t loop_ms) {
    return wall - static_cast<int64_t>(now - std::min(now, loop_ms)) * 1000;
  };
  std::map<const pool::Pool*, admin::PoolRow*> pool_rows;
  if (parts.pools || parts.stats) {
    for (auto& [key, pool] : pools_) {
      admin::PoolRow row;
      row.database = key.first;
      row.user = key.second;
      row.cl_waiting = static_cast<int64_t>(pool->waitingCount());
      row.sv_active = static_cast<int64_t>(pool->activeCount());
      row.sv_idle = static_cast<int64_t>(pool->idleCount());
      row.sv_tested = static_cast<int64_t>(pool->cleaningCount());
      row.sv_login = static_cast<int64_t>(pool->openingCount());
      const uint64_t oldest = pool->oldestWaitStart();
      row.max_wait_us = oldest != 0 ? static_cast<int64_t>(now - oldest) * 1000 : 0;
      row.pool_mode = std::string(config::toString(pool->settings().mode));
      snapshot.pools.push_back(std::move(row));
    }
    for (std::size_t i = 0; i < snapshot.pools.size(); ++i) {
      auto it = pools_.find({snapshot.pools[i].database, snapshot.pools[i].user});
      pool_rows[it->second.get()] = &snapshot.pools[i];
    }
  }
  std::map<std::string, admin::StatTotals> totals;
  for (auto& [id, client] : clients_) {
    const session::ClientSession& c = *client;
    if (c.pool() != nullptr) {
      auto row = pool_rows.find(c.pool());
      if (row != pool_rows.end() && (c.state() == session::ClientState::kActive ||
                                     c.state() == session::ClientState::kIdle)) {
        row->second->cl_active++;
      }
      auto& t = totals[c.database()];
      t.bytes_received += static_cast<int64_t>(client->stream().bytesIn());
      t.bytes_sent += static_cast<int64_t>(client->stream().bytesOut());
    }
    if (parts.clients) {
      admin::ConnRow row;
      row.id = c.id();
      row.worker = index_;
      row.user = c.user();
      row.database = c.database();
      row.state = clientState(c);
      splitPeer(client->stream().peerName(), row.addr, row.port);
      row.connect_time_us = toWall(c.connectedAt());
      row.request_time_us = row.connect_time_us;
      if (c.state() == session::ClientState::kWaitingForServer) {
        row.wait_us = static_cast<int64_t>(now - c.waitStartedAt()) * 1000;
      }
      row.link_id = c.server() != nullptr ? c.server()->id() : 0;
      row.application_name = c.wantedParams().find("application_name").value_or("");
      snapshot.clients.push_back(std::move(row));
    }
  }
  if (parts.servers) {
    for (auto& [ptr, server] : servers_) {
      admin::ConnRow row;
      row.id = server->id();
      row.worker = index_;
      row.user = server->pool().target().user;
      row.database = server->pool().key().database;
      row.state = serverState(*server);
      row.addr = server->pool().target().host;
      row.port = server->pool().target().port;
      row.connect_time_us = toWall(server->createdAt());
      row.request_time_us = toWall(server->lastUsedAt());
      row.close_needed = server->generation() != server->pool().generation();
      row.link_id = server->client() != nullptr ? server->client()->id() : 0;
      row.remote_pid = server->backendPid();
      snapshot.servers.push_back(std::move(row));
    }
  }
  if (parts.stats) {
    for (auto& [key, pool] : pools_) {
      auto& t = totals[key.first];
      const pool::PoolStats& stats = pool->stats();
      t.query_count += static_cast<int64_t>(stats.queries);
      t.xact_count += static_cast<int64_t>(stats.transactions);
      t.bytes_received += static_cast<int64_t>(stats.bytes_in);
      t.bytes_sent += static_cast<int64_t>(stats.bytes_out);
      t.wait_time_us += static_cast<int64_t>(stats.total_wait_ms) * 1000;
      t.query_time_us += static_cast<int64_t>(stats.query_time_ns / 1000);
      t.xact_time_us += static_cast<int64_t>(stats.xact_time_ns / 1000);
    }
    for (auto& [database, t] : totals) {
      const auto averages = admin_service_.averages().find(database);
      snapshot.stats.push_back(admin::StatsRow{
          database, t,
          averages != admin_service_.averages().end() ? averages->second : admin::StatAverages{}});
    }
  }
  if (parts.databases) {
    for (const auto& [name, db] : config_->databases) {
      admin::DatabaseRow row;
      row.name = name;
      row.host = db.host;
      row.port = db.port;
      row.cluster = db.cluster;
      const auto route = routes_.find(db.cluster);
      if (!db.cluster.empty() && route != routes_.end() && route->second.primary) {
        row.host = route->second.primary->host;
        row.port = route->second.primary->port;
      }
      row.database = db.dbname.empty() ? name : db.dbname;
      row.force_user = db.user;
      row.pool_size = db.pool_size.value_or(config_->default_pool_size);
      row.min_pool_size = db.min_pool_size.value_or(config_->min_pool_size);
      row.reserve_pool = db.reserve_pool_size.value_or(config_->reserve_pool_size);
      row.pool_mode = db.pool_mode ? std::string(config::toString(*db.pool_mode)) : "";
      row.max_connections = db.max_db_connections.value_or(config_->max_db_connections);
      row.current_connections = shared_.counter("db:" + name).load();
      row.paused = admin_paused_.count("") > 0 || admin_paused_.count(name) > 0;
      row.disabled = disabled_databases_.count(name) > 0;
      snapshot.databases.push_back(std::move(row));
    }
  }
  if (parts.users) {
    for (const auto& [name, user] : config_->users) {
      snapshot.users.push_back(
          {name, user.pool_mode ? std::string(config::toString(*user.pool_mode)) : ""});
    }
  }
  if (parts.lists) {
    snapshot.lists = {{"databases", static_cast<int64_t>(config_->databases.size())},
                      {"users", static_cast<int64_t>(config_->users.size())},
                      {"pools", static_cast<int64_t>(pools_.size())},
                      {"used_clients", static_cast<int64_t>(clients_.size())},
                      {"used_servers", static_cast<int64_t>(servers_.size())}};
  }
  if (parts.mem) {
    // SHOW MEM: this worker's objects by kind (PgBouncer lists its slab caches). Only
    // receive buffers are kept free for reuse; the rest is allocated per object.
    const auto row = [](std::string name, std::size_t size, std::size_t used, std::size_t free) {
      return admin::MemRow{std::move(name), static_cast<int64_t>(size), static_cast<int64_t>(used),
                           static_cast<int64_t>(free), static_cast<int64_t>(size * (used + free))};
    };
    snapshot.mem = {row("client_session", sizeof(session::ClientSession), clients_.size(), 0),
                    row("server_conn", sizeof(session::ServerConn), servers_.size(), 0),
                    row("pool", sizeof(pool::Pool), pools_.size(), 0),
                    row("iobuf", buffers_.blockSize(), buffers_.inUse(), buffers_.freeBlocks())};
  }
  if (parts.config) {
    snapshot.config = admin::configRows(*config_);
  }
  if ((parts.clusters || parts.nodes || parts.failovers) && hooks_ != nullptr &&
      hooks_->cluster_status) {
    hooks_->cluster_status(snapshot.clusters, snapshot.nodes, snapshot.failovers);
  }
  if (parts.process) {
    snapshot.process.start_time_us = static_cast<int64_t>(start_wall_us_);
    snapshot.process.workers = 1;
    snapshot.process.clients_accepted = static_cast<int64_t>(stats_.clients_accepted.load());
    snapshot.process.login_failures = static_cast<int64_t>(stats_.login_failures.load());
    snapshot.process.cancel_requests = static_cast<int64_t>(stats_.cancels_forwarded.load());
    snapshot.process.failover_errors = static_cast<int64_t>(stats_.failover_errors.load());
    snapshot.process.failover_failed_transactions =
        static_cast<int64_t>(stats_.failover_failed_transactions.load());
    for (const auto& [id, client] : clients_) {
      if (client->lostTransactionUndecided()) {
        ++snapshot.process.lost_transactions_undecided;
      }
    }
    snapshot.process.client_connections = static_cast<int64_t>(clients_.size());
    snapshot.process.server_connections = static_cast<int64_t>(servers_.size());
  }
  return snapshot;
}

std::size_t Worker::unflushedBytes() {
  std::size_t total = 0;
  for (auto& [key, client] : clients_) {
    total += client->stream().unflushedBytes();
  }
  for (auto& [key, server] : servers_) {
    total += server->stream().unflushedBytes();
  }
  return total;
}

void Worker::applyAdminCommand(const admin::Command& command, int& found) {
  const auto matches = [&](const std::string& database) {
    return command.target.empty() || command.target == database;
  };
  switch (command.kind) {
    case admin::CommandKind::kPause:
    case admin::CommandKind::kResume: {
      const bool pause = command.kind == admin::CommandKind::kPause;
      if (!pause && suspended_ && command.target.empty()) {
        suspended_ = false;
        ++found;
        net::Stream::setReadsSuspended(false);
        for (auto& [key, client] : clients_) {
          client->stream().resumeReading();
        }
        for (auto& [key, server] : servers_) {
          server->stream().resumeReading();
        }
      }
      if (pause) {
        admin_paused_.insert(command.target);
      } else if (command.target.empty()) {
        found += static_cast<int>(admin_paused_.size());
        admin_paused_.clear();
      } else {
        found += static_cast<int>(admin_paused_.erase(command.target));
      }
      for (auto& [key, pool] : pools_) {
        if (matches(key.first)) {
          pool->setAdminPaused(admin_paused_.count("") > 0 || admin_paused_.count(key.first) > 0);
        }
      }
      return;
    }
    case admin::CommandKind::kSuspend:
      // PgBouncer's SUSPEND: stop reading every socket (pending writes still go out; the
      // caller waits for unflushedBytes() to reach 0). Console sessions keep reading, so
      // RESUME can be sent; a new connection's start-up packet is read, so an admin may
      // log in on the data port too, but nothing more of any other client until RESUME.
      suspended_ = true;
      net::Stream::setReadsSuspended(true);
      for (auto& [key, client] : clients_) {
        if (client->state() == session::ClientState::kAdmin) {
          client->stream().setSuspendExempt(true);
        } else {
          client->stream().holdReading();
        }
      }
      for (auto& [key, server] : servers_) {
        server->stream().holdReading();
      }
      ++found;
      return;
    case admin::CommandKind::kDisable:
      disabled_databases_.insert(command.target);
      return;
    case admin::CommandKind::kEnable:
      found += static_cast<int>(disabled_databases_.erase(command.target));
      return;
    case admin::CommandKind::kReconnect:
      for (auto& [key, pool] : pools_) {
        if (matches(key.first)) {
          pool->reconnect();
        }
      }
      return;
    case admin::CommandKind::kKill: {
      std::vector<session::ClientSession*> victims;
      for (auto& [id, client] : clients_) {
        if (client->database() == command.target && client->pool() != nullptr) {
          victims.push_back(client.get());
        }
      }
      for (auto* client : victims) {
        client->closeWithError(sqlstate::kAdminShutdown,
                               "pgpivot: database killed by the admin console (KILL)",
                               session::CloseReason::kShutdown);
      }
      admin_paused_.insert(command.target);
      for (auto& [key, pool] : pools_) {
        if (key.first == command.target) {
          pool->setAdminPaused(true);
          pool->reconnect();
        }
      }
      found += static_cast<int>(victims.size());
      return;
    }
    case admin::CommandKind::kKillClient: {
      const auto it = clients_.find(command.client_id);
      if (it != clients_.end()) {
        it->second->closeWithError(sqlstate::kAdminShutdown,
                                   "pgpivot: connection killed by the admin console (KILL_CLIENT)",
                                   session::CloseReason::kShutdown);
        ++found;
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace pgpivot::app

// --- planned pauses (SWITCHOVER, DRILL) ------------------------------------------------------
// The monitor holds the promotion until every worker says that none of the cluster's
// servers is inside a client's transaction any more. New transactions wait: a client
// without a server waits in the paused pool, and one that keeps its server between
// transactions (session mode) is held there, as PAUSE holds it: its socket is not read
// from the moment its server is between two transactions until the pause ends or that
// server is dropped (the fence), after which its next statement waits in the pool for
// the new primary. Without the hold, a transaction begun after the drain ran on the old
// primary and was cut by the fence. So the count only falls; it is checked when the
// pause arrives and then after every loop iteration (the reaper) until it reaches 0, so
// the answer goes out as soon as the last COMMIT's ReadyForQuery is through, not after a
// fixed wait. A transaction still open at drain_timeout (a client idle inside one) does
// not stop the switchover: the answer then says how many are open, the fence aborts
// them, and their clients are told 40001 at their next statement.

namespace pgpivot::app {

namespace {

bool busy(const session::ServerConn& server) {
  const session::ServerState state = server.state();
  return state == session::ServerState::kSyncingParams ||
         (state == session::ServerState::kActive &&
          (server.txStatus() != proto::TxStatus::kIdle || server.outstanding() > 0));
}

}  // namespace

int64_t Worker::transactionsRunning(const std::string& cluster) const {
  int64_t running = 0;
  for (const auto& [ptr, server] : servers_) {
    if (!busy(*server)) {
      continue;
    }
    const config::DatabaseEntry* db = entryFor(server->pool().key().database);
    if (db != nullptr && db->cluster == cluster) {
      ++running;
    }
  }
  return running;
}

int64_t Worker::holdBetweenTransactions(const std::string& cluster, std::set<uint64_t>& held) {
  int64_t running = 0;
  for (const auto& [ptr, server] : servers_) {
    const config::DatabaseEntry* db = entryFor(server->pool().key().database);
    if (db == nullptr || db->cluster != cluster) {
      continue;
    }
    if (busy(*server)) {
      ++running;
      continue;
    }
    session::ClientSession* client = server->client();
    if (client != nullptr && server->state() == session::ServerState::kActive &&
        client->state() == session::ClientState::kActive) {
      // Every iteration, not once: something that restarted its reading meanwhile (a
      // RESUME) must not let a transaction through to the old primary.
      client->stream().holdReading();
      held.insert(client->id());
    }
  }
  return running;
}

void Worker::releaseHeld(const std::string& cluster) {
  const auto it = held_.find(cluster);
  if (it == held_.end()) {
    return;
  }
  for (const uint64_t id : it->second) {
    const auto client = clients_.find(id);
    if (client != clients_.end()) {
      client->second->stream().resumeReading();
    }
  }
  held_.erase(it);
}

void Worker::trackDrain(const monitor::ClusterRoute& route, bool moved) {
  if (!route.paused || route.drop_connections || moved) {
    // Resumed (on the same primary if the switchover stopped), or the old primary's
    // servers are gone: held clients go on, to the paused pool if they lost their server.
    drains_.erase(route.cluster);
    releaseHeld(route.cluster);
    return;
  }
  if (route.drain_id == 0) {
    drains_.erase(route.cluster);  // answered: the held clients stay held until the fence
    return;
  }
  const auto it = drains_.find(route.cluster);
  if (it != drains_.end() && it->second.id == route.drain_id) {
    return;
  }
  const auto cluster = config_->clusters.find(route.cluster);
  const uint64_t timeout =
      cluster != config_->clusters.end()
          ? static_cast<uint64_t>(std::max<int64_t>(cluster->second.drain_timeout.count(), 0))
          : 10000;
  drains_[route.cluster] =
      Drain{route.drain_id, transactionsRunning(route.cluster), uv_now(&loop_) + timeout};
  held_[route.cluster];  // holding starts now
  checkDrains();
}

void Worker::checkDrains() {
  const uint64_t now = uv_now(&loop_);
  for (auto& [cluster, held] : held_) {
    const int64_t running = holdBetweenTransactions(cluster, held);
    const auto drain = drains_.find(cluster);
    if (drain == drains_.end() || (running > 0 && now < drain->second.deadline_ms)) {
      continue;
    }
    if (hooks_ != nullptr && hooks_->drained) {
      hooks_->drained(cluster, drain->second.id, index_, static_cast<int>(peers_.size()),
                      drain->second.transactions, running);
    }
    drains_.erase(drain);
  }
}

}  // namespace pgpivot::app
