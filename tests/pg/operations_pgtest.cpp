// Operations end to end: SIGHUP reload, SIGINT and SIGTERM shutdown, pidfile, logfile, daemon
// mode, --version, and a config error at start-up.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
namespace fs = std::filesystem;

namespace {

constexpr auto kPatience = std::chrono::seconds(15);

std::string dirOf(const Pgpivot& pgpivot) {
  return fs::path(pgpivot.configPath()).parent_path().string();
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The 1-based line of `text` that starts with `prefix` (0 when none does).
int lineStartingWith(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.rfind(prefix, 0) == 0) {
      return number;
    }
  }
  return 0;
}

// The pid written in `path`, or 0 while the file is missing or incomplete.
pid_t pidFromFile(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) {
    return 0;
  }
  return static_cast<pid_t>(pid);
}

// A process is gone once /proc has no entry for it or it is a zombie nobody reaped yet.
bool processGone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) {
    return true;
  }
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z' ||
         stat[paren + 2] == 'X';
}

std::string parentPidOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PPid:", 0) == 0) {
      std::istringstream fields(line.substr(5));
      std::string ppid;
      fields >> ppid;
      return ppid;
    }
  }
  return "";
}

std::string backendPid(PGconn* conn) {
  return scalar(conn, "SELECT pg_backend_pid()");
}

// Hands pgpivot `text` as its configuration through a named pipe in place of the config file,
// then sends SIGHUP. Returns once pgpivot has opened the pipe and the text is written, so the
// reload is known to be under way (a regular file gives no such moment to wait for). The pipe
// stays in place: call restoreRegularConfig before the fixture writes the file again.
bool reloadThroughPipe(Pgpivot& pgpivot, const std::string& text) {
  const std::string path = pgpivot.configPath();
  std::error_code ignored;
  fs::remove(path, ignored);
  if (::mkfifo(path.c_str(), 0600) != 0) {
    return false;
  }
  pgpivot.signal(SIGHUP);
  int fd = -1;
  // Opening the writing end without blocking fails (ENXIO) until a reader has it open.
  const bool opened = eventually(kPatience, [&] {
    fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    return fd >= 0;
  });
  if (!opened) {
    return false;
  }
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) {
      break;
    }
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return off == text.size();
}

void restoreRegularConfig(Pgpivot& pgpivot, const Pgpivot::Options& options) {
  std::error_code ignored;
  fs::remove(pgpivot.configPath(), ignored);
  pgpivot.rewriteConfig(options);
}

// Kills a daemon this test started if the test ends before the daemon was stopped.
class DaemonGuard {
 public:
  DaemonGuard() = default;
  ~DaemonGuard() {
    if (pid_ > 0 && !processGone(pid_)) {
      ::kill(pid_, SIGKILL);
    }
  }
  DaemonGuard(const DaemonGuard&) = delete;
  DaemonGuard& operator=(const DaemonGuard&) = delete;
  void track(pid_t pid) { pid_ = pid; }

 private:
  pid_t pid_ = 0;
};

}  // namespace

TEST_CASE("SIGHUP reload raises default_pool_size so more clients are served at once",
          "[pg][operations]") {
  Pgpivot::Options options;
  options.settings = {{"default_pool_size", "1"}, {"query_wait_timeout", "1"}};
  Pgpivot pgpivot(options);
  pgpivot.start();

  Conn first = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);
  // With one server per pool, a second session waits for it and gives up.
  Conn refused = connect(pgpivot.conninfo());
  CHECK(PQstatus(refused.get()) == CONNECTION_BAD);
  CHECK_THAT(errorOf(refused.get()), Catch::Contains("query_wait_timeout"));

  options.settings["default_pool_size"] = "3";
  pgpivot.rewriteConfig(options);
  pgpivot.signal(SIGHUP);

  Conn second;
  REQUIRE(eventually(kPatience, [&] {
    second = connect(pgpivot.conninfo());
    return PQstatus(second.get()) == CONNECTION_OK;
  }));
  Conn third = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(third.get()) == CONNECTION_OK);
  const std::set<std::string> pids = {backendPid(first.get()), backendPid(second.get()),
                                      backendPid(third.get())};
  CHECK(pids.size() == 3);
  CHECK(scalar(first.get(), "SELECT 1") == "1");
  CHECK(scalar(second.get(), "SELECT 2") == "2");
  CHECK(scalar(third.get(), "SELECT 3") == "3");
}

