#include "pgpivot/app/worker.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>

#include "pgpivot/core/assert.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/session/cancel.hpp"
#include "pgpivot/session/client_session.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::app {

namespace {

// How often timeouts are checked. Timeouts are therefore accurate to this much.
constexpr uint64_t kJanitorIntervalMs = 100;

template <class T>
void retire(std::unordered_map<T*, std::unique_ptr<T>>& live,
            std::vector<std::unique_ptr<T>>& retired, T& item) {
  const auto it = live.find(&item);
  if (it == live.end()) {
    return;
  }
  retired.push_back(std::move(it->second));
  live.erase(it);
}

}  // namespace

Worker::Worker(int index, ConfigPtr config, AuthFilePtr auth_file, pool::SharedLimits& shared,
               const std::vector<Worker*>& peers)
    : index_(index),
      config_(std::move(config)),
      auth_file_(std::move(auth_file)),
      buffers_(bufferSize()),
      shared_(shared),
      peers_(peers) {
  // Connection ids are unique across workers (KILL_CLIENT takes them).
  next_id_ = (static_cast<uint64_t>(index) << 40) + 1;
  start_wall_us_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  limits_.max_message_length = config_->max_packet_size;
}

Worker::~Worker() {
  join();
}

Result<void> Worker::start(uint16_t port, bool unix_socket) {
  uv_loop_init(&loop_);
  if (mailbox_.init(&loop_) != 0) {
    return fail(sqlstate::kInternalError, "cannot create the worker mailbox");
  }
  uv_timer_init(&loop_, &janitor_);
  janitor_.data = this;
  uv_timer_start(
      &janitor_, [](uv_timer_t* t) noexcept { static_cast<Worker*>(t->data)->onJanitorTick(); },
      kJanitorIntervalMs, kJanitorIntervalMs);
  uv_check_init(&loop_, &reaper_);
  reaper_.data = this;
  uv_check_start(&reaper_, [](uv_check_t* c) noexcept {
    auto* worker = static_cast<Worker*>(c->data);
    worker->freeRetired();
    if (!worker->move_queue_.empty()) {
      worker->moveQueuedClients();
    }
    if (!worker->drains_.empty() || !worker->held_.empty()) {
      worker->checkDrains();  // a planned pause waits for the transactions that ran
    }
  });

  listener_ = std::make_unique<net::Listener>(
      &loop_, [this](uv_stream_t* server, bool is_unix) { onConnection(server, is_unix, false); });
  const auto& config = *config_;
  for (const auto& address : config.listen_addr) {
    auto listened = listener_->listenTcp(address, port,
                                         {.backlog = config.listen_backlog,
                                          .reuse_port = peers_.size() > 1,
                                          .defer_accept = config.tcp_defer_accept});
    if (!listened) {
      return listened;
    }
    port = listener_->boundPort();
  }
  bound_port_ = port;
  if (unix_socket && !config.unix_socket_dir.empty()) {
    auto listened = listener_->listenUnix(config.unix_socket_dir, port, config.listen_backlog);
    if (!listened) {
      return listened;
    }
  }
  if (unix_socket) {
    auto endpoints = startAdminEndpoints();
    if (!endpoints) {
      return endpoints;
    }
  }
  createForcedUserPools();
  thread_ = std::thread([this] { run(); });
  return {};
}

