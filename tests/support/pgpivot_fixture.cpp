#include "support/pgpivot_fixture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace pgpivot::test {

namespace fs = std::filesystem;

const PgServer& pgServer() {
  static const PgServer server = [] {
    PgServer s;
    const char* env_path = std::getenv("PGPIVOT_TEST_ENV");
    if (env_path == nullptr) {
      env_path = PGPIVOT_TEST_ENV_DEFAULT;
    }
    std::ifstream in(env_path);
    if (!in) {
      FAIL("cannot read " << env_path << ": did the pg_fixture_start test run?");
    }
    std::string line;
    while (std::getline(in, line)) {
      const auto eq = line.find('=');
      if (eq == std::string::npos) {
        continue;
      }
      const std::string key = line.substr(0, eq);
      const std::string value = line.substr(eq + 1);
      if (key == "PGPIVOT_TEST_PGHOST") {
        s.host = value;
      } else if (key == "PGPIVOT_TEST_PGPORT") {
        s.port = std::stoi(value);
      } else if (key == "PGPIVOT_TEST_PGDATA") {
        s.data_dir = value;
      }
    }
    return s;
  }();
  return server;
}

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& predicate) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Conn connect(const std::string& conninfo) {
  return Conn(PQconnectdb(conninfo.c_str()));
}

std::string sqlstateOf(const PGresult* result) {
  if (result == nullptr) {
    return "";
  }
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  return state != nullptr ? state : "";
}

std::string errorOf(PGconn* conn) {
  std::string message = PQerrorMessage(conn);
  while (!message.empty() && message.back() == '\n') {
    message.pop_back();
  }
  return message;
}

std::string scalar(PGconn* conn, const std::string& sql) {
  Res result(PQexec(conn, sql.c_str()));
  const auto status = PQresultStatus(result.get());
  if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0) {
    return PQgetvalue(result.get(), 0, 0);
  }
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
    return "";
  }
  std::string message = PQresultErrorMessage(result.get());
  while (!message.empty() && message.back() == '\n') {
    message.pop_back();
  }
  return "ERROR " + sqlstateOf(result.get()) + ": " + message;
}

// --- Pgpivot process ----------------------------------------------------------------------

Pgpivot::Pgpivot(Options options) : options_(std::move(options)) {
  char pattern[] = "/tmp/pgpivot-test.XXXXXX";
  const char* dir = ::mkdtemp(pattern);
  REQUIRE(dir != nullptr);
  dir_ = dir;
  config_path_ = dir_ + "/pgpivot.ini";
  userlist_path_ = dir_ + "/userlist.txt";
  log_path_ = dir_ + "/pgpivot.log";
  port_ = freePort();
  rewriteConfig(options_);
}

