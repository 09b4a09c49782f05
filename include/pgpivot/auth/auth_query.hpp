// auth_query: looks up a user's password secret in PostgreSQL (PgBouncer's default query
// reads pg_shadow) for users not in the auth file. libpq blocks, so the lookups run on
// this class's own thread, never on a worker loop; results go back through a callback the
// caller makes thread-safe (the worker posts it to its mailbox).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "pgpivot/core/result.hpp"

namespace pgpivot::auth {

struct AuthQueryRequest {
  std::string host;
  uint16_t port = 5432;
  std::string dbname;
  std::string auth_user;
  std::string auth_password;  // plain or md5 (libpq needs what the server accepts)
  std::string query;          // one parameter: the user name
  std::string user;           // who is logging in
};

// The secret found (plain, md5 or SCRAM), nullopt when the user does not exist, or an
// error when the lookup itself failed.
using AuthQueryResult = Result<std::optional<std::string>>;
using AuthQueryDone = std::function<void(AuthQueryResult)>;

// Runs one lookup synchronously (blocking). Exposed for tests and for the runner.
AuthQueryResult runAuthQuery(const AuthQueryRequest& request);

class AuthQueryRunner final {
 public:
  AuthQueryRunner() = default;
  AuthQueryRunner(const AuthQueryRunner&) = delete;
  AuthQueryRunner& operator=(const AuthQueryRunner&) = delete;
  ~AuthQueryRunner();

  // Any thread. `done` runs on the runner's thread.
  void submit(AuthQueryRequest request, AuthQueryDone done);
  // Drops pending lookups and joins the thread.
  void stop();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<AuthQueryRequest, AuthQueryDone>> queue_;
  std::thread thread_;
  bool stopping_ = false;
};

}  // namespace pgpivot::auth
