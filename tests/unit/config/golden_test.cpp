// Golden configs (tests/data/config/{valid,invalid}/*.ini, each invalid file with the exact
// diagnostics in NAME.expected) and the shipped conf/ files, which must load cleanly and
// document every key with its real default.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = fs::path(PGPIVOT_TEST_DATA_DIR) / "config";
const fs::path kConfDir = fs::path(PGPIVOT_SOURCE_DIR) / "conf";

std::string readText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> readLines(const fs::path& path) {
  std::vector<std::string> lines;
  std::istringstream in(readText(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      lines.push_back(line);
    }
  }
  return lines;
}

// Diagnostics with `dir/` cut out of file names and paths, so the expected files hold
// "bad.ini:3: error: ..." wherever the checkout is.
std::vector<std::string> diagnosticLines(const LoadResult& result, const fs::path& dir) {
  const std::string prefix = dir.string() + "/";
  std::vector<std::string> lines;
  for (const Diagnostic& d : result.diagnostics) {
    std::string line = d.toString();
    for (std::size_t at; (at = line.find(prefix)) != std::string::npos;) {
      line.erase(at, prefix.size());
    }
    lines.push_back(line);
  }
  return lines;
}

std::vector<fs::path> iniFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".ini") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST_CASE("every valid golden config loads with exactly its expected warnings", "[unit][config]") {
  const fs::path dir = kGoldenDir / "valid";
  const auto files = iniFiles(dir);
  REQUIRE(files.size() >= 5);
  for (const fs::path& file : files) {
    CAPTURE(file.filename().string());
    const LoadResult result = loadConfig(file.string());
    INFO(result.report());
    CHECK(result.ok());
    fs::path expected = file;
    expected.replace_extension(".expected");
    const auto want = fs::exists(expected) ? readLines(expected) : std::vector<std::string>{};
    CHECK(diagnosticLines(result, dir) == want);
  }
}

TEST_CASE("every invalid golden config fails with exactly its expected diagnostics",
          "[unit][config]") {
  const fs::path dir = kGoldenDir / "invalid";
  const auto files = iniFiles(dir);
  REQUIRE(files.size() >= 10);
  for (const fs::path& file : files) {
    CAPTURE(file.filename().string());
    fs::path expected = file;
    expected.replace_extension(".expected");
    REQUIRE(fs::exists(expected));
    const LoadResult result = loadConfig(file.string());
    CHECK_FALSE(result.ok());
    CHECK(diagnosticLines(result, dir) == readLines(expected));
  }
}

TEST_CASE("the PgBouncer 1.18 sample parses with no errors and keeps its meaning",
          "[unit][config]") {
  const LoadResult result = loadConfig((kGoldenDir / "valid/pgbouncer-sample.ini").string());
  REQUIRE(result.ok());
  const Config& c = result.config;
  CHECK(c.listen_addr == std::vector<std::string>{"localhost"});
  CHECK(c.auth_type == AuthType::kMd5);
  CHECK(c.admin_users == std::vector<std::string>{"user2", "someadmin", "otheradmin"});
  CHECK(c.pkt_buf == 4096);
  CHECK(c.max_packet_size == 1024LL * 1024 * 1024);
  CHECK(c.databases.size() == 6);
  CHECK(c.databases.at("forcedb").connect_query == "SELECT 1");
  CHECK(c.databases.at("nondefaultdb").reserve_pool_size == 10);
  CHECK(c.users.at("user1").pool_mode == PoolMode::kTransaction);
}

TEST_CASE("the shipped conf files load with no errors and no warnings", "[unit][config]") {
  for (const char* name : {"pgpivot.ini", "pgpivot-minimal.ini"}) {
    CAPTURE(name);
    const LoadResult result = loadConfig((kConfDir / name).string());
    CHECK(result.report().empty());
    CHECK(result.config.listen_addr == std::vector<std::string>{"127.0.0.1"});
    CHECK(result.config.listen_port == 6432);
  }
}

