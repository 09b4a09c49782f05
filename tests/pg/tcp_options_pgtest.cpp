// tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt and tcp_user_timeout reach the
// sockets pgpivot opens to PostgreSQL: the test borrows pgpivot's own socket descriptors
// (pidfd_getfd, Linux 5.6+) and reads the options back with getsockopt.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

struct SocketOptions {
  int keepalive = -1;
  int keepidle = -1;
  int keepintvl = -1;
  int keepcnt = -1;
  int user_timeout = -1;
};

int option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  return ::getsockopt(fd, level, name, &value, &len) == 0 ? value : -1;
}

// The options of every TCP socket of process `pid` connected to 127.0.0.1:`port`.
std::vector<SocketOptions> serverSockets(pid_t pid, int port) {
  std::vector<SocketOptions> out;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  REQUIRE(pidfd >= 0);
  namespace fs = std::filesystem;
  for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const std::string target = fs::read_symlink(entry.path(), ec).string();
    if (ec || target.rfind("socket:", 0) != 0) {
      continue;
    }
    const int remote = std::stoi(entry.path().filename().string());
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, remote, 0));
    if (fd < 0) {
      continue;
    }
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        peer.sin_family == AF_INET && ntohs(peer.sin_port) == port) {
      out.push_back({option(fd, SOL_SOCKET, SO_KEEPALIVE), option(fd, IPPROTO_TCP, TCP_KEEPIDLE),
                     option(fd, IPPROTO_TCP, TCP_KEEPINTVL), option(fd, IPPROTO_TCP, TCP_KEEPCNT),
                     option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT)});
    }
    ::close(fd);
  }
  ::close(pidfd);
  return out;
}

}  // namespace

TEST_CASE("server connections carry the configured keepalives and TCP_USER_TIMEOUT", "[pg][tcp]") {
  Pgpivot::Options options;
  options.settings["tcp_keepalive"] = "1";
  options.settings["tcp_keepidle"] = "17";
  options.settings["tcp_keepintvl"] = "3";
  options.settings["tcp_keepcnt"] = "4";
  options.settings["tcp_user_timeout"] = "7000";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");  // session mode: the server stays linked
  const auto sockets = serverSockets(pgpivot.pid(), pgServer().port);
  REQUIRE_FALSE(sockets.empty());
  for (const SocketOptions& s : sockets) {
    CHECK(s.keepalive == 1);
    CHECK(s.keepidle == 17);
    CHECK(s.keepintvl == 3);
    CHECK(s.keepcnt == 4);
    CHECK(s.user_timeout == 7000);
  }
}

TEST_CASE("tcp_keepalive = 0 turns keepalives off on server connections", "[pg][tcp]") {
  Pgpivot::Options options;
  options.settings["tcp_keepalive"] = "0";
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");
  const auto sockets = serverSockets(pgpivot.pid(), pgServer().port);
  REQUIRE_FALSE(sockets.empty());
  for (const SocketOptions& s : sockets) {
    CHECK(s.keepalive == 0);
    CHECK(s.user_timeout == 0);
  }
}
