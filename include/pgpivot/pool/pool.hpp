// A pool of server connections for one (database, user) pair on one worker, and the FIFO
// queue of clients waiting for one (STYLE.md 3.2: pools are per worker). The pool decides
// who gets which server, when to open a new one, and what happens to a server a client
// gives back; it does not speak the protocol (ServerConn and ClientSession do).
//
// Server lists by state: connecting/login -> `opening_`; ready -> `idle_`; linked to a
// client -> `active_`; running the reset or check query -> `cleaning_`.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "pgpivot/config/config.hpp"
#include "pgpivot/core/result.hpp"
#include "pgpivot/pool/shared_limits.hpp"
#include "pgpivot/session/params.hpp"

namespace pgpivot::app {
class Worker;
}

namespace pgpivot::session {
class ClientSession;
class ServerConn;
}  // namespace pgpivot::session

namespace pgpivot::pool {

struct PoolKey {
  std::string database;  // the name clients use
  std::string user;      // the client's user name
  bool operator==(const PoolKey&) const = default;
};

// Where and as whom this pool's server connections log in.
struct ServerTarget {
  std::string host;  // numeric address, host name, or a unix socket directory ("/...")
  uint16_t port = 5432;
  std::string dbname;
  std::string user;
  std::string password;  // plain, "md5..." or a SCRAM secret; may be empty
  std::string connect_query;
};

// The sizes in force, recomputed on reload.
struct PoolSettings {
  config::PoolMode mode = config::PoolMode::kSession;
  int pool_size = 20;
  int min_pool_size = 0;
  int reserve_pool_size = 0;
  config::Millis reserve_pool_timeout{5000};
  int max_db_connections = 0;
  int max_user_connections = 0;
  // A [cluster.*] database: the health monitor decides where the primary is, so a refused
  // connection makes waiters wait for its verdict instead of failing at once.
  bool cluster_managed = false;
};

struct PoolStats {
  uint64_t servers_opened = 0;
  uint64_t login_failures = 0;
  uint64_t clients_served = 0;
  uint64_t wait_timeouts = 0;
  uint64_t total_wait_ms = 0;
  uint64_t max_wait_ms = 0;
  uint64_t queries = 0;        // requests answered by ReadyForQuery (Query, FunctionCall, Sync)
  uint64_t transactions = 0;   // ReadyForQuery 'I' after work: transactions completed
  uint64_t server_errors = 0;  // 57P0x and 08xxx from servers: failover evidence
  uint64_t bytes_in = 0;       // from clients that have left (live ones are added on read)
  uint64_t bytes_out = 0;
  // Time linked servers spent on clients' queries and in their transactions (ServerConn
  // measures both with the monotonic clock, at ReadyForQuery): SHOW STATS' query_time and
  // xact_time, in nanoseconds.
  uint64_t query_time_ns = 0;
  uint64_t xact_time_ns = 0;
};

class Pool final {
 public:
  Pool(app::Worker& worker, PoolKey key, ServerTarget target, PoolSettings settings);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  const PoolKey& key() const { return key_; }
  const ServerTarget& target() const { return target_; }
  const PoolSettings& settings() const { return settings_; }
  // Bumped whenever the target moves (reload): servers opened for an older generation are
  // never handed out again.
  uint64_t generation() const { return generation_; }
  void applySettings(ServerTarget target, PoolSettings settings);

  // A client needs a server. It is linked now if one is idle, otherwise queued (FIFO) and
  // a new connection is opened if the limits allow.
  void requestServer(session::ClientSession& client);
  // A queued client leaves (timeout, disconnect).
  void forgetWaiter(session::ClientSession& client);

  // The one place a server comes back from a client. `reusable` says whether the client
  // left it at a clean protocol boundary (ReadyForQuery idle, nothing outstanding).
  void releaseServer(session::ServerConn& server, bool reusable);

  // Called by ServerConn when it becomes ready (login, reset or check done).
  void onServerReady(session::ServerConn& server);
  // Called by ServerConn when its login failed; waiting clients get `error`.
  void onServerLoginFailed(session::ServerConn& server, const Error& error);
  // Called by ServerConn when it is gone, whatever the reason.
  void onServerClosed(session::ServerConn& server);

  // Failover routing. While paused, waiters queue and nothing is handed out or opened;
  // waiters give up after `pause_timeout` with 57P03.
  void setPaused(bool paused, config::Millis pause_timeout);
  bool paused() const { return paused_ || admin_paused_; }
  // PAUSE/RESUME from the admin console, independent of a failover's pause.
  void setAdminPaused(bool paused);
  // RECONNECT: every server is closed when next released, idle ones now.
  void reconnect();
  PoolStats& mutableStats() { return stats_; }
  // When the oldest waiter started waiting (loop ms), 0 without waiters.
  uint64_t oldestWaitStart() const;
  // Moves the pool to a new primary: servers on the old one are closed, including those
  // linked to clients (who are told according to what they were doing).
  void moveTo(ServerTarget target);
  // Closes every server (a failover took their node away); waiters stay queued.
  void dropServers();