Result<void> Worker::startAdminEndpoints() {
  const auto& config = *config_;
  if (config.admin_port != 0) {
    admin_listener_ = std::make_unique<net::Listener>(
        &loop_, [this](uv_stream_t* server, bool is_unix) { onConnection(server, is_unix, true); });
    auto listened = admin_listener_->listenTcp(
        config.admin_listen_addr, config.admin_port,
        {.backlog = config.listen_backlog, .defer_accept = config.tcp_defer_accept});
    if (!listened) {
      return listened;
    }
  }
  if (config.metrics_port != 0) {
    metrics_server_ =
        std::make_unique<admin::MetricsServer>(&loop_, [this](admin::MetricsReply reply) {
          auto shared = std::make_shared<admin::MetricsReply>(std::move(reply));
          admin_service_.snapshot(
              admin::metricsParts(),
              admin::Completion<admin::Snapshot>([shared](Result<admin::Snapshot> snapshot) {
                shared->send(snapshot ? admin::renderMetrics(*snapshot)
                                      : "# pgpivot: " + snapshot.error().message + "\n");
              }));
        });
    const std::string address =
        config.admin_listen_addr.empty() ? std::string("127.0.0.1") : config.admin_listen_addr;
    auto listened = metrics_server_->listen(address, config.metrics_port);
    if (!listened) {
      return listened;
    }
  }
  return {};
}

void Worker::createForcedUserPools() {
  // A database with a fixed server login has one pool whatever the client, known from
  // the start, so min_pool_size can warm it before the first client (as PgBouncer does).
  for (const auto& [name, db] : config_->databases) {
    if (name != "*" && !db.user.empty()) {
      (void)poolFor(name, db.user);
    }
  }
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  auth_query_.stop();
  freeRetired();
  uv_loop_close(&loop_);
  finished_ = true;
}

void Worker::postReload(ConfigPtr config, AuthFilePtr auth_file) {
  mailbox_.post([this, config = std::move(config), auth_file = std::move(auth_file)]() mutable {
    applyReload(std::move(config), std::move(auth_file));
  });
}

void Worker::postRoute(monitor::ClusterRoute route) {
  mailbox_.post([this, route = std::move(route)] { applyRoute(route); });
}

void Worker::applyRoute(const monitor::ClusterRoute& route) {
  const auto previous = routes_.find(route.cluster);
  const bool moved = previous == routes_.end() ||
                     previous->second.primary.has_value() != route.primary.has_value() ||
                     (route.primary && (previous->second.primary->host != route.primary->host ||
                                        previous->second.primary->port != route.primary->port));
  routes_[route.cluster] = route;
  for (auto& [key, pool] : pools_) {
    const config::DatabaseEntry* db = entryFor(key.first);
    if (db == nullptr || db->cluster != route.cluster) {
      continue;
    }
    // No primary means nowhere to send anyone: hold them until there is one (or the
    // pause times out).
    pool->setPaused(route.paused || !route.primary, route.pause_timeout);
    if (route.drop_connections) {
      pool->dropServers();  // the old primary: abort what runs there, keep nothing
    }
    if (moved && route.primary) {
      pool::ServerTarget target = targetFor(*db, key.second);
      if (db->dbname.empty()) {
        target.dbname = key.first;
      }
      pool->moveTo(std::move(target));
    }
  }
  trackDrain(route, moved);
}

void Worker::postShutdown(bool immediate) {
  mailbox_.post([this, immediate] { beginShutdown(immediate); });
}

// --- accepting ----------------------------------------------------------------------------

void Worker::onConnection(uv_stream_t* server, bool is_unix, bool admin_port) {
  if (!admin_port) {  // the console stays on the worker that runs the admin service
    if (Worker* peer = workerForNewClient(); peer != this) {
      sendClient(*peer, server, is_unix);
      return;
    }
  }
  auto client = std::make_unique<session::ClientSession>(
      *this, next_id_++, is_unix ? net::Stream::Kind::kPipe : net::Stream::Kind::kTcp);
  if (client->accept(server) != 0) {
    client->close(session::CloseReason::kClientEof);
    retired_clients_.push_back(std::move(client));
    return;
  }
  admitClient(std::move(client), admin_port);
}

