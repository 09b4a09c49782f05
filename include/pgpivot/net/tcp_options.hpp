// TCP keepalives and TCP_USER_TIMEOUT on the sockets pgpivot opens to servers, as
// PgBouncer's tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt and
// tcp_user_timeout do. Keepalives notice a server that vanished while the connection is
// idle; TCP_USER_TIMEOUT notices one that stopped acknowledging data (a black hole while
// a query is on its way), which keepalives cannot: they do not run while data is
// unacknowledged (research failover.md §1.6).
#pragma once

#include <uv.h>

#include <string>

#include "pgpivot/config/config.hpp"

namespace pgpivot::net {

struct TcpOptions {
  bool keepalive = true;
  int keepidle_s = 0;       // 0: the operating system's default
  int keepintvl_s = 0;      // 0: the operating system's default
  int keepcnt = 0;          // 0: the operating system's default
  int user_timeout_ms = 0;  // 0: off (the operating system's default)
};

TcpOptions tcpOptionsFrom(const config::Config& config);

// Sets `options` on a TCP handle (a pipe is left alone). Returns an empty string, or what
// failed (for a warning: a socket that keeps working without them).
std::string applyTcpOptions(uv_stream_t* handle, const TcpOptions& options);
// The same on a socket descriptor.
std::string applyTcpOptions(int fd, const TcpOptions& options);

}  // namespace pgpivot::net
