// Which worker a new client lives on.
//
// Workers share the listening port with SO_REUSEPORT, and the kernel picks the socket by a
// hash of the connection's addresses. With a few dozen clients that hash is lumpy: 16
// pgbench clients landed 11/5, 6/10 or 9/7 on two workers about as often as 8/8. When
// the worker threads are each given a core, the crowded worker's clients get fewer turns;
// and a pooler whose clients sit on one worker uses one core. The unix socket is worse:
// only the first worker listens on it, so every unix-socket client used to run there.
//
// So the worker that accepts a client keeps it only if no other worker has fewer clients;
// otherwise it hands the socket to the one with the fewest, and counts stay within one of
// each other. Counts are read with relaxed atomics: two workers accepting at the same
// moment may both hand over, which leaves the counts as even as before. A handed-over
// client costs a dup(), a close() and a wakeup of the receiving loop, once per connection;
// nothing on the data path changes. The admin port's clients stay where the console runs.
//
// Later, transaction-mode clients move between workers at a transaction's end when one
// worker's thread nears a full core while another has room (client_moves.hpp). Each
// worker measures its thread's CPU time over a window of kLoadWindowMs and decides for
// its own clients; one that has just connected stays, as a connection-per-transaction
// client would leave before moving paid off.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <memory>
#include <utility>
#include <vector>

#include "pgpivot/app/client_moves.hpp"
#include "pgpivot/app/worker.hpp"
#include "pgpivot/core/assert.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/net/listener.hpp"
#include "pgpivot/session/client_session.hpp"

namespace pgpivot::app {

namespace {

constexpr uint64_t kLoadWindowMs = 500;
// Clients handed over in one loop pass at most: moving one costs a dup(), a close() and
// an epoll change here and there, and 10,000 idle ones must not stall the loop.
constexpr std::size_t kMaxMovesPerPass = 256;

// A socket on its way to another worker, counted there until it arrives. If that worker's
// mailbox is closed (it is stopping) the task is dropped and this closes the connection.
struct HandedClient {
  int fd = -1;
  std::atomic<uint64_t>* incoming = nullptr;

  HandedClient(int socket, std::atomic<uint64_t>& counter) : fd(socket), incoming(&counter) {
    incoming->fetch_add(1, std::memory_order_relaxed);  // the next accept anywhere sees it
  }
  HandedClient(const HandedClient&) = delete;
  HandedClient& operator=(const HandedClient&) = delete;
  ~HandedClient() {
    if (const int left = take(); left >= 0) {
      ::close(left);
    }
  }

