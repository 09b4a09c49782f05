#include "pgpivot/app/check.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "pgpivot/auth/auth_file.hpp"
#include "pgpivot/config/parser.hpp"

namespace pgpivot::app {

namespace {

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

struct NodeReport {
  bool reachable = false;
  bool in_recovery = false;
  std::string version;
  std::string detail;
};

NodeReport probeNode(const std::string& host, uint16_t port, const std::string& dbname,
                     const std::string& user, const std::string& password) {
  const std::string port_text = std::to_string(port);
  const char* keys[] = {
      "host", "port", "dbname", "user", "password", "connect_timeout", "application_name", nullptr};
  const char* values[] = {
      host.c_str(), port_text.c_str(), dbname.c_str(), user.c_str(), password.c_str(),
      "5",          "pgpivot-check",   nullptr};
  PgConnPtr conn(PQconnectdbParams(keys, values, 0));
  NodeReport report;
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    report.detail = PQerrorMessage(conn.get());
    while (!report.detail.empty() && report.detail.back() == '\n') {
      report.detail.pop_back();
    }
    return report;
  }
  PgResultPtr result(PQexec(conn.get(),
                            "SELECT current_setting('server_version'), pg_is_in_recovery(), "
                            "(SELECT count(*) FROM pg_stat_replication)"));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    report.detail = PQresultErrorMessage(result.get());
    return report;
  }
  report.reachable = true;
  report.version = PQgetvalue(result.get(), 0, 0);
  report.in_recovery = PQgetvalue(result.get(), 0, 1)[0] == 't';
  report.detail = report.in_recovery ? "standby"
                                     : fmt::format("primary, {} streaming standby(s)",
                                                   PQgetvalue(result.get(), 0, 2));
  return report;
}

std::string passwordFor(const std::string& user, const std::string& explicit_password,
                        const auth::AuthFile* auth_file) {
  if (!explicit_password.empty()) {
    return explicit_password;
  }
  if (auth_file != nullptr) {
    if (const auto* entry = auth_file->find(user)) {
      if (auth::secretKind(entry->secret) == auth::SecretKind::kPlain) {
        return entry->secret;
      }
    }
  }
  return {};
}

int connectAll(const config::Config& config, const auth::AuthFile* auth_file) {
  int failures = 0;
  for (const auto& [name, db] : config.databases) {
    if (name == "*" || !db.cluster.empty()) {
      continue;
    }
    const std::string user = db.user.empty() ? std::string("postgres") : db.user;
    const std::string dbname = db.dbname.empty() ? name : db.dbname;
    const NodeReport report =
        probeNode(db.host, db.port, dbname, user, passwordFor(user, db.password, auth_file));
    if (report.reachable) {
      std::printf("database %s: %s:%u PostgreSQL %s, %s\n", name.c_str(), db.host.c_str(), db.port,
                  report.version.c_str(), report.detail.c_str());
    } else {
      std::printf("database %s: %s:%u unreachable: %s\n", name.c_str(), db.host.c_str(), db.port,
                  report.detail.c_str());
      ++failures;
    }
  }
  for (const auto& [name, cluster] : config.clusters) {
    int primaries = 0;
    int standbys = 0;
    for (const auto& node : cluster.nodes) {
      const NodeReport report =
          probeNode(node.host, node.port, cluster.monitor_dbname, cluster.monitor_user,
                    passwordFor(cluster.monitor_user, cluster.monitor_password, auth_file));
      if (!report.reachable) {
        std::printf("cluster %s: node %s:%u unreachable: %s\n", name.c_str(), node.host.c_str(),
                    node.port, report.detail.c_str());
        ++failures;
        continue;
      }
      (report.in_recovery ? standbys : primaries)++;
      std::printf("cluster %s: node %s:%u PostgreSQL %s, %s\n", name.c_str(), node.host.c_str(),
                  node.port, report.version.c_str(), report.detail.c_str());
    }
    const bool can_fail_over = primaries == 1 && standbys >= 1;
    std::printf("cluster %s: %d primary, %d standby: failover %s\n", name.c_str(), primaries,
                standbys, can_fail_over ? "possible" : "NOT possible");
    if (!can_fail_over) {
      ++failures;
    }
  }
  return failures;
}

}  // namespace

int runCheck(const std::string& config_path, bool connect) {
  const auto result = config::loadConfig(config_path);
  for (const auto& diagnostic : result.diagnostics) {
    std::fprintf(stderr, "%s\n", diagnostic.toString().c_str());
  }
  if (!result.ok()) {
    return 1;
  }
  std::unique_ptr<auth::AuthFile> auth_file;
  if (!result.config.auth_file.empty()) {
    std::vector<std::string> warnings;
    auto loaded = auth::loadAuthFile(result.config.auth_file, warnings);
    for (const auto& warning : warnings) {
      std::fprintf(stderr, "%s\n", warning.c_str());
    }
    if (!loaded) {
      std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
      return 1;
    }
    auth_file = std::make_unique<auth::AuthFile>(std::move(*loaded));
  }
  if (connect && connectAll(result.config, auth_file.get()) > 0) {
    return 1;
  }
  std::printf("%s: configuration is valid\n", config_path.c_str());
  return 0;
}

}  // namespace pgpivot::app