void Worker::admitClient(std::unique_ptr<session::ClientSession> client, bool admin_port) {
  session::ClientSession& ref = *client;
  if (admin_port) {
    ref.markAdminPort();
    ref.stream().setSuspendExempt(true);  // the console must stay usable to RESUME
  }
  clients_.emplace(ref.id(), std::move(client));
  stats_.clients_accepted++;
  stats_.clients_current = clients_.size();
  // max_client_conn counts every worker's clients. One over the limit is still accepted,
  // to be told so with 53300 once its start-up packet arrives.
  const bool admitted = pool::SharedLimits::tryAcquire(shared_.clients(), config_->max_client_conn);
  ref.start(!admitted);
}

// --- pools --------------------------------------------------------------------------------

const config::DatabaseEntry* Worker::entryFor(const std::string& database) const {
  auto entry = config_->databases.find(database);
  if (entry == config_->databases.end()) {
    entry = config_->databases.find("*");
  }
  return entry != config_->databases.end() ? &entry->second : nullptr;
}

pool::Pool* Worker::poolFor(const std::string& database, const std::string& user) {
  const config::DatabaseEntry* entry = entryFor(database);
  if (entry == nullptr) {
    return nullptr;
  }
  const config::DatabaseEntry& db = *entry;
  const std::string server_user = db.user.empty() ? user : db.user;
  auto& slot = pools_[{database, server_user}];
  if (!slot) {
    pool::ServerTarget target = targetFor(db, server_user);
    if (db.dbname.empty()) {
      target.dbname = database;  // the "*" entry and name-only entries keep the client's name
    }
    slot = std::make_unique<pool::Pool>(*this, pool::PoolKey{database, server_user},
                                        std::move(target), settingsFor(db, server_user));
    PGPIVOT_LOG_DEBUG("new pool {}/{} -> {}:{}", database, server_user, slot->target().host,
                      slot->target().port);
    // A cluster's pool starts in the state the health monitor last announced: held while
    // there is no validated primary.
    const auto route = routes_.find(db.cluster);
    if (!db.cluster.empty() && route != routes_.end()) {
      slot->setPaused(route->second.paused || !route->second.primary, route->second.pause_timeout);
    } else if (!db.cluster.empty()) {
      // Before the monitor's first word nobody knows which node is primary.
      const auto cluster = config_->clusters.find(db.cluster);
      slot->setPaused(true, cluster != config_->clusters.end()
                                ? cluster->second.failover_pause_timeout
                                : config::Millis{30000});
    }
  }
  return slot.get();
}

pool::ServerTarget Worker::targetFor(const config::DatabaseEntry& db,
                                     const std::string& server_user) const {
  pool::ServerTarget target;
  target.host = db.host;
  target.port = db.port;
  if (!db.cluster.empty()) {
    // The health monitor's route decides; before its first word, the first node listed.
    const auto route = routes_.find(db.cluster);
    const auto cluster = config_->clusters.find(db.cluster);
    if (route != routes_.end() && route->second.primary) {
      target.host = route->second.primary->host;
      target.port = route->second.primary->port;
    } else if (cluster != config_->clusters.end() && !cluster->second.nodes.empty()) {
      target.host = cluster->second.nodes.front().host;
      target.port = cluster->second.nodes.front().port;
    }
  }
  target.dbname = db.dbname;
  target.user = server_user;
  target.password = db.password;
  if (target.password.empty() && auth_file_ != nullptr) {
    if (const auto* entry = auth_file_->find(server_user)) {
      target.password = entry->secret;
    }
  }
  target.connect_query = db.connect_query;
  return target;
}

pool::PoolSettings Worker::settingsFor(const config::DatabaseEntry& db,
                                       const std::string& server_user) const {
  const auto& config = *config_;
  pool::PoolSettings settings;
  const auto user_entry = config.users.find(server_user);
  const config::UserEntry* user = user_entry != config.users.end() ? &user_entry->second : nullptr;
  settings.mode = config.pool_mode;
  if (db.pool_mode) {
    settings.mode = *db.pool_mode;
  }
  if (user != nullptr && user->pool_mode) {
    settings.mode = *user->pool_mode;
  }
  settings.pool_size = db.pool_size.value_or(
      user != nullptr && user->pool_size ? *user->pool_size : config.default_pool_size);
  settings.min_pool_size = db.min_pool_size.value_or(config.min_pool_size);
  settings.reserve_pool_size = db.reserve_pool_size.value_or(config.reserve_pool_size);
  settings.reserve_pool_timeout = config.reserve_pool_timeout;
  settings.cluster_managed = !db.cluster.empty();
  settings.max_db_connections = db.max_db_connections.value_or(config.max_db_connections);
  settings.max_user_connections = user != nullptr && user->max_user_connections
                                      ? *user->max_user_connections
                                      : config.max_user_connections;
  return settings;
}

