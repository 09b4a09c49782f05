// A worker: one thread, one libuv loop, and everything that lives on it (STYLE.md 3.2):
// its listeners, client sessions, server connections, pools and timers. Other threads
// reach it only through its mailbox. Not responsible for reading the config file or for
// signals (Process does that).
#pragma once

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pgpivot/admin/console.hpp"
#include "pgpivot/admin/metrics.hpp"
#include "pgpivot/app/admin_service.hpp"
#include "pgpivot/auth/auth_file.hpp"
#include "pgpivot/auth/auth_query.hpp"
#include "pgpivot/buf/block_pool.hpp"
#include "pgpivot/config/config.hpp"
#include "pgpivot/monitor/data_path.hpp"
#include "pgpivot/monitor/route.hpp"
#include "pgpivot/net/listener.hpp"
#include "pgpivot/net/mailbox.hpp"
#include "pgpivot/pool/pool.hpp"
#include "pgpivot/proto/frame.hpp"

namespace pgpivot::session {
class CancelForwarder;
class ClientSession;
class ServerConn;
struct ClientHandoff;
struct ServerHandoff;
}  // namespace pgpivot::session

namespace pgpivot::app {

using ConfigPtr = std::shared_ptr<const config::Config>;
using AuthFilePtr = std::shared_ptr<const auth::AuthFile>;

// Counters a worker keeps; read by tests and (later) the admin console and metrics.
struct WorkerStats {
  std::atomic<uint64_t> clients_accepted{0};
  std::atomic<uint64_t> clients_current{0};
  std::atomic<uint64_t> login_failures{0};
  std::atomic<uint64_t> servers_current{0};
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> cancels_forwarded{0};
  // Failover errors sent to clients: 40001 (transaction lost to a failover), 40003
  // (statement outcome unknown), 57P03 (no primary within failover_pause_timeout).
  std::atomic<uint64_t> failover_errors{0};
  // Client transactions a failover failed, each counted once when pgpivot knows it: with
  // its error for a statement in flight (40001/40003) or waiting (57P03), and at the loss
  // for one whose client sat idle inside it (its 40001 comes at its next statement, which
  // may be long after the run that aborted it; failover_errors counts it only then).
  std::atomic<uint64_t> failover_failed_transactions{0};
};

class Worker final {
 public:
  // `peers` lists every worker (this one included) by index; it is filled before any
  // worker starts and not changed afterwards.
  Worker(int index, ConfigPtr config, AuthFilePtr auth_file, pool::SharedLimits& shared,
         const std::vector<Worker*>& peers);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Binds the listeners on the calling thread's loop (so bind errors reach start-up) and
  // then runs the loop on a new thread. `port` overrides listen_port (workers after the
  // first bind the port the first one got); `unix_socket` says whether this worker also
  // listens on the unix socket (only one may).
  [[nodiscard]] Result<void> start(uint16_t port, bool unix_socket);
  void join();

  // Any thread.
  void postReload(ConfigPtr config, AuthFilePtr auth_file);
  // Runs `task` on this worker's loop (any thread).
  void post(std::function<void()> task) { mailbox_.post(std::move(task)); }
  const std::vector<Worker*>& peers() const { return peers_; }
  // Set once by the process before start().
  void setProcessHooks(const ProcessHooks* hooks) { hooks_ = hooks; }
  const ProcessHooks* processHooks() const { return hooks_; }

  // The health monitor moved a cluster's primary, or paused or resumed it.
  void postRoute(monitor::ClusterRoute route);
  // Stop accepting; exit once every client has left (SIGINT) or at once (SIGTERM).
  void postShutdown(bool immediate);
  uint16_t boundPort() const { return bound_port_; }
  // True once the loop has exited (any thread).
  bool finished() const { return finished_.load(); }
  const WorkerStats& stats() const { return stats_; }

  // --- on the worker loop ---------------------------------------------------------------
  uv_loop_t* loop() { return &loop_; }
  uint64_t now() const { return uv_now(const_cast<uv_loop_t*>(&loop_)); }
  const config::Config& config() const { return *config_; }
  const auth::AuthFile* authFile() const { return auth_file_.get(); }
  const proto::Limits& limits() const { return limits_; }
  // Receive buffer per connection: pkt_buf, but never less than a start-up packet plus
  // the authentication exchange needs (PgBouncer's 4096 default would not hold 10000).
  std::size_t bufferSize() const {
    return std::max<std::size_t>(static_cast<std::size_t>(config_->pkt_buf), 16384);
  }
  // The blocks every connection's receive buffer borrows while it holds bytes.
  buf::BlockPool& buffers() { return buffers_; }
  const buf::BlockPool& buffers() const { return buffers_; }
  int index() const { return index_; }

  // The pool for a client of `database` logging in as `user`, created on first use.
  // Null when the database is not configured (and no "*" entry exists).
  pool::Pool* poolFor(const std::string& database, const std::string& user);

