#include "support/cluster_fixture.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace pgpivot::test {

namespace {

std::string sourceDir() {
  return PGPIVOT_SOURCE_DIR_FOR_TESTS;
}

// Runs a shell command; returns its stdout, fails the test on a non-zero exit.
std::string shell(const std::string& command, bool must_succeed = true) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  if (must_succeed && status != 0) {
    FAIL("command failed (" << status << "): " << command << "\n" << output);
  }
  while (!output.empty() && output.back() == '\n') {
    output.pop_back();
  }
  return output;
}

std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return children;
  }
  while (dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) {
      continue;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) {
      continue;
    }
    std::istringstream rest(line.substr(close_paren + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) {
      children.push_back(pid);
    }
  }
  ::closedir(proc);
  return children;
}

}  // namespace

std::string scratchPath(const std::string& tag) {
  return "/tmp/pgpivot-" + tag + "-" + std::to_string(::getpid());
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string nodeName(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

ScratchFile::~ScratchFile() {
  ::unlink(path.c_str());
}

TwoNodeCluster::TwoNodeCluster() {
  char pattern[] = "/tmp/pgpivot-cluster.XXXXXX";
  const char* dir = ::mkdtemp(pattern);
  REQUIRE(dir != nullptr);
  dir_ = dir;
  const std::string script = sourceDir() + "/scripts/cluster.sh";
  shell("bash " + script + " start " + dir_ + " >/dev/null 2>&1 || (cat " + dir_ +
        "/*/server.log >&2; exit 1)");
  std::ifstream env(dir_ + "/cluster.env");
  std::string line;
  while (std::getline(env, line)) {
    const auto eq = line.find('=');
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key == "CLUSTER_PRIMARY_DATA") {
      primary_data_ = value;
    } else if (key == "CLUSTER_PRIMARY_PORT") {
      primary_port_ = std::stoi(value);
    } else if (key == "CLUSTER_STANDBY_DATA") {
      standby_data_ = value;
    } else if (key == "CLUSTER_STANDBY_PORT") {
      standby_port_ = std::stoi(value);
    }
  }
  REQUIRE(primary_port_ > 0);
  REQUIRE(standby_port_ > 0);
  shell("bash -c 'source " + sourceDir() + "/tests/support/pg_common.sh && pg_create_test_roles " +
        primary_data_ + " " + std::to_string(primary_port_) + "'");
  waitReplayed();
}

void TwoNodeCluster::waitReplayed() {
  std::vector<Node> standbys{{standby_data_, standby_port_}};
  standbys.insert(standbys.end(), extra_standbys_.begin(), extra_standbys_.end());
  for (const Node& standby : standbys) {
    shell("bash -c 'source " + sourceDir() + "/tests/support/pg_common.sh && pg_wait_replayed " +
          primary_data_ + " " + std::to_string(primary_port_) + " " + standby.data + " " +
          std::to_string(standby.port) + " 30'");
  }
}

void TwoNodeCluster::addStandby() {
  const std::string slot = "pgpivot_standby" + std::to_string(extra_standbys_.size() + 2);
  const std::string data = dir_ + "/" + slot;
  std::string ports = std::to_string(primary_port_) + " " + std::to_string(standby_port_);
  for (const Node& n : extra_standbys_) {
    ports += " " + std::to_string(n.port);
  }
  // Listed before it starts, so that the destructor stops it whatever happens next.
  extra_standbys_.push_back({data, 0});
  const std::string port = shell(
      "bash -c 'source " + sourceDir() + "/scripts/cluster.sh && cd / && p=$(cluster_free_port " +
      ports + ") && pg_make_standby " + std::to_string(primary_port_) + " " + data + " $p " + slot +
      " >&2 && pg_start " + data + " >&2 && pg_wait_ready " + data +
      " $p 60 >&2 && pg_wait_streaming " + primary_data_ + " " + std::to_string(primary_port_) +
      " " + std::to_string(extra_standbys_.size() + 1) + " 60 >&2 && echo $p'");
  extra_standbys_.back().port = std::stoi(port);
}

ThreeNodeCluster::ThreeNodeCluster() {
  addStandby();
  waitReplayed();
}

TwoNodeCluster::~TwoNodeCluster() {
  // A stopped process cannot be shut down.
  freezeNode(primary_data_, false);
  freezeNode(standby_data_, false);
  for (const Node& n : extra_standbys_) {
    freezeNode(n.data, false);
    stopNode(n.data);  // cluster.sh knows only the first two nodes
  }
  shell("bash " + sourceDir() + "/scripts/cluster.sh destroy " + dir_ + " >/dev/null 2>&1", false);
}

pid_t TwoNodeCluster::postmasterPid(const std::string& data) const {
  std::ifstream pidfile(data + "/postmaster.pid");
  pid_t pid = -1;
  if (!(pidfile >> pid)) {
    return -1;
  }
  return pid;
}

void TwoNodeCluster::killPrimary() {
  const pid_t pid = postmasterPid(primary_data_);
  REQUIRE(pid > 0);
  ::kill(pid, SIGKILL);
}

void TwoNodeCluster::freezePrimary(bool frozen) {
  freezeNode(primary_data_, frozen);
}

void TwoNodeCluster::freezeNode(const std::string& data, bool frozen, bool postmaster_only) {
  const pid_t pid = postmasterPid(data);
  if (pid <= 0) {
    return;
  }
  const int signum = frozen ? SIGSTOP : SIGCONT;
  ::kill(pid, signum);
  if (postmaster_only) {
    return;
  }
  for (const pid_t child : childrenOf(pid)) {
    ::kill(child, signum);
  }
}

void TwoNodeCluster::stopNode(const std::string& data) {
  shell("bash -c 'source " + sourceDir() + "/tests/support/pg_common.sh && pg_stop " + data + "'",
        false);
}

void TwoNodeCluster::startNode(const std::string& data) {
  shell("runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D " + data + " -l " + data +
        "/server.log -W start >/dev/null 2>&1");
}

void TwoNodeCluster::promoteStandby() {
  shell("bash -c 'source " + sourceDir() + "/tests/support/pg_common.sh && pg_promote " +
        standby_data_ + " " + std::to_string(standby_port_) + "' >/dev/null");
}

std::string TwoNodeCluster::clusterSection(const std::string& extra) const {
  std::string section =
      "[cluster.main]\nnodes = " + nodeName(primary_port_) + ", " + nodeName(standby_port_);
  for (const Node& n : extra_standbys_) {
    section += ", " + nodeName(n.port);
  }
  section += "\nmonitor_user = pgpivot_trust\nmonitor_dbname = postgres\n";
  return section + extra;
}

std::string TwoNodeCluster::query(int port, const std::string& data, const std::string& sql) const {
  return shell("runuser -u postgres -- /usr/lib/postgresql/15/bin/psql -X -A -t -h " + data +
                   " -p " + std::to_string(port) + " -U postgres -d postgres -c \"" + sql + "\"",
               false);
}

Pgpivot::Options pgpivotOn(const TwoNodeCluster& cluster, const OnCluster& on) {
  std::string section = "failover_mode = " + on.mode +
                        "\nprofile = fast\nprobe_interval = 0.2\nprobe_timeout = 0.5\n"
                        "failover_cooldown = 0\n";
  if (!on.failover_log.empty()) {
    section += "failover_log = " + on.failover_log + "\n";
  }
  if (!on.state_file.empty()) {
    section += "state_file = " + on.state_file + "\n";
  }
  Pgpivot::Options options;
  options.databases = {{"appdb", "cluster=main dbname=appdb"}};
  options.extra_sections = {cluster.clusterSection(section + on.extra)};
  options.settings["pool_mode"] = "transaction";
  options.settings["query_wait_timeout"] = "60";
  options.settings["admin_users"] = kScramUser;
  return options;
}

void waitSteady(PGconn* admin) {
  std::string state;
  const bool steady = eventually(std::chrono::seconds(15), [&] {
    state = clusterColumn(admin, "state");
    return state == "STEADY";
  });
  INFO("SHOW CLUSTERS state: " << state);
  REQUIRE(steady);
}

std::string clusterColumn(PGconn* admin, const std::string& column) {
  Res clusters(PQexec(admin, "SHOW CLUSTERS"));
  if (PQresultStatus(clusters.get()) != PGRES_TUPLES_OK) {
    return "error";
  }
  const int field = PQfnumber(clusters.get(), column.c_str());
  if (PQntuples(clusters.get()) < 1 || field < 0) {
    return "missing";
  }
  return PQgetvalue(clusters.get(), 0, field);
}

std::string nodeColumn(PGconn* admin, const std::string& node, const std::string& column) {
  Res nodes(PQexec(admin, "SHOW NODES"));
  if (PQresultStatus(nodes.get()) != PGRES_TUPLES_OK) {
    return "error";
  }
  const int name = PQfnumber(nodes.get(), "node");
  const int field = PQfnumber(nodes.get(), column.c_str());
  for (int r = 0; name >= 0 && field >= 0 && r < PQntuples(nodes.get()); ++r) {
    if (PQgetvalue(nodes.get(), r, name) == node) {
      return PQgetvalue(nodes.get(), r, field);
    }
  }
  return "missing";
}

RouteWatch::RouteWatch(const Pgpivot& pgpivot)
    : admin_(connect(pgpivot.conninfo(kScramUser, "pgpivot"))) {
  INFO(errorOf(admin_.get()));
  REQUIRE(PQstatus(admin_.get()) == CONNECTION_OK);
  thread_ = std::thread([this] {
    while (!stopping_) {
      const std::string primary = clusterColumn(admin_.get(), "primary");
      {
        std::lock_guard lock(mutex_);
        ++samples_;
        if (changes_.empty() || changes_.back() != primary) {
          changes_.push_back(primary);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

RouteWatch::~RouteWatch() {
  stop();
}

void RouteWatch::stop() {
  stopping_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::vector<std::string> RouteWatch::changes() const {
  std::lock_guard lock(mutex_);
  return changes_;
}

int RouteWatch::samples() const {
  std::lock_guard lock(mutex_);
  return samples_;
}

std::string RouteWatch::describe() const {
  std::lock_guard lock(mutex_);
  std::string out = std::to_string(samples_) + " samples of the routed primary:";
  for (const std::string& c : changes_) {
    out += " -> " + (c.empty() ? std::string("(none)") : c);
  }
  return out;
}

}  // namespace pgpivot::test
