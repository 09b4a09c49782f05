// One libpq connection driven from a libuv loop without ever blocking it: connect with
// PQconnectStartParams/PQconnectPoll and query with PQsendQuery/PQconsumeInput, both woken
// by a uv_poll on PQsocket(), and a uv_timer deadline on every run. This is how the health
// monitor talks to PostgreSQL (STYLE.md 3.2: libpq never runs on a worker loop, and never
// blocks the monitor's). Not responsible for what the query means.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pgpivot::monitor {

struct ProbeOutcome {
  enum class Kind {
    kOk,       // the query ran; columns and rows are filled
    kTimeout,  // the deadline passed (connection abandoned, a cancel sent)
    kRefused,  // nothing listens (or the connection was reset while connecting)
    kError,    // PostgreSQL answered with an error (sqlstate) or the connection broke
  };
  Kind kind = Kind::kError;
  std::string sqlstate;  // when PostgreSQL sent one (also inferred for start-up errors)
  std::string message;
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  uint64_t latency_ms = 0;

  // The first row's value of `column`, if present and not NULL.
  std::optional<std::string> value(std::string_view column) const;
};

class PgProbe final {
 public:
  using Done = std::function<void(ProbeOutcome)>;

  // `params` are libpq keyword/value pairs (host, port, dbname, user, password, ...).
  PgProbe(uv_loop_t* loop, std::vector<std::pair<std::string, std::string>> params);
  PgProbe(const PgProbe&) = delete;
  PgProbe& operator=(const PgProbe&) = delete;
  ~PgProbe();

  // Runs `sql` (connecting first when there is no live connection) and calls `done`
  // exactly once, within `deadline_ms`. With `fresh`, a new connection is made even if one
  // is open, and closed afterwards (the "can it still accept connections" probe).
  void run(const std::string& sql, uint64_t deadline_ms, Done done, bool fresh = false);
  // The heartbeat write's way: like run(), but a query the server has been sent is never
  // abandoned. At the deadline `overdue` gets a kTimeout outcome, and the query goes on
  // (no cancel, no disconnect: a cancelled commit may have committed anyway, and a second
  // write would only queue behind the first); `done` comes with the server's answer, or
  // when the connection breaks (TCP_USER_TIMEOUT, keepalives) or reset() drops it. A
  // connect that misses the deadline is given up as in run() (`done`, kTimeout).
  void runPatient(const std::string& sql, uint64_t deadline_ms, Done done, Done overdue);
  // A runPatient() query is past its deadline and still waiting for the server.
  bool overdue() const { return overdue_reported_; }
  bool busy() const { return static_cast<bool>(done_); }
  // Drops the connection; a run in progress completes with kError. With `cancel`, a query
  // in flight is cancelled first (CancelRequest), so its backend does not go on with it.
  void reset(bool cancel = false);

 private:
  enum class Phase { kIdle, kConnecting, kSending, kReading };

  void start(const std::string& sql, uint64_t deadline_ms, Done done, bool fresh, Done overdue);
  void startConnect();
  void onConnectProgress();
  void sendQuery();
  void failBroken();
  void onQueryIo(int events);
  void collectResults();
  void watch(int events);
  void unwatch();
  void finish(ProbeOutcome outcome);
  void abandon(bool send_cancel);
  void onDeadline();

  uv_loop_t* loop_;
  std::vector<std::pair<std::string, std::string>> params_;
  PGconn* conn_ = nullptr;
  uv_poll_t* poll_ = nullptr;  // heap: its close outlives a reset
  int polled_fd_ = -1;
  uv_timer_t* timer_;  // heap: freed by its close callback, after this object is gone
  Phase phase_ = Phase::kIdle;
  std::string sql_;
  Done done_;
  Done overdue_;
  bool overdue_reported_ = false;
  bool fresh_ = false;
  uint64_t started_ms_ = 0;
  ProbeOutcome partial_;
};

}  // namespace pgpivot::monitor
