// Cross-field rules, each on a Config built in code (as a reload or a test would) and, where
// the line matters, on parsed text.
#include <catch2/catch.hpp>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

using namespace std::chrono_literals;

// A Config that passes every rule, to break one rule at a time.
Config validConfig() {
  Config c;
  c.path = "v.ini";
  c.auth_type = AuthType::kTrust;
  return c;
}

ClusterEntry cluster(std::string name, std::vector<NodeAddress> nodes) {
  ClusterEntry c;
  c.name = std::move(name);
  c.nodes = std::move(nodes);
  c.monitor_user = "mon";
  return c;
}

DatabaseEntry database(std::string name, std::string cluster_name = {}) {
  DatabaseEntry db;
  db.name = std::move(name);
  db.cluster = std::move(cluster_name);
  return db;
}

// A valid config with cluster "main" of `nodes` used by database appdb.
Config withCluster(std::vector<NodeAddress> nodes, FailoverMode mode) {
  Config c = validConfig();
  c.clusters["main"] = cluster("main", std::move(nodes));
  c.clusters["main"].failover_mode = mode;
  c.databases["appdb"] = database("appdb", "main");
  return c;
}

std::vector<std::string> messages(const std::vector<Diagnostic>& diagnostics,
                                  Diagnostic::Level level = Diagnostic::Level::kError) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) {
    if (d.level == level) {
      out.push_back(d.message);
    }
  }
  return out;
}

std::vector<std::string> errors(const Config& c) {
  return messages(validate(c));
}

TEST_CASE("the baseline config used by these tests passes every rule", "[unit][config]") {
  CHECK(validate(validConfig()).empty());
  CHECK(validate(withCluster({{"a", 5432}, {"b", 5432}}, FailoverMode::kFollow)).empty());
}

TEST_CASE("a cluster with one node cannot fail over and is refused", "[unit][config]") {
  for (auto mode : {FailoverMode::kFollow, FailoverMode::kPromote}) {
    CAPTURE(toString(mode));
    CHECK(errors(withCluster({{"10.0.0.1", 5432}}, mode)) ==
          std::vector<std::string>{"cluster main cannot fail over: only one node (list its "
                                   "standbys in nodes, or set failover_mode = manual)"});
  }
}

TEST_CASE("a one-node cluster is fine when failover is manual", "[unit][config]") {
  CHECK(errors(withCluster({{"10.0.0.1", 5432}}, FailoverMode::kManual)).empty());
}

TEST_CASE("the cannot-fail-over error points at the nodes line", "[unit][config]") {
  const auto result = parseConfig(
      "[pgpivot]\nauth_type = trust\n[databases]\nappdb = cluster=main\n"
      "[cluster.main]\nmonitor_user = m\n\nnodes = db1\n",
      "p.ini");
  REQUIRE(result.diagnostics.size() == 1);
  CHECK(result.diagnostics[0].toString().starts_with(
      "p.ini:8: error: cluster main cannot fail over"));
}

TEST_CASE("a cluster needs at least one node and a monitor user", "[unit][config]") {
  Config c = withCluster({}, FailoverMode::kManual);
  c.clusters["main"].monitor_user.clear();
  CHECK(errors(c) == std::vector<std::string>{
                         "cluster main has no nodes (set nodes = host:port, ...)",
                         "cluster main: monitor_user is required (the health monitor logs in as "
                         "this user)"});
}

TEST_CASE("a node listed twice is an error", "[unit][config]") {
  CHECK(errors(withCluster({{"a", 5432}, {"b", 5432}, {"a", 5432}}, FailoverMode::kFollow)) ==
        std::vector<std::string>{"cluster main: node a:5432 is listed twice"});
  CHECK(errors(withCluster({{"a", 5432}, {"a", 5433}}, FailoverMode::kFollow)).empty());
}

TEST_CASE("nodes built in code must have a host and a port", "[unit][config]") {
  CHECK(errors(withCluster({{"a", 0}, {"", 5432}}, FailoverMode::kFollow)) ==
        std::vector<std::string>{"cluster main: node 'a:0' is not host:port",
                                 "cluster main: node ':5432' is not host:port"});
}

TEST_CASE("cluster probes must be positive and the profile known", "[unit][config]") {
  Config c = withCluster({{"a", 1}, {"b", 1}}, FailoverMode::kFollow);
  c.clusters["main"].probe_interval = 0ms;
  c.clusters["main"].profile = "turbo";
  c.clusters["main"].monitor_dbname.clear();
  CHECK(errors(c) == std::vector<std::string>{
                         "cluster main: monitor_dbname must not be empty",
                         "cluster main: unknown profile 'turbo'",
                         "cluster main: probe_interval and probe_timeout must be positive"});
}

