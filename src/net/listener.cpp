#include "pgpivot/net/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace pgpivot::net {

struct Listener::Handle {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h{};
  bool is_unix = false;
  Listener* owner = nullptr;
};

Listener::Listener(uv_loop_t* loop, OnConnection on_connection)
    : loop_(loop), on_connection_(std::move(on_connection)) {}

Listener::~Listener() {
  close();
}

namespace {

Result<sockaddr_storage> resolveNumeric(const std::string& address, uint16_t port) {
  sockaddr_storage storage{};
  if (uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&storage)) == 0) {
    return storage;
  }
  if (uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&storage)) == 0) {
    return storage;
  }
  if (address == "localhost") {
    uv_ip4_addr("127.0.0.1", port, reinterpret_cast<sockaddr_in*>(&storage));
    return storage;
  }
  return fail(sqlstate::kConfigFileError,
              fmt::format("listen address {} is not a numeric IPv4/IPv6 address", address));
}

}  // namespace

// PgBouncer's value: a client that connects and sends nothing is still handed over (and
// meets client_login_timeout) once the kernel gives up waiting, after about this long.
constexpr int kDeferAcceptSeconds = 45;

Result<void> Listener::listenTcp(const std::string& address, uint16_t port, TcpOptions options) {
  std::vector<std::string> addresses;
  if (address == "*") {
    addresses = {"0.0.0.0", "::"};
  } else {
    addresses = {address};
  }
  for (const auto& addr : addresses) {
    auto resolved = resolveNumeric(addr, port);
    if (!resolved) {
      return tl::unexpected(resolved.error());
    }
    auto* handle = new Handle{};
    handle->owner = this;
    uv_tcp_init_ex(loop_, &handle->h.tcp, resolved->ss_family);
    handle->h.tcp.data = handle;
    handles_.push_back(handle);
    uv_os_fd_t fd = -1;
    uv_fileno(reinterpret_cast<uv_handle_t*>(&handle->h.tcp), &fd);
    const int one = 1;
    if (options.reuse_port) {
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    if (options.defer_accept) {
      setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &kDeferAcceptSeconds,
                 sizeof(kDeferAcceptSeconds));
    }
    const unsigned flags = resolved->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    int rc = uv_tcp_bind(&handle->h.tcp, reinterpret_cast<const sockaddr*>(&*resolved), flags);
    if (rc == 0) {
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&handle->h.tcp), options.backlog,
                     [](uv_stream_t* server, int status) noexcept {
                       if (status != 0) {
                         return;
                       }
                       auto* h = static_cast<Handle*>(server->data);
                       h->owner->on_connection_(server, false);
                     });
    }
    if (rc != 0) {
      return fail(sqlstate::kConfigFileError,
                  fmt::format("cannot listen on {}:{}: {}", addr, port, uv_strerror(rc)));
    }
    if (port == 0) {
      port = boundPort();  // later addresses share the port the kernel picked
    }
  }
  return {};
}

Result<void> Listener::listenUnix(const std::string& dir, uint16_t port, int backlog) {
  unix_path_ = fmt::format("{}/.s.PGSQL.{}", dir, port);
  ::unlink(unix_path_.c_str());  // a stale socket from a crashed run
  auto* handle = new Handle{};
  handle->owner = this;
  handle->is_unix = true;
  uv_pipe_init(loop_, &handle->h.pipe, 0);
  handle->h.pipe.data = handle;
  handles_.push_back(handle);
  int rc = uv_pipe_bind(&handle->h.pipe, unix_path_.c_str());
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&handle->h.pipe), backlog,
                   [](uv_stream_t* server, int status) noexcept {
                     if (status != 0) {
                       return;
                     }
                     auto* h = static_cast<Handle*>(server->data);
                     h->owner->on_connection_(server, true);
                   });
  }
  if (rc != 0) {
    std::string path = unix_path_;
    unix_path_.clear();
    return fail(sqlstate::kConfigFileError,
                fmt::format("cannot listen on unix socket {}: {}", path, uv_strerror(rc)));
  }
  return {};
}

int Listener::acceptDescriptor(uv_stream_t* server, bool is_unix) {
  // libuv has accepted the connection already and waits for uv_accept to take it into a
  // handle of this loop; a handle cannot leave its loop, so the socket leaves through a
  // second descriptor and this handle closes its own.
  auto* holder = new Handle{};
  holder->is_unix = is_unix;
  if (is_unix) {
    uv_pipe_init(server->loop, &holder->h.pipe, 0);
  } else {
    uv_tcp_init(server->loop, &holder->h.tcp);
  }
  holder->h.tcp.data = holder;
  auto* handle = reinterpret_cast<uv_handle_t*>(&holder->h);
  int result = uv_accept(server, reinterpret_cast<uv_stream_t*>(handle));
  uv_os_fd_t fd = -1;
  if (result == 0) {
    result = uv_fileno(handle, &fd);
  }
  if (result == 0) {
    result = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (result < 0) {
      result = -errno;
    }
  }
  uv_close(handle, [](uv_handle_t* h) noexcept { delete static_cast<Handle*>(h->data); });
  return result;
}

uint16_t Listener::boundPort() const {
  for (const auto* handle : handles_) {
    if (handle->is_unix) {
      continue;
    }
    sockaddr_storage addr{};
    int len = sizeof(addr);
    if (uv_tcp_getsockname(&handle->h.tcp, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
    }
  }
  return 0;
}

void Listener::close() {
  for (auto* handle : handles_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&handle->h),
             [](uv_handle_t* h) noexcept { delete static_cast<Handle*>(h->data); });
  }
  handles_.clear();
  if (!unix_path_.empty()) {
    ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }
}

}  // namespace pgpivot::net