  // The descriptor, now the caller's and no longer counted as on its way.
  int take() {
    if (incoming != nullptr) {
      incoming->fetch_sub(1, std::memory_order_relaxed);
      incoming = nullptr;
    }
    return std::exchange(fd, -1);
  }
};

}  // namespace

Worker* Worker::workerForNewClient() {
  Worker* fewest = this;
  uint64_t fewest_load = clientLoad();
  for (Worker* peer : peers_) {
    if (peer == this) {
      continue;
    }
    const uint64_t load = peer->clientLoad();
    if (load < fewest_load) {  // strictly fewer: equal counts keep the client here
      fewest = peer;
      fewest_load = load;
    }
  }
  return fewest;
}

void Worker::sendClient(Worker& peer, uv_stream_t* server, bool is_unix) {
  const int fd = net::Listener::acceptDescriptor(server, is_unix);
  if (fd < 0) {
    PGPIVOT_LOG_WARN("cannot accept a connection: {}", uv_strerror(fd));
    return;
  }
  auto moving = std::make_shared<HandedClient>(fd, peer.incoming_clients_);
  Worker* to = &peer;
  peer.mailbox_.post([to, moving, is_unix] { to->adoptClient(moving->take(), is_unix); });
}

void Worker::adoptClient(int fd, bool is_unix) {
  if (shutting_down_) {
    ::close(fd);  // it would have been refused had it come a moment later
    return;
  }
  auto client = std::make_unique<session::ClientSession>(
      *this, next_id_++, is_unix ? net::Stream::Kind::kPipe : net::Stream::Kind::kTcp);
  if (const int rc = client->adopt(fd); rc != 0) {
    PGPIVOT_LOG_WARN("cannot take over a connection from another worker: {}", uv_strerror(rc));
    client->close(session::CloseReason::kClientEof);
    retired_clients_.push_back(std::move(client));
    return;
  }
  admitClient(std::move(client), false);
}

// --- moving transaction-mode clients -------------------------------------------------------

namespace {

uint64_t threadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

void Worker::measureLoad(uint64_t now) {
  const uint64_t now_ns = uv_hrtime();
  const uint64_t cpu_ns = threadCpuNs();
  if (window_started_ns_ == 0) {
    window_started_ns_ = now_ns;
    window_cpu_ns_ = cpu_ns;
    return;
  }
  const uint64_t elapsed = now_ns - window_started_ns_;
  if (elapsed < kLoadWindowMs * 1'000'000) {
    return;
  }
  const uint64_t used = std::min(cpu_ns - window_cpu_ns_, elapsed);
  load_permille_.store(static_cast<uint32_t>(used * 1000 / elapsed), std::memory_order_relaxed);
  window_started_ns_ = now_ns;
  window_cpu_ns_ = cpu_ns;
  planClientMoves(now);
}

void Worker::planClientMoves(uint64_t now) {
  move_to_ = nullptr;
  moves_left_ = 0;
  move_queue_.clear();
  // A planned pause or SUSPEND holds clients where they are; so does a shutdown.
  if (peers_.size() < 2 || shutting_down_ || suspended_ || !drains_.empty() || !held_.empty()) {
    return;
  }
  std::vector<double> load(peers_.size());
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    load[i] = static_cast<double>(peers_[i]->loadPermille()) / 1000.0;
  }
  const ClientMovePlan plan = app::planClientMoves(static_cast<std::size_t>(index_), load,
                                                   config_->worker_spill_load / 100.0);
  if (plan.to < 0) {
    return;
  }
  // Only transaction-mode clients that have been here a window long count and move.
  std::vector<session::ClientSession*> settled;
  std::size_t idle_now = 0;
  for (auto& [id, client] : clients_) {
    const pool::Pool* pool = client->pool();
    if (pool != nullptr && pool->settings().mode != config::PoolMode::kSession &&
        now - client->connectedAt() >= kLoadWindowMs) {
      settled.push_back(client.get());
    }
  }
  const auto wanted =
      static_cast<std::size_t>(std::ceil(plan.share * static_cast<double>(settled.size())));
  if (wanted == 0) {
    return;
  }
  move_to_ = peers_[static_cast<std::size_t>(plan.to)];
  moves_left_ = wanted;
  PGPIVOT_LOG_DEBUG(
      "worker {}: {:.0f} % of a core used, over worker_spill_load; moving up to {} clients to "
      "worker {} ({:.0f} %)",
      index_, load[static_cast<std::size_t>(index_)] * 100, wanted, plan.to,
      load[static_cast<std::size_t>(plan.to)] * 100);
  // Those between transactions now go at once; the others as they finish one.
  for (session::ClientSession* client : settled) {
    if (idle_now == std::min(wanted, kMaxMovesPerPass)) {
      break;
    }
    if (client->movable()) {
      move_queue_.push_back(client->id());
      ++idle_now;
    }
  }
}

void Worker::moveQueuedClients() {
  std::vector<uint64_t> queue;
  queue.swap(move_queue_);
  std::size_t moved = 0;
  for (std::size_t i = 0; i < queue.size() && moves_left_ > 0 && move_to_ != nullptr; ++i) {
    if (moved == kMaxMovesPerPass) {
      // The rest go in the next loop pass (the janitor wakes the loop at least that often).
      move_queue_.insert(move_queue_.end(), queue.begin() + static_cast<std::ptrdiff_t>(i),
                         queue.end());
      break;
    }
    const auto it = clients_.find(queue[i]);
    if (it != clients_.end() && moveClient(it)) {
      ++moved;
      --moves_left_;
    }
  }
  queue.clear();
  if (move_queue_.capacity() < queue.capacity()) {
    move_queue_.swap(queue);  // keep the larger buffer: no allocation next pass
  }
}

bool Worker::moveClient(ClientMap::iterator it) {
  std::shared_ptr<session::ClientHandoff> moving = it->second->handOff();
  if (moving == nullptr) {
    return false;  // not between two transactions (any more)
  }
  // Out of the map at once, so its id is free should it come back before the handle has
  // closed; retireClient finds it among the departed.
  departed_clients_.push_back(std::move(it->second));
  clients_.erase(it);
  stats_.clients_current = clients_.size();
  Worker* to = move_to_;
  to->mailbox_.post([to, moving] { to->takeMovedClient(*moving); });
  return true;
}

void Worker::takeMovedClient(session::ClientHandoff& handoff) {
  if (shutting_down_) {
    return;  // the hand-off closes the connection, as the shutdown would have
  }
  auto client = std::make_unique<session::ClientSession>(*this, handoff.id, handoff.kind);
  session::ClientSession& ref = *client;
  // In the map before anything can close it: onStreamClosed retires it from there.
  const bool fresh = clients_.try_emplace(handoff.id, std::move(client)).second;
  PGPIVOT_CHECK(fresh);  // a client that left has left this map (departed_clients_)
  stats_.clients_current = clients_.size();
  if (!ref.takeOver(handoff)) {
    PGPIVOT_LOG_WARN("cannot take over a client from another worker");
    ref.close(session::CloseReason::kClientEof);  // the hand-off closes the socket
  }
}

}  // namespace pgpivot::app
