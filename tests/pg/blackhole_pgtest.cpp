// Scenario 3 of issue 4: the primary disappears from the network without a word. It runs
// in a network namespace the test creates (a veth pair with 10.231.N.1/30 on the host side
// and 10.231.N.2/30 inside), its standby streams from it across the veth, pgpivot routes to
// it across the veth, and then every packet in and out of the namespace is dropped
// (iptables DROP inside it). Nothing is refused or reset: only deadlines can tell.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "acked_writers.hpp"
#include "support/acked_failover.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;

namespace {

const std::string kPgCtl = "/usr/lib/postgresql/15/bin/pg_ctl";

int run(const std::string& command) {
  return std::system(("bash -c '" + command + "' >/dev/null 2>&1").c_str());
}

// The namespace, its veth pair and the primary moved into it. Declared after the
// TwoNodeCluster, so it is torn down first: packets flow again, the primary inside is
// stopped, the namespace (and with it both veth ends) is deleted.
class Namespaced {
 public:
  explicit Namespaced(const TwoNodeCluster& cluster) : cluster_(cluster) {
    const int n = static_cast<int>(::getpid() % 200) + 20;
    ns_ = "pgpv-bh-" + std::to_string(::getpid());
    host_if_ = "pvbh" + std::to_string(::getpid() % 100000);
    ns_if_ = "pvbn" + std::to_string(::getpid() % 100000);
    subnet_ = "10.231." + std::to_string(n) + ".";
    address_ = subnet_ + "2";
  }
  ~Namespaced() {
    if (created_) {
      run("ip netns exec " + ns_ + " iptables -F");
      if (moved_) {
        run("runuser -u postgres -- " + kPgCtl + " -D " + cluster_.primaryData() +
            " -m immediate -w -t 30 stop");
      }
      run("ip netns del " + ns_);
      run("ip link del " + host_if_);
    }
  }
  Namespaced(const Namespaced&) = delete;
  Namespaced& operator=(const Namespaced&) = delete;

  // Empty on success, otherwise what failed (the test then skips, saying so).
  std::string setUp() {
    if (::geteuid() != 0) {
      return "not root: network namespaces need CAP_NET_ADMIN";
    }
    if (run("command -v ip && command -v iptables") != 0) {
      return "ip (iproute2) or iptables is not installed (scripts/deps.sh)";
    }
    if (run("ip netns add " + ns_) != 0) {
      return "ip netns add failed (no network namespaces here)";
    }
    created_ = true;
    const std::string in_ns = "ip netns exec " + ns_ + " ";
    if (run("ip link add " + host_if_ + " type veth peer name " + ns_if_ + " && ip link set " +
            ns_if_ + " netns " + ns_ + " && ip addr add " + subnet_ + "1/30 dev " + host_if_ +
            " && ip link set " + host_if_ + " up && " + in_ns + "ip addr add " + address_ +
            "/30 dev " + ns_if_ + " && " + in_ns + "ip link set " + ns_if_ + " up && " + in_ns +
            "ip link set lo up") != 0) {
      return "could not create the veth pair " + host_if_ + "/" + ns_if_;
    }
    if (run(in_ns + "iptables -S") != 0) {
      return "iptables does not work inside the namespace (no nf_tables/ip_tables support)";
    }
    // The primary: stopped, told to listen on the namespace's address (and to let the
    // host side in), started again inside the namespace.
    const std::string data = cluster_.primaryData();
    const std::string pg_ctl = "runuser -u postgres -- " + kPgCtl + " -D " + data + " -l " + data +
                               "/server.log -w -t 60 ";
    if (run(pg_ctl + "stop -m fast") != 0) {
      return "could not stop the primary to move it";
    }
    {
      std::ofstream conf(data + "/postgresql.conf", std::ios::app);
      conf << "listen_addresses = '" << address_ << "'\n";
      std::ofstream hba(data + "/pg_hba.conf", std::ios::app);
      hba << "host all pgpivot_trust " << subnet_ << "0/30 trust\n"
          << "host all all " << subnet_ << "0/30 scram-sha-256\n"
          << "host replication all " << subnet_ << "0/30 trust\n";
    }
    if (run(in_ns + pg_ctl + "start") != 0) {
      return "could not start the primary inside the namespace";
    }
    moved_ = true;
    // The standby streams from the primary's new address, across the veth.
    const int sport = cluster_.standbyPort();
    const std::string conninfo =
        "host=" + address_ + " port=" + std::to_string(cluster_.primaryPort()) + " user=postgres";
    if (cluster_.query(sport, cluster_.standbyData(),
                       "ALTER SYSTEM SET primary_conninfo = '" + conninfo + "'") == "ERROR" ||
        cluster_.query(sport, cluster_.standbyData(), "SELECT pg_reload_conf()") != "t") {
      return "could not point the standby at " + address_;
    }
    const bool streaming = eventually(std::chrono::seconds(30), [&] {
      return cluster_.query(sport, cluster_.standbyData(),
                            "SELECT sender_host FROM pg_stat_wal_receiver WHERE status = "
                            "'streaming'") == address_;
    });
    return streaming ? "" : "the standby does not stream from " + address_;
  }

