// The INI reader: sections, keys, line numbers, inih's quirks and PgBouncer's %include.
#include "pgpivot/config/parser.hpp"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace pgpivot::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::string> lines(const LoadResult& result) {
  std::vector<std::string> out;
  for (const Diagnostic& d : result.diagnostics) {
    out.push_back(d.toString());
  }
  return out;
}

LoadResult parse(std::string_view text) {
  return parseConfig(text, "t.ini");
}

// A fresh directory under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    // ctest runs test cases as parallel processes: the pid keeps their directories apart.
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("pgpivot-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& name, std::string_view text) const {
    const fs::path file = path / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file.string();
  }
};

TEST_CASE("the [pgbouncer] section is read as [pgpivot]", "[unit][config]") {
  const auto result = parse(
      "[pgbouncer]\nauth_type = trust\npool_mode = transaction\n"
      "listen_port = 7000\n");
  CHECK(lines(result).empty());
  CHECK(result.config.pool_mode == PoolMode::kTransaction);
  CHECK(result.config.listen_port == 7000);
}

TEST_CASE("section names and [pgpivot] keys are not case sensitive", "[unit][config]") {
  const auto result = parse("[PgPivot]\nAuth_Type = trust\nDEFAULT_POOL_SIZE = 3\n");
  CHECK(lines(result).empty());
  CHECK(result.config.default_pool_size == 3);
}

TEST_CASE("a file without settings gives every default", "[unit][config]") {
  const auto result = parse("; nothing here\n\n");
  const Config defaults;
  CHECK(result.config.listen_addr == defaults.listen_addr);
  CHECK(result.config.listen_port == 6432);
  CHECK(result.config.server_lifetime == 3600s);
  CHECK(result.config.databases.empty());
  // The default auth_type md5 has no password source: the one rule a blank file breaks.
  CHECK(lines(result) ==
        std::vector<std::string>{
            "t.ini: error: auth_type md5 needs passwords: set auth_file, or auth_user with "
            "auth_query"});
}

TEST_CASE("every value kind lands in its Config field", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\n"
      "auth_type = scram-sha-256\nauth_file = /etc/pgpivot/userlist.txt\n"
      "listen_addr = 10.0.0.1, 10.0.0.2\nunix_socket_dir =\n"
      "admin_users = alice, bob\nstats_users = carol\n"
      "ignore_startup_parameters = extra_float_digits,search_path\n"
      "server_lifetime = 2min\nquery_wait_timeout = 0.5\n"
      "server_reset_query_always = yes\nlog_connections = off\n"
      "max_packet_size = 16MB\npkt_buf = 8kB\nworkers = 4\nverbose = 2\n"
      "admin_port = 0\nmetrics_port = 9187\nmax_client_conn = 5000\n");
  INFO(result.report());
  REQUIRE(result.ok());
  const Config& c = result.config;
  CHECK(c.auth_type == AuthType::kScramSha256);
  CHECK(c.auth_file == "/etc/pgpivot/userlist.txt");
  CHECK(c.listen_addr == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  CHECK(c.unix_socket_dir.empty());
  CHECK(c.admin_users == std::vector<std::string>{"alice", "bob"});
  CHECK(c.stats_users == std::vector<std::string>{"carol"});
  CHECK(c.ignore_startup_parameters.size() == 2);
  CHECK(c.server_lifetime == 120s);
  CHECK(c.query_wait_timeout == 500ms);
  CHECK(c.server_reset_query_always);
  CHECK_FALSE(c.log_connections);
  CHECK(c.max_packet_size == 16 * 1024 * 1024);
  CHECK(c.pkt_buf == 8192);
  CHECK(c.workers == 4);
  CHECK(c.verbose == 2);
  CHECK(c.admin_port == 0);
  CHECK(c.metrics_port == 9187);
  CHECK(c.max_client_conn == 5000);
}

TEST_CASE("listen_addr = * means every address", "[unit][config]") {
  const auto result = parse("[pgpivot]\nauth_type = any\nlisten_addr = *\n");
  CHECK(lines(result).empty());
  CHECK(result.config.listen_addr == std::vector<std::string>{"*"});
}

