// applyTcpOptions on real sockets: what it sets is what getsockopt reads back.
#include "pgpivot/net/tcp_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

namespace pgpivot::net {
namespace {

struct Socket {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ~Socket() { ::close(fd); }
  Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get(int level, int name) const {
    int value = -1;
    socklen_t len = sizeof value;
    REQUIRE(::getsockopt(fd, level, name, &value, &len) == 0);
    return value;
  }
};

TEST_CASE("keepalive timings and TCP_USER_TIMEOUT are set as configured", "[unit][net]") {
  Socket s;
  REQUIRE(s.fd >= 0);
  const TcpOptions o{
      .keepalive = true, .keepidle_s = 17, .keepintvl_s = 3, .keepcnt = 4, .user_timeout_ms = 7000};
  CHECK(applyTcpOptions(s.fd, o).empty());
  CHECK(s.get(SOL_SOCKET, SO_KEEPALIVE) == 1);
  CHECK(s.get(IPPROTO_TCP, TCP_KEEPIDLE) == 17);
  CHECK(s.get(IPPROTO_TCP, TCP_KEEPINTVL) == 3);
  CHECK(s.get(IPPROTO_TCP, TCP_KEEPCNT) == 4);
  CHECK(s.get(IPPROTO_TCP, TCP_USER_TIMEOUT) == 7000);
}

TEST_CASE("0 leaves the operating system's defaults, and keepalive off turns it off",
          "[unit][net]") {
  Socket s;
  const int idle = s.get(IPPROTO_TCP, TCP_KEEPIDLE);
  CHECK(applyTcpOptions(s.fd, TcpOptions{}).empty());
  CHECK(s.get(SOL_SOCKET, SO_KEEPALIVE) == 1);
  CHECK(s.get(IPPROTO_TCP, TCP_KEEPIDLE) == idle);
  CHECK(s.get(IPPROTO_TCP, TCP_USER_TIMEOUT) == 0);
  CHECK(applyTcpOptions(s.fd, TcpOptions{.keepalive = false, .keepidle_s = 5}).empty());
  CHECK(s.get(SOL_SOCKET, SO_KEEPALIVE) == 0);
  CHECK(s.get(IPPROTO_TCP, TCP_KEEPIDLE) == idle);  // not touched while off
}

TEST_CASE("a failure is reported, not thrown", "[unit][net]") {
  CHECK_FALSE(applyTcpOptions(-1, TcpOptions{}).empty());
}

}  // namespace
}  // namespace pgpivot::net