session::ServerConn& Worker::createServer(pool::Pool& pool, pool::ServerSlot slot) {
  auto server = std::make_unique<session::ServerConn>(*this, pool, next_id_++, std::move(slot));
  session::ServerConn& ref = *server;
  servers_.emplace(&ref, std::move(server));
  stats_.servers_current = servers_.size();
  return ref;
}

void Worker::askPeersForIdleServer(const pool::PoolKey& key, uint64_t waiting_since) {
  if (peers_.size() < 2) {
    return;
  }
  const uint64_t now = uv_now(&loop_);
  uint64_t& last = last_idle_ask_[{key.database, key.user}];
  if (last != 0 && now - last < 2) {  // one ask per loop tick is enough
    return;
  }
  last = now;
  for (Worker* peer : peers_) {
    if (peer != this) {
      const int asker = index_;
      peer->mailbox_.post(
          [peer, asker, key, waiting_since] { peer->onPeerAsk(key, asker, waiting_since); });
    }
  }
}

void Worker::onPeerAsk(const pool::PoolKey& key, int asker, uint64_t waiting_since) {
  const auto it = pools_.find({key.database, key.user});
  if (it != pools_.end() && !shutting_down_) {
    it->second->onPeerAsk(asker, waiting_since, now());
  }
}

void Worker::sendServer(int peer_index, const pool::PoolKey& key, session::ServerHandoff handoff) {
  // The mailbox takes copyable tasks; a task dropped unrun (the peer is stopping) drops the
  // hand-off, which ends the backend.
  auto moving = std::make_shared<session::ServerHandoff>(std::move(handoff));
  Worker* peer = peers_[static_cast<std::size_t>(peer_index)];
  peer->mailbox_.post([peer, key, moving] { peer->adoptServer(key, *moving); });
}

void Worker::adoptServer(const pool::PoolKey& key, session::ServerHandoff& handoff) {
  const auto it = pools_.find({key.database, key.user});
  if (it == pools_.end() || shutting_down_) {
    return;  // the hand-off ends the backend when the task is dropped
  }
  pool::Pool& pool = *it->second;
  const pool::ServerTarget& target = pool.target();
  if (target.host != handoff.host || target.port != handoff.port ||
      target.dbname != handoff.dbname || target.user != handoff.user) {
    // The two workers saw different targets (a reload or a failover between ask and
    // answer): this backend is not where this pool goes now. Its slot is free once the
    // hand-off is dropped at the end of this task.
    handoff.slot.release();
    pool.retryWaiters();
    return;
  }
  last_idle_ask_.erase({key.database, key.user});  // more waiters may ask again at once
  session::ServerConn& server = createServer(pool, std::move(handoff.slot));
  if (!server.adopt(handoff)) {
    server.close(session::CloseReason::kServerUnusable);
    pool.retryWaiters();
    return;
  }
  pool.adoptServer(server);
}

void Worker::retireClient(session::ClientSession& client) {
  const auto it = clients_.find(client.id());
  if (it != clients_.end() && it->second.get() == &client) {
    retired_clients_.push_back(std::move(it->second));
    clients_.erase(it);
  } else {
    const auto departed = std::find_if(departed_clients_.begin(), departed_clients_.end(),
                                       [&](const auto& owned) { return owned.get() == &client; });
    if (departed != departed_clients_.end()) {
      retired_clients_.push_back(std::move(*departed));
      departed_clients_.erase(departed);
    }
  }
  stats_.clients_current = clients_.size();
}