TEST_CASE("database lines take PgBouncer's connection string keys", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\n[databases]\n"
      "forcedb = host=localhost port=300 user=baz password='p w' client_encoding=UNICODE "
      "datestyle=ISO timezone=UTC application_name=app connect_query='SELECT 1'\n"
      "sized = pool_size=50 min_pool_size=5 reserve_pool=10 max_db_connections=60 "
      "pool_mode=statement auth_user=lookup dbname=real\n"
      "foodb =\n"
      "* = host=fallback\n"
      "\"my db\" = host=x reserve_pool_size=3\n");
  INFO(result.report());
  REQUIRE(result.ok());
  const auto& dbs = result.config.databases;
  REQUIRE(dbs.size() == 5);
  const DatabaseEntry& force = dbs.at("forcedb");
  CHECK(force.host == "localhost");
  CHECK(force.port == 300);
  CHECK(force.user == "baz");
  CHECK(force.password == "p w");
  CHECK(force.client_encoding == "UNICODE");
  CHECK(force.datestyle == "ISO");
  CHECK(force.timezone == "UTC");
  CHECK(force.application_name == "app");
  CHECK(force.connect_query == "SELECT 1");
  CHECK(force.line == 4);
  CHECK_FALSE(force.pool_size);
  const DatabaseEntry& sized = dbs.at("sized");
  CHECK(sized.pool_size == 50);
  CHECK(sized.min_pool_size == 5);
  CHECK(sized.reserve_pool_size == 10);
  CHECK(sized.max_db_connections == 60);
  CHECK(sized.pool_mode == PoolMode::kStatement);
  CHECK(sized.auth_user == "lookup");
  CHECK(sized.dbname == "real");
  CHECK(dbs.at("foodb").host.empty());
  CHECK(dbs.at("foodb").dbname.empty());  // empty: same as the name clients use
  CHECK(dbs.at("*").host == "fallback");
  CHECK(dbs.at("my db").reserve_pool_size == 3);
}

TEST_CASE("user lines take pool_mode, pool_size and max_user_connections", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\n[users]\n"
      "alice = pool_mode=transaction max_user_connections=10 pool_size=4\n"
      "bob =\n");
  REQUIRE(result.ok());
  const UserEntry& alice = result.config.users.at("alice");
  CHECK(alice.pool_mode == PoolMode::kTransaction);
  CHECK(alice.max_user_connections == 10);
  CHECK(alice.pool_size == 4);
  CHECK(alice.line == 4);
  CHECK_FALSE(result.config.users.at("bob").pool_mode);
}

TEST_CASE("cluster sections fill every ClusterEntry field", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\n[databases]\nappdb = cluster=main\n"
      "[cluster.main]\nnodes = 10.0.0.1:5432, 10.0.0.2, [::1]:6000\nmonitor_user = mon\n"
      "monitor_password = secret value\nmonitor_dbname = mdb\nfailover_mode = promote\n"
      "profile = SAFE\nprobe_interval = 250ms\nprobe_timeout = 2\n"
      "failover_log = failover.jsonl\nfence_command = /bin/fence %h\n");
  INFO(result.report());
  REQUIRE(result.ok());
  const ClusterEntry& c = result.config.clusters.at("main");
  CHECK(c.name == "main");
  CHECK(c.line == 5);
  REQUIRE(c.nodes.size() == 3);
  CHECK(c.nodes[1].port == 5432);
  CHECK(c.nodes[2].host == "::1");
  CHECK(c.monitor_user == "mon");
  CHECK(c.monitor_password == "secret value");
  CHECK(c.monitor_dbname == "mdb");
  CHECK(c.failover_mode == FailoverMode::kPromote);
  CHECK(c.profile == "safe");
  CHECK(c.probe_interval == 250ms);
  CHECK(c.probe_timeout == 2s);
  CHECK(c.failover_log == "failover.jsonl");
  CHECK(c.fence_command == "/bin/fence %h");
  CHECK(result.config.databases.at("appdb").cluster == "main");
}