TEST_CASE("the reference conf shows the PgBouncer and cluster database forms", "[unit][config]") {
  const LoadResult result = loadConfig((kConfDir / "pgpivot.ini").string());
  REQUIRE(result.ok());
  CHECK(result.config.databases.at("appdb").cluster == "main");
  CHECK(result.config.databases.at("legacy").host == "127.0.0.1");
  CHECK(result.config.clusters.at("main").nodes.size() == 2);
}

// The reference conf writes each default as a commented-out line `;key = value` in its
// section. These tests keep that documentation true.
std::vector<std::string> commentedSettings(const std::string& text, const std::string& section) {
  static const std::regex kSetting(R"(^;([a-z_0-9]+) =(.*)$)");
  std::vector<std::string> out;
  std::istringstream in(text);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("[")) {
      inside = line == "[" + section + "]";
    } else if (std::smatch m; inside && std::regex_match(line, m, kSetting)) {
      out.push_back(m[1].str() + " =" + m[2].str());
    }
  }
  return out;
}

bool documents(const std::string& text, std::string_view key) {
  const std::regex line("(^|\n);?" + std::string(key) + " =");
  return std::regex_search(text, line);
}

TEST_CASE("the reference conf documents every key", "[unit][config]") {
  const std::string text = readText(kConfDir / "pgpivot.ini");
  for (const auto& list : {supportedPgbouncerKeys(), pgpivotKeys(), clusterKeys()}) {
    for (const std::string_view key : list) {
      CAPTURE(key);
      CHECK(documents(text, key));
    }
  }
  for (const std::string_view key : unsupportedPgbouncerKeys()) {
    CAPTURE(key);
    CHECK(text.find(std::string(key)) != std::string::npos);
  }
}

TEST_CASE("the reference conf's commented [pgpivot] defaults are the real defaults",
          "[unit][config]") {
  const auto lines = commentedSettings(readText(kConfDir / "pgpivot.ini"), "pgpivot");
  REQUIRE(lines.size() >= 40);
  std::string text = "[pgpivot]\n";
  for (const auto& line : lines) {
    text += line + "\n";
  }
  const LoadResult parsed = parseConfig(text, "defaults.ini");
  INFO(parsed.report());
  // No line is rejected; the defaults alone still break a rule (md5 without auth_file),
  // and such a rule names no line.
  CHECK(std::all_of(parsed.diagnostics.begin(), parsed.diagnostics.end(),
                    [](const Diagnostic& d) { return d.line == 0; }));
  const auto want = currentSettings(Config{});
  const auto got = currentSettings(parsed.config);
  REQUIRE(want.size() == got.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(want[i].name);
    CHECK(got[i].value == want[i].value);
  }
}

TEST_CASE("the reference conf's commented cluster defaults are the real defaults",
          "[unit][config]") {
  const auto lines = commentedSettings(readText(kConfDir / "pgpivot.ini"), "cluster.main");
  REQUIRE(lines.size() >= 8);
  std::string text =
      "[pgpivot]\nauth_type = trust\n[databases]\nd = cluster=x\n[cluster.x]\n"
      "nodes = a, b\nmonitor_user = m\n";
  for (const auto& line : lines) {
    text += line + "\n";
  }
  const LoadResult parsed = parseConfig(text, "defaults.ini");
  INFO(parsed.report());
  REQUIRE(parsed.ok());
  const ClusterEntry& got = parsed.config.clusters.at("x");
  const ClusterEntry want;
  CHECK(got.monitor_password == want.monitor_password);
  CHECK(got.monitor_dbname == want.monitor_dbname);
  CHECK(got.failover_mode == want.failover_mode);
  CHECK(got.profile == want.profile);
  CHECK(got.probe_interval == want.probe_interval);
  CHECK(got.probe_timeout == want.probe_timeout);
  CHECK(got.failover_log == want.failover_log);
  CHECK(got.fence_command == want.fence_command);
}

}  // namespace
}  // namespace pgpivot::config
