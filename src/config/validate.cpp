// Cross-field rules: the things a single line cannot know are wrong. The postmortem's action
// item lives here: a config check that refuses a setup which cannot fail over.
#include <algorithm>

#include "parse_context.hpp"
#include "pgpivot/config/parser.hpp"
#include "values.hpp"

namespace pgpivot::config {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kGiB = kKiB * kKiB * kKiB;
// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxUnixPath = 107;

class Checker {
 public:
  Checker(const Config& config, const std::set<std::string>& failed, std::vector<Diagnostic>& out)
      : config_(config), failed_(failed), out_(out) {}

  const Config& config() const { return config_; }
  bool failed(const std::string& key) const { return failed_.count(key) != 0; }

  // `key` names a Config::sources entry; `line` is the fallback for a Config built in code.
  void error(const std::string& key, std::string message, int line = 0) {
    add(Diagnostic::Level::kError, key, std::move(message), line);
  }
  void warning(const std::string& key, std::string message, int line = 0) {
    add(Diagnostic::Level::kWarning, key, std::move(message), line);
  }

  void range(const std::string& key, int64_t value, int64_t lo, int64_t hi) {
    if (!failed(key) && (value < lo || value > hi)) {
      error(key, key + " " + std::to_string(value) + " is out of range (" + std::to_string(lo) +
                     " to " + std::to_string(hi) + ")");
    }
  }

 private:
  void add(Diagnostic::Level level, const std::string& key, std::string message, int line) {
    const auto source = config_.sources.find(key);
    if (source != config_.sources.end()) {
      out_.push_back(
          Diagnostic{level, source->second.file, source->second.line, std::move(message)});
    } else {
      out_.push_back(Diagnostic{level, config_.path, line, std::move(message)});
    }
  }

