// The one interface between the admin console (and the metrics endpoint) and the rest of
// pgpivot. The console parses and checks commands and formats answers; the backend reads
// state and carries commands out. Everything the console needs goes through two calls:
// snapshot() for every SHOW, run() for every other command.
//
// Asynchronous by design: a worker loop must never block, and most answers need other
// threads (pools live on every worker; failover runs on the monitor's loop). So each call
// takes a Completion, which the backend invokes exactly once, either before returning
// (the answer was at hand) or later, on the same loop thread the call was made on.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pgpivot/admin/snapshot.hpp"
#include "pgpivot/core/result.hpp"

namespace pgpivot::admin {

// SQLSTATEs of console answers, beyond core/result.hpp's pgpivot::sqlstate.
namespace code {
inline constexpr std::string_view kSyntaxError = "42601";
inline constexpr std::string_view kInsufficientPrivilege = "42501";
inline constexpr std::string_view kObjectNotInPrerequisiteState = "55000";
inline constexpr std::string_view kUndefinedObject = "42704";
inline constexpr std::string_view kInvalidParameterValue = "22023";
}  // namespace code

template <class T>
class Completion;

// What a Completion<T> can wrap: anything callable with Result<T>, copyable or not.
template <class F, class T>
concept CompletionCallable =
    std::invocable<F&, Result<T>> && !std::same_as<std::decay_t<F>, Completion<T>>;

// A one-shot callback, invoked on the loop thread of the call that issued it. Move-only,
// and so is what it wraps: a lambda may capture a MetricsReply or a unique_ptr.
// Dropping it without invoking it answers with an internal error, so a backend bug shows
// up as an ErrorResponse instead of a client that waits forever. Whoever created it (the
// Console) must outlive it.
template <class T>
class Completion final {
 public:
  template <CompletionCallable<T> F>
  explicit Completion(F fn) : fn_(std::make_unique<Callable<F>>(std::move(fn))) {}
  Completion(Completion&& other) noexcept = default;
  Completion& operator=(Completion&& other) noexcept {
    if (this != &other) {
      dropped();
      fn_ = std::move(other.fn_);
    }
    return *this;
  }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  ~Completion() { dropped(); }

  // Delivers the answer; a second call does nothing.
  void operator()(Result<T> result) {
    if (fn_) {
      auto fn = std::move(fn_);  // empty before the call: the callee may destroy *this
      fn->call(std::move(result));
    }
  }
  [[nodiscard]] bool pending() const { return fn_ != nullptr; }

 private:
  struct CallableBase {
    virtual ~CallableBase() = default;
    virtual void call(Result<T>&& result) = 0;
  };
  template <class F>
  struct Callable final : CallableBase {
    explicit Callable(F f) : fn(std::move(f)) {}
    void call(Result<T>&& result) override { fn(std::move(result)); }
    F fn;
  };

