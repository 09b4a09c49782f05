// The election's synchronous-standby rule on real PostgreSQL 15: a primary with a
// synchronous standby (named by its application_name, as the rule requires) writes WAL
// its standby never acknowledged, far past max_lag_on_failover, and is killed (kill -9).
// The async rule would measure the standby's lag against that WAL and refuse it; the
// standby holds every acknowledged commit, so pgpivot promotes it, the event log says by
// which rule, and the writers through pgpivot lose no acknowledged write.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <string>

#include "pg/acked_writers.hpp"
#include "support/acked_failover.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;

namespace {

std::string standbyQuery(const TwoNodeCluster& cluster, const std::string& sql) {
  return cluster.query(cluster.standbyPort(), cluster.standbyData(), sql);
}

std::string primaryQuery(const TwoNodeCluster& cluster, const std::string& sql) {
  return cluster.query(cluster.primaryPort(), cluster.primaryData(), sql);
}

// The standby's WAL receiver connects as application_name = its node name, which is how
// the primary's pg_stat_replication row is matched to the node. (query() runs psql -c
// "..." through a shell: the double quotes of the SQL are escaped.)
void nameStandby(const TwoNodeCluster& cluster, const std::string& name) {
  std::string conninfo = standbyQuery(cluster, "SHOW primary_conninfo");
  REQUIRE_FALSE(conninfo.empty());
  conninfo += " application_name=" + name;
  std::string literal;
  for (const char c : conninfo) {
    literal += c == '\'' ? std::string("''") : std::string(1, c);
  }
  REQUIRE(standbyQuery(cluster, "ALTER SYSTEM SET primary_conninfo = '" + literal + "'") ==
          "ALTER SYSTEM");
  REQUIRE(standbyQuery(cluster, "SELECT pg_reload_conf()") == "t");
}

// Commits wait for that standby, by name (FIRST 1).
void synchronousTo(const TwoNodeCluster& cluster, const std::string& name) {
  REQUIRE(primaryQuery(cluster, "ALTER SYSTEM SET synchronous_commit = 'on'") == "ALTER SYSTEM");
  REQUIRE(primaryQuery(cluster, "ALTER SYSTEM SET synchronous_standby_names = '\\\"" + name +
                                    "\\\"'") == "ALTER SYSTEM");
  REQUIRE(primaryQuery(cluster, "SELECT pg_reload_conf()") == "t");
  std::string rows;
  const bool sync = eventually(20s, [&] {
    rows = primaryQuery(cluster,
                        "SELECT application_name || ' ' || sync_state FROM "
                        "pg_stat_replication");
    return rows == name + " sync";
  });
  INFO("pg_stat_replication: " << rows);
  REQUIRE(sync);
}

// SIGCONT for a stopped process, however the test ends.
struct Stopped {
  pid_t pid;
  explicit Stopped(pid_t p) : pid(p) { REQUIRE(::kill(pid, SIGSTOP) == 0); }
  ~Stopped() { resume(); }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;
  void resume() {
    if (pid > 0) {
      ::kill(pid, SIGCONT);
      pid = 0;
    }
  }
};

// The number after "key": in a JSON line; -1 when absent.
long jsonNumber(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\":");
  if (at == std::string::npos) {
    return -1;
  }
  std::size_t i = at + key.size() + 3;
  long n = 0;
  bool digits = false;
  while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) {
    n = n * 10 + (line[i++] - '0');
    digits = true;
  }
  return digits ? n : -1;
}

}  // namespace

TEST_CASE(
    "kill -9 of a primary whose WAL ran past its synchronous standby's: the standby holds "
    "every acknowledged commit, is promoted by the synchronous rule, and no ack is lost",
    "[pg][failover][sync]") {
  TwoNodeCluster cluster;
  const std::string standby = nodeName(cluster.standbyPort());
  const std::string standby_port = std::to_string(cluster.standbyPort());
  nameStandby(cluster, standby);
  synchronousTo(cluster, standby);
  const ScratchFile events(scratchPath("events-sync-election"));
  // max_lag_on_failover stays at its default, 1 MB.
  Pgpivot pgpivot(
      pgpivotOn(cluster, OnCluster().withLog(events.path).withLines("heartbeat_create = on\n")));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  createAckedTable(pgpivot, "acked_sync");
  AckedWriters writers(pgpivot.conninfo(), "acked_sync", 4);
  startWritersOn(writers, std::to_string(cluster.primaryPort()));

  // The standby's WAL receiver stops (SIGSTOP): from now on no commit is acknowledged.
  const std::string receiver = standbyQuery(cluster, "SELECT pid FROM pg_stat_wal_receiver");
  REQUIRE_FALSE(receiver.empty());
  Stopped stopped(static_cast<pid_t>(std::stol(receiver)));
  // The primary writes on: some 70 MB of WAL in a transaction that rolls back (a rollback
  // waits for no standby), far more than the socket buffers (about 9 MB here) carry to
  // the stopped receiver once it runs again.
  REQUIRE(primaryQuery(cluster,
                       "BEGIN; CREATE TABLE filler AS SELECT g, md5(g::text) AS pad "
                       "FROM generate_series(1, 1000000) g; ROLLBACK") ==
          "BEGIN\nSELECT 1000000\nROLLBACK");
  // pgpivot has sampled the primary that far ahead of the standby.
  std::string lag;
  const bool behind = eventually(10s, [&] {
    lag = nodeColumn(admin.get(), standby, "lag_bytes");
    return !lag.empty() && std::isdigit(static_cast<unsigned char>(lag[0])) &&
           std::stol(lag) > 32 * 1024 * 1024;
  });
  INFO("standby lag_bytes seen by pgpivot: " << lag);
  REQUIRE(behind);

  cluster.killPrimary();
  stopped.resume();  // the receiver reads what was sent, finds the primary gone, flushes
  const bool moved = writersMovedTo(writers, standby_port, 40s);
  writers.stop();
  const std::string log = readFile(events.path);
  INFO("writers: " << writers.summary()
                   << "\nSHOW CLUSTERS state: " << clusterColumn(admin.get(), "state") << " ("
                   << clusterColumn(admin.get(), "reason") << ")\nevents:\n"
                   << log);
  REQUIRE(moved);
  CHECK(standbyQuery(cluster, "SELECT pg_is_in_recovery()") == "f");
  checkWritersMoved(writers, pgpivot, standby_port);

  // The election: the standby, eligible by the synchronous rule, though its lag against
  // the old primary's last known position is over max_lag_on_failover.
  const auto election = log.find("\"event\":\"election\"");
  REQUIRE(election != std::string::npos);
  const std::string line = log.substr(election, log.find('\n', election) - election);
  CAPTURE(line);
  CHECK_THAT(line, Catch::Contains("\"chosen\":\"" + standby + "\""));
  CHECK_THAT(line, Catch::Contains("\"rule\":\"synchronous_standby\""));
  CHECK_THAT(line, Catch::Contains("\"sync_state\":\"sync\""));
  CHECK(jsonNumber(line, "lag_bytes") > 1024 * 1024);
  CHECK_THAT(log, !Catch::Contains("\"to\":\"WAIT_OPERATOR\""));
}
