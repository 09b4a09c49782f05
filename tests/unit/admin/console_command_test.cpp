// Admin console commands other than SHOW: what reaches the backend, which tag comes back,
// syntax errors (42601), stats users (42501), several commands in one Query, and answers
// that arrive later (asynchronous backend), including a session that leaves meanwhile.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "admin_fakes.hpp"
#include "pgpivot/admin/console.hpp"

namespace pgpivot::admin::test {
namespace {

struct Fixture {
  FakeBackend backend;
  Console console{backend};
};

TEST_CASE("PgBouncer's commands reach the backend with their arguments and tags", "[unit][admin]") {
  struct Case {
    std::string query;
    CommandKind kind;
    std::string target;
    std::string tag;
  };
  const auto c = GENERATE(values<Case>({
      {"PAUSE", CommandKind::kPause, "", "PAUSE"},
      {"pause appdb", CommandKind::kPause, "appdb", "PAUSE"},
      {"RESUME appdb;", CommandKind::kResume, "appdb", "RESUME"},
      {"Resume", CommandKind::kResume, "", "RESUME"},
      {"DISABLE appdb", CommandKind::kDisable, "appdb", "DISABLE"},
      {"ENABLE appdb", CommandKind::kEnable, "appdb", "ENABLE"},
      {"RECONNECT", CommandKind::kReconnect, "", "RECONNECT"},
      {"RECONNECT \"My DB\"", CommandKind::kReconnect, "My DB", "RECONNECT"},
      {"KILL appdb", CommandKind::kKill, "appdb", "KILL"},
      {"SUSPEND", CommandKind::kSuspend, "", "SUSPEND"},
      {"WAIT_CLOSE", CommandKind::kWaitClose, "", "WAIT_CLOSE"},
      {"wait_close appdb", CommandKind::kWaitClose, "appdb", "WAIT_CLOSE"},
      {"RELOAD", CommandKind::kReload, "", "RELOAD"},
      {"SHUTDOWN", CommandKind::kShutdown, "", "SHUTDOWN"},
      {"FENCE 10.0.0.1:5432", CommandKind::kFence, "10.0.0.1:5432", "FENCE"},
      {"UNFENCE 10.0.0.1:5432", CommandKind::kUnfence, "10.0.0.1:5432", "UNFENCE"},
      {"DRILL main", CommandKind::kDrill, "main", "DRILL"},
      {"RESUME_CLUSTER main", CommandKind::kResumeCluster, "main", "RESUME_CLUSTER"},
  }));
  CAPTURE(c.query);
  Fixture f;
  const Answer a = runOne(f.console, c.query);
  CHECK(a.tag == c.tag);
  CHECK(a.sqlstate.empty());
  REQUIRE(f.backend.commands.size() == 1);
  CHECK(f.backend.commands[0].kind == c.kind);
  CHECK(f.backend.commands[0].target == c.target);
  CHECK(f.backend.commands[0].caller == "admin");
}

TEST_CASE("SET takes key = value or key TO value, quoted or as the rest of the line",
          "[unit][admin]") {
  struct Case {
    std::string query;
    std::string key;
    std::string value;
  };
  const auto c = GENERATE(values<Case>({
      {"SET verbose = 1", "verbose", "1"},
      {"set verbose=2;", "verbose", "2"},
      {"SET verbose TO '3'", "verbose", "3"},
      {"SET server_reset_query = DISCARD ALL", "server_reset_query", "DISCARD ALL"},
      {"SET server_reset_query = 'SELECT ''a;b'''", "server_reset_query", "SELECT 'a;b'"},
      {"SET auth_user = ''", "auth_user", ""},
  }));
  CAPTURE(c.query);
  Fixture f;
  const Answer a = runOne(f.console, c.query);
  CHECK(a.tag == "SET");
  REQUIRE(f.backend.commands.size() == 1);
  CHECK(f.backend.commands[0].kind == CommandKind::kSet);
  CHECK(f.backend.commands[0].key == c.key);
  CHECK(f.backend.commands[0].value == c.value);
}

TEST_CASE("KILL_CLIENT takes the id in decimal or as SHOW CLIENTS' ptr", "[unit][admin]") {
  Fixture f;
  CHECK(runOne(f.console, "KILL_CLIENT 42").tag == "KILL_CLIENT");
  CHECK(runOne(f.console, "kill_client 0x2a").tag == "KILL_CLIENT");
  REQUIRE(f.backend.commands.size() == 2);
  CHECK(f.backend.commands[0].client_id == 42);
  CHECK(f.backend.commands[1].client_id == 42);
}

TEST_CASE("SWITCHOVER and FAILOVER take an optional TO node and report a timeline",
          "[unit][admin]") {
  Fixture f;
  f.backend.on_run = [](const Command&) {
    FailoverReport report;
    FailoverStepRow step;
    step.failover_id = "f-0009";
    step.cluster = "main";
    step.kind = "switchover";
    step.step = "promote";
    step.result = "ok";
    step.elapsed_us = 1'200'000;
    report.steps = {step};
    report.passed = true;
    report.verdict = "all checks passed";
    report.new_primary = "10.0.0.2:5432";
    report.paused_us = 800'000;
    CommandOutput out;
    out.report = report;
    return Result<CommandOutput>(out);
  };
  const Answer a = runOne(f.console, "SWITCHOVER main TO \"10.0.0.2:5432\"");
  CHECK(a.tag == "SWITCHOVER");
  REQUIRE(a.rows.size() == 2);
  CHECK(a.cell(0, "step") == "promote");
  CHECK(a.cell(1, "step") == "verdict");
  CHECK(a.cell(1, "result") == "passed");
  CHECK(a.cell(1, "detail") ==
        "all checks passed; primary: 10.0.0.2:5432; clients paused 800 ms; 0 transaction(s) "
        "failed");
  CHECK(f.backend.commands[0].kind == CommandKind::kSwitchover);
  CHECK(f.backend.commands[0].target == "main");
  CHECK(f.backend.commands[0].to_node == "10.0.0.2:5432");

  (void)runOne(f.console, "failover main");
  CHECK(f.backend.commands[1].kind == CommandKind::kFailover);
  CHECK(f.backend.commands[1].to_node.empty());

  (void)runOne(f.console, "SET_PRIMARY main TO 10.0.0.2:5432");
  CHECK(f.backend.commands[2].kind == CommandKind::kSetPrimary);
  CHECK(f.backend.commands[2].target == "main");
  CHECK(f.backend.commands[2].to_node == "10.0.0.2:5432");
}

TEST_CASE("malformed or unknown commands are 42601 and run nothing", "[unit][admin]") {
  const auto query =
      GENERATE(as<std::string>{}, "SHOW FOO", "SELECT 1", "BOGUS", "SHOW", "SHOW POOLS extra",
               "PAUSE a b", "DISABLE", "KILL", "KILL_CLIENT", "KILL_CLIENT abc", "KILL_CLIENT 0",
               "KILL_CLIENT 18446744073709551616", "KILL_CLIENT 0xZZ", "SET verbose",
               "SET verbose =", "SET = 1", "SUSPEND now", "SWITCHOVER", "SWITCHOVER main TO",
               "FENCE", "DRILL", "'quoted'", "SET_PRIMARY main", "SET_PRIMARY main 10.0.0.2:5432",
               "RESUME_CLUSTER", "SWITCHOVER main TO a b", "SHOW POOLS; BOGUS",
               "SET x = 'unterminated", "RESUME \"unterminated", "SHOW POOLS /* open comment");
  CAPTURE(query);
  Fixture f;
  const Answer a = runOne(f.console, query);
  CHECK(a.sqlstate == "42601");
  CHECK(a.error.rfind("pgpivot: ", 0) == 0);
  CHECK(f.backend.commands.empty());
  CHECK(f.backend.snapshot_requests.empty());
}

TEST_CASE("an unknown command names itself and points at SHOW HELP", "[unit][admin]") {
  Fixture f;
  CHECK(runOne(f.console, "show foo").error ==
        "pgpivot: invalid command 'show foo', use SHOW HELP");
}

TEST_CASE("stats users may SHOW but nothing else (42501)", "[unit][admin]") {
  Fixture f;
  CHECK(runOne(f.console, "SHOW POOLS", false).tag == "SHOW");
  for (const char* query : {"PAUSE", "RELOAD", "SET verbose = 1", "KILL_CLIENT 1", "SHUTDOWN",
                            "DRILL main", "FENCE n:1"}) {
    CAPTURE(query);
    const Answer a = runOne(f.console, query, false);
    CHECK(a.sqlstate == "42501");
  }
  CHECK(f.backend.commands.empty());

  const auto answers = run(f.console, "SHOW POOLS; PAUSE; SHOW STATS", false);
  REQUIRE(answers.size() == 2);
  CHECK(answers[0].tag == "SHOW");
  CHECK(answers[1].sqlstate == "42501");
  CHECK(f.backend.snapshot_requests.size() == 2);  // the first query's and this one's POOLS
}

TEST_CASE("several commands in one Query each get a result, in order", "[unit][admin]") {
  Fixture f;
  const auto answers = run(f.console, "SHOW POOLS; show stats;PAUSE appdb ;;  RESUME appdb;");
  REQUIRE(answers.size() == 4);
  CHECK(answers[0].columnNames().front() == "database");
  CHECK(answers[1].columnNames().at(1) == "total_xact_count");
  CHECK(answers[2].tag == "PAUSE");
  CHECK(answers[3].tag == "RESUME");
}

TEST_CASE("comments and whitespace are ignored", "[unit][admin]") {
  Fixture f;
  const auto answers = run(f.console, "-- what is going on?\n  SHOW /* all of them */ POOLS ;\n\t");
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].tag == "SHOW");
  // A carriage return ends a -- comment as a newline does (PostgreSQL's lexer).
  const auto after_cr = run(f.console, "-- old Mac line end\rSHOW POOLS");
  REQUIRE(after_cr.size() == 1);
  CHECK(after_cr[0].tag == "SHOW");
}

