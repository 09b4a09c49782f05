#include "pgpivot/pool/pool.hpp"

#include <algorithm>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/session/client_session.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::pool {

using session::ClientSession;
using session::ServerConn;
using session::ServerState;

namespace {

template <class T>
bool eraseFrom(std::vector<T*>& list, T* item) {
  const auto it = std::find(list.begin(), list.end(), item);
  if (it == list.end()) {
    return false;
  }
  list.erase(it);
  return true;
}

}  // namespace

Pool::Pool(app::Worker& worker, PoolKey key, ServerTarget target, PoolSettings settings)
    : worker_(worker),
      key_(std::move(key)),
      target_(std::move(target)),
      settings_(settings),
      pool_servers_(&worker.sharedLimits().counter("pool:" + key_.database + "/" + key_.user)),
      db_servers_(&worker.sharedLimits().counter("db:" + key_.database)),
      user_servers_(&worker.sharedLimits().counter("user:" + key_.user)) {}

void Pool::applySettings(ServerTarget target, PoolSettings settings) {
  const bool moved = target.host != target_.host || target.port != target_.port ||
                     target.dbname != target_.dbname || target.user != target_.user;
  target_ = std::move(target);
  settings_ = settings;
  if (moved) {
    ++generation_;
    // Idle connections point at the old place; active ones finish their clients first.
    closeIdleServers();
  }
  serveWaiters();
}

std::size_t Pool::serverCount() const {
  return opening_.size() + idle_.size() + active_.size() + cleaning_.size();
}

bool Pool::empty() const {
  return serverCount() == 0 && waiting_.empty();
}

void Pool::requestServer(ClientSession& client) {
  waiting_.push_back(&client);
  serveWaiters();
}

void Pool::forgetWaiter(ClientSession& client) {
  const auto it = std::find(waiting_.begin(), waiting_.end(), &client);
  if (it != waiting_.end()) {
    waiting_.erase(it);
  }
}

void Pool::serveWaiters() {
  if (paused_ || admin_paused_) {
    return;  // a failover is under way: nobody gets a server until it is over
  }
  const uint64_t now = worker_.now();
  const auto& config = worker_.config();
  while (!idle_.empty()) {
    // An idle server goes to a peer whose clients wait when none waits here, or when the
    // peer's has waited kPeerStarvedMs longer than any here: no worker is starved.
    if (peerWaitedLonger(now)) {
      if (!handOffToPeer()) {
        break;
      }
      continue;
    }
    if (waiting_.empty()) {
      break;
    }
    // Most recently used first: it is the warmest (PgBouncer's default LIFO).
    ServerConn* server = idle_.back();
    idle_.pop_back();
    const bool needs_check =
        !config.server_check_query.empty() && config.server_check_delay.count() >= 0 &&
        now - server->lastUsedAt() >= static_cast<uint64_t>(config.server_check_delay.count());
    if (needs_check) {
      cleaning_.push_back(server);
      server->beginCheck();
      continue;
    }
    ClientSession* client = waiting_.front();
    waiting_.pop_front();
    linkServer(*server, *client);
  }
  // Open connections for waiters that no connection in progress will cover.
  while (waiting_.size() > opening_.size() + cleaning_.size() && openServerIfAllowed(now)) {
  }
}

