// Prometheus metrics: a pure renderer from an admin Snapshot to the text exposition format
// 0.0.4, and a small HTTP/1.1 server on a libuv loop that serves it at GET /metrics.
// Names follow Prometheus conventions: pgpivot_ prefix, _total for counters, base units
// (seconds, bytes), labels database/user/state/cluster/node. The server parses requests
// with the http-parser library, answers one request per connection (Connection: close),
// and knows nothing about pgpivot's state: a provider callback supplies the text.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "pgpivot/admin/snapshot.hpp"
#include "pgpivot/core/result.hpp"

namespace pgpivot::admin {

// The parts of a Snapshot renderMetrics() reads.
[[nodiscard]] Parts metricsParts();

// The exposition text of `snapshot`: # HELP and # TYPE once per metric family, families
// with no sample left out. Label values are escaped as the format requires.
[[nodiscard]] std::string renderMetrics(const Snapshot& snapshot);

// The MIME type of renderMetrics()'s output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsServer;

// The answer to one GET /metrics, handed to the provider. Move-only; send() it once, now or
// later, on the server's loop. If the client has gone meanwhile, send() does nothing.
// Dropping it unsent answers 503. The MetricsServer must outlive every reply it issued.
class MetricsReply final {
 public:
  MetricsReply(MetricsReply&& other) noexcept;
  MetricsReply& operator=(MetricsReply&& other) noexcept;
  MetricsReply(const MetricsReply&) = delete;
  MetricsReply& operator=(const MetricsReply&) = delete;
  ~MetricsReply();

  void send(std::string text);

 private:
  friend class MetricsServer;
  MetricsReply(MetricsServer* server, uint64_t connection_id)
      : server_(server), connection_id_(connection_id) {}
  MetricsServer* server_ = nullptr;
  uint64_t connection_id_ = 0;
};

struct MetricsServerOptions {
  std::size_t max_request_bytes = 8192;  // request line + headers (+ body); more is 431
  uint64_t timeout_ms = 10'000;          // a connection may not stay longer than this
  std::size_t max_connections = 64;      // more are closed right after accept
};

// Serves GET (and HEAD) /metrics on one loop: 200 with the provider's text; any other
// path 404, another method on /metrics 405, a request http-parser rejects 400. Every
// response closes the connection. Used only on its loop's thread.
class MetricsServer final {
 public:
  // Called once per GET/HEAD /metrics.
  using Provider = std::function<void(MetricsReply reply)>;

  MetricsServer(uv_loop_t* loop, Provider provider, MetricsServerOptions options = {});
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Closes everything; handles finish closing when the loop next runs.
  ~MetricsServer();

  // `address` is numeric IPv4 or IPv6; port 0 picks a free port (see boundPort()).
  [[nodiscard]] Result<void> listen(const std::string& address, uint16_t port, int backlog = 64);
  [[nodiscard]] uint16_t boundPort() const;
  // Stops listening and closes open connections. Idempotent.
  void close();

  [[nodiscard]] std::size_t connectionCount() const { return connections_.size(); }

 private:
  friend class MetricsReply;
  struct Connection;
  struct ListenHandle;

  void onConnection();
  void onRequest(Connection& connection);
  void respond(uint64_t connection_id, int status, std::string_view content_type, std::string body);
  void forget(uint64_t connection_id);

  uv_loop_t* loop_;
  Provider provider_;
  MetricsServerOptions options_;
  ListenHandle* listener_ = nullptr;  // freed in its close callback
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
};

}  // namespace pgpivot::admin
