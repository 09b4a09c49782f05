// fence_command: the operator's STONITH hook, run on the health monitor's loop without
// ever blocking it (uv_spawn of /bin/sh -c COMMAND). It is told which node to fence by
// %h / %p / %c in the command (shell-quoted) and by PGPIVOT_NODE_HOST, PGPIVOT_NODE_PORT,
// PGPIVOT_CLUSTER, PGPIVOT_FAILOVER_ID and PGPIVOT_EPOCH in its environment. Its stdout
// and stderr are handed over line by line; past its timeout it is killed (SIGKILL, by
// its pid). The exit status is the fence step's result.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::monitor {

struct FenceTarget {
  std::string cluster;
  std::string host;
  uint16_t port = 0;
  std::string failover_id;
  uint64_t epoch = 0;
};

struct FenceOutcome {
  bool started = false;  // false: it could not be run at all (error says why)
  bool timed_out = false;
  int64_t exit_status = -1;
  int term_signal = 0;
  uint64_t duration_ms = 0;
  std::string error;  // "" when it exited 0
  [[nodiscard]] bool ok() const {
    return started && !timed_out && exit_status == 0 && term_signal == 0;
  }
};

// The command with %h, %p, %c (shell-quoted) and %% substituted.
std::string substituteFenceCommand(std::string_view command, const FenceTarget& target);

class FenceCommand final {
 public:
  using Line = std::function<void(std::string_view stream, std::string_view line)>;
  using Done = std::function<void(const FenceOutcome&)>;

  explicit FenceCommand(uv_loop_t* loop) : loop_(loop) {}
  FenceCommand(const FenceCommand&) = delete;
  FenceCommand& operator=(const FenceCommand&) = delete;
  // A command still running is killed; its callbacks are not called any more.
  ~FenceCommand();

  // Starts it; `on_line` for every line of output, then `on_done` exactly once (also when
  // it cannot be started). One run at a time: false if one is running.
  bool run(const std::string& command, const FenceTarget& target, uint64_t timeout_ms, Line on_line,
           Done on_done);
  [[nodiscard]] bool running() const { return run_ != nullptr; }

 private:
  struct Run;
  uv_loop_t* loop_;
  Run* run_ = nullptr;  // owned by its handles: freed when the last one has closed
};

}  // namespace pgpivot::monitor