  void dropped() {
    if (fn_) {
      (*this)(tl::unexpected(Error{pgpivot::sqlstate::kInternalError,
                                   "pgpivot: internal error: the request was dropped"}));
    }
  }
  std::unique_ptr<CallableBase> fn_;
};

// Commands other than SHOW. Each kind says which Command fields it uses and when the
// backend should complete it. Unless noted, the answer is CommandComplete with the
// command's name as tag. A `target` left empty where it is optional means "all".
enum class CommandKind {
  kPause,       // target: database or all. Stop giving out servers; complete once every
                // server of those pools is released (clients in transactions finish first).
  kResume,      // target: database or all. Undo PAUSE and SUSPEND; complete at once.
                // Error 55000 if nothing is paused.
  kDisable,     // target: database (required). Refuse new clients of it; complete at once.
  kEnable,      // target: database (required). Undo DISABLE.
  kReconnect,   // target: database or all. Close each server when it is next released;
                // complete at once.
  kKill,        // target: database (required). Close its clients and servers at once and
                // pause it; complete once they are gone.
  kKillClient,  // client_id. Close that client at once. Error 42704 if there is none.
  kSuspend,     // Flush socket buffers and stop reading; complete once flushed.
  kWaitClose,   // target: database or all. Complete once every server that RECONNECT or a
                // reload marked close_needed has closed.
  kReload,      // Re-read the config file and the auth file, apply them on every worker.
                // Warnings go to CommandOutput::notices; a bad file is an error (F0000)
                // and leaves the old config in force.
  kSet,         // key, value. Change one [pgpivot] setting at runtime (as a reload would;
                // the next RELOAD re-reads the file and drops it, as in PgBouncer).
                // Unknown or unsupported key, bad value: 22023; not changeable at runtime
                // (listen and admin sockets, workers, ...): 55P02.
  kShutdown,    // Stop the process (PgBouncer: at once). Complete before closing clients
                // if possible, so the caller sees SHUTDOWN.
  // pgpivot's own; until the failover module lands the backend may answer 0A000.
  kSwitchover,     // target: cluster, to_node: optional. Planned, safe: pause, wait for the
                   // standby to catch up, promote, resume. Answer: CommandOutput::report.
  kFailover,       // target: cluster, to_node: optional. Forced. Answer: report.
  kFence,          // target: node ("host:port"). Stop routing to it and close connections.
  kUnfence,        // target: node. Undo FENCE.
  kDrill,          // target: cluster. Run the failover procedure as a planned switchover and
                   // report its timeline and verdict; a failed check stops before promoting.
  kSetPrimary,     // target: cluster, to_node (required). The operator names the primary
                   // (ends a split brain); route to it after validating it.
  kResumeCluster,  // target: cluster. Leave a state that waits for an operator (split
                   // brain, partition, wait-operator) and rediscover the primary.
};

struct Command {
  CommandKind kind = CommandKind::kPause;
  std::string target;      // database, cluster or node; see CommandKind
  std::string to_node;     // SWITCHOVER/FAILOVER ... TO node
  std::string key;         // SET
  std::string value;       // SET, unquoted
  uint64_t client_id = 0;  // KILL_CLIENT
  std::string caller;      // user name of the admin who sent it, for the log
};

// One check of a switchover or drill: a pre-check (before anyone is paused) or a check of
// the outcome (completed, verified, no client transaction failed).
struct FailoverCheck {
  std::string name;
  bool passed = false;
  std::string detail;
};

// What SWITCHOVER and DRILL report once the run has ended: one row per step, one per
// check, and the verdict.
struct FailoverReport {
  std::string failover_id;  // empty when refused before it started
  std::string cluster;
  std::string kind;  // "switchover", "drill", "failover"
  std::vector<FailoverStepRow> steps;
  std::vector<FailoverCheck> checks;
  bool completed = false;  // the run reached its end ("ok"): the new primary takes writes
  bool passed = false;     // every check passed
  std::string verdict;     // one line saying why
  std::string new_primary;
  int64_t duration_us = 0;
  int64_t paused_us = 0;            // how long clients were held
  int64_t failed_transactions = 0;  // client transactions that got a failover error
                                    // (40001, 40003, 57P03) while it ran
};

struct CommandOutput {
  std::vector<std::string> notices;      // sent as NoticeResponse before the result
  std::optional<FailoverReport> report;  // sent as a result set
};

// Implemented by the application (one per worker, on the worker's loop). All calls come
// from that loop's thread; every Completion must be invoked on it too.
class AdminBackend {
 public:
  virtual ~AdminBackend() = default;

  // Copies at least the requested `parts` of pgpivot's state (summed over every worker)
  // into a Snapshot and completes with it. Errors are shown to the client as they are.
  virtual void snapshot(const Parts& parts, Completion<Snapshot> done) = 0;

  // Carries out `command` (permissions are already checked) and completes when the
  // command's condition above is met. Errors carry the SQLSTATE the client should see;
  // the console adds the "pgpivot: " prefix to messages that lack it.
  virtual void run(const Command& command, Completion<CommandOutput> done) = 0;
};

}  // namespace pgpivot::admin
