// A throwaway primary + streaming standby for failover tests, made with
// scripts/cluster.sh in a temp dir, with the test roles of pg_common.sh. Each test gets its
// own cluster because failover tests change who is primary. Also: pgpivot configured in
// front of such a cluster, and what its admin console says about it.
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/pgpivot_fixture.hpp"

namespace pgpivot::test {

// "/tmp/pgpivot-TAG-PID": a path for a file one test names (wrap it in a ScratchFile).
std::string scratchPath(const std::string& tag);
// The whole file, "" when it cannot be read.
std::string readFile(const std::string& path);
// "127.0.0.1:PORT", as pgpivot names a node.
std::string nodeName(int port);

// A file a test names (an event log, say), removed when the test ends however it ends.
struct ScratchFile {
  std::string path;
  explicit ScratchFile(std::string p) : path(std::move(p)) {}
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
};

class TwoNodeCluster {
 public:
  TwoNodeCluster();  // starts both nodes and waits for streaming; fails the test otherwise
  ~TwoNodeCluster();
  TwoNodeCluster(const TwoNodeCluster&) = delete;
  TwoNodeCluster& operator=(const TwoNodeCluster&) = delete;

  int primaryPort() const { return primary_port_; }
  int standbyPort() const { return standby_port_; }
  const std::string& primaryData() const { return primary_data_; }
  const std::string& standbyData() const { return standby_data_; }

  // The postmaster's pid of a node (from postmaster.pid), or -1.
  pid_t postmasterPid(const std::string& data) const;
  // Waits until the standby has replayed everything the primary wrote (asynchronous
  // replication: what is not replayed is lost when the primary dies).
  void waitReplayed();
  // kill -9 of the first primary's postmaster (its backends exit on their own).
  void killPrimary();
  // SIGSTOP / SIGCONT of the first primary's postmaster and every child it has.
  void freezePrimary(bool frozen);
  // SIGSTOP / SIGCONT of a node's postmaster, and of every process it started unless
  // `postmaster_only` (then its backends keep serving their sessions: research fault 1).
  // The destructor thaws every node.
  void freezeNode(const std::string& data, bool frozen, bool postmaster_only = false);
  // pg_ctl stop -m immediate of a node, and pg_ctl start of it (not waiting for it).
  void stopNode(const std::string& data);
  void startNode(const std::string& data);
  // Promotes the first standby (as an external manager would) and waits until it is out
  // of recovery.
  void promoteStandby();
  // A [cluster.main] section for pgpivot's config (every node), monitored as pgpivot_trust.
  std::string clusterSection(const std::string& extra = "") const;
  // Runs SQL as the superuser on a node over its unix socket; returns the first value.
  std::string query(int port, const std::string& data, const std::string& sql) const;

 protected:
  struct Node {
    std::string data;
    int port = 0;
  };
  // Clones one more streaming standby from the primary (slot pgpivot_standbyN), started
  // and streaming when this returns.
  void addStandby();
  std::vector<Node> extra_standbys_;

 private:
  std::string dir_;
  std::string primary_data_;
  std::string standby_data_;
  int primary_port_ = 0;
  int standby_port_ = 0;
};

// A primary and two streaming standbys (each with its own slot), in config order: primary,
// standby, second standby.
class ThreeNodeCluster : public TwoNodeCluster {
 public:
  ThreeNodeCluster();
  int secondStandbyPort() const { return extra_standbys_.at(0).port; }
  const std::string& secondStandbyData() const { return extra_standbys_.at(0).data; }
};

// pgpivot in front of a cluster: appdb = cluster=main in transaction mode, kScramUser an
// admin, and [cluster.main] with the fast profile, probes every 0.2 s (0.5 s deadline) and
// no failover cooldown, so each test sees a decision within seconds.
struct OnCluster {
  std::string mode = "promote";  // failover_mode
  std::string failover_log;      // the event log; "" none
  std::string state_file;        // "" none
  std::string extra;             // more [cluster.main] lines, each ending in '\n'

  OnCluster& withMode(std::string m) {
    mode = std::move(m);
    return *this;
  }
  OnCluster& withLog(std::string path) {
    failover_log = std::move(path);
    return *this;
  }
  OnCluster& withStateFile(std::string path) {
    state_file = std::move(path);
    return *this;
  }
  OnCluster& withLines(const std::string& lines) {
    extra += lines;
    return *this;
  }
};
Pgpivot::Options pgpivotOn(const TwoNodeCluster& cluster, const OnCluster& on);

// Waits (15 s at most) until SHOW CLUSTERS says STEADY; fails the test otherwise.
void waitSteady(PGconn* admin);
// A column of SHOW CLUSTERS' (first) row; "error" / "missing" when there is none.
std::string clusterColumn(PGconn* admin, const std::string& column);
// A column of SHOW NODES' row for `node` ("127.0.0.1:PORT"); "error" / "missing".
std::string nodeColumn(PGconn* admin, const std::string& node, const std::string& column);

// Samples SHOW CLUSTERS' `primary` (the node pgpivot routes writes to, "" for none) on its
// own admin connection every 50 ms from construction to stop(), and keeps the sequence of
// distinct values it went through: "never two primaries routed" and "no flap" are
// assertions on that sequence.
class RouteWatch {
 public:
  explicit RouteWatch(const Pgpivot& pgpivot);
  ~RouteWatch();
  RouteWatch(const RouteWatch&) = delete;
  RouteWatch& operator=(const RouteWatch&) = delete;
  void stop();
  // Each value where it differs from the one before: {"127.0.0.1:5001", "", "127.0.0.1:5002"}.
  [[nodiscard]] std::vector<std::string> changes() const;
  [[nodiscard]] int samples() const;
  [[nodiscard]] std::string describe() const;

 private:
  Conn admin_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> changes_;
  int samples_ = 0;
  std::thread thread_;
};

}  // namespace pgpivot::test
