// The admin console: what a client connected to the virtual database `pgpivot` (alias
// `pgbouncer`) or to the admin port gets back for each Query message. Pure: it turns one
// SQL string into protocol bytes (RowDescription + DataRow* + CommandComplete, or
// CommandComplete, or ErrorResponse), asking an AdminBackend for state and actions. It
// does not own sockets, authenticate, or send ReadyForQuery: the session does those.
//
// Commands are PgBouncer's (SHOW POOLS, PAUSE db, SET key = value, ...) plus pgpivot's
// failover commands (SHOW CLUSTERS/NODES/FAILOVERS, SWITCHOVER, FAILOVER, FENCE, UNFENCE,
// DRILL). Keywords are case-insensitive; names are taken as written ("quoted" for odd
// ones). Several commands separated by ';' each get their own result, in order; the first
// error ends the query, as in PostgreSQL. A query with a syntax error anywhere runs
// nothing (42601). Stats users may only SHOW (42501 otherwise).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pgpivot/admin/backend.hpp"

namespace pgpivot::admin {

// Who sent the query. The session decides this at login from admin_users/stats_users
// (a user in neither list never reaches the console).
struct Caller {
  std::string user;
  bool admin = false;  // false: a stats user, SHOW only
};

// Where an answer that was not ready at once goes. Implemented by the admin session.
class ReplySink {
 public:
  // The complete answer to the query that returned std::nullopt from execute().
  virtual void onAdminReply(std::string bytes) = 0;

 protected:
  ~ReplySink() = default;
};

// One per worker, on the worker's loop; shared by every admin session of that worker.
// Must outlive the backend's pending Completions (destroy the backend's pending work
// first, or drain it).
class Console final {
 public:
  explicit Console(AdminBackend& backend);
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;
  ~Console();

  // Runs every command of `query` (the body of a Query message). Returns the complete
  // answer if it was ready before returning; otherwise std::nullopt, and the answer goes
  // to sink.onAdminReply() later on this loop, unless cancel(sink) is called first.
  // Either way the session then appends ReadyForQuery. A session runs one query at a
  // time: it must not read the next Query message until this one is answered.
  [[nodiscard]] std::optional<std::string> execute(std::string_view query, const Caller& caller,
                                                   ReplySink& sink);

  // The session is closing: forget its pending query, if any. Commands already handed to
  // the backend still run to completion; only the answer is dropped.
  void cancel(ReplySink& sink);

  // Queries waiting for the backend (for tests and SHOW LISTS).
  [[nodiscard]] std::size_t pendingCount() const { return executions_.size(); }

 private:
  struct Execution;
  // Runs commands from exec.next on until one is left waiting for the backend or all
  // are done. Returns true when the execution is finished.
  bool advance(Execution& exec);
  void startStatement(Execution& exec);
  void onSnapshot(uint64_t ticket, Result<Snapshot> snapshot);
  void onCommandDone(uint64_t ticket, Result<CommandOutput> output);
  // After a completion arrived for `exec`: continue it unless advance() is already on the
  // stack for it, and deliver the answer if it finished.
  void resume(uint64_t ticket);

  AdminBackend& backend_;
  uint64_t next_ticket_ = 1;
  std::map<uint64_t, std::unique_ptr<Execution>> executions_;
};

}  // namespace pgpivot::admin