TEST_CASE("a cluster no database uses is a warning", "[unit][config]") {
  Config c = validConfig();
  c.clusters["spare"] = cluster("spare", {{"a", 1}, {"b", 1}});
  const auto diagnostics = validate(c);
  CHECK(messages(diagnostics).empty());
  CHECK(messages(diagnostics, Diagnostic::Level::kWarning) ==
        std::vector<std::string>{"cluster spare is not used by any database (add cluster=spare "
                                 "to a [databases] entry)"});
}

TEST_CASE("a database's cluster must exist and replaces host and port", "[unit][config]") {
  Config c = validConfig();
  c.databases["a"] = database("a", "nowhere");
  c.databases["b"] = database("b", "main");
  c.databases["b"].host = "10.0.0.1";
  c.clusters["main"] = cluster("main", {{"x", 1}, {"y", 1}});
  CHECK(errors(c) ==
        std::vector<std::string>{
            "database a: cluster nowhere is not defined (no [cluster.nowhere] section)",
            "database b: host and port come from [cluster.main]; remove them"});
}

TEST_CASE("the admin console's names cannot be database names", "[unit][config]") {
  Config c = validConfig();
  c.databases["pgpivot"] = database("pgpivot");
  c.databases["PgBouncer"] = database("PgBouncer");
  CHECK(errors(c) ==
        std::vector<std::string>{"database name 'PgBouncer' is reserved for the admin console",
                                 "database name 'pgpivot' is reserved for the admin console"});
}

TEST_CASE("min_pool_size may not exceed the pool size, globally or per database",
          "[unit][config]") {
  Config c = validConfig();
  c.min_pool_size = 30;
  CHECK(errors(c) ==
        std::vector<std::string>{"min_pool_size 30 is larger than default_pool_size 20"});

  Config d = validConfig();
  d.default_pool_size = 10;
  d.databases["inherits"] = database("inherits");
  d.databases["inherits"].min_pool_size = 11;  // against the global pool size 10
  d.databases["own"] = database("own");
  d.databases["own"].pool_size = 2;  // against the global min_pool_size 0: fine
  d.databases["small"] = database("small");
  d.databases["small"].pool_size = 2;
  d.databases["small"].min_pool_size = 3;
  CHECK(errors(d) ==
        std::vector<std::string>{"database inherits: min_pool_size 11 is larger than pool_size 10",
                                 "database small: min_pool_size 3 is larger than pool_size 2"});
}

TEST_CASE("pool sizes and counts built in code must not be negative", "[unit][config]") {
  Config c = validConfig();
  c.default_pool_size = -1;
  c.reserve_pool_size = -1;
  c.max_client_conn = 0;
  c.workers = -1;
  c.databases["d"] = database("d");
  c.databases["d"].reserve_pool_size = -3;
  c.users["u"].name = "u";
  c.users["u"].pool_size = -1;
  CHECK(errors(c) ==
        std::vector<std::string>{"max_client_conn 0 is out of range (1 to 2147483647)",
                                 "default_pool_size -1 is out of range (0 to 2147483647)",
                                 "reserve_pool_size -1 is out of range (0 to 2147483647)",
                                 "workers -1 is out of range (0 to 1024)",
                                 "min_pool_size 0 is larger than default_pool_size -1",
                                 "database d: reserve_pool_size must not be negative",
                                 "user u: pool sizes must not be negative"});
}

TEST_CASE("max_packet_size must be between 1 KiB and 1 GiB", "[unit][config]") {
  Config c = validConfig();
  c.max_packet_size = 512;
  CHECK(errors(c) ==
        std::vector<std::string>{"max_packet_size 512 is out of range (1024 to 1073741824)"});
  c.max_packet_size = 2LL * 1024 * 1024 * 1024;
  CHECK(errors(c).size() == 1);
  c.max_packet_size = 1024;
  CHECK(errors(c).empty());
}

TEST_CASE("durations built in code must not be negative", "[unit][config]") {
  Config c = validConfig();
  c.query_timeout = -1ms;
  CHECK(errors(c) == std::vector<std::string>{"query_timeout must not be negative"});
}

TEST_CASE("password auth types need a source of passwords", "[unit][config]") {
  for (auto type : {AuthType::kPlain, AuthType::kMd5, AuthType::kScramSha256}) {
    CAPTURE(toString(type));
    Config c = validConfig();
    c.auth_type = type;
    CHECK(errors(c) == std::vector<std::string>{"auth_type " + std::string(toString(type)) +
                                                " needs passwords: set auth_file, or auth_user "
                                                "with auth_query"});
    c.auth_file = "/etc/userlist.txt";
    CHECK(errors(c).empty());
    c.auth_file.clear();
    c.auth_user = "lookup";
    CHECK(errors(c).empty());
  }
}