  bool blackhole() const {
    const std::string in_ns = "ip netns exec " + ns_ + " iptables ";
    return run(in_ns + "-A INPUT -j DROP && " + in_ns + "-A OUTPUT -j DROP") == 0;
  }
  const std::string& address() const { return address_; }

 private:
  const TwoNodeCluster& cluster_;
  std::string ns_, host_if_, ns_if_, subnet_, address_;
  bool created_ = false;
  bool moved_ = false;
};

}  // namespace

TEST_CASE("in promote mode a blackholed primary is detected by deadlines and replaced",
          "[pg][failover][blackhole]") {
  TwoNodeCluster cluster;
  Namespaced net(cluster);
  const std::string why = net.setUp();
  if (!why.empty()) {
    WARN("SKIPPED: the blackhole test cannot run here: " << why);
    return;
  }
  // Synchronous: an acknowledged write is on the standby, so none may be lost.
  makeSynchronous(cluster);

  const ScratchFile events_file(scratchPath("events-blackhole"));
  const std::string& events = events_file.path;
  const std::string primary = std::to_string(cluster.primaryPort());
  const std::string standby = std::to_string(cluster.standbyPort());
  // pgpivotOn's cluster, with the primary at its address inside the namespace.
  Pgpivot::Options options =
      pgpivotOn(cluster, OnCluster().withLog(events).withLines("heartbeat_create = on\n"));
  std::string& section = options.extra_sections.front();
  const auto at = section.find(nodeName(cluster.primaryPort()));
  REQUIRE(at != std::string::npos);
  section.replace(at, nodeName(cluster.primaryPort()).size(), net.address() + ":" + primary);
  Pgpivot pgpivot(options);
  pgpivot.start();
  createAckedTable(pgpivot);
  Conn conn = connect(pgpivot.conninfo());
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  CHECK(scalar(conn.get(), "SELECT host(inet_server_addr())") == net.address());

  AckedWriters writers(pgpivot.conninfo(), "acked", 4);
  startWritersOn(writers, primary);

  REQUIRE(net.blackhole());
  const bool moved = writersMovedTo(writers, standby, std::chrono::seconds(45));
  writers.stop();
  const std::string log = readFile(events);
  INFO("writers: " << writers.summary() << "\nevents:\n" << log);
  REQUIRE(moved);
  CHECK_THAT(log, Catch::Contains("DOWN:UNRESPONSIVE"));
  CHECK_THAT(log, Catch::Contains("timeout"));
  CHECK_THAT(log, Catch::Contains("\"event\":\"witness\""));
  CHECK_THAT(log, Catch::Contains("PROMOTING"));
  checkWritersMoved(writers, pgpivot, standby);
}