Pgpivot::~Pgpivot() {
  if (pid_ > 0) {
    stop(SIGTERM, std::chrono::seconds(10));
  }
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

std::string Pgpivot::render(const Options& options) const {
  std::map<std::string, std::string> settings = {
      {"listen_addr", "127.0.0.1"},
      {"listen_port", std::to_string(port_)},
      {"unix_socket_dir", ""},
      {"admin_port", "0"},
      {"auth_type", "scram-sha-256"},
      {"auth_file", userlist_path_},
      {"logfile", log_path_},
      {"default_pool_size", "20"},
      {"max_client_conn", "500"},
      {"verbose", "1"},
      // One worker unless a test asks for more: several tests check which backend a
      // client lands on, and pools are per worker.
      {"workers", "1"},
  };
  for (const auto& [key, value] : options.settings) {
    settings[key] = value;
  }
  std::ostringstream out;
  out << "[pgpivot]\n";
  for (const auto& [key, value] : settings) {
    out << key << " = " << value << "\n";
  }
  out << "\n[databases]\n";
  const auto& pg = pgServer();
  if (options.databases.empty()) {
    out << "appdb = host=" << pg.host << " port=" << pg.port << " dbname=appdb\n";
  }
  for (const auto& [name, value] : options.databases) {
    out << name << " = " << value << "\n";
  }
  for (const auto& section : options.extra_sections) {
    out << "\n" << section << "\n";
  }
  return out.str();
}

void Pgpivot::rewriteConfig(const Options& options) {
  options_ = options;
  std::map<std::string, std::string> users = options.userlist;
  if (users.empty()) {
    users = {{kScramUser, kPassword}, {kMd5User, kPassword}, {kTrustUser, kPassword}};
  }
  std::ofstream userlist(userlist_path_, std::ios::trunc);
  for (const auto& [user, secret] : users) {
    userlist << '"' << user << "\" \"" << secret << "\"\n";
  }
  writeRawConfig(render(options));
}

void Pgpivot::writeRawConfig(const std::string& text) {
  std::ofstream config(config_path_, std::ios::trunc);
  config << text;
}

std::string Pgpivot::logText() const {
  std::ifstream in(log_path_);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void Pgpivot::start() {
  const char* bin = std::getenv("PGPIVOT_BIN");
  if (bin == nullptr) {
    bin = PGPIVOT_BIN_DEFAULT;
  }
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    ::execl(bin, bin, config_path_.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  const bool up = eventually(std::chrono::seconds(15), [this] {
    if (!running()) {
      return true;
    }
    RawClient probe(port_);
    return probe.connected();
  });
  if (!up || !running()) {
    FAIL("pgpivot did not start; log:\n" << logText());
  }
}

bool Pgpivot::running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  const pid_t done = ::waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void Pgpivot::signal(int signum) {
  if (pid_ > 0) {
    ::kill(pid_, signum);
  }
}

int Pgpivot::stop(int signum, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return -1;
  }
  ::kill(pid_, signum);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

std::string Pgpivot::conninfo(const std::string& user, const std::string& dbname,
                              const std::string& extra) const {
  std::string info = "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname +
                     " user=" + user + " password=" + kPassword +
                     " connect_timeout=10 sslmode=disable";
  if (!extra.empty()) {
    info += " " + extra;
  }
  return info;
}

// --- raw client ---------------------------------------------------------------------------

RawClient::RawClient(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

int RawClient::localPort() const {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (fd_ < 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return -1;
  }
  return ntohs(addr.sin_port);
}

RawClient::~RawClient() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool RawClient::send(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

std::string RawClient::readAll(std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return out;
    }
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      return out;
    }
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      return out;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

bool RawClient::closedWithin(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 50) > 0) {
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        return true;
      }
    }
  }
  return false;
}

std::string int32be(int32_t value) {
  const uint32_t v = htonl(static_cast<uint32_t>(value));
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

std::string startupPacket(const std::vector<std::pair<std::string, std::string>>& params,
                          int32_t protocol) {
  std::string body = int32be(protocol);
  for (const auto& [key, value] : params) {
    body += key;
    body.push_back('\0');
    body += value;
    body.push_back('\0');
  }
  body.push_back('\0');
  return int32be(static_cast<int32_t>(body.size() + 4)) + body;
}

ErrorSeen firstError(const std::string& bytes) {
  ErrorSeen seen;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    const char tag = bytes[pos];
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + pos + 1, 4);
    len = ntohl(len);
    if (len < 4 || pos + 1 + len > bytes.size()) {
      break;
    }
    if (tag == 'E') {
      seen.found = true;
      std::size_t f = pos + 5;
      const std::size_t end = pos + 1 + len;
      while (f < end && bytes[f] != '\0') {
        const char code = bytes[f++];
        const std::size_t nul = bytes.find('\0', f);
        const std::string value = bytes.substr(f, nul - f);
        if (code == 'S') {
          seen.severity = value;
        } else if (code == 'C') {
          seen.sqlstate = value;
        } else if (code == 'M') {
          seen.message = value;
        }
        f = nul + 1;
      }
      return seen;
    }
    pos += 1 + len;
  }
  return seen;
}

}  // namespace pgpivot::test

// ---- Running the pgpivot binary with a command line of the test's choosing -------------------