TEST_CASE("auth_user on every database is a source of passwords too", "[unit][config]") {
  Config c = validConfig();
  c.auth_type = AuthType::kMd5;
  c.databases["a"] = database("a");
  c.databases["a"].auth_user = "lookup";
  CHECK(errors(c).empty());
  c.databases["b"] = database("b");
  CHECK(errors(c).size() == 1);
}

TEST_CASE("auth_user without auth_query is an error", "[unit][config]") {
  Config c = validConfig();
  c.auth_user = "lookup";
  c.auth_query.clear();
  CHECK(errors(c) == std::vector<std::string>{"auth_user is set but auth_query is empty"});
}

TEST_CASE("trust and any need no passwords, hba and cert are refused for now", "[unit][config]") {
  Config c = validConfig();
  c.auth_type = AuthType::kAny;
  CHECK(errors(c).empty());
  c.auth_type = AuthType::kHba;
  CHECK(errors(c) == std::vector<std::string>{
                         "auth_type hba needs auth_hba_file, which pgpivot does not support yet"});
  c.auth_type = AuthType::kCert;
  CHECK(errors(c) ==
        std::vector<std::string>{
            "auth_type cert needs TLS from clients, which pgpivot does not support yet"});
}

TEST_CASE("there must be something to listen on", "[unit][config]") {
  Config c = validConfig();
  c.listen_addr.clear();
  CHECK(errors(c).empty());  // the unix socket is enough
  c.unix_socket_dir.clear();
  CHECK(errors(c) == std::vector<std::string>{
                         "nothing to listen on: listen_addr and unix_socket_dir are both empty"});
}

TEST_CASE("the unix socket path must fit in sockaddr_un", "[unit][config]") {
  Config c = validConfig();
  c.unix_socket_dir = "/" + std::string(92, 'd');  // + "/.s.PGSQL.6432" = 107 bytes: fits
  CHECK(errors(c).empty());
  c.unix_socket_dir += "d";
  REQUIRE(errors(c).size() == 1);
  CHECK(errors(c)[0].starts_with("unix_socket_dir is too long"));
  c.unix_socket_dir = "@" + std::string(200, 'a');  // Linux abstract names are not paths
  CHECK(errors(c).empty());
}

TEST_CASE("the data, admin and metrics ports must differ", "[unit][config]") {
  Config c = validConfig();
  c.admin_port = c.listen_port;
  c.metrics_port = c.listen_port;
  CHECK(errors(c) == std::vector<std::string>{"admin_port 6432 is also listen_port",
                                              "metrics_port 6432 is already used by listen_port "
                                              "or admin_port"});
  Config off = validConfig();
  off.listen_port = 0;  // any free port, as tests do
  off.admin_port = 0;
  off.metrics_port = 0;
  CHECK(errors(off).empty());
}

TEST_CASE("rules on defaults name the file without a line", "[unit][config]") {
  Config c = validConfig();
  c.auth_type = AuthType::kMd5;
  const auto diagnostics = validate(c);
  REQUIRE(diagnostics.size() == 1);
  CHECK(diagnostics[0].toString().starts_with("v.ini: error: auth_type md5 needs passwords"));
}

TEST_CASE("rules name the line each setting was written on", "[unit][config]") {
  const auto result = parseConfig(
      "[pgpivot]\nauth_type = trust\n\nmin_pool_size = 50\n"
      "[databases]\napp = pool_size=1 min_pool_size=2\n",
      "r.ini");
  CHECK(result.report() ==
        "r.ini:4: error: min_pool_size 50 is larger than default_pool_size 20\n"
        "r.ini:6: error: database app: min_pool_size 2 is larger than pool_size 1\n");
}

TEST_CASE("a value already reported as bad is not reported again by a rule", "[unit][config]") {
  const auto result = parseConfig(
      "[pgpivot]\nauth_type = trust\n[databases]\na = cluster=c\n"
      "[cluster.c]\nmonitor_user = m\nnodes = ::1\n",
      "f.ini");
  REQUIRE(result.diagnostics.size() == 1);
  CHECK(result.diagnostics[0].line == 7);  // the bad nodes line, not "cluster c has no nodes"
  const auto auth = parseConfig("[pgpivot]\nauth_type = md55\n", "f.ini");
  REQUIRE(auth.diagnostics.size() == 1);  // not also "md5 needs passwords"
}

}  // namespace
}  // namespace pgpivot::config
