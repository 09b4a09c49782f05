#include "pgpivot/monitor/pg_probe.hpp"

#include <thread>

#include "pgpivot/net/pq_handles.hpp"

namespace pgpivot::monitor {

namespace {

using net::trimmedMessage;

// libpq reports start-up failures as text only; recover the SQLSTATEs the classifier
// needs from PostgreSQL's fixed messages (postmaster.c, ProcessStartupPacket).
ProbeOutcome connectFailure(PGconn* conn) {
  ProbeOutcome outcome;
  outcome.message = trimmedMessage(PQerrorMessage(conn));
  const auto has = [&](std::string_view needle) {
    return outcome.message.find(needle) != std::string::npos;
  };
  if (has("Connection refused") || has("No such file or directory")) {
    outcome.kind = ProbeOutcome::Kind::kRefused;
  } else if (has("Connection reset") || has("server closed the connection")) {
    outcome.kind = ProbeOutcome::Kind::kRefused;
  } else {
    outcome.kind = ProbeOutcome::Kind::kError;
  }
  if (has("the database system is starting up") || has("the database system is in recovery mode") ||
      has("not yet accepting connections")) {
    outcome.sqlstate = "57P03";
  } else if (has("the database system is shutting down")) {
    outcome.sqlstate = "57P03";
  } else if (has("password authentication failed")) {
    outcome.sqlstate = "28P01";
  } else if (has("too many clients")) {
    outcome.sqlstate = "53300";
  }
  return outcome;
}

}  // namespace

std::optional<std::string> ProbeOutcome::value(std::string_view column) const {
  if (rows.empty()) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < columns.size() && i < rows.front().size(); ++i) {
    if (columns[i] == column) {
      return rows.front()[i];
    }
  }
  return std::nullopt;
}

PgProbe::PgProbe(uv_loop_t* loop, std::vector<std::pair<std::string, std::string>> params)
    : loop_(loop), params_(std::move(params)), timer_(new uv_timer_t{}) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

PgProbe::~PgProbe() {
  // Runs on the loop's thread; the handles' memory outlives us until their close callbacks.
  unwatch();
  if (conn_ != nullptr) {
    PQfinish(conn_);
  }
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_timer_t*>(h); });
}

void PgProbe::runPatient(const std::string& sql, uint64_t deadline_ms, Done done, Done overdue) {
  start(sql, deadline_ms, std::move(done), false, std::move(overdue));
}

void PgProbe::run(const std::string& sql, uint64_t deadline_ms, Done done, bool fresh) {
  start(sql, deadline_ms, std::move(done), fresh, nullptr);
}

void PgProbe::start(const std::string& sql, uint64_t deadline_ms, Done done, bool fresh,
                    Done overdue) {
  sql_ = sql;
  done_ = std::move(done);
  overdue_ = std::move(overdue);
  overdue_reported_ = false;
  fresh_ = fresh;
  partial_ = ProbeOutcome{};
  started_ms_ = uv_now(loop_);
  uv_timer_start(
      timer_, [](uv_timer_t* t) noexcept { static_cast<PgProbe*>(t->data)->onDeadline(); },
      deadline_ms, 0);
  if (fresh_ && conn_ != nullptr) {
    abandon(false);
  }
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    if (conn_ != nullptr) {
      abandon(false);
    }
    startConnect();
    return;
  }
  sendQuery();
}

void PgProbe::startConnect() {
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : params_) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    ProbeOutcome outcome = conn_ != nullptr ? connectFailure(conn_) : ProbeOutcome{};
    abandon(false);
    finish(std::move(outcome));
    return;
  }
  PQsetnonblocking(conn_, 1);
  phase_ = Phase::kConnecting;
  watch(UV_WRITABLE);  // PQconnectStart's contract: first wait until writable
}

void PgProbe::onConnectProgress() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
      watch(UV_READABLE);
      return;
    case PGRES_POLLING_WRITING:
      watch(UV_WRITABLE);
      return;
    case PGRES_POLLING_OK:
      sendQuery();
      return;
    case PGRES_POLLING_FAILED:
    default: {
      ProbeOutcome outcome = connectFailure(conn_);
      abandon(false);
      finish(std::move(outcome));
      return;
    }
  }
}

// The connection broke under a query: report libpq's words and start afresh next run.
void PgProbe::failBroken() {
  ProbeOutcome outcome;
  outcome.kind = ProbeOutcome::Kind::kError;
  outcome.message = trimmedMessage(PQerrorMessage(conn_));
  abandon(false);
  finish(std::move(outcome));
}

void PgProbe::sendQuery() {
  if (PQsendQuery(conn_, sql_.c_str()) == 0) {
    failBroken();
    return;
  }
  phase_ = Phase::kSending;
  onQueryIo(UV_WRITABLE);
}

void PgProbe::onQueryIo(int events) {
  if (phase_ == Phase::kSending) {
    const int flushed = PQflush(conn_);
    if (flushed < 0) {
      failBroken();
      return;
    }
    if (flushed == 1) {
      watch(UV_WRITABLE | UV_READABLE);
      return;
    }
    phase_ = Phase::kReading;
  }
  if ((events & UV_READABLE) != 0 || phase_ == Phase::kReading) {
    if (PQconsumeInput(conn_) == 0) {
      failBroken();
      return;
    }
    collectResults();
    return;
  }
  watch(UV_READABLE);
}

