// The /metrics HTTP server on a real libuv loop, bound to 127.0.0.1 port 0, driven by a
// raw TCP client on another thread (the loop thread only runs the server). Each case
// checks the status line and, for 200, the body and headers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <thread>

#include "admin_fakes.hpp"
#include "pgpivot/admin/metrics.hpp"

namespace pgpivot::admin {
namespace {

// Sends `request` (then half-closes if asked) and reads until the server closes.
std::string exchange(uint16_t port, const std::string& request, bool half_close = false) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the server may answer and close before reading everything (431)
    }
    sent += static_cast<std::size_t>(n);
  }
  if (half_close) {
    ::shutdown(fd, SHUT_WR);
  }
  std::string response;
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    response.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return response;
}

std::string statusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string bodyOf(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// A server on its own loop thread; stop() closes it and joins.
class ServerThread {
 public:
  explicit ServerThread(MetricsServer::Provider provider, MetricsServerOptions options = {}) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) noexcept {
      auto* self = static_cast<ServerThread*>(a->data);
      self->server_->close();
      uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_), nullptr);
    });
    stop_.data = this;
    server_.emplace(&loop_, std::move(provider), options);
    auto listened = server_->listen("127.0.0.1", 0);
    REQUIRE(listened.has_value());
    port_ = server_->boundPort();
    REQUIRE(port_ != 0);
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~ServerThread() {
    uv_async_send(&stop_);
    thread_.join();
    server_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  uint16_t port() const { return port_; }
  uv_loop_t* loop() { return &loop_; }
  MetricsServer& server() { return *server_; }

 private:
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::optional<MetricsServer> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

const std::string kText = "# HELP pgpivot_up x\n# TYPE pgpivot_up gauge\npgpivot_up 1\n";

TEST_CASE("GET /metrics answers 200 with the provider's text", "[unit][admin][http]") {
  std::atomic<int> calls{0};
  ServerThread t([&](MetricsReply reply) {
    ++calls;
    reply.send(kText);
  });
  const std::string r =
      exchange(t.port(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  CHECK(statusLine(r) == "HTTP/1.1 200 OK");
  CHECK(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
  CHECK(r.find("Content-Length: " + std::to_string(kText.size()) + "\r\n") != std::string::npos);
  CHECK(r.find("Connection: close\r\n") != std::string::npos);
  CHECK(bodyOf(r) == kText);
  CHECK(calls == 1);

  SECTION("with a query string and HTTP/1.0") {
    const std::string r2 = exchange(t.port(), "GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    CHECK(statusLine(r2) == "HTTP/1.1 200 OK");
    CHECK(bodyOf(r2) == kText);
  }
  SECTION("HEAD has the headers and no body") {
    const std::string r2 = exchange(t.port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(statusLine(r2) == "HTTP/1.1 200 OK");
    CHECK(bodyOf(r2).empty());
  }
  SECTION("a client that half-closes after its request still gets the answer") {
    const std::string r2 = exchange(t.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true);
    CHECK(bodyOf(r2) == kText);
  }
  SECTION("a second, pipelined request is ignored: one request per connection") {
    const std::string r2 =
        exchange(t.port(), "GET /metrics HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
    CHECK(statusLine(r2) == "HTTP/1.1 200 OK");
    CHECK(r2.find("404") == std::string::npos);
    CHECK(bodyOf(r2) == kText);
  }
}

TEST_CASE("other paths are 404, other methods 405, garbage 400", "[unit][admin][http]") {
  std::atomic<int> calls{0};
  ServerThread t([&](MetricsReply reply) {
    ++calls;
    reply.send(kText);
  });
  CHECK(statusLine(exchange(t.port(), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")) ==
        "HTTP/1.1 404 Not Found");
  CHECK(statusLine(exchange(t.port(), "GET / HTTP/1.1\r\n\r\n")) == "HTTP/1.1 404 Not Found");
  CHECK(statusLine(exchange(t.port(), "GET /metricsX HTTP/1.1\r\n\r\n")) ==
        "HTTP/1.1 404 Not Found");
  const std::string post =
      exchange(t.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
  CHECK(statusLine(post) == "HTTP/1.1 405 Method Not Allowed");
  CHECK(post.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(statusLine(exchange(t.port(), "this is not http\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  CHECK(statusLine(exchange(t.port(), std::string("GET /metrics HTTP/1.1\r\nHo\0st: x\r\n\r\n",
                                                  36))) == "HTTP/1.1 400 Bad Request");
  CHECK(statusLine(exchange(t.port(),
                            "GET /metrics HTTP/1.1\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  CHECK(calls == 0);
}

TEST_CASE("an oversized request is refused with 431", "[unit][admin][http]") {
  ServerThread t([](MetricsReply reply) { reply.send(kText); },
                 MetricsServerOptions{.max_request_bytes = 256});
  const std::string big =
      "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(1000, 'a') + "\r\n\r\n";
  CHECK(statusLine(exchange(t.port(), big)) == "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST_CASE("a provider may answer later on the loop, or drop the reply (503)",
          "[unit][admin][http]") {
  SECTION("answer from a later loop iteration, as a worker mailbox would") {
    struct Later {
      std::optional<MetricsReply> reply;
      uv_timer_t timer{};
    } later;
    std::atomic<ServerThread*> self{nullptr};
    ServerThread t([&](MetricsReply reply) {
      later.reply.emplace(std::move(reply));
      uv_timer_init(self.load()->loop(), &later.timer);
      later.timer.data = &later;
      uv_timer_start(
          &later.timer,
          [](uv_timer_t* timer) noexcept {
            auto* l = static_cast<Later*>(timer->data);
            l->reply->send(kText);
            l->reply.reset();
            uv_close(reinterpret_cast<uv_handle_t*>(timer), nullptr);
          },
          10, 0);
    });
    self.store(&t);
    const std::string r = exchange(t.port(), "GET /metrics HTTP/1.1\r\n\r\n");
    CHECK(statusLine(r) == "HTTP/1.1 200 OK");
    CHECK(bodyOf(r) == kText);
  }
  SECTION("dropping the reply answers 503") {
    ServerThread t([](MetricsReply reply) { (void)reply; });
    CHECK(statusLine(exchange(t.port(), "GET /metrics HTTP/1.1\r\n\r\n")) ==
          "HTTP/1.1 503 Service Unavailable");
  }
}

TEST_CASE("wired as the application does: provider -> backend snapshot -> renderMetrics",
          "[unit][admin][http]") {
  test::FakeBackend backend;
  PoolRow pool;
  pool.database = "appdb";
  pool.user = "alice";
  pool.cl_waiting = 4;
  backend.data.pools.push_back(pool);
  ServerThread t([&backend](MetricsReply reply) {
    backend.snapshot(metricsParts(),
                     Completion<Snapshot>([reply = std::move(reply)](Result<Snapshot> s) mutable {
                       if (s) {
                         reply.send(renderMetrics(*s));
                       }  // else: the reply is dropped and the scraper gets 503
                     }));
  });
  const std::string r = exchange(t.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(statusLine(r) == "HTTP/1.1 200 OK");
  CHECK(
      bodyOf(r).find(
          R"(pgpivot_pool_client_connections{database="appdb",user="alice",state="waiting"} 4)") !=
      std::string::npos);
}

TEST_CASE("a silent client is closed after the timeout", "[unit][admin][http]") {
  ServerThread t([](MetricsReply reply) { reply.send(kText); },
                 MetricsServerOptions{.timeout_ms = 50});
  // A request that never ends: the server closes without an answer.
  CHECK(exchange(t.port(), "GET /metrics HTTP/1.1\r\n").empty());
}

}  // namespace
}  // namespace pgpivot::admin
