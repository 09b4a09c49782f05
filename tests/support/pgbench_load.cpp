#include "support/pgbench_load.hpp"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <regex>
#include <sstream>

#include "support/pgpivot_fixture.hpp"

namespace pgpivot::test {

ShellResult runShell(const std::string& command) {
  ShellResult result;
  FILE* pipe = ::popen(("{ " + command + "\n} 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed: " + command;
    return result;
  }
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string pgbenchBinary() {
  for (const char* candidate : {"/usr/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench"}) {
    if (::access(candidate, X_OK) == 0) {
      return candidate;
    }
  }
  FAIL("pgbench not found (install postgresql-15 or postgresql-client-15)");
  return "";
}

PgbenchSummary parsePgbench(const std::string& output) {
  PgbenchSummary s;
  std::smatch m;
  if (std::regex_search(
          output, m, std::regex(R"(number of transactions actually processed: (\d+)(/(\d+))?)"))) {
    s.processed = std::stol(m[1]);
    if (m[3].matched) {
      s.planned = std::stol(m[3]);
    }
  }
  if (std::regex_search(output, m, std::regex(R"(number of failed transactions: (\d+))"))) {
    s.failed = std::stol(m[1]);
  }
  if (std::regex_search(output, m, std::regex(R"(tps = ([0-9.]+))"))) {
    s.tps = std::stod(m[1]);
  }
  return s;
}

namespace {

std::string pgbenchCommand(int port, const std::string& args) {
  return std::string("PGPASSWORD=") + kPassword + " PGSSLMODE=disable " + pgbenchBinary() + " " +
         args + " -h 127.0.0.1 -p " + std::to_string(port) + " -U " + kScramUser + " appdb";
}

}  // namespace

PgbenchRun runPgbench(int port, const std::string& args) {
  const ShellResult shell = runShell(pgbenchCommand(port, args));
  return PgbenchRun{shell.status, shell.output, parsePgbench(shell.output)};
}

void pgbenchInit(int port, int scale) {
  const ShellResult init = runShell(pgbenchCommand(port, "-i -q -s " + std::to_string(scale)));
  INFO(init.output);
  REQUIRE(init.status == 0);
}

// ---- WriteLoad ---------------------------------------------------------------------------

int WriteLoad::Seen::errorCount() const {
  int n = 0;
  for (const auto& [state, count] : errors) {
    n += count;
  }
  return n;
}

std::string WriteLoad::Seen::describe() const {
  std::ostringstream out;
  out << attempts << " writes tried, " << acked.size() << " acknowledged (";
  const char* sep = "";
  for (const auto& [port, count] : acked_by) {
    out << sep << count << " by port " << port;
    sep = ", ";
  }
  out << "), " << errorCount() << " errors";
  sep = " (";
  for (const auto& [state, count] : errors) {
    out << sep << state << " x" << count;
    sep = ", ";
  }
  out << (errors.empty() ? "" : ")") << ", " << reconnects << " reconnects, longest gap "
      << longest_gap_ms << " ms";
  if (!first_error.empty()) {
    out << "; first error: " << first_error;
  }
  return out.str();
}

WriteLoad::WriteLoad(Options options) : options_(std::move(options)) {
  Conn conn = connect(options_.conninfo);
  INFO(errorOf(conn.get()));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(scalar(conn.get(), "CREATE TABLE IF NOT EXISTS " + options_.table +
                                 " (id bigint PRIMARY KEY, port int NOT NULL)") == "");
}

WriteLoad::~WriteLoad() {
  stop();
}

void WriteLoad::start() {
  REQUIRE_FALSE(thread_.joinable());
  thread_ = std::thread([this] { run(); });
}

void WriteLoad::stop() {
  stopping_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool WriteLoad::waitForAcks(int64_t more, std::chrono::milliseconds timeout) const {
  const int64_t target = ackedCount() + more;
  return eventually(timeout, [&] { return ackedCount() >= target; });
}

WriteLoad::Seen WriteLoad::seen() const {
  std::lock_guard lock(mutex_);
  return seen_;
}

void WriteLoad::record(const std::function<void(Seen&)>& update) {
  std::lock_guard lock(mutex_);
  update(seen_);
}

void WriteLoad::run() {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto last_ack = started;
  Conn conn;
  bool connected_before = false;
  const auto fail = [&](const std::string& state, const std::string& message) {
    record([&](Seen& s) {
      ++s.errors[state];
      if (s.first_error.empty()) {
        s.first_error = state + ": " + message;
      }
    });
  };
  for (int64_t id = 1; id <= options_.max_writes && !stopping_; ++id) {
    if (Clock::now() - started >= options_.max_time) {
      break;
    }
    if (id > 1) {
      std::this_thread::sleep_for(options_.interval);
    }
    record([](Seen& s) { ++s.attempts; });
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
      if (connected_before) {
        record([](Seen& s) { ++s.reconnects; });
      }
      conn = connect(options_.conninfo + " connect_timeout=10");
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        fail("connection", errorOf(conn.get()));
        conn.reset();
        continue;
      }
      connected_before = true;
    }
    const std::string sql = "INSERT INTO " + options_.table + " (id, port) VALUES (" +
                            std::to_string(id) + ", inet_server_port()) RETURNING port";
    if (PQsendQuery(conn.get(), sql.c_str()) != 1) {
      fail("connection", errorOf(conn.get()));
      conn.reset();
      continue;
    }
    // Wait for the whole answer, bounded by write_timeout.
    const auto deadline = Clock::now() + options_.write_timeout;
    bool timed_out = false;
    bool broken = false;
    while (PQisBusy(conn.get()) == 1) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        timed_out = true;
        break;
      }
      pollfd pfd{PQsocket(conn.get()), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 100))) < 0 ||
          PQconsumeInput(conn.get()) != 1) {
        broken = true;
        break;
      }
    }
    if (timed_out) {
      fail("timeout", "no answer to write " + std::to_string(id));
      conn.reset();  // outcome unknown; never reuse a connection with a query in flight
      continue;
    }
    if (broken) {
      fail("connection", errorOf(conn.get()));
      conn.reset();
      continue;
    }
    int port = 0;
    std::string state;
    std::string message;
    while (PGresult* raw = PQgetResult(conn.get())) {
      Res result(raw);
      if (PQresultStatus(raw) == PGRES_TUPLES_OK && PQntuples(raw) == 1) {
        port = std::atoi(PQgetvalue(raw, 0, 0));
      } else if (PQresultStatus(raw) == PGRES_FATAL_ERROR && state.empty()) {
        state = sqlstateOf(raw);
        message = PQresultErrorMessage(raw);
      }
    }
    if (!state.empty() || port == 0) {
      fail(state.empty() ? "connection" : state, message.empty() ? errorOf(conn.get()) : message);
      if (PQstatus(conn.get()) != CONNECTION_OK) {
        conn.reset();
      }
      continue;
    }
    const auto now = Clock::now();
    const int64_t gap =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - last_ack).count();
    last_ack = now;
    record([&](Seen& s) {
      s.acked.push_back({id, port});
      ++s.acked_by[port];
      s.longest_gap_ms = std::max(s.longest_gap_ms, gap);
    });
    ++acked_count_;
  }
}

}  // namespace pgpivot::test