TEST_CASE("diagnostics name the physical line, past comments, blank lines and CRLF",
          "[unit][config]") {
  const auto result = parse(
      "; one\r\n\r\n# three\r\n[pgpivot]\r\n  ; five\r\nauth_type = trust\r\n"
      "\r\nlisten_port = x\r\n");
  CHECK(lines(result) ==
        std::vector<std::string>{
            "t.ini:8: error: listen_port: invalid value 'x': expected an integer"});
}

TEST_CASE("every problem in a file is reported in one run, in file order", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\nlisten_port = x\nworkers = -1\n"
      "nonsense\nverbose = y\n");
  CHECK_FALSE(result.ok());
  CHECK(lines(result) ==
        std::vector<std::string>{
            "t.ini:3: error: listen_port: invalid value 'x': expected an integer",
            "t.ini:4: error: workers: invalid value '-1': must be between 0 and 1024",
            "t.ini:5: error: syntax error: expected 'key = value'",
            "t.ini:6: error: verbose: invalid value 'y': expected an integer"});
}

TEST_CASE("indented lines are ordinary lines, never inih continuation lines", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\nserver_reset_query = DISCARD ALL\n"
      "    pool_mode = transaction\n\tdefault_pool_size = 7\n");
  CHECK(lines(result).empty());
  CHECK(result.config.server_reset_query == "DISCARD ALL");
  CHECK(result.config.pool_mode == PoolMode::kTransaction);
  CHECK(result.config.default_pool_size == 7);
}

TEST_CASE("a semicolon after a blank ends the value, any other semicolon and a # belong to it",
          "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust ; trust everyone\n"
      "server_reset_query = RESET ALL;DISCARD PLANS\n"
      "server_check_query = select 1 # not a comment\n");
  CHECK(lines(result).empty());
  CHECK(result.config.auth_type == AuthType::kTrust);
  CHECK(result.config.server_reset_query == "RESET ALL;DISCARD PLANS");
  CHECK(result.config.server_check_query == "select 1 # not a comment");
}

TEST_CASE("a line of 199 characters is read and one of 200 is refused", "[unit][config]") {
  const std::string head = "server_reset_query = ";
  const std::string fits = head + std::string(199 - head.size(), 'x');
  const std::string too_long = head + std::string(200 - head.size(), 'x');
  const auto ok = parse("[pgpivot]\nauth_type = trust\n" + fits + "\n");
  CHECK(lines(ok).empty());
  CHECK(ok.config.server_reset_query.size() == 199 - head.size());
  const auto bad = parse("[pgpivot]\nauth_type = trust\n" + too_long + "\nverbose = 1\n");
  CHECK(lines(bad) ==
        std::vector<std::string>{"t.ini:3: error: line too long (at most 199 characters)"});
  CHECK(bad.config.server_reset_query == "DISCARD ALL");  // not half of the long line
  CHECK(bad.config.verbose == 1);                         // and the next line still counts
}

TEST_CASE("comment lines may be longer than the line limit", "[unit][config]") {
  const auto result = parse("; " + std::string(500, '=') + "\n[pgpivot]\nauth_type = trust\n");
  CHECK(lines(result).empty());
}

TEST_CASE("a too long cluster line does not also report its key as missing", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\n[databases]\nappdb = cluster=c\n"
      "[cluster.c]\nmonitor_user = m\nnodes = " +
      std::string(200, 'n') + "\n");
  CHECK(lines(result) ==
        std::vector<std::string>{"t.ini:7: error: line too long (at most 199 characters)"});
}

TEST_CASE("a NUL byte in a line is refused", "[unit][config]") {
  const char text[] = "[pgpivot]\nauth_type = trust\nverbose = 1\0x\n";
  const auto result = parse(std::string(text, sizeof(text) - 1));
  CHECK(lines(result) == std::vector<std::string>{"t.ini:3: error: line contains a NUL byte"});
}

TEST_CASE("a UTF-8 byte order mark before the first line is skipped", "[unit][config]") {
  const auto result = parse("\xEF\xBB\xBF[pgpivot]\nauth_type = trust\n");
  CHECK(lines(result).empty());
}