std::optional<ServerSlot> Pool::reserveSlot(uint64_t now) {
  const auto& config = worker_.config();
  // Do not hammer a server that just refused us. A cluster's pool retries sooner: the
  // monitor is already deciding whether the node is gone.
  const int64_t retry = settings_.cluster_managed
                            ? std::min<int64_t>(config.server_login_retry.count(), 500)
                            : config.server_login_retry.count();
  if (last_login_failure_ms_ != 0 && now - last_login_failure_ms_ < static_cast<uint64_t>(retry)) {
    return std::nullopt;
  }
  int limit = settings_.pool_size;
  if (!waiting_.empty() && settings_.reserve_pool_size > 0 &&
      now - waiting_.front()->waitStartedAt() >=
          static_cast<uint64_t>(settings_.reserve_pool_timeout.count())) {
    limit += settings_.reserve_pool_size;
  }
  // The limits hold across workers: reserve in the shared counters, all or nothing.
  if (!SharedLimits::tryAcquire(*pool_servers_, limit)) {
    if (!waiting_.empty()) {
      worker_.askPeersForIdleServer(key_,
                                    waiting_.front()->waitStartedAt());  // idle ones elsewhere?
    }
    return std::nullopt;
  }
  if (!SharedLimits::tryAcquire(*db_servers_, settings_.max_db_connections)) {
    SharedLimits::release(*pool_servers_);
    return std::nullopt;
  }
  if (!SharedLimits::tryAcquire(*user_servers_, settings_.max_user_connections)) {
    SharedLimits::release(*pool_servers_);
    SharedLimits::release(*db_servers_);
    return std::nullopt;
  }
  return ServerSlot(pool_servers_, db_servers_, user_servers_);
}

bool Pool::openServerIfAllowed(uint64_t now) {
  std::optional<ServerSlot> slot = reserveSlot(now);
  if (!slot) {
    return false;
  }
  ServerConn& server = worker_.createServer(*this, std::move(*slot));
  opening_.push_back(&server);
  stats_.servers_opened++;
  // Log in with no client parameters, so the server's ParameterStatus values are its
  // defaults: the welcome for later clients, and what each client's SETs start from.
  server.open(session::ParamMap{});
  return true;
}

void Pool::onPeerAsk(int asker, uint64_t waiting_since, uint64_t now) {
  const auto it = std::find_if(peer_asks_.begin(), peer_asks_.end(),
                               [asker](const PeerAsk& ask) { return ask.worker == asker; });
  if (it != peer_asks_.end()) {
    *it = {asker, now, waiting_since};
  } else {
    peer_asks_.push_back({asker, now, waiting_since});
  }
  serveWaiters();
}

bool Pool::peerWaitedLonger(uint64_t now) {
  std::erase_if(peer_asks_, [now](const PeerAsk& ask) { return now - ask.at_ms > kPeerAskMs; });
  if (peer_asks_.empty()) {
    return false;
  }
  const auto first = std::min_element(
      peer_asks_.begin(), peer_asks_.end(),
      [](const PeerAsk& a, const PeerAsk& b) { return a.waiting_since_ms < b.waiting_since_ms; });
  // Not whenever the peer's waiter is older: with clients waiting on every worker (more
  // clients than servers) servers would then shuttle back and forth on every release.
  return waiting_.empty() ||
         first->waiting_since_ms + kPeerStarvedMs < waiting_.front()->waitStartedAt();
}

bool Pool::handOffToPeer() {
  const auto first = std::min_element(
      peer_asks_.begin(), peer_asks_.end(),
      [](const PeerAsk& a, const PeerAsk& b) { return a.waiting_since_ms < b.waiting_since_ms; });
  // The least recently used one goes: the back is what this worker hands out first.
  ServerConn* server = idle_.front();
  if (server->generation() != generation_) {
    return false;  // for an old target: a peer must not get it (the janitor closes it)
  }
  std::optional<session::ServerHandoff> handoff = server->handOff();
  if (!handoff) {
    return false;
  }
  idle_.erase(idle_.begin());
  const int asker = first->worker;
  peer_asks_.erase(first);
  worker_.sendServer(asker, key_, std::move(*handoff));
  return true;
}

void Pool::adoptServer(ServerConn& server) {
  last_login_failure_ms_ = 0;
  idle_.push_back(&server);
  serveWaiters();
}

void Pool::linkServer(ServerConn& server, ClientSession& client) {
  active_.push_back(&server);
  const uint64_t waited = worker_.now() - client.waitStartedAt();
  stats_.clients_served++;
  stats_.total_wait_ms += waited;
  stats_.max_wait_ms = std::max(stats_.max_wait_ms, waited);
  client.attachServer(server);
  server.link(client);
}