  session::ServerConn& createServer(pool::Pool& pool, pool::ServerSlot slot);
  pool::SharedLimits& sharedLimits() { return shared_; }
  // A pool here waits for a slot: ask the other workers to hand over an idle server of
  // the same (database, user), now or when one becomes idle (rate-limited).
  void askPeersForIdleServer(const pool::PoolKey& key, uint64_t waiting_since);
  // Posts an idle server connection to worker `peer`, whose pool `key` asked for one.
  void sendServer(int peer, const pool::PoolKey& key, session::ServerHandoff handoff);
  // Called from a session's onStreamClosed: freed after the current callback returns.
  void retireClient(session::ClientSession& client);
  void retireServer(session::ServerConn& server);
  void retireCancel(session::CancelForwarder& cancel);
  // Sends PostgreSQL a CancelRequest for what `server` runs (its backend key, its address);
  // the requester hears when it has been delivered (requester_worker -1: nobody asked).
  void cancelOnServer(const session::ServerConn& server, int requester_worker = -1,
                      uint64_t requester_id = 0);

  // auth_query: whether a user missing from the auth file may be looked up for `database`,
  // and the lookup itself (answered later through ClientSession::onAuthQueryResult).
  bool canLookUpUser(const std::string& database) const;
  void lookUpUser(session::ClientSession& client);

  // Cancel keys handed to clients in BackendKeyData.
  void registerCancelKey(session::ClientSession& client);
  void unregisterCancelKey(session::ClientSession& client);
  // Forwards a cancel for the client holding key (pid, secret). Returns false when there
  // is nothing to cancel; otherwise the requesting connection `requester_id` is closed
  // once PostgreSQL has read the request (cancelDone).
  [[nodiscard]] bool forwardCancel(int32_t pid, int32_t secret, uint64_t requester_id);
  // The cancel a connection of worker `requester_worker` asked for is done.
  void notifyCancelDone(int requester_worker, uint64_t requester_id);
  std::pair<int32_t, int32_t> newCancelKey();

  std::size_t clientCount() const { return clients_.size(); }
  // Clients this worker owns plus those another worker has handed it and it has not
  // taken yet: what new connections are spread by (client_placement.cpp). Any thread.
  uint64_t clientLoad() const {
    return stats_.clients_current.load(std::memory_order_relaxed) +
           incoming_clients_.load(std::memory_order_relaxed);
  }

  WorkerStats& mutableStats() { return stats_; }
  // The CPU time this worker's thread used over its last load window, in thousandths of
  // one core (client_placement.cpp). Any thread.
  uint32_t loadPermille() const { return load_permille_.load(std::memory_order_relaxed); }
  // A transaction-mode client just finished a transaction: if clients are to move from
  // here, it goes once this loop pass is over (the reaper), unless it is busy again.
  void noteClientBetweenTransactions(uint64_t client_id) {
    if (moves_left_ > 0) {
      move_queue_.push_back(client_id);
    }
  }

  // --- admin console (on the worker loop) -------------------------------------------------
  admin::Console& console() { return console_; }
  // This worker's share of a snapshot; AdminService sums every worker's.
  admin::Snapshot collectSnapshot(const admin::Parts& parts);
  // Carries out an admin command on this worker's pools and sessions. `found` counts
  // what it touched (KILL_CLIENT: whether the client was here).
  void applyAdminCommand(const admin::Command& command, int& found);
  // SUSPEND: bytes this worker's connections still have to write (0: flushed).
  std::size_t unflushedBytes();
  bool databaseDisabled(const std::string& database) const {
    return disabled_databases_.count(database) > 0;
  }
  // A planned pause of a cluster (ClusterRoute::drain_id): remembered here, answered
  // through ProcessHooks::drained once none of the cluster's servers is in a transaction,
  // or at drain_timeout with the count still open. Meanwhile, and until the pause ends or
  // the old primary's servers are dropped, clients that keep a server between
  // transactions (session mode) are held there: not read. `moved`: the route names
  // another primary than before.
  void trackDrain(const monitor::ClusterRoute& route, bool moved);
  void checkDrains();
  // Servers of `cluster`'s databases inside a client's transaction or owing a reply.
  int64_t transactionsRunning(const std::string& cluster) const;