void Worker::retireServer(session::ServerConn& server) {
  retire(servers_, retired_servers_, server);
  stats_.servers_current = servers_.size();
}

void Worker::retireCancel(session::CancelForwarder& cancel) {
  retire(cancels_, retired_cancels_, cancel);
}

void Worker::freeRetired() {
  retired_clients_.clear();
  retired_servers_.clear();
  retired_cancels_.clear();
  if (shutting_down_) {
    maybeFinishShutdown();
  }
}

// --- auth_query ---------------------------------------------------------------------------

bool Worker::canLookUpUser(const std::string& database) const {
  const config::DatabaseEntry* db = entryFor(database);
  const std::string& auth_user =
      db != nullptr && !db->auth_user.empty() ? db->auth_user : config_->auth_user;
  return db != nullptr && !auth_user.empty() && !config_->auth_query.empty();
}

void Worker::lookUpUser(session::ClientSession& client) {
  const config::DatabaseEntry* db = entryFor(client.database());
  auth::AuthQueryRequest request;
  const pool::ServerTarget target = targetFor(*db, client.user());
  request.host = target.host;
  request.port = target.port;
  request.dbname = !config_->auth_dbname.empty()
                       ? config_->auth_dbname
                       : (db->dbname.empty() ? client.database() : db->dbname);
  request.auth_user = !db->auth_user.empty() ? db->auth_user : config_->auth_user;
  if (auth_file_ != nullptr) {
    if (const auto* entry = auth_file_->find(request.auth_user)) {
      request.auth_password = entry->secret;
    }
  }
  request.query = config_->auth_query;
  request.user = client.user();
  const uint64_t id = client.id();
  // The answer arrives on the runner's thread; hop back onto this loop by mailbox.
  auth_query_.submit(std::move(request), [this, id](auth::AuthQueryResult result) {
    mailbox_.post([this, id, result = std::move(result)]() mutable {
      const auto it = clients_.find(id);
      if (it != clients_.end()) {
        it->second->onAuthQueryResult(std::move(result));
      }
    });
  });
}

// --- cancel requests ----------------------------------------------------------------------

namespace {

// Cancel keys come from OpenSSL's CSPRNG, drawn 2 KiB at a time (256 keys). One
// RAND_bytes call per login showed as 2.7 % of pgpivot's CPU under pgbench -C (OpenSSL's
// locking and fork check, which costs a getpid system call each time). One pool per
// worker thread; nothing crosses threads.
class RandomWords final {
 public:
  uint32_t next() {
    if (used_ == words_.size()) {
      PGPIVOT_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(words_.data()),
                               static_cast<int>(words_.size() * sizeof(uint32_t))) == 1);
      used_ = 0;
    }
    const uint32_t word = words_[used_];
    words_[used_++] = 0;  // a key handed out does not stay readable in the pool
    return word;
  }

 private:
  std::array<uint32_t, 512> words_{};
  std::size_t used_ = words_.size();
};

}  // namespace

std::pair<int32_t, int32_t> Worker::newCancelKey() {
  thread_local RandomWords words;
  for (;;) {
    const uint32_t random[2] = {words.next(), words.next()};
    // Positive like a real backend pid; the worker index sits in the top bits so a cancel
    // that lands on another worker can be routed (STYLE.md 3.2).
    const auto pid = static_cast<int32_t>(((static_cast<uint32_t>(index_) & 0x3f) << 24) |
                                          (random[0] & 0xffffff)) |
                     1;
    if (cancel_keys_.count(pid) == 0 && moved_cancel_keys_.count(pid) == 0) {
      return {pid, static_cast<int32_t>(random[1])};
    }
  }
}

int Worker::cancelKeyOrigin(int32_t pid) const {
  // The worker that made the key (newCancelKey).
  return static_cast<int>((static_cast<uint32_t>(pid) >> 24) & 0x3f);
}

