// Support for [pg] tests: where the fixture's PostgreSQL 15 runs, a real pgpivot process
// started with a generated configuration, libpq helpers, and a raw socket client for
// feeding pgpivot bytes no well-behaved client would send.
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pgpivot::test {

// The PostgreSQL started by tests/support/pg_fixture.sh (ctest fixture "pg").
struct PgServer {
  std::string host;
  int port = 0;
  std::string data_dir;
};
const PgServer& pgServer();

// Roles created by the fixture; all have password "secret".
inline constexpr const char* kScramUser = "pgpivot_scram";
inline constexpr const char* kMd5User = "pgpivot_md5";
inline constexpr const char* kTrustUser = "pgpivot_trust";
inline constexpr const char* kPassword = "secret";

// A free TCP port on 127.0.0.1 (bound once and released).
int freePort();

// Waits until `predicate` holds or `timeout` passes; returns the last result.
bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& predicate);

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Conn = std::unique_ptr<PGconn, PgConnDeleter>;
using Res = std::unique_ptr<PGresult, PgResultDeleter>;

// Connects with libpq; check PQstatus yourself (failed connections are returned too).
Conn connect(const std::string& conninfo);
// Runs `sql`; returns the first row's first column, or "ERROR <sqlstate>: <message>".
std::string scalar(PGconn* conn, const std::string& sql);
// The SQLSTATE of a failed connection or result ("" when none).
std::string sqlstateOf(const PGresult* result);
std::string errorOf(PGconn* conn);

// A pgpivot process with its own config file in a temp dir.
class Pgpivot {
 public:
  // `settings` go into [pgpivot] (overriding defaults below), `databases` into [databases]
  // (default: appdb pointing at the fixture server), `users` into userlist.txt.
  struct Options {
    std::map<std::string, std::string> settings;
    std::map<std::string, std::string> databases;
    std::map<std::string, std::string> userlist;  // user -> password or secret
    std::vector<std::string> extra_sections;      // raw INI appended at the end
  };

  explicit Pgpivot(Options options = {});
  ~Pgpivot();
  Pgpivot(const Pgpivot&) = delete;
  Pgpivot& operator=(const Pgpivot&) = delete;

  // Starts the process and waits until it accepts connections. Fails the test otherwise.
  void start();
  // Sends `signum` and waits up to `timeout` for the exit; returns the exit status, or
  // -1 if it did not exit in time (then it is killed).
  int stop(int signum, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  bool running();
  void signal(int signum);

  // Rewrites the config file with new options (for reload tests).
  void rewriteConfig(const Options& options);
  void writeRawConfig(const std::string& text);

  int port() const { return port_; }
  const std::string& configPath() const { return config_path_; }
  // The pgpivot process (after start()).
  pid_t pid() const { return pid_; }
  const std::string& logPath() const { return log_path_; }
  std::string logText() const;
  // "host=127.0.0.1 port=P dbname=appdb user=U password=secret" plus `extra`.
  std::string conninfo(const std::string& user = kScramUser, const std::string& dbname = "appdb",
                       const std::string& extra = "") const;

 private:
  std::string render(const Options& options) const;

  Options options_;
  std::string dir_;
  std::string config_path_;
  std::string userlist_path_;
  std::string log_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A raw TCP client for malformed-input tests.
class RawClient {
 public:
  explicit RawClient(int port);
  ~RawClient();
  bool connected() const { return fd_ >= 0; }
  // The client's own port: the peer port of pgpivot's socket for this connection.
  int localPort() const;
  bool send(const std::string& bytes);
  // Reads until the peer closes or `timeout` passes; returns everything read.
  std::string readAll(std::chrono::milliseconds timeout);
  // True if the peer closed the connection within `timeout`.
  bool closedWithin(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
};

// Builders for raw frontend packets.
std::string startupPacket(const std::vector<std::pair<std::string, std::string>>& params,
                          int32_t protocol = 196608);
std::string int32be(int32_t value);
// Extracts (severity, sqlstate, message) from the first ErrorResponse in `bytes`.
struct ErrorSeen {
  bool found = false;
  std::string severity, sqlstate, message;
};
ErrorSeen firstError(const std::string& bytes);

}  // namespace pgpivot::test

// ---- Running the pgpivot binary with a command line of the test's choosing -------------------
// (operations and --check tests: --version, --check, -d, a config that fails at start-up)
namespace pgpivot::test {

// The binary under test: $PGPIVOT_BIN, or the one this build made.
std::string pgpivotBinary();

struct CommandResult {
  int status = -1;  // exit status; 128 + signal when killed by one; -1 when it timed out
  std::string out;  // everything written to stdout
  std::string err;  // everything written to stderr
};

// Runs `pgpivot ARGS...` and waits until it exits and both output pipes are closed, or
// `timeout` passes (then it is killed and status is -1). File descriptors other than the
// three standard ones are not inherited.
CommandResult runPgpivotCommand(const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace pgpivot::test

// ---- Login outcomes and backend messages on raw connections ----------------------------------
// (bad_input and auth tests: the SQLSTATE of a refused libpq login, reading a raw connection
// message by message)
namespace pgpivot::test {

// What a libpq client saw when it tried to log in. libpq keeps no PGresult for a refused
// login, so the SQLSTATE comes from the verbose error text ("FATAL:  28P01: message").
struct LoginResult {
  bool ok = false;
  std::string sqlstate;  // of the server's (or pgpivot's) ErrorResponse; "" when none
  std::string message;   // its primary message
  std::string text;      // libpq's whole error text
  Conn conn;             // the connection when ok
};
// Logs in with `conninfo` (non-blocking libpq, bounded by `timeout`).
LoginResult attemptLogin(const std::string& conninfo,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));

// One complete backend message (tag, body) from a raw byte stream.
struct BackendMessage {
  char tag = 0;
  std::string body;
};
// The complete typed messages at the start of `bytes`; stops at the first partial or
// malformed one.
std::vector<BackendMessage> backendMessages(const std::string& bytes);
// Reads from `client` into `seen` until a message whose tag is in `tags` is complete, or
// `timeout` passes. Returns whether such a message arrived.
bool readUntilMessage(RawClient& client, std::string& seen, const std::string& tags,
                      std::chrono::milliseconds timeout);
// A raw login as pgpivot_trust (auth_type = trust) to appdb with `extra` startup
// parameters; the bytes up to its ReadyForQuery or ErrorResponse.
std::string rawTrustLogin(RawClient& client,
                          const std::vector<std::pair<std::string, std::string>>& extra = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(15));
// A simple query on a logged-in raw connection; the answer up to ReadyForQuery.
std::string rawQuery(RawClient& client, const std::string& sql,
                     std::chrono::milliseconds timeout = std::chrono::seconds(15));

}  // namespace pgpivot::test
