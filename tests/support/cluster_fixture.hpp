// A throwaway primary + streaming standby for failover tests, made with
// scripts/cluster.sh in a temp dir, with the test roles of pg_common.sh. Each test gets its
// own cluster because failover tests change who is primary.
#pragma once

#include <sys/types.h>

#include <string>

namespace pgpivot::test {

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
  // Promotes the first standby (as an external manager would) and waits until it is out
  // of recovery.
  void promoteStandby();
  // A [cluster.main] section for pgpivot's config, monitored as pgpivot_trust.
  std::string clusterSection(const std::string& extra = "") const;
  // Runs SQL as the superuser on a node over its unix socket; returns the first value.
  std::string query(int port, const std::string& data, const std::string& sql) const;

 private:
  std::string dir_;
  std::string primary_data_;
  std::string standby_data_;
  int primary_port_ = 0;
  int standby_port_ = 0;
};

}  // namespace pgpivot::test