TEST_CASE("SIGHUP reload applies a new client_idle_timeout to connected clients",
          "[pg][operations]") {
  Pgpivot::Options options;
  options.settings = {{"client_idle_timeout", "0"}};
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");

  options.settings["client_idle_timeout"] = "1";
  pgpivot.rewriteConfig(options);
  pgpivot.signal(SIGHUP);
  // Only read (a query would count as activity): pgpivot closes the idle session.
  CHECK(eventually(kPatience, [&] {
    PQconsumeInput(conn.get());
    return PQstatus(conn.get()) == CONNECTION_BAD;
  }));
  CHECK(scalar(conn.get(), "SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(pgpivot.running());
}

TEST_CASE("a reload of a config with a bad value is refused and the old config stays",
          "[pg][operations]") {
  const auto& pg = pgServer();
  Pgpivot::Options options;
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn held = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(held.get()) == CONNECTION_OK);

  // The new file points appdb at another database, which would show in current_database(),
  // and has one bad value: the whole file must be refused.
  Pgpivot::Options moved = options;
  moved.databases = {
      {"appdb", "host=" + pg.host + " port=" + std::to_string(pg.port) + " dbname=postgres"}};
  Pgpivot::Options broken = moved;
  broken.settings["default_pool_size"] = "lots";
  pgpivot.rewriteConfig(broken);
  const std::string broken_text = readText(pgpivot.configPath());
  REQUIRE(reloadThroughPipe(pgpivot, broken_text));
  // A second reload can only be read once the first one is finished.
  REQUIRE(reloadThroughPipe(pgpivot, broken_text));

  CHECK(pgpivot.running());
  CHECK(scalar(held.get(), "SELECT current_database()") == "appdb");
  Conn fresh = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(fresh.get()) == CONNECTION_OK);
  CHECK(scalar(fresh.get(), "SELECT current_database()") == "appdb");

  // The same change without the bad value is taken: it was the bad value that was refused.
  restoreRegularConfig(pgpivot, moved);
  pgpivot.signal(SIGHUP);
  CHECK(eventually(kPatience, [&] {
    Conn conn = connect(pgpivot.conninfo());
    return PQstatus(conn.get()) == CONNECTION_OK &&
           scalar(conn.get(), "SELECT current_database()") == "postgres";
  }));
  CHECK(scalar(held.get(), "SELECT 1") == "1");
  CHECK(scalar(fresh.get(), "SELECT 1") == "1");
}

TEST_CASE("after a reload moves a database, servers to the old place are not handed out again",
          "[pg][operations]") {
  const auto& pg = pgServer();
  Pgpivot::Options options;
  Pgpivot pgpivot(options);
  pgpivot.start();
  Conn held = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(held.get()) == CONNECTION_OK);

  options.databases = {
      {"appdb", "host=" + pg.host + " port=" + std::to_string(pg.port) + " dbname=postgres"}};
  pgpivot.rewriteConfig(options);
  pgpivot.signal(SIGHUP);
  REQUIRE(eventually(kPatience, [&] {
    Conn conn = connect(pgpivot.conninfo());
    return PQstatus(conn.get()) == CONNECTION_OK &&
           scalar(conn.get(), "SELECT current_database()") == "postgres";
  }));
  // A session keeps the server it has...
  CHECK(scalar(held.get(), "SELECT current_database()") == "appdb");
  held.reset();
  // ...but once it leaves, that server (still on appdb) must not serve anyone else. Two
  // sessions at once: one of them would get it (idle or still being reset) if it were kept.
  Conn first = connect(pgpivot.conninfo());
  Conn second = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(first.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(second.get()) == CONNECTION_OK);
  CHECK(scalar(first.get(), "SELECT current_database()") == "postgres");
  CHECK(scalar(second.get(), "SELECT current_database()") == "postgres");
}

TEST_CASE("SIGINT refuses new clients, waits for connected ones, then exits 0",
          "[pg][operations]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn held = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(held.get()) == CONNECTION_OK);

  pgpivot.signal(SIGINT);
  CHECK(eventually(kPatience, [&] { return !RawClient(pgpivot.port()).connected(); }));
  Conn late = connect(pgpivot.conninfo());
  CHECK(PQstatus(late.get()) == CONNECTION_BAD);
  // The connected client is still served, so pgpivot is still running for it.
  CHECK(scalar(held.get(), "SELECT 42") == "42");
  CHECK(pgpivot.running());
  CHECK(scalar(held.get(), "SELECT 43") == "43");

  held.reset();
  // Signal 0 sends nothing: wait for the exit the first SIGINT asked for.
  CHECK(pgpivot.stop(0, kPatience) == 0);
}

TEST_CASE("SIGTERM exits at once with status 0 while clients are connected", "[pg][operations]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn idle = connect(pgpivot.conninfo());
  Conn in_transaction = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(idle.get()) == CONNECTION_OK);
  REQUIRE(PQstatus(in_transaction.get()) == CONNECTION_OK);
  CHECK(scalar(in_transaction.get(), "BEGIN").empty());

  CHECK(pgpivot.stop(SIGTERM, std::chrono::seconds(5)) == 0);
  CHECK(scalar(idle.get(), "SELECT 1").rfind("ERROR", 0) == 0);
  CHECK(scalar(in_transaction.get(), "SELECT 1").rfind("ERROR", 0) == 0);
}

