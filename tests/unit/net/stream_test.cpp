// Stream on real loopback sockets: a forward the kernel takes at once leaves nothing in
// flight; one it cannot take is queued with a pooled request while reading goes on until
// the buffer is full; every byte arrives once and in order.
#include "pgpivot/net/stream.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "pgpivot/buf/block_pool.hpp"

namespace pgpivot::net {
namespace {

constexpr std::size_t kBlock = 16 * 1024;

// Forwards everything stream `from` receives to stream `to`, the way relay.cpp settles.
class Relay final : public StreamOwner {
 public:
  void onStreamData(Stream& stream) override {
    if (from == nullptr || &stream != from.get()) {
      return;
    }
    ++data_calls;
    CHECK_FALSE(stream.forwardInFlight());  // the stream holds news back until it is done
    auto& buffer = stream.buffer();
    buffer.advanceParsed(buffer.unparsed().size());
    if (wrap_in_cork) {
      to->cork();
      to->writeOwned("<");
    }
    stream.forwardTo(*to);
    if (wrap_in_cork) {
      to->writeOwned(">");
      to->uncork();
    }
    if (stream.forwardInFlight()) {
      ++queued_forwards;
      return;
    }
    buffer.compact();
    if (buffer.freeSpace() > 0) {
      stream.startReading();
    }
  }
  void onStreamEnd(Stream& stream, int) override { stream.close(); }
  void onStreamConnected(Stream&, int) override {}
  void onStreamClosed(Stream&) override { ++closed; }

  std::unique_ptr<Stream> from;
  std::unique_ptr<Stream> to;
  bool wrap_in_cork = false;  // frame each forward with bytes pgpivot writes itself
  int data_calls = 0;
  int queued_forwards = 0;
  int closed = 0;
};

struct Fixture {
  uv_loop_t loop{};
  uv_tcp_t listener{};
  sockaddr_in address{};
  buf::BlockPool pool{kBlock};
  Relay relay;
  int pending_accepts = 0;
  Stream* accept_into = nullptr;

  Fixture() {
    REQUIRE(uv_loop_init(&loop) == 0);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    uv_ip4_addr("127.0.0.1", 0, &address);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&address), 0) == 0);
    int len = sizeof(address);
    REQUIRE(uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&address), &len) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 8,
                      [](uv_stream_t* server, int status) noexcept {
                        auto* self = static_cast<Fixture*>(server->data);
                        if (status == 0 && self->accept_into != nullptr) {
                          (void)self->accept_into->accept(server);
                          self->accept_into = nullptr;
                        }
                      }) == 0);
  }

  ~Fixture() {
    if (relay.from) {
      relay.from->close();
    }
    if (relay.to) {
      relay.to->close();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
      usleep(1000);
    }
    relay.from.reset();
    relay.to.reset();
    uv_loop_close(&loop);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  // A blocking socket connected to the listener, accepted into `stream`. `rcvbuf` > 0
  // shrinks the socket's receive buffer before connecting.
  int connectPeer(Stream& stream, int rcvbuf = 0) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    if (rcvbuf > 0) {
      REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
    }
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
    accept_into = &stream;
    for (int i = 0; i < 5000 && accept_into != nullptr; ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
      usleep(200);
    }
    REQUIRE(accept_into == nullptr);
    return fd;
  }

  void spin(int rounds) {
    for (int i = 0; i < rounds; ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
    }
  }
};

// Reads exactly `n` bytes from a blocking socket while the loop keeps running, within a
// bounded number of polls.
std::string readExactly(Fixture& f, int fd, std::size_t n) {
  std::string got;
  char chunk[65536];
  for (int i = 0; i < 20000 && got.size() < n; ++i) {
    f.spin(1);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1) == 1) {
      const ssize_t r = ::recv(fd, chunk, std::min(sizeof chunk, n - got.size()), 0);
      if (r <= 0) {
        break;
      }
      got.append(chunk, static_cast<std::size_t>(r));
    }
  }
  return got;
}

std::string pattern(std::size_t n, std::size_t seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  }
  return s;
}

struct Fd {
  int fd;
  ~Fd() { ::close(fd); }
};

