#include "pgpivot/auth/auth_query.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <memory>

namespace pgpivot::auth {

namespace {

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};

std::string trimmed(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

AuthQueryResult runAuthQuery(const AuthQueryRequest& request) {
  const std::string port = std::to_string(request.port);
  const char* keys[] = {
      "host", "port", "dbname", "user", "password", "connect_timeout", "application_name", nullptr};
  const char* values[] = {request.host.c_str(),          port.c_str(),
                          request.dbname.c_str(),        request.auth_user.c_str(),
                          request.auth_password.c_str(), "5",
                          "pgpivot-auth_query",          nullptr};
  std::unique_ptr<PGconn, PgConnDeleter> conn(PQconnectdbParams(keys, values, 0));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return fail(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: auth_query connection failed: {}",
                            trimmed(PQerrorMessage(conn.get()))));
  }
  const char* params[] = {request.user.c_str()};
  std::unique_ptr<PGresult, PgResultDeleter> result(
      PQexecParams(conn.get(), request.query.c_str(), 1, nullptr, params, nullptr, nullptr, 0));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return fail(
        sqlstate::kConnectionFailure,
        fmt::format("pgpivot: auth_query failed: {}", trimmed(PQresultErrorMessage(result.get()))));
  }
  if (PQntuples(result.get()) == 0 || PQnfields(result.get()) < 2 ||
      PQgetisnull(result.get(), 0, 1) != 0) {
    return std::optional<std::string>{};
  }
  return std::optional<std::string>{PQgetvalue(result.get(), 0, 1)};
}

AuthQueryRunner::~AuthQueryRunner() {
  stop();
}

void AuthQueryRunner::submit(AuthQueryRequest request, AuthQueryDone done) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      return;
    }
    queue_.emplace_back(std::move(request), std::move(done));
    if (!thread_.joinable()) {
      thread_ = std::thread([this] { run(); });
    }
  }
  wake_.notify_one();
}

void AuthQueryRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void AuthQueryRunner::run() {
  for (;;) {
    std::pair<AuthQueryRequest, AuthQueryDone> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        return;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.second(runAuthQuery(job.first));
  }
}

}  // namespace pgpivot::auth