void PgProbe::collectResults() {
  while (PQisBusy(conn_) == 0) {
    PGresult* result = PQgetResult(conn_);
    if (result == nullptr) {
      ProbeOutcome outcome = std::move(partial_);
      partial_ = ProbeOutcome{};
      if (fresh_) {
        abandon(false);
      } else {
        unwatch();
        phase_ = Phase::kIdle;
      }
      finish(std::move(outcome));
      return;
    }
    const ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      if (partial_.kind != ProbeOutcome::Kind::kError || partial_.sqlstate.empty()) {
        partial_.kind = ProbeOutcome::Kind::kOk;
        partial_.columns.clear();
        partial_.rows.clear();
        const int ncols = PQnfields(result);
        for (int c = 0; c < ncols; ++c) {
          partial_.columns.emplace_back(PQfname(result, c));
        }
        for (int r = 0; r < PQntuples(result); ++r) {
          std::vector<std::optional<std::string>> row;
          for (int c = 0; c < ncols; ++c) {
            if (PQgetisnull(result, r, c) != 0) {
              row.emplace_back(std::nullopt);
            } else {
              row.emplace_back(std::string(PQgetvalue(result, r, c),
                                           static_cast<std::size_t>(PQgetlength(result, r, c))));
            }
          }
          partial_.rows.push_back(std::move(row));
        }
      }
    } else {
      partial_.kind = ProbeOutcome::Kind::kError;
      const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
      partial_.sqlstate = state != nullptr ? state : "";
      partial_.message = trimmedMessage(PQresultErrorMessage(result));
    }
    PQclear(result);
  }
  watch(UV_READABLE);
}

void PgProbe::watch(int events) {
  const int fd = PQsocket(conn_);
  if (fd < 0) {
    ProbeOutcome outcome = connectFailure(conn_);
    abandon(false);
    finish(std::move(outcome));
    return;
  }
  if (poll_ != nullptr && fd != polled_fd_) {
    unwatch();  // libpq may move to a new socket while connecting
  }
  if (poll_ == nullptr) {
    poll_ = new uv_poll_t{};
    uv_poll_init(loop_, poll_, fd);
    poll_->data = this;
    polled_fd_ = fd;
  }
  uv_poll_start(poll_, events, [](uv_poll_t* handle, int status, int ready) noexcept {
    auto* self = static_cast<PgProbe*>(handle->data);
    if (status < 0) {
      ready = UV_READABLE | UV_WRITABLE;  // let libpq find out what is wrong
    }
    if (self->phase_ == Phase::kConnecting) {
      self->onConnectProgress();
    } else if (self->phase_ == Phase::kSending || self->phase_ == Phase::kReading) {
      self->onQueryIo(ready);
    }
  });
}

void PgProbe::unwatch() {
  if (poll_ == nullptr) {
    return;
  }
  uv_poll_stop(poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
  polled_fd_ = -1;
}

void PgProbe::abandon(bool send_cancel) {
  unwatch();
  if (conn_ == nullptr) {
    phase_ = Phase::kIdle;
    return;
  }
  if (send_cancel && PQstatus(conn_) == CONNECTION_OK) {
    // PQcancel blocks (it connects and writes), so it runs on a short-lived thread of its
    // own; the monitor loop goes on. A frozen server's kernel still completes the connect.
    if (PGcancel* cancel = PQgetCancel(conn_)) {
      std::thread([cancel] {
        char error[256];
        PQcancel(cancel, error, sizeof(error));
        PQfreeCancel(cancel);
      }).detach();
    }
  }
  PQfinish(conn_);
  conn_ = nullptr;
  phase_ = Phase::kIdle;
}

void PgProbe::onDeadline() {
  if (!done_) {
    return;
  }
  ProbeOutcome outcome;
  outcome.kind = ProbeOutcome::Kind::kTimeout;
  outcome.message = phase_ == Phase::kConnecting ? "connect timed out" : "query timed out";
  if (overdue_ && (phase_ == Phase::kSending || phase_ == Phase::kReading)) {
    // Patient: say so, and keep waiting for the server's answer.
    outcome.message = "query timed out (still waiting for its answer)";
    outcome.latency_ms = uv_now(loop_) - started_ms_;
    overdue_reported_ = true;
    Done overdue = std::move(overdue_);
    overdue_ = nullptr;
    overdue(std::move(outcome));
    return;
  }
  abandon(phase_ != Phase::kConnecting);
  finish(std::move(outcome));
}

void PgProbe::reset(bool cancel) {
  const bool in_query = phase_ == Phase::kSending || phase_ == Phase::kReading;
  if (done_) {
    ProbeOutcome outcome;
    outcome.kind = ProbeOutcome::Kind::kError;
    outcome.message = "probe reset";
    abandon(cancel && in_query);
    finish(std::move(outcome));
    return;
  }
  abandon(false);
}

void PgProbe::finish(ProbeOutcome outcome) {
  uv_timer_stop(timer_);
  if (!done_) {
    return;
  }
  outcome.latency_ms = uv_now(loop_) - started_ms_;
  Done done = std::move(done_);
  done_ = nullptr;
  overdue_ = nullptr;
  overdue_reported_ = false;
  done(std::move(outcome));
}

}  // namespace pgpivot::monitor