// A client that moved to another worker (client_placement.cpp) keeps its cancel key, so
// the worker that made it keeps track of where the client is now: a CancelRequest goes to
// the key's maker first, and from there to the client. Each change is posted from the
// worker the client is on, in the order the client moves, so the maker sees them in order.
void Worker::registerCancelKey(session::ClientSession& client) {
  const int32_t pid = client.cancelPid();
  cancel_keys_[pid] = &client;
  const int origin = cancelKeyOrigin(pid);
  if (origin == index_) {
    moved_cancel_keys_.erase(pid);
  } else if (static_cast<std::size_t>(origin) < peers_.size()) {
    Worker* maker = peers_[static_cast<std::size_t>(origin)];
    const int here = index_;
    maker->mailbox_.post([maker, pid, here] { maker->moved_cancel_keys_[pid] = here; });
  }
}

void Worker::unregisterCancelKey(session::ClientSession& client) {
  const int32_t pid = client.cancelPid();
  const auto it = cancel_keys_.find(pid);
  if (it == cancel_keys_.end() || it->second != &client) {
    return;
  }
  cancel_keys_.erase(it);
  const int origin = cancelKeyOrigin(pid);
  if (origin != index_ && static_cast<std::size_t>(origin) < peers_.size()) {
    Worker* maker = peers_[static_cast<std::size_t>(origin)];
    const int here = index_;
    maker->mailbox_.post([maker, pid, here] {
      const auto moved = maker->moved_cancel_keys_.find(pid);
      if (moved != maker->moved_cancel_keys_.end() && moved->second == here) {
        maker->moved_cancel_keys_.erase(moved);
      }
    });
  }
}

bool Worker::forwardCancel(int32_t pid, int32_t secret, uint64_t requester_id) {
  const auto owner = static_cast<std::size_t>(cancelKeyOrigin(pid));
  if (owner != static_cast<std::size_t>(index_) && owner < peers_.size()) {
    Worker* peer = peers_[owner];
    const int me = index_;
    peer->mailbox_.post([peer, pid, secret, me, requester_id] {
      if (!peer->startCancel(pid, secret, me, requester_id, true)) {
        peer->notifyCancelDone(me, requester_id);
      }
    });
    return true;
  }
  return startCancel(pid, secret, index_, requester_id, true);
}

bool Worker::startCancel(int32_t pid, int32_t secret, int requester_worker, uint64_t requester_id,
                         bool follow_moves) {
  const auto it = cancel_keys_.find(pid);
  if (it == cancel_keys_.end() && follow_moves) {
    const auto moved = moved_cancel_keys_.find(pid);
    if (moved != moved_cancel_keys_.end() && moved->second != index_ &&
        static_cast<std::size_t>(moved->second) < peers_.size()) {
      Worker* peer = peers_[static_cast<std::size_t>(moved->second)];
      peer->mailbox_.post([peer, pid, secret, requester_worker, requester_id] {
        if (!peer->startCancel(pid, secret, requester_worker, requester_id, false)) {
          peer->notifyCancelDone(requester_worker, requester_id);
        }
      });
      return true;
    }
  }
  if (it == cancel_keys_.end() || it->second->cancelSecret() != secret) {
    PGPIVOT_LOG_DEBUG("cancel request for an unknown key ignored");
    return false;
  }
  session::ServerConn* server = it->second->server();
  if (server == nullptr || server->backendPid() == 0) {
    return false;  // nothing is running for that client
  }
  stats_.cancels_forwarded++;
  PGPIVOT_LOG_DEBUG("{} forwarding cancel", it->second->logPrefix());
  cancelOnServer(*server, requester_worker, requester_id);
  return true;
}

