// Forwards a client's CancelRequest to the server its session is linked to, over a new
// connection and with that server's real BackendKeyData (PostgreSQL protocol 55.2.7,
// "Canceling Requests in Progress"). Lives until the server closes the connection.
#pragma once

#include <cstdint>

#include "pgpivot/net/stream.hpp"

namespace pgpivot::app {
class Worker;
}

namespace pgpivot::session {

class CancelForwarder final : public net::StreamOwner {
 public:
  // `on_done` is called from onStreamClosed so the owner can free this object.
  CancelForwarder(app::Worker& worker, int32_t pid, int32_t secret, bool unix_socket,
                  int requester_worker, uint64_t requester_id);
  void start(const sockaddr_storage& address, const std::string& unix_path);

  void onStreamData(net::Stream& stream) override;
  void onStreamEnd(net::Stream& stream, int status) override;
  void onStreamConnected(net::Stream& stream, int status) override;
  void onStreamClosed(net::Stream& stream) override;

 private:
  app::Worker& worker_;
  int32_t pid_;
  int32_t secret_;
  int requester_worker_;
  uint64_t requester_id_;
  net::Stream stream_;
};

}  // namespace pgpivot::session
