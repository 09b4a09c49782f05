#include "pgpivot/session/cancel.hpp"

#include "pgpivot/app/worker.hpp"
#include "pgpivot/proto/messages.hpp"

namespace pgpivot::session {

CancelForwarder::CancelForwarder(app::Worker& worker, int32_t pid, int32_t secret, bool unix_socket,
                                 int requester_worker, uint64_t requester_id)
    : worker_(worker),
      pid_(pid),
      secret_(secret),
      requester_worker_(requester_worker),
      requester_id_(requester_id),
      stream_(worker.loop(), *this, worker.buffers(),
              unix_socket ? net::Stream::Kind::kPipe : net::Stream::Kind::kTcp) {}

void CancelForwarder::start(const sockaddr_storage& address, const std::string& unix_path) {
  if (!unix_path.empty()) {
    stream_.connectPipe(unix_path);
    return;
  }
  if (stream_.connect(reinterpret_cast<const sockaddr*>(&address)) != 0) {
    stream_.close();
  }
}

void CancelForwarder::onStreamConnected(net::Stream&, int status) {
  if (status != 0) {
    stream_.close();
    return;
  }
  std::string out;
  proto::writeCancelRequest(out, pid_, secret_);
  stream_.writeOwned(out);
  // PostgreSQL closes the connection once it has read the request.
  stream_.startReading();
}

void CancelForwarder::onStreamData(net::Stream&) {
  // Nothing is expected; drop whatever arrives.
  stream_.buffer().clear();
}

void CancelForwarder::onStreamEnd(net::Stream&, int) {
  stream_.close();
}

void CancelForwarder::onStreamClosed(net::Stream&) {
  // PostgreSQL has read the request (or cannot be reached): now the client may go on.
  worker_.notifyCancelDone(requester_worker_, requester_id_);
  worker_.retireCancel(*this);
}

}  // namespace pgpivot::session