void Worker::cancelOnServer(const session::ServerConn& server, int requester_worker,
                            uint64_t requester_id) {
  const bool unix_socket = !server.unixPath().empty();
  auto cancel =
      std::make_unique<session::CancelForwarder>(*this, server.backendPid(), server.backendSecret(),
                                                 unix_socket, requester_worker, requester_id);
  session::CancelForwarder& ref = *cancel;
  cancels_.emplace(&ref, std::move(cancel));
  ref.start(server.address(), server.unixPath());
}

void Worker::notifyCancelDone(int requester_worker, uint64_t requester_id) {
  if (requester_worker == index_) {
    cancelDone(requester_id);
    return;
  }
  if (requester_worker >= 0 && static_cast<std::size_t>(requester_worker) < peers_.size()) {
    Worker* peer = peers_[static_cast<std::size_t>(requester_worker)];
    peer->mailbox_.post([peer, requester_id] { peer->cancelDone(requester_id); });
  }
}

void Worker::cancelDone(uint64_t requester_id) {
  const auto it = clients_.find(requester_id);
  if (it != clients_.end()) {
    it->second->close(session::CloseReason::kCancelRequest);
  }
}

// --- timers, reload, shutdown -------------------------------------------------------------

void Worker::onJanitorTick() {
  const uint64_t now = uv_now(&loop_);
  std::vector<session::ClientSession*> clients;
  clients.reserve(clients_.size());
  for (auto& [id, owned] : clients_) {
    clients.push_back(owned.get());
  }
  for (auto* client : clients) {
    client->checkTimeouts(now);
  }
  for (auto& [key, pool] : pools_) {
    pool->janitor(now);
  }
  trackDataPath(now);
  measureLoad(now);
  admin_service_.sampleStats(now);  // SHOW STATS' averages, once every stats_period
}

void Worker::applyReload(ConfigPtr config, AuthFilePtr auth_file) {
  config_ = std::move(config);
  auth_file_ = std::move(auth_file);
  limits_.max_message_length = config_->max_packet_size;
  for (auto& [key, pool] : pools_) {
    auto entry = config_->databases.find(key.first);
    if (entry == config_->databases.end()) {
      entry = config_->databases.find("*");
    }
    if (entry == config_->databases.end()) {
      continue;  // removed: existing clients finish, new ones get "no such database"
    }
    pool::ServerTarget target = targetFor(entry->second, key.second);
    if (entry->second.dbname.empty()) {
      target.dbname = key.first;
    }
    pool->applySettings(std::move(target), settingsFor(entry->second, key.second));
  }
  createForcedUserPools();
  PGPIVOT_LOG_INFO("worker {}: configuration reloaded", index_);
}

void Worker::beginShutdown(bool immediate) {
  if (!shutting_down_) {
    shutting_down_ = true;
    if (listener_) {
      listener_->close();
    }
    if (admin_listener_) {
      admin_listener_->close();
    }
    if (metrics_server_) {
      metrics_server_->close();
    }
  }
  if (immediate) {
    std::vector<session::ClientSession*> clients;
    for (auto& [id, owned] : clients_) {
      clients.push_back(owned.get());
    }
    for (auto* client : clients) {
      client->closeWithError(sqlstate::kAdminShutdown, "pgpivot: shutting down",
                             session::CloseReason::kShutdown);
    }
  }
  maybeFinishShutdown();
}

void Worker::maybeFinishShutdown() {
  if (!clients_.empty()) {
    return;
  }
  for (auto& [key, pool] : pools_) {
    pool->closeIdleServers();
  }
  if (!servers_.empty()) {
    std::vector<session::ServerConn*> servers;
    for (auto& [ptr, owned] : servers_) {
      servers.push_back(ptr);
    }
    for (auto* server : servers) {
      server->close(session::CloseReason::kShutdown);
    }
    return;  // the reaper calls us again once they are closed
  }
  if (!cancels_.empty() || !departed_clients_.empty()) {
    return;
  }
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&janitor_)) == 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&janitor_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&reaper_), nullptr);
    mailbox_.close();
  }
}

}  // namespace pgpivot::app