 private:
  void run();
  void onConnection(uv_stream_t* server, bool is_unix, bool admin_port);
  // client_placement.cpp: where a new client lives, and its way there.
  Worker* workerForNewClient();
  void sendClient(Worker& peer, uv_stream_t* server, bool is_unix);
  void adoptClient(int fd, bool is_unix);
  // Measures the thread's load each window and decides whether clients move.
  void measureLoad(uint64_t now);
  void planClientMoves(uint64_t now);
  // The reaper: hands the queued clients that are still between transactions over.
  void moveQueuedClients();
  using ClientMap = std::unordered_map<uint64_t, std::unique_ptr<session::ClientSession>>;
  bool moveClient(ClientMap::iterator it);
  void takeMovedClient(session::ClientHandoff& handoff);
  // Takes in an accepted (or adopted) client and starts reading its start-up packet.
  void admitClient(std::unique_ptr<session::ClientSession> client, bool admin_port);
  [[nodiscard]] Result<void> startAdminEndpoints();
  void onJanitorTick();
  // worker_data_path.cpp: the data-path evidence of cluster databases, posted to the
  // health monitor every DataPathTracker::kReportIntervalMs.
  void trackDataPath(uint64_t now);
  void applyReload(ConfigPtr config, AuthFilePtr auth_file);
  void applyRoute(const monitor::ClusterRoute& route);
  void beginShutdown(bool immediate);
  void maybeFinishShutdown();
  void freeRetired();
  void createForcedUserPools();
  // `follow_moves`: a key made here whose client moved on is looked up where it went.
  bool startCancel(int32_t pid, int32_t secret, int requester_worker, uint64_t requester_id,
                   bool follow_moves);
  void cancelDone(uint64_t requester_id);
  // The worker that made a cancel key (newCancelKey puts its index in the top bits).
  int cancelKeyOrigin(int32_t pid) const;
  void onPeerAsk(const pool::PoolKey& key, int asker, uint64_t waiting_since);
  void adoptServer(const pool::PoolKey& key, session::ServerHandoff& handoff);
  const config::DatabaseEntry* entryFor(const std::string& database) const;
  pool::ServerTarget targetFor(const config::DatabaseEntry& db, const std::string& user) const;
  pool::PoolSettings settingsFor(const config::DatabaseEntry& db, const std::string& user) const;

  int index_;
  ConfigPtr config_;
  AuthFilePtr auth_file_;
  proto::Limits limits_;
  // Declared before every connection so it outlives their buffers.
  buf::BlockPool buffers_;
  uv_loop_t loop_{};
  uv_timer_t janitor_{};
  uv_check_t reaper_{};
  net::Mailbox mailbox_;
  std::unique_ptr<net::Listener> listener_;
  std::unique_ptr<net::Listener> admin_listener_;         // admin_port, first worker only
  std::unique_ptr<admin::MetricsServer> metrics_server_;  // metrics_port, first worker only
  std::thread thread_;
  uint16_t bound_port_ = 0;
  bool shutting_down_ = false;
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> incoming_clients_{0};  // handed here, not adopted yet
  // Load window (client_placement.cpp): clock and thread CPU time at its start.
  std::atomic<uint32_t> load_permille_{0};
  uint64_t window_started_ns_ = 0;
  uint64_t window_cpu_ns_ = 0;
  // Where this window's moving clients go, how many may still go, and the ids of those
  // to hand over once this loop pass is over (noteClientBetweenTransactions).
  Worker* move_to_ = nullptr;
  std::size_t moves_left_ = 0;
  std::vector<uint64_t> move_queue_;
  uint64_t next_id_ = 1;

  // By connection id (KILL_CLIENT, cancel and auth_query answers look clients up by it).
  std::unordered_map<uint64_t, std::unique_ptr<session::ClientSession>> clients_;
  std::unordered_map<session::ServerConn*, std::unique_ptr<session::ServerConn>> servers_;
  std::vector<std::unique_ptr<session::ClientSession>> retired_clients_;
  // Clients handed to another worker whose handle here is still closing.
  std::vector<std::unique_ptr<session::ClientSession>> departed_clients_;
  std::vector<std::unique_ptr<session::ServerConn>> retired_servers_;
  std::unordered_map<session::CancelForwarder*, std::unique_ptr<session::CancelForwarder>> cancels_;
  std::vector<std::unique_ptr<session::CancelForwarder>> retired_cancels_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<pool::Pool>> pools_;
  std::unordered_map<int32_t, session::ClientSession*> cancel_keys_;
  // Keys this worker made whose client moved to another worker: where it is now.
  std::unordered_map<int32_t, int> moved_cancel_keys_;
  auth::AuthQueryRunner auth_query_;
  std::map<std::string, monitor::ClusterRoute> routes_;
  monitor::DataPathTracker data_path_;
  pool::SharedLimits& shared_;
  const std::vector<Worker*>& peers_;
  std::map<std::pair<std::string, std::string>, uint64_t> last_idle_ask_;
  WorkerStats stats_;
  const ProcessHooks* hooks_ = nullptr;
  std::set<std::string> disabled_databases_;
  std::set<std::string> admin_paused_;  // "" = every database
  bool suspended_ = false;              // SUSPEND: no socket is read until RESUME
  struct Drain {
    uint64_t id = 0;
    int64_t transactions = 0;  // running when the pause came
    uint64_t deadline_ms = 0;  // loop time: drain_timeout after the pause came
  };
  std::map<std::string, Drain> drains_;  // by cluster: planned pauses not yet answered
  // By cluster: the clients held between two transactions by a planned pause (ids).
  std::map<std::string, std::set<uint64_t>> held_;
  // Holds the clients of `cluster`'s servers that are between two transactions; returns
  // the servers inside one (transactionsRunning).
  int64_t holdBetweenTransactions(const std::string& cluster, std::set<uint64_t>& held);
  void releaseHeld(const std::string& cluster);
  uint64_t start_wall_us_ = 0;
  // The console is declared first so it is destroyed last: a completion the service drops
  // on destruction still finds it (Console only stores the reference when constructed).
  admin::Console console_{admin_service_};
  AdminService admin_service_{*this};
};

}  // namespace pgpivot::app
