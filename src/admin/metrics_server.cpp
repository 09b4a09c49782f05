// The /metrics HTTP server. Each connection lives through these phases:
//
//   kReading   bytes go through http-parser until one request is complete (or the
//              request is too big, or malformed: 431 / 400)
//   kWaiting   GET /metrics: the provider holds a MetricsReply
//   kWriting   the response is being written
//   kDraining  response written, FIN sent (uv_shutdown); anything the client still sends
//              is read and dropped until its EOF, so closing cannot turn into a RST that
//              destroys the response in flight
//   kClosing   uv_close on the socket and the timer; the last close callback frees it
//
// One timer bounds every connection (slow or silent clients), and a cap on connections
// bounds memory. Reads go into a fixed buffer inside the connection: no allocation per read.
#include <http_parser.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "pgpivot/admin/metrics.hpp"

namespace pgpivot::admin {
namespace {

// What the http-parser callbacks fill (parser.data points here).
struct Request {
  std::string url;
  bool complete = false;
};

const http_parser_settings& parserSettings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_url = [](http_parser* p, const char* at, size_t length) noexcept {
      static_cast<Request*>(p->data)->url.append(at, length);
      return 0;
    };
    s.on_message_complete = [](http_parser* p) noexcept {
      static_cast<Request*>(p->data)->complete = true;
      // Stop here: one request per connection; whatever follows is not parsed.
      http_parser_pause(p, 1);
      return 0;
    };
    return s;
  }();
  return settings;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Service Unavailable";
  }
}

// The path of a request target ("/metrics?x=1" -> "/metrics"); empty if unparsable.
std::string_view pathOf(std::string_view url) {
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url.data(), url.size(), 0, &u) != 0 ||
      (u.field_set & (1U << UF_PATH)) == 0) {
    return {};
  }
  return url.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
}

constexpr std::string_view kPlainText = "text/plain; charset=utf-8";
constexpr uint64_t kDrainLingerMs = 1000;

}  // namespace

struct MetricsServer::ListenHandle {
  uv_tcp_t tcp{};
  MetricsServer* server = nullptr;
};

struct MetricsServer::Connection {
  enum class Phase { kReading, kWaiting, kWriting, kDraining, kClosing };

  MetricsServer* server = nullptr;  // null once the server is destroyed
  uint64_t id = 0;
  Phase phase = Phase::kReading;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_write_t write_req{};
  uv_shutdown_t shutdown_req{};
  int open_handles = 0;
  http_parser parser{};
  Request request;
  std::size_t received = 0;
  bool head = false;     // HEAD: headers only
  std::string response;  // owned until the write callback
  std::array<char, 4096> read_buf{};

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }

  void armTimer(uint64_t ms) {
    uv_timer_start(
        &timer, [](uv_timer_t* t) noexcept { static_cast<Connection*>(t->data)->close(); }, ms, 0);
  }

  void close() {
    if (phase == Phase::kClosing) {
      return;
    }
    phase = Phase::kClosing;
    auto on_closed = [](uv_handle_t* h) noexcept {
      auto* self = static_cast<Connection*>(h->data);
      if (--self->open_handles > 0) {
        return;
      }
      if (self->server != nullptr) {
        self->server->forget(self->id);  // frees self
      } else {
        delete self;
      }
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_closed);
  }

  void onRead(ssize_t nread) {
    if (nread < 0) {
      // EOF or error. A client may half-close after its request; answer it anyway.
      if (phase == Phase::kWaiting || phase == Phase::kWriting) {
        uv_read_stop(stream());
      } else {
        close();
      }
      return;
    }
    if (phase != Phase::kReading || nread == 0) {
      return;  // draining, or nothing read
    }
    const auto n = static_cast<std::size_t>(nread);
    received += n;
    if (received > server->options_.max_request_bytes) {
      server->respond(id, 431, kPlainText, "request too large\n");
      return;
    }
    http_parser_execute(&parser, &parserSettings(), read_buf.data(), n);
    const auto err = static_cast<http_errno>(parser.http_errno);
    if ((err != HPE_OK && err != HPE_PAUSED) || parser.upgrade != 0) {
      server->respond(id, 400, kPlainText, "bad request\n");
      return;
    }
    if (request.complete) {
      server->onRequest(*this);
    }
  }
};

MetricsReply::MetricsReply(MetricsReply&& other) noexcept
    : server_(std::exchange(other.server_, nullptr)), connection_id_(other.connection_id_) {}

MetricsReply& MetricsReply::operator=(MetricsReply&& other) noexcept {
  if (this != &other) {
    if (server_ != nullptr) {
      server_->respond(connection_id_, 503, kPlainText, "metrics unavailable\n");
    }
    server_ = std::exchange(other.server_, nullptr);
    connection_id_ = other.connection_id_;
  }
  return *this;
}

MetricsReply::~MetricsReply() {
  if (server_ != nullptr) {
    server_->respond(connection_id_, 503, kPlainText, "metrics unavailable\n");
  }
}

void MetricsReply::send(std::string text) {
  if (server_ != nullptr) {
    std::exchange(server_, nullptr)
        ->respond(connection_id_, 200, kMetricsContentType, std::move(text));
  }
}

MetricsServer::MetricsServer(uv_loop_t* loop, Provider provider, MetricsServerOptions options)
    : loop_(loop), provider_(std::move(provider)), options_(options) {}