TEST_CASE("unknown keys warn, name the section and suggest the key that was meant",
          "[unit][config]") {
  const auto result = parse(
      "[pgbouncer]\nauth_type = trust\nmax_client_con = 5\n"
      "[pgpivot]\ncompletely_unknown = 1\n");
  CHECK(result.ok());
  CHECK(lines(result) ==
        std::vector<std::string>{
            "t.ini:3: warning: unknown key 'max_client_con' in [pgbouncer], ignored (did you "
            "mean 'max_client_conn'?)",
            "t.ini:5: warning: unknown key 'completely_unknown' in [pgpivot], ignored"});
}

TEST_CASE("every PgBouncer key pgpivot does not implement is accepted with a warning",
          "[unit][config]") {
  for (const std::string_view key : unsupportedPgbouncerKeys()) {
    CAPTURE(key);
    // "disable" and "0" are values no refusal applies to.
    const std::string value = key.find("sslmode") != std::string_view::npos ? "disable" : "0";
    const auto result =
        parse("[pgbouncer]\nauth_type = trust\n" + std::string(key) + " = " + value + "\n");
    CHECK(result.ok());
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(result.diagnostics[0].level == Diagnostic::Level::kWarning);
    CHECK(result.diagnostics[0].line == 3);
    CHECK(result.diagnostics[0].message.starts_with(std::string(key) +
                                                    " is not supported yet, ignored"));
  }
}

TEST_CASE("an unsupported key with an empty value asks for nothing and is not reported",
          "[unit][config]") {
  const auto result = parse("[pgbouncer]\nauth_type = trust\nclient_tls_key_file =\n");
  CHECK(lines(result).empty());
}

TEST_CASE("unsupported keys that would weaken security are refused, not ignored",
          "[unit][config]") {
  const auto [line, refused] = GENERATE(table<std::string, bool>({
      {"client_tls_sslmode = require", true},
      {"client_tls_sslmode = verify-full", true},
      {"client_tls_sslmode = prefer", false},
      {"server_tls_sslmode = verify-ca", true},
      {"server_tls_sslmode = prefer", false},
      {"disable_pqexec = 1", true},
      {"disable_pqexec = 0", false},
  }));
  CAPTURE(line);
  const auto result = parse("[pgbouncer]\nauth_type = trust\n" + line + "\n");
  CHECK(result.ok() == !refused);
}

TEST_CASE("the key lists are sorted, disjoint and describe the table", "[unit][config]") {
  const auto supported = supportedPgbouncerKeys();
  const auto unsupported = unsupportedPgbouncerKeys();
  const auto own = pgpivotKeys();
  CHECK(std::is_sorted(supported.begin(), supported.end()));
  CHECK(std::is_sorted(unsupported.begin(), unsupported.end()));
  CHECK(std::is_sorted(own.begin(), own.end()));
  auto contains = [](const auto& list, std::string_view key) {
    return std::find(list.begin(), list.end(), key) != list.end();
  };
  for (const auto key : supported) {
    CAPTURE(key);
    CHECK_FALSE(contains(unsupported, key));
    CHECK_FALSE(contains(own, key));
  }
  CHECK(contains(supported, "pool_mode"));
  CHECK(contains(supported, "max_packet_size"));
  CHECK(contains(unsupported, "client_tls_sslmode"));
  CHECK(contains(unsupported, "tcp_socket_buffer"));
  CHECK(contains(supported, "tcp_user_timeout"));
  CHECK(own == std::vector<std::string_view>{"admin_listen_addr", "admin_port", "metrics_port",
                                             "worker_spill_load", "workers"});
  CHECK(clusterKeys().size() == 29);
}

TEST_CASE("current settings show defaults as PgBouncer's SHOW CONFIG does", "[unit][config]") {
  std::map<std::string, std::string> settings;
  for (const Setting& s : currentSettings(Config{})) {
    settings[std::string(s.name)] = s.value;
  }
  CHECK(settings.size() == supportedPgbouncerKeys().size() + pgpivotKeys().size());
  CHECK(settings.at("server_lifetime") == "3600");
  CHECK(settings.at("pool_mode") == "session");
  CHECK(settings.at("auth_type") == "md5");
  CHECK(settings.at("listen_addr") == "127.0.0.1");
  CHECK(settings.at("log_connections") == "1");
  CHECK(settings.at("max_packet_size") == "1073741824");
}

