// Workloads for [pg] tests: pgbench runs (and what they printed), and WriteLoad, a bounded
// writer through pgpivot that records every write it had acknowledged and by which server,
// so failover tests can assert on what clients saw and on the data.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pgpivot::test {

// A shell command's exit status (-1 when killed by a signal) and its stdout and stderr.
struct ShellResult {
  int status = -1;
  std::string output;
};
ShellResult runShell(const std::string& command);

// The pgbench of the PostgreSQL 15 packages; fails the test when it is not installed.
std::string pgbenchBinary();

// pgbench's closing summary; -1 where its line is missing (pgbench died before printing it).
struct PgbenchSummary {
  long processed = -1;  // "number of transactions actually processed: 1600/1600" -> 1600
  long planned = -1;    // ... -> 1600 (-t runs only; a -T run prints no total)
  long failed = -1;     // "number of failed transactions: 0 (0.000%)" -> 0
  double tps = -1;      // "tps = 812.3 (without initial connection time)" -> 812.3
};
PgbenchSummary parsePgbench(const std::string& output);

struct PgbenchRun {
  int status = -1;
  std::string output;
  PgbenchSummary summary;
};
// pgbench ARGS as kScramUser (password from the fixture, no TLS) on 127.0.0.1:PORT, appdb.
PgbenchRun runPgbench(int port, const std::string& args);
// pgbench -i -s SCALE -q straight against a node's appdb; fails the test if it fails.
void pgbenchInit(int port, int scale = 1);

// One client writing through pgpivot, one autocommit INSERT at a time:
//   INSERT INTO <table> (id, port) VALUES (<n>, inet_server_port()) RETURNING port
// with n = 1, 2, 3, ... Bounded: it stops after max_writes attempts or max_time, or at
// stop(). A write with no answer after write_timeout counts as "timeout" and its
// connection is dropped (its outcome is unknown); a broken connection is replaced.
class WriteLoad {
 public:
  struct Options {
    std::string conninfo;  // through pgpivot
    std::string table = "load_acks";
    int max_writes = 3000;
    std::chrono::milliseconds max_time{60000};
    std::chrono::milliseconds interval{20};  // pause between writes
    std::chrono::milliseconds write_timeout{15000};
  };
  // What the client saw, as of now.
  struct Ack {
    int64_t id = 0;
    int port = 0;  // inet_server_port() of the server that acknowledged it
  };
  struct Seen {
    int attempts = 0;
    std::vector<Ack> acked;             // acknowledged INSERTs, in order
    std::map<int, int64_t> acked_by;    // server port -> writes it acknowledged
    std::map<std::string, int> errors;  // SQLSTATE ("connection", "timeout") -> count
    int reconnects = 0;
    std::string first_error;
    int64_t longest_gap_ms = 0;  // longest time without an acknowledged write
    [[nodiscard]] int errorCount() const;
    [[nodiscard]] std::string describe() const;  // one paragraph for INFO / WARN
  };

  // Creates the table through `conninfo` (fails the test if it cannot).
  explicit WriteLoad(Options options);
  ~WriteLoad();
  WriteLoad(const WriteLoad&) = delete;
  WriteLoad& operator=(const WriteLoad&) = delete;

  void start();
  void stop();  // waits for the writer (at most one write_timeout)
  [[nodiscard]] int64_t ackedCount() const { return acked_count_.load(); }
  // Waits until `more` writes beyond the current count are acknowledged, or `timeout`.
  bool waitForAcks(int64_t more, std::chrono::milliseconds timeout) const;
  [[nodiscard]] Seen seen() const;
  [[nodiscard]] const std::string& table() const { return options_.table; }

 private:
  void run();
  void record(const std::function<void(Seen&)>& update);

  Options options_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> acked_count_{0};
  mutable std::mutex mutex_;
  Seen seen_;
};

}  // namespace pgpivot::test
