// fence_command: substitution, and real runs of /bin/sh on a private libuv loop (output
// line by line, exit status, the environment, the timeout that kills it).
#include "monitor/fence_command.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace pgpivot::monitor {
namespace {

const FenceTarget kTarget{
    .cluster = "main", .host = "db-a.example", .port = 5433, .failover_id = "f-3-1", .epoch = 3};

TEST_CASE("fence_command placeholders are replaced, host and cluster shell-quoted",
          "[unit][monitor]") {
  CHECK(substituteFenceCommand("/usr/local/bin/stonith %h %p %c 100%%", kTarget) ==
        "/usr/local/bin/stonith 'db-a.example' 5433 'main' 100%");
  FenceTarget odd = kTarget;
  odd.host = "a'b";
  CHECK(substituteFenceCommand("x %h", odd) == "x 'a'\\''b'");
  CHECK(substituteFenceCommand("keep %x and a trailing %", kTarget) == "keep %x and a trailing %");
}

struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
};

struct Ran {
  std::vector<std::string> lines;
  FenceOutcome outcome;
  bool done = false;
};

Ran runCommand(const std::string& command, uint64_t timeout_ms) {
  Loop l;
  Ran ran;
  FenceCommand fence(&l.loop);
  REQUIRE(fence.run(
      command, kTarget, timeout_ms,
      [&](std::string_view stream, std::string_view line) {
        ran.lines.push_back(std::string(stream) + ": " + std::string(line));
      },
      [&](const FenceOutcome& outcome) {
        ran.outcome = outcome;
        ran.done = true;
      }));
  CHECK(fence.running());
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK_FALSE(fence.running());
  return ran;
}

TEST_CASE("a fence_command's output arrives line by line and exit 0 is success",
          "[unit][monitor]") {
  const Ran ran = runCommand(
      "echo fencing %h:%p; echo \"env $PGPIVOT_NODE_HOST $PGPIVOT_NODE_PORT $PGPIVOT_CLUSTER "
      "$PGPIVOT_FAILOVER_ID $PGPIVOT_EPOCH\"; echo oops >&2; printf 'no newline'",
      5000);
  REQUIRE(ran.done);
  CHECK(ran.outcome.ok());
  CHECK(ran.outcome.error.empty());
  CHECK(std::find(ran.lines.begin(), ran.lines.end(), "stdout: fencing db-a.example:5433") !=
        ran.lines.end());
  CHECK(std::find(ran.lines.begin(), ran.lines.end(),
                  "stdout: env db-a.example 5433 main f-3-1 3") != ran.lines.end());
  CHECK(std::find(ran.lines.begin(), ran.lines.end(), "stderr: oops") != ran.lines.end());
  CHECK(std::find(ran.lines.begin(), ran.lines.end(), "stdout: no newline") != ran.lines.end());
}

TEST_CASE("a non-zero exit status is a failed fence", "[unit][monitor]") {
  const Ran ran = runCommand("echo cannot reach the PDU >&2; exit 3", 5000);
  REQUIRE(ran.done);
  CHECK_FALSE(ran.outcome.ok());
  CHECK(ran.outcome.exit_status == 3);
  CHECK(ran.outcome.error == "exit status 3");
}

TEST_CASE("a fence_command past its timeout is killed and fails", "[unit][monitor]") {
  const Ran ran = runCommand("echo started; exec sleep 30", 300);
  REQUIRE(ran.done);
  CHECK_FALSE(ran.outcome.ok());
  CHECK(ran.outcome.timed_out);
  CHECK(ran.outcome.error.find("killed after its timeout") != std::string::npos);
  CHECK(ran.outcome.duration_ms < 20000);  // not the 30 s of the sleep
  CHECK(ran.lines == std::vector<std::string>{"stdout: started"});
}

TEST_CASE("a fence_command that cannot start still reports once", "[unit][monitor]") {
  const Ran ran = runCommand("exec /nonexistent/stonith", 5000);
  REQUIRE(ran.done);
  CHECK_FALSE(ran.outcome.ok());
  CHECK(ran.outcome.exit_status == 127);  // the shell's "not found"
}

TEST_CASE("destroying a running fence_command kills it without calling back", "[unit][monitor]") {
  Loop l;
  bool called = false;
  {
    FenceCommand fence(&l.loop);
    REQUIRE(fence.run(
        "exec sleep 30", kTarget, 60000, [&](std::string_view, std::string_view) {},
        [&](const FenceOutcome&) { called = true; }));
    uv_run(&l.loop, UV_RUN_NOWAIT);
  }
  uv_run(&l.loop, UV_RUN_DEFAULT);  // the handles close; nothing waits 30 s
  CHECK_FALSE(called);
}

}  // namespace
}  // namespace pgpivot::monitor