TEST_CASE("current settings written back as a file give the same settings", "[unit][config]") {
  const auto first = parse(
      "[pgpivot]\nauth_type = trust\nlisten_addr = a, b\npool_mode = statement\n"
      "reserve_pool_timeout = 1.5\nserver_reset_query_always = on\n"
      "admin_users = x, y\nunix_socket_dir =\n");
  REQUIRE(first.ok());
  std::string text = "[pgpivot]\n";
  for (const Setting& s : currentSettings(first.config)) {
    text += std::string(s.name) + " = " + s.value + "\n";
  }
  const auto second = parse(text);
  INFO(second.report());
  REQUIRE(second.ok());
  const auto a = currentSettings(first.config);
  const auto b = currentSettings(second.config);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(a[i].name);
    CHECK(a[i].value == b[i].value);
  }
}

TEST_CASE("[peers] and unknown sections warn once and their keys are skipped", "[unit][config]") {
  const auto result = parse(
      "[pgpivot]\nauth_type = trust\n[peers]\n1 = host=a\n2 = host=b\n"
      "[extras]\nwhatever = 1\n");
  CHECK(result.ok());
  CHECK(lines(result) ==
        std::vector<std::string>{
            "t.ini:3: warning: section [peers] is not supported yet, its entries are ignored",
            "t.ini:6: warning: unknown section [extras], its keys are ignored"});
}

TEST_CASE("keys after a broken section header are not applied to the previous section",
          "[unit][config]") {
  const auto result = parse("[pgpivot]\nauth_type = trust\n[databases\nlisten_port = 1\n");
  CHECK(result.config.listen_port == 6432);
  CHECK(lines(result) ==
        std::vector<std::string>{"t.ini:3: error: malformed section header: missing ']'"});
}

TEST_CASE("diagnostics print as file:line: level: message", "[unit][config]") {
  CHECK(Diagnostic{Diagnostic::Level::kError, "a.ini", 3, "bad"}.toString() ==
        "a.ini:3: error: bad");
  CHECK(Diagnostic{Diagnostic::Level::kWarning, "a.ini", 0, "meh"}.toString() ==
        "a.ini: warning: meh");
  CHECK(Diagnostic{Diagnostic::Level::kError, "", 0, "no file"}.toString() == "error: no file");
}

TEST_CASE("a result with only warnings is ok", "[unit][config]") {
  LoadResult result;
  result.diagnostics.push_back(Diagnostic{Diagnostic::Level::kWarning, "f", 1, "w"});
  CHECK(result.ok());
  result.diagnostics.push_back(Diagnostic{Diagnostic::Level::kError, "f", 2, "e"});
  CHECK_FALSE(result.ok());
  CHECK(result.report() == "f:1: warning: w\nf:2: error: e\n");
}

TEST_CASE("a config file that cannot be read is one error on line 0", "[unit][config]") {
  const TempDir dir;
  const std::string missing = (dir.path / "missing.ini").string();
  const auto result = loadConfig(missing);
  CHECK(lines(result) ==
        std::vector<std::string>{missing +
                                 ": error: cannot read config file: No such file or directory"});
  const auto directory = loadConfig(dir.path.string());
  CHECK_FALSE(directory.ok());
}

TEST_CASE("relative paths are taken from the directory of the file that names them",
          "[unit][config]") {
  const TempDir dir;
  dir.write("users.txt", "\"a\" \"b\"\n");
  dir.write("sub/users2.txt", "\"a\" \"b\"\n");
  dir.write("sub/more.ini", "auth_file = users2.txt\nlogfile = log/pgpivot.log\n");
  const std::string main =
      dir.write("pgpivot.ini",
                "[pgpivot]\nauth_type = md5\nauth_file = users.txt\npidfile = run/p.pid\n"
                "[databases]\nappdb = cluster=c\n[cluster.c]\nnodes = a, b\nmonitor_user = m\n"
                "failover_log = failover.jsonl\n[pgpivot]\n%include sub/more.ini\n");
  const auto result = loadConfig(main);
  INFO(result.report());
  REQUIRE(result.ok());
  const fs::path root = fs::absolute(dir.path);
  CHECK(result.config.path == (root / "pgpivot.ini").string());
  CHECK(result.config.auth_file == (root / "sub/users2.txt").string());
  CHECK(result.config.logfile == (root / "sub/log/pgpivot.log").string());
  CHECK(result.config.pidfile == (root / "run/p.pid").string());
  CHECK(result.config.clusters.at("c").failover_log == (root / "failover.jsonl").string());
}

