// A cluster's files (failover_log, state_file) named by a relative path live next to the
// config file that names them, whatever directory pgpivot was started from.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("pgpivot-cluster-paths-" + std::to_string(::getpid()) +
                                        "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path file = path / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file.string();
  }
};

constexpr const char* kHead =
    "[pgpivot]\nauth_type = trust\n[databases]\nappdb = cluster=c\n"
    "[cluster.c]\nnodes = a, b\nmonitor_user = m\n";

// Runs with another current directory, restored at the end: relative paths must not
// depend on it.
struct ChangeDir {
  fs::path before = fs::current_path();
  explicit ChangeDir(const fs::path& to) { fs::current_path(to); }
  ~ChangeDir() { fs::current_path(before); }
  ChangeDir(const ChangeDir&) = delete;
  ChangeDir& operator=(const ChangeDir&) = delete;
};

TEST_CASE("a relative state_file is taken from the config file's directory", "[unit][config]") {
  const TempDir dir;
  const std::string main = dir.write("etc/pgpivot.ini", std::string(kHead) +
                                                            "state_file = state/main.json\n"
                                                            "failover_log = failover.jsonl\n");
  const TempDir elsewhere;
  const ChangeDir cd(elsewhere.path);
  const auto result = loadConfig(main);
  INFO(result.report());
  REQUIRE(result.ok());
  const fs::path etc = fs::absolute(dir.path / "etc");
  const ClusterEntry& c = result.config.clusters.at("c");
  CHECK(c.state_file == (etc / "state/main.json").string());
  CHECK(c.failover_log == (etc / "failover.jsonl").string());
}

TEST_CASE("a state_file in an included file is taken from that file's directory",
          "[unit][config]") {
  const TempDir dir;
  dir.write("conf.d/cluster.ini",
            "[cluster.c]\nstate_file = ../run/c.state\nfailover_log = logs/c.jsonl\n");
  const std::string main =
      dir.write("pgpivot.ini", std::string(kHead) + "%include conf.d/cluster.ini\n");
  const auto result = loadConfig(main);
  INFO(result.report());
  REQUIRE(result.ok());
  const fs::path root = fs::absolute(dir.path);
  const ClusterEntry& c = result.config.clusters.at("c");
  CHECK(c.state_file == (root / "run/c.state").string());
  CHECK(c.failover_log == (root / "conf.d/logs/c.jsonl").string());
}

TEST_CASE("absolute and empty cluster paths are kept as they are", "[unit][config]") {
  const TempDir dir;
  const std::string main =
      dir.write("pgpivot.ini", std::string(kHead) + "state_file = /var/lib/pgpivot/c.state\n");
  const auto result = loadConfig(main);
  INFO(result.report());
  REQUIRE(result.ok());
  const ClusterEntry& c = result.config.clusters.at("c");
  CHECK(c.state_file == "/var/lib/pgpivot/c.state");
  CHECK(c.failover_log.empty());  // empty: the main log
}

}  // namespace
}  // namespace pgpivot::config