  const Config& config_;
  const std::set<std::string>& failed_;
  std::vector<Diagnostic>& out_;
};

void checkListen(Checker& ck) {
  const Config& c = ck.config();
  if (c.listen_addr.empty() && c.unix_socket_dir.empty()) {
    ck.error("listen_addr", "nothing to listen on: listen_addr and unix_socket_dir are both empty");
  }
  if (!c.unix_socket_dir.empty() && c.unix_socket_dir.front() != '@') {
    const std::string socket = c.unix_socket_dir + "/.s.PGSQL." + std::to_string(c.listen_port);
    if (socket.size() > kMaxUnixPath) {
      ck.error("unix_socket_dir", "unix_socket_dir is too long: the socket path " + socket +
                                      " is longer than " + std::to_string(kMaxUnixPath) + " bytes");
    }
  }
  if (c.admin_port != 0 && c.admin_port == c.listen_port) {
    ck.error("admin_port", "admin_port " + std::to_string(c.admin_port) + " is also listen_port");
  }
  if (c.admin_port != 0 && c.admin_listen_addr.empty()) {
    ck.error("admin_listen_addr", "admin_listen_addr is empty but admin_port is set");
  }
  if (c.metrics_port != 0 && (c.metrics_port == c.listen_port || c.metrics_port == c.admin_port)) {
    ck.error("metrics_port", "metrics_port " + std::to_string(c.metrics_port) +
                                 " is already used by listen_port or admin_port");
  }
}

bool needsPasswords(AuthType type) {
  return type == AuthType::kPlain || type == AuthType::kMd5 || type == AuthType::kScramSha256;
}

void checkAuth(Checker& ck) {
  const Config& c = ck.config();
  if (ck.failed("auth_type")) {
    return;
  }
  const bool every_db_has_auth_user =
      !c.databases.empty() &&
      std::all_of(c.databases.begin(), c.databases.end(),
                  [](const auto& db) { return !db.second.auth_user.empty(); });
  const bool any_auth_user =
      !c.auth_user.empty() ||
      std::any_of(c.databases.begin(), c.databases.end(),
                  [](const auto& db) { return !db.second.auth_user.empty(); });
  const bool unknown = ck.failed("auth_file") || ck.failed("auth_user");
  if (needsPasswords(c.auth_type) && !unknown && c.auth_file.empty() && c.auth_user.empty() &&
      !every_db_has_auth_user) {
    ck.error("auth_type", "auth_type " + std::string(toString(c.auth_type)) +
                              " needs passwords: set auth_file, or auth_user with auth_query");
  }
  if (any_auth_user && c.auth_query.empty() && !ck.failed("auth_query")) {
    ck.error("auth_query", "auth_user is set but auth_query is empty");
  }
  if (c.auth_type == AuthType::kHba) {
    ck.error("auth_type", "auth_type hba needs auth_hba_file, which pgpivot does not support yet");
  }
  if (c.auth_type == AuthType::kCert) {
    ck.error("auth_type",
             "auth_type cert needs TLS from clients, which pgpivot does not support yet");
  }
}

void checkDurations(Checker& ck) {
  const Config& c = ck.config();
  const std::pair<std::string_view, Millis> durations[] = {
      {"reserve_pool_timeout", c.reserve_pool_timeout},
      {"server_check_delay", c.server_check_delay},
      {"server_lifetime", c.server_lifetime},
      {"server_idle_timeout", c.server_idle_timeout},
      {"server_connect_timeout", c.server_connect_timeout},
      {"server_login_retry", c.server_login_retry},
      {"client_login_timeout", c.client_login_timeout},
      {"client_idle_timeout", c.client_idle_timeout},
      {"query_timeout", c.query_timeout},
      {"query_wait_timeout", c.query_wait_timeout},
      {"idle_transaction_timeout", c.idle_transaction_timeout}};
  for (const auto& [key, value] : durations) {
    if (value.count() < 0) {
      ck.error(std::string(key), std::string(key) + " must not be negative");
    }
  }
}

void checkPools(Checker& ck) {
  const Config& c = ck.config();
  ck.range("max_client_conn", c.max_client_conn, 1, INT32_MAX);
  ck.range("default_pool_size", c.default_pool_size, 0, INT32_MAX);
  ck.range("min_pool_size", c.min_pool_size, 0, INT32_MAX);
  ck.range("reserve_pool_size", c.reserve_pool_size, 0, INT32_MAX);
  ck.range("max_db_connections", c.max_db_connections, 0, INT32_MAX);
  ck.range("max_user_connections", c.max_user_connections, 0, INT32_MAX);
  ck.range("listen_backlog", c.listen_backlog, 1, INT32_MAX);
  ck.range("workers", c.workers, 0, 1024);
  ck.range("worker_spill_load", c.worker_spill_load, 0, 100);
  ck.range("verbose", c.verbose, 0, 10);
  ck.range("pkt_buf", c.pkt_buf, kKiB, 64 * kKiB * kKiB);
  ck.range("max_packet_size", c.max_packet_size, kKiB, kGiB);
  if (c.min_pool_size > c.default_pool_size && !ck.failed("min_pool_size") &&
      !ck.failed("default_pool_size")) {
    ck.error("min_pool_size", "min_pool_size " + std::to_string(c.min_pool_size) +
                                  " is larger than default_pool_size " +
                                  std::to_string(c.default_pool_size));
  }
  checkDurations(ck);
}

void checkDatabase(Checker& ck, const DatabaseEntry& db) {
  const Config& c = ck.config();
  const std::string key = "databases." + db.name;
  const std::string what = "database " + db.name;
  if (iequals(db.name, "pgpivot") || iequals(db.name, "pgbouncer")) {
    ck.error(key, "database name '" + db.name + "' is reserved for the admin console", db.line);
  }
  if (!db.cluster.empty()) {
    if (!db.host.empty() || db.port != 5432) {
      ck.error(key, what + ": host and port come from [cluster." + db.cluster + "]; remove them",
               db.line);
    }
    if (c.clusters.count(db.cluster) == 0) {
      ck.error(key,
               what + ": cluster " + db.cluster + " is not defined (no [cluster." + db.cluster +
                   "] section)",
               db.line);
    }
  }
  const std::pair<std::string_view, std::optional<int>> sizes[] = {
      {"pool_size", db.pool_size},
      {"min_pool_size", db.min_pool_size},
      {"reserve_pool_size", db.reserve_pool_size},
      {"max_db_connections", db.max_db_connections}};
  for (const auto& [name, value] : sizes) {
    if (value && *value < 0) {
      ck.error(key, what + ": " + std::string(name) + " must not be negative", db.line);
    }
  }
  if (db.pool_size || db.min_pool_size) {
    const int pool = db.pool_size.value_or(c.default_pool_size);
    const int min = db.min_pool_size.value_or(c.min_pool_size);
    if (min > pool && !ck.failed(key + ".pool_size") && !ck.failed(key + ".min_pool_size")) {
      ck.error(key,
               what + ": min_pool_size " + std::to_string(min) + " is larger than pool_size " +
                   std::to_string(pool),
               db.line);
    }
  }
}

void checkUser(Checker& ck, const UserEntry& user) {
  const std::string key = "users." + user.name;
  if ((user.pool_size && *user.pool_size < 0) ||
      (user.max_user_connections && *user.max_user_connections < 0)) {
    ck.error(key, "user " + user.name + ": pool sizes must not be negative", user.line);
  }
}

void checkNodes(Checker& ck, const ClusterEntry& cluster) {
  const std::string key = "cluster." + cluster.name;
  const std::string nodes_key = key + ".nodes";
  if (ck.failed(nodes_key)) {
    return;
  }
  if (cluster.nodes.empty()) {
    ck.error(key, "cluster " + cluster.name + " has no nodes (set nodes = host:port, ...)",
             cluster.line);
    return;
  }
  const std::string at = ck.config().sources.count(nodes_key) != 0 ? nodes_key : key;
  for (std::size_t i = 0; i < cluster.nodes.size(); ++i) {
    const NodeAddress& node = cluster.nodes[i];
    if (node.port == 0 || node.host.empty()) {
      ck.error(at, "cluster " + cluster.name + ": node '" + formatNode(node) + "' is not host:port",
               cluster.line);
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (cluster.nodes[j].host == node.host && cluster.nodes[j].port == node.port) {
        ck.error(at, "cluster " + cluster.name + ": node " + formatNode(node) + " is listed twice",
                 cluster.line);
      }
    }
  }
  if (cluster.nodes.size() == 1 && cluster.failover_mode != FailoverMode::kManual &&
      !ck.failed(key + ".failover_mode")) {
    ck.error(at,
             "cluster " + cluster.name +
                 " cannot fail over: only one node (list its standbys in "
                 "nodes, or set failover_mode = manual)",
             cluster.line);
  }
}

void checkCluster(Checker& ck, const ClusterEntry& cluster) {
  const Config& c = ck.config();
  const std::string key = "cluster." + cluster.name;
  checkNodes(ck, cluster);
  if (cluster.monitor_user.empty()) {
    ck.error(key,
             "cluster " + cluster.name +
                 ": monitor_user is required (the health monitor logs in as this user)",
             cluster.line);
  }
  if (cluster.monitor_dbname.empty()) {
    ck.error(key, "cluster " + cluster.name + ": monitor_dbname must not be empty", cluster.line);
  }
  if (cluster.profile != "fast" && cluster.profile != "default" && cluster.profile != "safe") {
    ck.error(key, "cluster " + cluster.name + ": unknown profile '" + cluster.profile + "'",
             cluster.line);
  }
  if (cluster.probe_interval.count() <= 0 || cluster.probe_timeout.count() <= 0) {
    ck.error(key, "cluster " + cluster.name + ": probe_interval and probe_timeout must be positive",
             cluster.line);
  }
  const bool used = std::any_of(c.databases.begin(), c.databases.end(),
                                [&](const auto& db) { return db.second.cluster == cluster.name; });
  if (!used) {
    ck.warning(key,
               "cluster " + cluster.name + " is not used by any database (add cluster=" +
                   cluster.name + " to a [databases] entry)",
               cluster.line);
  }
}

}  // namespace

std::vector<Diagnostic> validateParsed(const Config& config, const std::set<std::string>& failed) {
  std::vector<Diagnostic> out;
  Checker ck(config, failed, out);
  checkListen(ck);
  checkAuth(ck);
  checkPools(ck);
  for (const auto& [name, db] : config.databases) {
    checkDatabase(ck, db);
  }
  for (const auto& [name, user] : config.users) {
    checkUser(ck, user);
  }
  for (const auto& [name, cluster] : config.clusters) {
    checkCluster(ck, cluster);
  }
  return out;
}

std::vector<Diagnostic> validate(const Config& config) {
  return validateParsed(config, {});
}

}  // namespace pgpivot::config
