#include "pgpivot/net/tcp_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace pgpivot::net {
namespace {

std::string setInt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return std::string(what) + ": " + std::strerror(errno);
  }
  return {};
}

}  // namespace

TcpOptions tcpOptionsFrom(const config::Config& config) {
  return TcpOptions{.keepalive = config.tcp_keepalive,
                    .keepidle_s = config.tcp_keepidle,
                    .keepintvl_s = config.tcp_keepintvl,
                    .keepcnt = config.tcp_keepcnt,
                    .user_timeout_ms = config.tcp_user_timeout};
}

std::string applyTcpOptions(int fd, const TcpOptions& o) {
  std::string error = setInt(fd, SOL_SOCKET, SO_KEEPALIVE, o.keepalive ? 1 : 0, "SO_KEEPALIVE");
  if (o.keepalive) {
    if (error.empty() && o.keepidle_s > 0) {
      error = setInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle_s, "TCP_KEEPIDLE");
    }
    if (error.empty() && o.keepintvl_s > 0) {
      error = setInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl_s, "TCP_KEEPINTVL");
    }
    if (error.empty() && o.keepcnt > 0) {
      error = setInt(fd, IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt, "TCP_KEEPCNT");
    }
  }
  if (error.empty() && o.user_timeout_ms > 0) {
    error = setInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, o.user_timeout_ms, "TCP_USER_TIMEOUT");
  }
  return error;
}

std::string applyTcpOptions(uv_stream_t* handle, const TcpOptions& options) {
  if (uv_handle_get_type(reinterpret_cast<uv_handle_t*>(handle)) != UV_TCP) {
    return {};
  }
  uv_os_fd_t fd = -1;
  if (const int rc = uv_fileno(reinterpret_cast<uv_handle_t*>(handle), &fd); rc != 0) {
    return std::string("no socket: ") + uv_strerror(rc);
  }
  return applyTcpOptions(fd, options);
}

}  // namespace pgpivot::net