void Pool::releaseServer(ServerConn& server, bool reusable) {
  eraseFrom(active_, &server);
  server.unlinkClient();
  const auto& config = worker_.config();
  const uint64_t now = worker_.now();
  const bool too_old =
      config.server_lifetime.count() > 0 &&
      now - server.createdAt() >= static_cast<uint64_t>(config.server_lifetime.count());
  const bool stale = server.generation() != generation_;
  if (!reusable || too_old || stale) {
    server.close(reusable ? session::CloseReason::kServerLifetime
                          : session::CloseReason::kServerUnusable);
    return;
  }
  const bool reset =
      !config.server_reset_query.empty() &&
      (settings_.mode == config::PoolMode::kSession || config.server_reset_query_always);
  if (reset) {
    cleaning_.push_back(&server);
    server.beginReset();
    return;
  }
  server.becomeIdle();
  idle_.push_back(&server);
  serveWaiters();
}

void Pool::onServerReady(ServerConn& server) {
  if (server.generation() != generation_) {
    eraseFrom(opening_, &server);
    eraseFrom(cleaning_, &server);
    server.close(session::CloseReason::kServerUnusable);  // opened for the old target
    return;
  }
  if (eraseFrom(opening_, &server)) {
    welcome_params_ = server.params();  // a fresh login: the server's defaults
  }
  eraseFrom(cleaning_, &server);
  last_login_failure_ms_ = 0;
  idle_.push_back(&server);
  serveWaiters();
}

void Pool::onServerLoginFailed(ServerConn& server, const Error& error) {
  eraseFrom(opening_, &server);
  stats_.login_failures++;
  if (server.generation() != generation_) {
    return;  // refused by a target the pool has since left: no reason to wait on the new one
  }
  last_login_failure_ms_ = worker_.now();
  if (last_login_failure_ms_ == 0) {
    last_login_failure_ms_ = 1;
  }
  // Waiters would only wait for a connection that is not coming: tell them now. Two
  // refusals are worth waiting out (waiters still have query_wait_timeout and
  // failover_pause_timeout): an unreachable node of a cluster, where a failover may be about
  // to give them a primary; and 57P03 from any server, which is starting up, running crash
  // recovery after a backend crashed, or shutting down, and will either accept again in a
  // moment or be replaced. The janitor retries after server_login_retry.
  const bool awaiting_failover =
      settings_.cluster_managed && error.sqlstate == sqlstate::kConnectionFailure;
  const bool server_coming_back = error.sqlstate == sqlstate::kCannotConnectNow;
  if (opening_.empty() && !awaiting_failover && !server_coming_back) {
    failWaiters(error);
  }
}

void Pool::failWaiters(const Error& error) {
  std::deque<ClientSession*> waiters;
  waiters.swap(waiting_);
  const bool connect_error = error.sqlstate == sqlstate::kConnectionFailure;
  for (ClientSession* client : waiters) {
    client->failWaiting(error.sqlstate, error.message,
                        connect_error ? session::CloseReason::kServerUnavailable
                                      : session::CloseReason::kServerLoginFailed);
  }
}

void Pool::onServerClosed(ServerConn& server) {
  const bool was_listed = eraseFrom(opening_, &server) || eraseFrom(idle_, &server) ||
                          eraseFrom(active_, &server) || eraseFrom(cleaning_, &server);
  (void)was_listed;
  if (!waiting_.empty()) {
    serveWaiters();
  }
}

void Pool::closeIdleServers() {
  std::vector<ServerConn*> idle;
  idle.swap(idle_);
  for (ServerConn* server : idle) {
    server->close(session::CloseReason::kShutdown);
  }
}

void Pool::setPaused(bool paused, config::Millis pause_timeout) {
  pause_timeout_ = pause_timeout;
  if (paused == paused_) {
    return;
  }
  paused_ = paused;
  paused_since_ = worker_.now();
  if (!paused_) {
    serveWaiters();
  }
}

void Pool::setAdminPaused(bool paused) {
  admin_paused_ = paused;
  if (!paused) {
    serveWaiters();
  }
}