  // Timeouts and min_pool_size upkeep; `now_ms` is the loop time.
  void janitor(uint64_t now_ms);
  // Close idle servers (shutdown, reload of the target).
  void closeIdleServers();
  // Worker `asker`'s clients of this pool wait (the oldest since `waiting_since_ms`, loop
  // time: every loop reads the same monotonic clock) while the process-wide limit is
  // reached: it gets the next idle server here while no client here waits, or once its
  // client has waited kPeerStarvedMs longer than any here.
  // An ask holds for kPeerAskMs; the asker asks again while its clients still wait.
  void onPeerAsk(int asker, uint64_t waiting_since_ms, uint64_t now_ms);
  // A server handed over by another worker (ServerConn::adopt done): idle here now.
  void adoptServer(session::ServerConn& server);
  // A slot was freed elsewhere: try again to serve the waiters.
  void retryWaiters() { serveWaiters(); }

  // SCRAM keys recovered from a client's login, to log in to the server as that user when
  // only the SCRAM secret is known (PgBouncer does the same).
  void rememberScramKeys(const std::array<uint8_t, 32>& client_key,
                         const std::array<uint8_t, 32>& server_key);
  // A secret found by auth_query, used for server logins when none is configured.
  void learnServerPassword(const std::string& secret) {
    if (target_.password.empty()) {
      target_.password = secret;
    }
  }
  bool hasScramKeys() const { return has_scram_keys_; }
  const std::array<uint8_t, 32>& scramClientKey() const { return scram_client_key_; }
  const std::array<uint8_t, 32>& scramServerKey() const { return scram_server_key_; }

  // The ParameterStatus set of a freshly logged-in server: what a client of this pool
  // is told at login when it does not wait for a server (transaction and statement mode).
  bool hasWelcome() const { return !welcome_params_.empty(); }
  const session::ParamMap& welcomeParams() const { return welcome_params_; }

  std::size_t waitingCount() const { return waiting_.size(); }
  std::size_t idleCount() const { return idle_.size(); }
  std::size_t activeCount() const { return active_.size(); }
  std::size_t openingCount() const { return opening_.size(); }
  std::size_t cleaningCount() const { return cleaning_.size(); }
  std::size_t serverCount() const;
  bool empty() const;
  const PoolStats& stats() const { return stats_; }

 private:
  void serveWaiters();
  std::optional<ServerSlot> reserveSlot(uint64_t now_ms);
  bool openServerIfAllowed(uint64_t now_ms);
  void linkServer(session::ServerConn& server, session::ClientSession& client);
  void failWaiters(const Error& error);
  bool peerWaitedLonger(uint64_t now_ms);
  bool handOffToPeer();

  // How long a peer's ask holds: by then its waiter was served otherwise or asked again
  // (from its worker's janitor tick at the latest).
  static constexpr uint64_t kPeerAskMs = 250;  // the janitor re-asks every 100 ms
  static constexpr uint64_t kPeerStarvedMs = 50;
  struct PeerAsk {
    int worker;
    uint64_t at_ms;             // when it came
    uint64_t waiting_since_ms;  // the asker's oldest waiter
  };

  app::Worker& worker_;
  PoolKey key_;
  ServerTarget target_;
  PoolSettings settings_;
  SharedLimits::Counter* pool_servers_;  // process-wide counts (shared_limits.hpp)
  SharedLimits::Counter* db_servers_;
  SharedLimits::Counter* user_servers_;
  std::deque<session::ClientSession*> waiting_;
  std::vector<session::ServerConn*> opening_;
  std::vector<session::ServerConn*> idle_;
  std::vector<session::ServerConn*> active_;
  std::vector<session::ServerConn*> cleaning_;
  std::vector<PeerAsk> peer_asks_;  // oldest first
  session::ParamMap welcome_params_;
  bool has_scram_keys_ = false;
  std::array<uint8_t, 32> scram_client_key_{};
  std::array<uint8_t, 32> scram_server_key_{};
  uint64_t last_login_failure_ms_ = 0;
  uint64_t generation_ = 1;
  bool paused_ = false;
  bool admin_paused_ = false;
  uint64_t paused_since_ = 0;
  config::Millis pause_timeout_{30000};
  PoolStats stats_;
};

}  // namespace pgpivot::pool