TEST_CASE("pgpivot writes its pid to pidfile at start and removes the file at exit",
          "[pg][operations]") {
  Pgpivot pgpivot;
  const std::string pidfile = dirOf(pgpivot) + "/pgpivot.pid";
  Pgpivot::Options options;
  options.settings = {{"pidfile", pidfile}};
  pgpivot.rewriteConfig(options);
  pgpivot.start();

  pid_t pid = 0;
  REQUIRE(eventually(kPatience, [&] {
    pid = pidFromFile(pidfile);
    return pid > 0;
  }));
  // The pid is the pgpivot this test started, not some other process.
  CHECK(parentPidOf(pid) == std::to_string(::getpid()));
  CHECK(::kill(pid, 0) == 0);

  CHECK(pgpivot.stop(SIGTERM) == 0);
  CHECK_FALSE(fs::exists(pidfile));
}

TEST_CASE("pgpivot writes log lines to logfile", "[pg][operations]") {
  Pgpivot pgpivot;
  pgpivot.start();
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT 1") == "1");
  CHECK(eventually(kPatience, [&] {
    std::error_code ec;
    const auto size = fs::file_size(pgpivot.logPath(), ec);
    return !ec && size > 0;
  }));
}

TEST_CASE("pgpivot -d returns at once and the daemon serves until SIGTERM", "[pg][operations]") {
  Pgpivot pgpivot;  // never started: the test runs the binary itself
  const std::string pidfile = dirOf(pgpivot) + "/daemon.pid";
  Pgpivot::Options options;
  options.settings = {{"pidfile", pidfile}};
  pgpivot.rewriteConfig(options);

  DaemonGuard guard;
  const CommandResult launched =
      runPgpivotCommand({"-d", pgpivot.configPath()}, std::chrono::seconds(15));
  INFO("stderr: " << launched.err);
  REQUIRE(launched.status == 0);

  pid_t pid = 0;
  REQUIRE(eventually(kPatience, [&] {
    pid = pidFromFile(pidfile);
    return pid > 0;
  }));
  guard.track(pid);
  REQUIRE(eventually(kPatience, [&] { return RawClient(pgpivot.port()).connected(); }));
  {
    Conn conn = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    CHECK(scalar(conn.get(), "SELECT 6 * 7") == "42");
  }

  REQUIRE(::kill(pid, SIGTERM) == 0);
  CHECK(eventually(kPatience, [&] { return processGone(pid); }));
  CHECK_FALSE(fs::exists(pidfile));
  CHECK_FALSE(RawClient(pgpivot.port()).connected());
}

TEST_CASE("pgpivot --version prints the version and exits 0", "[pg][operations]") {
  const CommandResult result = runPgpivotCommand({"--version"});
  CHECK(result.status == 0);
  CHECK_THAT(result.out, Catch::StartsWith("pgpivot "));
  CHECK(result.out.find_first_of("0123456789") != std::string::npos);
}

TEST_CASE("a config error stops pgpivot at start with status 1 and file:line on stderr",
          "[pg][operations]") {
  Pgpivot::Options options;
  options.settings = {{"default_pool_size", "lots"}};
  Pgpivot pgpivot(options);  // never started: the test runs the binary itself
  const int line = lineStartingWith(readText(pgpivot.configPath()), "default_pool_size");
  REQUIRE(line > 0);

  const CommandResult result = runPgpivotCommand({pgpivot.configPath()}, kPatience);
  CHECK(result.status == 1);
  CHECK_THAT(result.err, Catch::Contains(pgpivot.configPath() + ":" + std::to_string(line)) &&
                             Catch::Contains("default_pool_size"));
  CHECK_FALSE(RawClient(pgpivot.port()).connected());
}

TEST_CASE("a logfile that cannot be opened stops pgpivot at start with status 1 and says why",
          "[pg][operations]") {
  Pgpivot pgpivot;  // never started: the test runs the binary itself
  // Under a regular file: no directory can be made there, even by root.
  const std::string logfile = pgpivot.configPath() + "/pgpivot.log";
  Pgpivot::Options options;
  options.settings = {{"logfile", logfile}};
  pgpivot.rewriteConfig(options);

  const CommandResult result = runPgpivotCommand({pgpivot.configPath()}, kPatience);
  CHECK(result.status == 1);  // not an abort on an uncaught exception (134)
  CHECK_THAT(result.err, Catch::Contains("cannot open logfile " + logfile));
  CHECK_FALSE(RawClient(pgpivot.port()).connected());
}