TEST_CASE("an empty query gets EmptyQueryResponse", "[unit][admin]") {
  Fixture f;
  for (const char* query : {"", "  ", ";", " ; ;", "-- nothing"}) {
    CAPTURE(query);
    const Answer a = runOne(f.console, query);
    CHECK(a.empty_query);
  }
}

TEST_CASE("a backend error ends the query and keeps its SQLSTATE", "[unit][admin]") {
  Fixture f;
  f.backend.on_run = [](const Command& c) -> Result<CommandOutput> {
    if (c.target == "nosuch") {
      return fail("3D000", "no such database: nosuch");
    }
    return CommandOutput{{"reloaded with 1 warning"}, std::nullopt};
  };
  const auto answers = run(f.console, "RELOAD; PAUSE nosuch; RESUME");
  REQUIRE(answers.size() == 2);
  CHECK(answers[0].tag == "RELOAD");
  REQUIRE(answers[0].notices.size() == 1);
  CHECK(answers[0].notices[0] == "reloaded with 1 warning|");
  CHECK(answers[1].sqlstate == "3D000");
  CHECK(answers[1].error == "pgpivot: no such database: nosuch");
  CHECK(f.backend.commands.size() == 2);  // RESUME never ran
}

TEST_CASE("an answer that is not ready goes to the sink later, after every command",
          "[unit][admin][async]") {
  Fixture f;
  f.backend.hold = true;
  RecordingSink sink;
  auto bytes =
      f.console.execute("PAUSE appdb; SHOW POOLS; RESUME appdb", Caller{"admin", true}, sink);
  CHECK_FALSE(bytes.has_value());
  CHECK(f.console.pendingCount() == 1);
  REQUIRE(f.backend.heldCount() == 1);  // SHOW POOLS waits for PAUSE
  f.backend.releaseOne();
  CHECK(sink.replies.empty());
  REQUIRE(f.backend.heldCount() == 1);
  CHECK(f.backend.snapshot_requests.size() == 1);
  f.backend.releaseOne();
  REQUIRE(f.backend.heldCount() == 1);
  f.backend.releaseOne();
  REQUIRE(sink.replies.size() == 1);
  CHECK(f.console.pendingCount() == 0);
  const auto answers = decode(sink.replies[0]);
  REQUIRE(answers.size() == 3);
  CHECK(answers[0].tag == "PAUSE");
  CHECK(answers[1].tag == "SHOW");
  CHECK(answers[2].tag == "RESUME");
}