TEST_CASE("absolute paths are kept and parseConfig resolves nothing", "[unit][config]") {
  const auto parsed = parse("[pgpivot]\nauth_type = trust\nlogfile = rel.log\npidfile = /run/p\n");
  CHECK(parsed.config.logfile == "rel.log");
  CHECK(parsed.config.pidfile == "/run/p");
}

TEST_CASE("an auth_file the auth_type needs must be readable", "[unit][config]") {
  const TempDir dir;
  const std::string md5 = dir.write("a.ini", "[pgpivot]\nauth_type = md5\nauth_file = nope.txt\n");
  const auto result = loadConfig(md5);
  REQUIRE(result.diagnostics.size() == 1);
  CHECK(result.diagnostics[0].line == 3);
  CHECK(result.diagnostics[0].message == "auth_file " +
                                             (fs::absolute(dir.path) / "nope.txt").string() +
                                             ": cannot read: No such file or directory");
  CHECK_FALSE(result.ok());
  const std::string any = dir.write("b.ini", "[pgpivot]\nauth_type = any\nauth_file = nope.txt\n");
  CHECK(loadConfig(any).ok());  // any never reads it: a warning only
}

TEST_CASE("%include reads the file in place, in the current section", "[unit][config]") {
  const TempDir dir;
  dir.write("inc/pool.ini", "; comment\npool_mode = transaction\nlisten_port = bad\n");
  dir.write("inc/dbs.ini", "appdb = host=h\n[pgpivot]\ndefault_pool_size = 3\n");
  const std::string main =
      dir.write("main.ini",
                "[pgpivot]\nauth_type = trust\n%include inc/pool.ini\nverbose = 1\n"
                "[databases]\n  %include   inc/dbs.ini\nmax_client_conn = 9\n");
  const auto result = loadConfig(main);
  CHECK(result.config.pool_mode == PoolMode::kTransaction);
  CHECK(result.config.verbose == 1);
  CHECK(result.config.databases.count("appdb") == 1);
  CHECK(result.config.default_pool_size == 3);
  CHECK(result.config.max_client_conn == 9);  // the included file's last section carries on
  const std::string inc = (dir.path / "inc/pool.ini").lexically_normal().string();
  CHECK(lines(result) ==
        std::vector<std::string>{inc + ":3: error: listen_port: invalid value 'bad': expected an "
                                       "integer"});
}

TEST_CASE("%include refuses missing files, cycles and deep nesting", "[unit][config]") {
  const TempDir dir;
  SECTION("missing") {
    const auto result = parseConfig("[pgpivot]\nauth_type = trust\n%include none.ini\n",
                                    (dir.path / "m.ini").string());
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(result.diagnostics[0].line == 3);
    CHECK(result.diagnostics[0].message.ends_with(
        "none.ini: cannot read: No such file or directory"));
  }
  SECTION("a file that includes itself") {
    const std::string self =
        dir.write("self.ini", "[pgpivot]\nauth_type = trust\n%include self.ini\n");
    const auto result = loadConfig(self);
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(result.diagnostics[0].message.ends_with("already being read (an include cycle)"));
  }
  SECTION("eleven levels deep") {
    for (int i = 0; i < 11; ++i) {
      dir.write("n" + std::to_string(i) + ".ini", "%include n" + std::to_string(i + 1) + ".ini\n");
    }
    dir.write("n11.ini", "verbose = 3\n");
    const std::string main =
        dir.write("top.ini", "[pgpivot]\nauth_type = trust\n%include n0.ini\n");
    const auto result = loadConfig(main);
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(result.diagnostics[0].file == (dir.path / "n9.ini").string());
    CHECK(result.diagnostics[0].message.ends_with("nested more than 10 levels deep"));
    CHECK(result.config.verbose == 0);
  }
}

}  // namespace
}  // namespace pgpivot::config
