// tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt and tcp_user_timeout reach the
// sockets pgpivot opens to PostgreSQL, and tcp_defer_accept its listening sockets: the test
// borrows pgpivot's own socket descriptors (pidfd_getfd, Linux 5.6+) and reads the options
// back with getsockopt.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

constexpr auto kPatience = std::chrono::seconds(10);

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

// Calls `visit` with a copy of every IPv4 socket descriptor of process `pid`.
void forEachSocket(pid_t pid, const std::function<void(int fd)>& visit) {
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
    sockaddr_in local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
        local.sin_family == AF_INET) {
      visit(fd);
    }
    ::close(fd);
  }
  ::close(pidfd);
}

int localPort(int fd) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  return ntohs(local.sin_port);
}

// The options of every TCP socket of process `pid` connected to 127.0.0.1:`port`.
std::vector<SocketOptions> serverSockets(pid_t pid, int port) {
  std::vector<SocketOptions> out;
  forEachSocket(pid, [&](int fd) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        ntohs(peer.sin_port) == port) {
      out.push_back({option(fd, SOL_SOCKET, SO_KEEPALIVE), option(fd, IPPROTO_TCP, TCP_KEEPIDLE),
                     option(fd, IPPROTO_TCP, TCP_KEEPINTVL), option(fd, IPPROTO_TCP, TCP_KEEPCNT),
                     option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT)});
    }
  });
  return out;
}

// pgpivot's listening sockets on `port` (one per worker) and its accepted client sockets.
struct ClientSide {
  std::vector<int> defer_accept;  // TCP_DEFER_ACCEPT of each listening socket, in seconds
  std::vector<int> client_ports;  // the peer port of each accepted connection
  bool accepted(const RawClient& client) const {
    return std::find(client_ports.begin(), client_ports.end(), client.localPort()) !=
           client_ports.end();
  }
};

ClientSide clientSide(pid_t pid, int port) {
  ClientSide out;
  forEachSocket(pid, [&](int fd) {
    if (localPort(fd) != port) {
      return;
    }
    if (option(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1) {
      out.defer_accept.push_back(option(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT));
    } else {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
        out.client_ports.push_back(ntohs(peer.sin_port));
      }
    }
  });
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

TEST_CASE("with tcp_defer_accept a connection reaches pgpivot only once it sends its first packet",
          "[pg][tcp]") {
  Pgpivot::Options options;
  options.settings["workers"] = "2";
  Pgpivot pgpivot(options);
  pgpivot.start();
  const ClientSide before = clientSide(pgpivot.pid(), pgpivot.port());
  REQUIRE(before.defer_accept.size() == 2);
  for (const int seconds : before.defer_accept) {
    CHECK(seconds > 0);  // the kernel rounds 45 s to its SYN-ACK retransmission steps
  }

  RawClient silent(pgpivot.port());
  REQUIRE(silent.connected());  // the handshake completes in the kernel
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK_FALSE(clientSide(pgpivot.pid(), pgpivot.port()).accepted(silent));

  // The startup packet hands the connection over, and the login goes on as ever.
  REQUIRE(silent.send(startupPacket({{"user", "nobody_here"}, {"database", "postgres"}})));
  const std::string answer = silent.readAll(kPatience);
  CHECK(firstError(answer).found);  // unknown user: an error, so pgpivot did read it
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");
}

TEST_CASE("tcp_defer_accept = 0 accepts a connection before it sends anything", "[pg][tcp]") {
  Pgpivot::Options options;
  options.settings["tcp_defer_accept"] = "0";
  Pgpivot pgpivot(options);
  pgpivot.start();
  const ClientSide before = clientSide(pgpivot.pid(), pgpivot.port());
  REQUIRE_FALSE(before.defer_accept.empty());
  for (const int seconds : before.defer_accept) {
    CHECK(seconds == 0);
  }
  RawClient silent(pgpivot.port());
  REQUIRE(silent.connected());
  CHECK(eventually(kPatience,
                   [&] { return clientSide(pgpivot.pid(), pgpivot.port()).accepted(silent); }));
}
