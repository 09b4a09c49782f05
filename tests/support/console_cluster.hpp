// The opening the console failover pg tests share (SWITCHOVER, DRILL, FAILOVER): a fresh
// primary + streaming standby, a failover event log in a scratch file, pgpivot started in
// front of them, and an admin console connection that has seen the cluster STEADY (a
// SWITCHOVER or DRILL is refused before that). It asserts each step as the tests did
// themselves. Not for tests that must see pgpivot before the cluster is steady.
#pragma once

#include <map>
#include <string>

#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

namespace pgpivot::test {

class ConsoleCluster {
 public:
  // `tag` names the event log file (scratchPath); `on` configures [cluster.main] (its log
  // is set here); `settings` are added to [pgpivot] (pool_mode, workers, ...).
  explicit ConsoleCluster(const std::string& tag, OnCluster on = {},
                          const std::map<std::string, std::string>& settings = {});
  ConsoleCluster(const ConsoleCluster&) = delete;
  ConsoleCluster& operator=(const ConsoleCluster&) = delete;

  // The event log so far, for INFO.
  std::string eventLog() const { return readFile(events.path); }
  // SWITCHOVER main, asked again for up to 20 s while it is refused (the cluster may not be
  // ready for the next one yet); "" once accepted, else the last refusal's error message.
  std::string switchover();

  // Destroyed in reverse: the admin connection, pgpivot, the log file, then the cluster.
  TwoNodeCluster cluster;
  ScratchFile events;
  Pgpivot pgpivot;
  Conn admin;
};

}  // namespace pgpivot::test
