#include "pgpivot/auth/auth_query.hpp"

#include <fmt/format.h>

#include "pgpivot/net/pq_handles.hpp"

namespace pgpivot::auth {

using net::PgConnPtr;
using net::PgResultPtr;
using net::trimmedMessage;

AuthQueryResult runAuthQuery(const AuthQueryRequest& request) {
  const std::string port = std::to_string(request.port);
  const char* keys[] = {
      "host", "port", "dbname", "user", "password", "connect_timeout", "application_name", nullptr};
  const char* values[] = {request.host.c_str(),          port.c_str(),
                          request.dbname.c_str(),        request.auth_user.c_str(),
                          request.auth_password.c_str(), "5",
                          "pgpivot-auth_query",          nullptr};
  PgConnPtr conn(PQconnectdbParams(keys, values, 0));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return fail(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: auth_query connection failed: {}",
                            trimmedMessage(PQerrorMessage(conn.get()))));
  }
  const char* params[] = {request.user.c_str()};
  PgResultPtr result(
      PQexecParams(conn.get(), request.query.c_str(), 1, nullptr, params, nullptr, nullptr, 0));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return fail(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: auth_query failed: {}",
                            trimmedMessage(PQresultErrorMessage(result.get()))));
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