namespace pgpivot::test {

std::string pgpivotBinary() {
  const char* bin = std::getenv("PGPIVOT_BIN");
  return bin != nullptr ? bin : PGPIVOT_BIN_DEFAULT;
}

CommandResult runPgpivotCommand(const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) {
  CommandResult result;
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  REQUIRE(::pipe(out_pipe) == 0);
  REQUIRE(::pipe(err_pipe) == 0);
  const std::string bin = pgpivotBinary();
  std::vector<std::string> argv_strings = {bin};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_strings) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
      ::dup2(null_fd, STDIN_FILENO);
    }
    const long max_fd = ::sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max_fd > 0 && max_fd < 65536 ? max_fd : 4096); ++fd) {
      ::close(fd);
    }
    ::execv(bin.c_str(), argv.data());
    std::_Exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_pipes = 2;
  bool exited = false;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && (open_pipes > 0 || !exited)) {
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
    }
    if (open_pipes == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (::poll(fds, 2, 50) <= 0) {
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) {
      ::close(fd.fd);
    }
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    result.status = -1;
    return result;
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace pgpivot::test

// ---- Login outcomes and backend messages on raw connections ----------------------------------
namespace pgpivot::test {

LoginResult attemptLogin(const std::string& conninfo, std::chrono::milliseconds timeout) {
  LoginResult result;
  Conn conn(PQconnectStart(conninfo.c_str()));
  REQUIRE(conn != nullptr);
  PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
  while (PQstatus(conn.get()) != CONNECTION_BAD && polling != PGRES_POLLING_OK &&
         polling != PGRES_POLLING_FAILED) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.text = "timed out after " + std::to_string(timeout.count()) + " ms";
      return result;
    }
    pollfd pfd{PQsocket(conn.get()),
               static_cast<short>(polling == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    if (::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 100))) < 0) {
      continue;
    }
    polling = PQconnectPoll(conn.get());
  }
  if (PQstatus(conn.get()) == CONNECTION_OK) {
    result.ok = true;
    result.conn = std::move(conn);
    return result;
  }
  result.text = errorOf(conn.get());
  // "...: FATAL:  28P01: the message\nDETAIL: ..." (verbose form, PostgreSQL's and pgpivot's)
  for (const char* severity : {"FATAL:  ", "ERROR:  ", "PANIC:  "}) {
    const auto at = result.text.find(severity);
    if (at == std::string::npos) {
      continue;
    }
    const std::string rest = result.text.substr(at + std::strlen(severity));
    if (rest.size() >= 7 && rest.compare(5, 2, ": ") == 0) {
      result.sqlstate = rest.substr(0, 5);
      result.message = rest.substr(7, rest.find('\n', 7) - 7);
    } else {
      result.message = rest.substr(0, rest.find('\n'));
    }
    break;
  }
  return result;
}

std::vector<BackendMessage> backendMessages(const std::string& bytes) {
  std::vector<BackendMessage> messages;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + pos + 1, 4);
    len = ntohl(len);
    if (len < 4 || len > bytes.size() - pos - 1) {
      break;
    }
    messages.push_back(BackendMessage{bytes[pos], bytes.substr(pos + 5, len - 4)});
    pos += 1 + len;
  }
  return messages;
}

bool readUntilMessage(RawClient& client, std::string& seen, const std::string& tags,
                      std::chrono::milliseconds timeout) {
  const auto arrived = [&] {
    for (const auto& message : backendMessages(seen)) {
      if (tags.find(message.tag) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  return eventually(timeout, [&] {
    seen += client.readAll(std::chrono::milliseconds(10));
    return arrived();
  });
}

std::string rawTrustLogin(RawClient& client,
                          const std::vector<std::pair<std::string, std::string>>& extra,
                          std::chrono::milliseconds timeout) {
  std::vector<std::pair<std::string, std::string>> params = {{"user", kTrustUser},
                                                             {"database", "appdb"}};
  params.insert(params.end(), extra.begin(), extra.end());
  REQUIRE(client.send(startupPacket(params)));
  std::string seen;
  readUntilMessage(client, seen, "ZE", timeout);
  return seen;
}

std::string rawQuery(RawClient& client, const std::string& sql, std::chrono::milliseconds timeout) {
  std::string query(1, 'Q');
  query += int32be(static_cast<int32_t>(sql.size() + 5));
  query += sql;
  query.push_back('\0');
  REQUIRE(client.send(query));
  std::string seen;
  readUntilMessage(client, seen, "Z", timeout);
  return seen;
}

}  // namespace pgpivot::test