void Pool::reconnect() {
  ++generation_;  // released servers of an older generation are closed
  closeIdleServers();
}

uint64_t Pool::oldestWaitStart() const {
  return waiting_.empty() ? 0 : waiting_.front()->waitStartedAt();
}

void Pool::moveTo(ServerTarget target) {
  target_ = std::move(target);
  // The refusals came from the old target: waiting server_login_retry out before the first
  // login to the new one held writes after a kill -9 failover for 500 ms.
  last_login_failure_ms_ = 0;
  dropServers();
  serveWaiters();
}

void Pool::dropServers() {
  ++generation_;
  closeIdleServers();
  // Everything else still points at the old primary: close it. Copies, because closing
  // edits the lists.
  std::vector<ServerConn*> stale;
  for (auto* list : {&opening_, &active_, &cleaning_}) {
    stale.insert(stale.end(), list->begin(), list->end());
  }
  for (ServerConn* server : stale) {
    server->close(session::CloseReason::kFailover);
  }
}

void Pool::rememberScramKeys(const std::array<uint8_t, 32>& client_key,
                             const std::array<uint8_t, 32>& server_key) {
  scram_client_key_ = client_key;
  scram_server_key_ = server_key;
  has_scram_keys_ = true;
}

void Pool::janitor(uint64_t now) {
  const auto& config = worker_.config();
  const auto older = [now](uint64_t since, config::Millis limit) {
    return limit.count() > 0 && now >= since && now - since >= static_cast<uint64_t>(limit.count());
  };
  // Connections that take too long to connect or log in.
  std::vector<ServerConn*> stuck;
  for (ServerConn* server : opening_) {
    if (older(server->createdAt(), config.server_connect_timeout)) {
      stuck.push_back(server);
    }
  }
  for (ServerConn* server : stuck) {
    PGPIVOT_LOG_WARN("{} server_connect_timeout", server->logPrefix());
    onServerLoginFailed(*server, Error{sqlstate::kConnectionFailure,
                                       "pgpivot: server_connect_timeout: the server did not "
                                       "answer in time"});
    server->close(session::CloseReason::kServerConnectTimeout);
  }
  // Idle connections past their idle timeout or lifetime, keeping min_pool_size.
  std::vector<ServerConn*> expired;
  for (ServerConn* server : idle_) {
    const bool idle_too_long =
        older(server->lastUsedAt(), config.server_idle_timeout) &&
        pool_servers_->load() - static_cast<int>(expired.size()) > settings_.min_pool_size;
    if (idle_too_long || older(server->createdAt(), config.server_lifetime)) {
      expired.push_back(server);
    }
  }
  for (ServerConn* server : expired) {
    eraseFrom(idle_, server);
    server->close(older(server->createdAt(), config.server_lifetime)
                      ? session::CloseReason::kServerLifetime
                      : session::CloseReason::kServerIdleTimeout);
  }
  // min_pool_size: only where pgpivot can log in without a client (a password is known).
  if (settings_.min_pool_size > 0 && !target_.password.empty()) {
    while (pool_servers_->load() < settings_.min_pool_size && waiting_.size() <= opening_.size() &&
           openServerIfAllowed(now)) {
    }
  }
  // A failover that takes too long: waiters get a clear error instead of hanging.
  if (paused_ && pause_timeout_.count() > 0) {
    while (!waiting_.empty() &&
           older(std::max(waiting_.front()->waitStartedAt(), paused_since_), pause_timeout_)) {
      ClientSession* client = waiting_.front();
      waiting_.pop_front();
      worker_.mutableStats().failover_errors++;
      worker_.mutableStats().failover_failed_transactions++;
      client->failWaiting(sqlstate::kCannotConnectNow,
                          "pgpivot: failover in progress: no primary available within "
                          "failover_pause_timeout",
                          session::CloseReason::kQueryWaitTimeout);
    }
  }
  // reserve_pool_timeout may have passed for the oldest waiter.
  if (!waiting_.empty()) {
    serveWaiters();
  }
}

}  // namespace pgpivot::pool