TEST_CASE("a forward the kernel takes at once leaves nothing in flight", "[unit][net]") {
  Fixture f;
  f.relay.from = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  f.relay.to = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  const Fd source{f.connectPeer(*f.relay.from)};
  const Fd sink{f.connectPeer(*f.relay.to)};
  f.relay.from->startReading();

  for (int message = 0; message < 50; ++message) {
    const std::string bytes = pattern(100 + static_cast<std::size_t>(message), message);
    REQUIRE(::send(source.fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    CHECK(readExactly(f, sink.fd, bytes.size()) == bytes);
    CHECK_FALSE(f.relay.from->forwardInFlight());
    CHECK(f.relay.from->reading());  // never stopped: no epoll re-arming per message
  }
  CHECK(f.relay.queued_forwards == 0);
  CHECK(Stream::writeRequestsInUse() == 0);
  CHECK(f.relay.to->bytesOut() == f.relay.from->bytesIn());
  CHECK(f.pool.inUse() == 0);  // drained buffers went back to the pool
}

TEST_CASE("while corked, written bytes go out with the forward, in order", "[unit][net]") {
  Fixture f;
  f.relay.wrap_in_cork = true;
  f.relay.from = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  f.relay.to = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  const Fd source{f.connectPeer(*f.relay.from)};
  const Fd sink{f.connectPeer(*f.relay.to)};
  f.relay.from->startReading();

  for (int message = 0; message < 20; ++message) {
    const std::string bytes = pattern(50 + static_cast<std::size_t>(message), message);
    REQUIRE(::send(source.fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    CHECK(readExactly(f, sink.fd, bytes.size() + 2) == "<" + bytes + ">");
    CHECK_FALSE(f.relay.from->forwardInFlight());
  }
  // Nested corks count: only the outermost uncork sends.
  f.relay.to->cork();
  f.relay.to->cork();
  f.relay.to->writeOwned("ab");
  f.relay.to->uncork();
  f.relay.to->writeOwned("cd");
  f.relay.to->uncork();
  CHECK(readExactly(f, sink.fd, 4) == "abcd");
  // The caller's buffer is free again once writeOwned returns (the relay reuses one).
  std::string reused = "12";
  f.relay.to->cork();
  f.relay.to->writeOwned(reused);
  reused = "34";
  f.relay.to->writeOwned(reused);
  reused.clear();
  f.relay.to->uncork();
  CHECK(readExactly(f, sink.fd, 4) == "1234");
  // A stream closed while corked still sends what was staged.
  f.relay.to->cork();
  f.relay.to->writeOwned("last");
  f.relay.to->close();
  f.relay.to->uncork();
  CHECK(readExactly(f, sink.fd, 4) == "last");
}

TEST_CASE("a forward the peer cannot take is queued and reading stops only when the buffer is full",
          "[unit][net]") {
  Fixture f;
  f.relay.from = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  f.relay.to = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  const Fd source{f.connectPeer(*f.relay.from)};
  const Fd sink{f.connectPeer(*f.relay.to, 4096)};
  int sndbuf = 4096;
  REQUIRE(uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(f.relay.to->uvStream()), &sndbuf) ==
          0);
  f.relay.from->startReading();
  REQUIRE(::fcntl(source.fd, F_SETFL, ::fcntl(source.fd, F_GETFL) | O_NONBLOCK) == 0);

  // Push until the sink's kernel buffers are full, a forward is queued and the source
  // stream has filled its own buffer behind it and stopped reading.
  // Small pieces, so that the forward that gets queued covers only part of the buffer.
  const std::string all = pattern(8 * 1024 * 1024, 3);
  std::size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool stalled = false;
  while (!stalled && sent < all.size() && std::chrono::steady_clock::now() < deadline) {
    const ssize_t w = ::send(source.fd, all.data() + sent,
                             std::min<std::size_t>(1024, all.size() - sent), MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<std::size_t>(w);
    }
    f.spin(2);
    stalled = f.relay.from->forwardInFlight() && !f.relay.from->reading();
  }
  REQUIRE(stalled);
  CHECK(f.relay.queued_forwards >= 1);
  CHECK(Stream::writeRequestsInUse() == 1);
  // Reading went on while the forward was queued, until no byte more fitted.
  CHECK(f.relay.from->buffer().freeSpace() == 0);
  CHECK(f.relay.from->buffer().received() > f.relay.from->buffer().parsed());

  // The sink drains: everything sent arrives once and in order, and the request is back.
  const std::string got = [&] {
    std::string out;
    char chunk[65536];
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (out.size() < sent && std::chrono::steady_clock::now() < until) {
      if (sent < all.size()) {
        const ssize_t w = ::send(source.fd, all.data() + sent,
                                 std::min<std::size_t>(65536, all.size() - sent), MSG_NOSIGNAL);
        if (w > 0) {
          sent += static_cast<std::size_t>(w);
        }
      }
      f.spin(2);
      pollfd p{sink.fd, POLLIN, 0};
      if (::poll(&p, 1, 1) == 1) {
        const ssize_t r = ::recv(sink.fd, chunk, sizeof chunk, 0);
        if (r <= 0) {
          break;
        }
        out.append(chunk, static_cast<std::size_t>(r));
      }
    }
    return out;
  }();
  REQUIRE(got.size() == all.size());
  CHECK(got == all);
  CHECK(Stream::writeRequestsInUse() == 0);
  CHECK_FALSE(f.relay.from->forwardInFlight());
  CHECK(f.relay.from->reading());
}

TEST_CASE("writeOwned sends small replies at once and queues what the peer cannot take yet",
          "[unit][net]") {
  Fixture f;
  f.relay.to = std::make_unique<Stream>(&f.loop, f.relay, f.pool);
  const Fd sink{f.connectPeer(*f.relay.to, 4096)};
  int sndbuf = 4096;
  REQUIRE(uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(f.relay.to->uvStream()), &sndbuf) ==
          0);

  f.relay.to->writeOwned("hello");
  CHECK(f.relay.to->unflushedBytes() == 0);  // written before writeOwned returned
  CHECK(readExactly(f, sink.fd, 5) == "hello");

  std::string big = pattern(2 * 1024 * 1024, 11);
  const std::string expected = big;
  f.relay.to->writeOwned(big);
  CHECK(f.relay.to->unflushedBytes() > 0);  // the kernel took only part of it
  big.assign(big.size(), 'x');              // the rest was copied: the caller's buffer is free
  f.relay.to->writeOwned("tail");           // queued behind, never ahead of it
  CHECK(readExactly(f, sink.fd, expected.size() + 4) == expected + "tail");
  f.spin(2);
  CHECK(f.relay.to->unflushedBytes() == 0);
  CHECK(f.relay.to->bytesOut() == 5 + expected.size() + 4);
}

}  // namespace
}  // namespace pgpivot::net