TEST_CASE("a session that leaves while its command runs gets no reply", "[unit][admin][async]") {
  Fixture f;
  f.backend.hold = true;
  RecordingSink sink;
  auto bytes = f.console.execute("PAUSE; SHOW POOLS", Caller{"admin", true}, sink);
  CHECK_FALSE(bytes.has_value());
  f.console.cancel(sink);
  CHECK(f.console.pendingCount() == 0);
  f.backend.releaseOne();  // the PAUSE still completes in the backend
  CHECK(f.backend.heldCount() == 0);
  CHECK(f.backend.snapshot_requests.empty());  // the rest of the query does not run
  CHECK(sink.replies.empty());
}

TEST_CASE("a completion the backend drops answers with an internal error", "[unit][admin][async]") {
  Fixture f;
  f.backend.hold = true;
  RecordingSink sink;
  auto bytes = f.console.execute("RELOAD; SHOW POOLS", Caller{"admin", true}, sink);
  CHECK_FALSE(bytes.has_value());
  f.backend.dropAll();
  REQUIRE(sink.replies.size() == 1);
  const auto answers = decode(sink.replies[0]);
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].sqlstate == "XX000");
}

TEST_CASE("two sessions' pending queries are answered independently", "[unit][admin][async]") {
  Fixture f;
  f.backend.hold = true;
  RecordingSink first;
  RecordingSink second;
  CHECK_FALSE(f.console.execute("PAUSE", Caller{"admin", true}, first).has_value());
  CHECK_FALSE(f.console.execute("SHOW POOLS", Caller{"stats", false}, second).has_value());
  f.console.cancel(first);
  f.backend.releaseOne();  // SHOW POOLS is held first (snapshots before commands)
  REQUIRE(second.replies.size() == 1);
  CHECK(decode(second.replies[0]).at(0).tag == "SHOW");
  f.backend.releaseOne();
  CHECK(first.replies.empty());
  CHECK(f.console.pendingCount() == 0);
}

// A backend that closes the calling session from inside run() (KILL_CLIENT of oneself).
class SelfKillBackend final : public AdminBackend {
 public:
  Console* console = nullptr;
  ReplySink* victim = nullptr;
  void snapshot(const Parts&, Completion<Snapshot> done) override { done(Snapshot{}); }
  void run(const Command&, Completion<CommandOutput> done) override {
    console->cancel(*victim);
    done(CommandOutput{});
  }
};

TEST_CASE("a session cancelled from inside a synchronous command is not touched again",
          "[unit][admin]") {
  SelfKillBackend backend;
  Console console(backend);
  RecordingSink sink;
  backend.console = &console;
  backend.victim = &sink;
  auto bytes = console.execute("KILL_CLIENT 1; SHOW POOLS", Caller{"admin", true}, sink);
  REQUIRE(bytes.has_value());  // the session is closing and ignores it
  CHECK(sink.replies.empty());
  CHECK(console.pendingCount() == 0);
}

}  // namespace
}  // namespace pgpivot::admin::test