MetricsServer::~MetricsServer() {
  close();
  // Connections still closing free themselves in their last close callback.
  for (auto& [id, connection] : connections_) {
    connection->server = nullptr;
    (void)connection.release();
  }
  connections_.clear();
}

Result<void> MetricsServer::listen(const std::string& address, uint16_t port, int backlog) {
  sockaddr_storage storage{};
  if (uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&storage)) != 0 &&
      uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&storage)) != 0) {
    return fail(sqlstate::kConfigFileError,
                "metrics: listen address " + address + " is not a numeric IPv4/IPv6 address");
  }
  if (listener_ != nullptr) {
    return fail(sqlstate::kInternalError, "metrics: already listening");
  }
  listener_ = new ListenHandle{};
  listener_->server = this;
  uv_tcp_init(loop_, &listener_->tcp);
  listener_->tcp.data = listener_;
  int rc = uv_tcp_bind(&listener_->tcp, reinterpret_cast<const sockaddr*>(&storage), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_->tcp), backlog,
                   [](uv_stream_t* s, int status) noexcept {
                     if (status == 0) {
                       static_cast<ListenHandle*>(s->data)->server->onConnection();
                     }
                   });
  }
  if (rc != 0) {
    close();
    return fail(sqlstate::kConfigFileError, "metrics: cannot listen on " + address + ":" +
                                                std::to_string(port) + ": " + uv_strerror(rc));
  }
  return {};
}

uint16_t MetricsServer::boundPort() const {
  if (listener_ == nullptr) {
    return 0;
  }
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getsockname(&listener_->tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  // sin_port and sin6_port sit at the same offset.
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

void MetricsServer::close() {
  if (listener_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_->tcp),
             [](uv_handle_t* h) noexcept { delete static_cast<ListenHandle*>(h->data); });
    listener_ = nullptr;
  }
  for (auto& [id, connection] : connections_) {
    connection->close();
  }
}

void MetricsServer::onConnection() {
  auto owned = std::make_unique<Connection>();
  Connection& c = *owned;
  c.server = this;
  c.id = next_id_++;
  uv_tcp_init(loop_, &c.tcp);
  uv_timer_init(loop_, &c.timer);
  c.tcp.data = &c;
  c.timer.data = &c;
  c.open_handles = 2;
  http_parser_init(&c.parser, HTTP_REQUEST);
  c.parser.data = &c.request;
  connections_.emplace(c.id, std::move(owned));
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_->tcp), c.stream()) != 0 ||
      connections_.size() > options_.max_connections) {
    c.close();
    return;
  }
  c.armTimer(options_.timeout_ms);
  uv_read_start(
      c.stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
        auto* self = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(self->read_buf.data(), static_cast<unsigned>(self->read_buf.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) noexcept {
        static_cast<Connection*>(s->data)->onRead(nread);
      });
}

void MetricsServer::onRequest(Connection& c) {
  const std::string_view path = pathOf(c.request.url);
  const auto method = static_cast<http_method>(c.parser.method);
  if (path.empty()) {
    respond(c.id, 400, kPlainText, "bad request\n");
  } else if (path != "/metrics") {
    respond(c.id, 404, kPlainText, "not found; metrics are at /metrics\n");
  } else if (method != HTTP_GET && method != HTTP_HEAD) {
    respond(c.id, 405, kPlainText, "method not allowed\n");
  } else {
    c.head = method == HTTP_HEAD;
    c.phase = Connection::Phase::kWaiting;
    provider_(MetricsReply(this, c.id));
  }
}

void MetricsServer::respond(uint64_t connection_id, int status, std::string_view content_type,
                            std::string body) {
  const auto it = connections_.find(connection_id);
  if (it == connections_.end()) {
    return;  // the client left (or timed out) before the answer was ready
  }
  Connection& c = *it->second;
  if (c.phase != Connection::Phase::kReading && c.phase != Connection::Phase::kWaiting) {
    return;
  }
  c.response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reasonPhrase(status)) +
               "\r\nContent-Type: " + std::string(content_type) +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 405) {
    c.response += "Allow: GET, HEAD\r\n";
  }
  c.response += "Connection: close\r\n\r\n";
  if (!c.head) {
    c.response += body;
  }
  c.phase = Connection::Phase::kWriting;
  uv_buf_t buf = uv_buf_init(c.response.data(), static_cast<unsigned>(c.response.size()));
  c.write_req.data = &c;
  const int rc =
      uv_write(&c.write_req, c.stream(), &buf, 1, [](uv_write_t* req, int write_status) noexcept {
        auto* self = static_cast<Connection*>(req->data);
        if (self->phase == Connection::Phase::kClosing) {
          return;  // cancelled by close()
        }
        self->shutdown_req.data = self;
        if (write_status != 0 || uv_shutdown(&self->shutdown_req, self->stream(),
                                             [](uv_shutdown_t*, int) noexcept {}) != 0) {
          self->close();
          return;
        }
        self->phase = Connection::Phase::kDraining;
        self->armTimer(kDrainLingerMs);
      });
  if (rc != 0) {
    c.close();
  }
}

void MetricsServer::forget(uint64_t connection_id) {
  connections_.erase(connection_id);
}

}  // namespace pgpivot::admin
