// Listening sockets of one worker: TCP on each listen address, optionally a unix socket
// (".s.PGSQL.<port>" in unix_socket_dir, as PostgreSQL and PgBouncer name it). It only
// binds and reports pending connections; the owner accepts them into a Stream.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pgpivot/core/result.hpp"

namespace pgpivot::net {

class Listener final {
 public:
  // Called on the loop for each pending connection; `is_unix` tells which kind of
  // Stream the owner must create to accept it.
  using OnConnection = std::function<void(uv_stream_t* server, bool is_unix)>;

  Listener(uv_loop_t* loop, OnConnection on_connection);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  struct TcpOptions {
    int backlog = 128;
    // Several workers can bind the same port and the kernel spreads connections among them.
    bool reuse_port = false;
    // TCP_DEFER_ACCEPT: the kernel reports a connection only once data has arrived on it.
    bool defer_accept = false;
  };
  // `address` "*" means every IPv4 and IPv6 address.
  [[nodiscard]] Result<void> listenTcp(const std::string& address, uint16_t port,
                                       TcpOptions options);
  [[nodiscard]] Result<void> listenUnix(const std::string& dir, uint16_t port, int backlog);
  // Accepts a pending connection of `server` (in its OnConnection callback) as a bare
  // descriptor, for a connection that another loop will own. Costs a dup() and a close()
  // more than accepting into a Stream. Returns the descriptor (close-on-exec,
  // non-blocking; the caller owns it) or a negative libuv error code.
  [[nodiscard]] static int acceptDescriptor(uv_stream_t* server, bool is_unix);
  // The port actually bound by the first TCP socket (useful with port 0).
  uint16_t boundPort() const;
  void close();

 private:
  struct Handle;
  uv_loop_t* loop_;
  OnConnection on_connection_;
  std::vector<Handle*> handles_;  // freed in their close callbacks
  std::string unix_path_;
};

}  // namespace pgpivot::net
