// An idle server connection moving from one worker to another.
//
// Each worker owns its server connections, while pool_size and max_db_connections are
// process-wide. A worker whose clients wait while the limit is reached used to ask a peer
// to close an idle connection and then open its own: a new backend (a fork, a login) every
// time connections landed unevenly on the workers, which session mode with short-lived
// clients does all the time. Handing the socket over costs a dup() and two loop wakeups.
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/pool/pool.hpp"
#include "pgpivot/proto/messages.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::session {

ServerHandoff::ServerHandoff(ServerHandoff&& other) noexcept
    : fd(std::exchange(other.fd, -1)),
      id(other.id),
      slot(std::move(other.slot)),
      host(std::move(other.host)),
      port(other.port),
      dbname(std::move(other.dbname)),
      user(std::move(other.user)),
      startup_params(std::move(other.startup_params)),
      params(std::move(other.params)),
      backend_pid(other.backend_pid),
      backend_secret(other.backend_secret),
      address(other.address),
      created_at(other.created_at),
      last_used_at(other.last_used_at),
      statements(std::move(other.statements)) {}

ServerHandoff::~ServerHandoff() {
  if (fd < 0) {
    return;
  }
  // Nobody took it (the receiver's pool moved or is gone, or the worker is stopping): end
  // the backend the way ServerConn::close does. Five bytes always fit an idle socket.
  std::string terminate;
  proto::writeTerminate(terminate);
  (void)::send(fd, terminate.data(), terminate.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

std::optional<ServerHandoff> ServerConn::handOff() {
  if (state_ != ServerState::kIdle || client_ != nullptr || !atCleanBoundary() ||
      own_replies_pending_ > 0) {
    return std::nullopt;
  }
  const int fd = stream_.releaseSocket();  // the stream is closing from here on
  if (fd < 0) {
    return std::nullopt;
  }
  ServerHandoff handoff;
  handoff.fd = fd;
  handoff.id = id_;
  handoff.slot = std::move(slot_);
  handoff.host = pool_.target().host;
  handoff.port = pool_.target().port;
  handoff.dbname = pool_.target().dbname;
  handoff.user = pool_.target().user;
  handoff.startup_params = std::move(startup_params_);
  handoff.params = std::move(params_);
  handoff.backend_pid = backend_pid_;
  handoff.backend_secret = backend_secret_;
  handoff.address = address_;
  handoff.created_at = created_at_;
  handoff.last_used_at = last_used_at_;
  handoff.statements = std::move(statements_);
  PGPIVOT_LOG_DEBUG("{} closing: {}", log_prefix_, toString(CloseReason::kServerHandedOff));
  // The pool that asked takes it off its idle list; telling it here would have it serve
  // its waiters again in the middle of that.
  setState(ServerState::kClosing);
  return handoff;
}

bool ServerConn::adopt(ServerHandoff& handoff) {
  if (stream_.adopt(handoff.fd) != 0) {
    return false;
  }
  handoff.fd = -1;
  startup_params_ = std::move(handoff.startup_params);
  params_ = std::move(handoff.params);
  backend_pid_ = handoff.backend_pid;
  backend_secret_ = handoff.backend_secret;
  address_ = handoff.address;
  created_at_ = handoff.created_at;  // every loop's clock is the same monotonic one
  last_used_at_ = handoff.last_used_at;
  statements_ = std::move(handoff.statements);
  PGPIVOT_LOG_DEBUG("{} taken over from another worker (was S-{:08x}, backend pid {})", log_prefix_,
                    handoff.id, backend_pid_);
  setState(ServerState::kIdle);
  stream_.startReading();  // an idle server still says when it goes away
  return true;
}

}  // namespace pgpivot::session
