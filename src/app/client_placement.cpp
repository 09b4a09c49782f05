// Which worker a new client lives on.
//
// Workers share the listening port with SO_REUSEPORT, and the kernel picks the socket by a
// hash of the connection's addresses. With a few dozen clients that hash is lumpy: 16
// pgbench clients landed 11/5, 6/10 or 9/7 on two workers about as often as 8/8. When
// the worker threads are each given a core, the crowded worker's clients get fewer turns;
// and a pooler whose clients sit on one worker uses one core. The unix socket is worse:
// only the first worker listens on it, so every unix-socket client used to run there.
// (On a machine whose cores are all busy the CPU scheduler decides the turns anyway, and
// fewer threads wait less: bench/results/2026-11-29-stop14/README.md.)
//
// So the worker that accepts a client keeps it only if no other worker has fewer clients;
// otherwise it hands the socket to the one with the fewest, and counts stay within one of
// each other. Counts are read with relaxed atomics: two workers accepting at the same
// moment may both hand over, which leaves the counts as even as before. A handed-over
// client costs a dup(), a close() and a wakeup of the receiving loop, once per connection;
// nothing on the data path changes. The admin port's clients stay where the console runs.
#include <unistd.h>

#include <atomic>
#include <memory>
#include <utility>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/net/listener.hpp"
#include "pgpivot/session/client_session.hpp"

namespace pgpivot::app {

namespace {

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

}  // namespace pgpivot::app
