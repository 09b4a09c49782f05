#include "pgpivot/app/check.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "pgpivot/auth/auth_file.hpp"
#include "pgpivot/config/parser.hpp"
#include "pgpivot/net/pq_handles.hpp"

namespace pgpivot::app {

namespace {

using net::PgConnPtr;
using net::PgResultPtr;

struct NodeReport {
  bool reachable = false;
  bool in_recovery = false;
  std::string version;
  std::string detail;
  std::string timeline;
  int streaming_standbys = 0;
  std::string wal_receiver;  // standby: pg_stat_wal_receiver.status ("" when none)
  bool has_monitor = false;  // superuser or member of pg_monitor
  bool can_promote = false;  // EXECUTE on pg_promote, USAGE on plpgsql (sql::kPromote)
  bool can_fence = false;    // may run the fence's statements (kFenceRightsQuery)
};

// One round trip per node. The timeline of a primary is the one of the WAL file being
// written; a standby's is the one its WAL receiver receives.
constexpr const char* kNodeQuery =
    "SELECT current_setting('server_version'), pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)::text "
    "ELSE (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)::text "
    "END, "
    "(SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'), "
    "coalesce((SELECT status FROM pg_stat_wal_receiver), ''), "
    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR "
    "pg_has_role(current_user, 'pg_monitor', 'member'), "
    "has_function_privilege(current_user, 'pg_promote(boolean,integer)', 'execute') AND "
    "has_language_privilege(current_user, 'plpgsql', 'usage')";

// The fence (cluster/probe_sql.hpp: kFenceTerminateSessions, kFenceReadOnly, kReloadConf
// and a switchover's kFlushWal) terminates other roles' sessions, runs ALTER SYSTEM and
// reloads the configuration. A monitor user without those rights passes every probe and
// fails only at the fence, mid-failover: a stuck primary then waits for an operator and
// a SWITCHOVER aborts. ALTER SYSTEM is grantable per parameter from PostgreSQL 15 on;
// before that only a superuser may run it (and has_parameter_privilege does not exist).
constexpr const char* kFenceRightsQuery =
    "SELECT pg_has_role(current_user, 'pg_signal_backend', 'member') AND "
    "has_parameter_privilege(current_user, 'default_transaction_read_only', 'ALTER SYSTEM') AND "
    "has_function_privilege(current_user, 'pg_reload_conf()', 'execute') AND "
    "has_function_privilege(current_user, 'pg_logical_emit_message(boolean,text,text)', "
    "'execute')";
constexpr const char* kFenceRightsQueryBefore15 =
    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user";

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
    report.detail = net::trimmedMessage(PQerrorMessage(conn.get()));
    return report;
  }
  PgResultPtr result(PQexec(conn.get(), kNodeQuery));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    report.detail = PQresultErrorMessage(result.get());
    return report;
  }
  report.reachable = true;
  report.version = PQgetvalue(result.get(), 0, 0);
  report.in_recovery = PQgetvalue(result.get(), 0, 1)[0] == 't';
  report.timeline = PQgetvalue(result.get(), 0, 2);
  report.streaming_standbys = std::atoi(PQgetvalue(result.get(), 0, 3));
  report.wal_receiver = PQgetvalue(result.get(), 0, 4);
  report.has_monitor = PQgetvalue(result.get(), 0, 5)[0] == 't';
  report.can_promote = PQgetvalue(result.get(), 0, 6)[0] == 't';
  PgResultPtr fence(PQexec(conn.get(), PQserverVersion(conn.get()) >= 150000
                                           ? kFenceRightsQuery
                                           : kFenceRightsQueryBefore15));
  report.can_fence = PQresultStatus(fence.get()) == PGRES_TUPLES_OK &&
                     PQntuples(fence.get()) == 1 && PQgetvalue(fence.get(), 0, 0)[0] == 't';
  report.detail =
      report.in_recovery
          ? fmt::format("standby, WAL receiver {}",
                        report.wal_receiver.empty() ? "not running" : report.wal_receiver)
          : fmt::format("primary, {} streaming standby(s)", report.streaming_standbys);
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
    // One line per node, then every reason the cluster could not fail over: this is the
    // check that would have caught the incident's misconfigured failover.
    std::vector<std::string> problems;
    int primaries = 0;
    int streaming_standbys = 0;
    std::printf("cluster %s (failover_mode %s):\n", name.c_str(),
                std::string(config::toString(cluster.failover_mode)).c_str());
    std::printf("  %-22s %-8s %-8s %-9s %-28s %s\n", "node", "role", "version", "timeline",
                "replication", "monitor rights");
    for (const auto& node : cluster.nodes) {
      const std::string where = fmt::format("{}:{}", node.host, node.port);
      const NodeReport report =
          probeNode(node.host, node.port, cluster.monitor_dbname, cluster.monitor_user,
                    passwordFor(cluster.monitor_user, cluster.monitor_password, auth_file));
      if (!report.reachable) {
        std::printf("  %-22s unreachable: %s\n", where.c_str(), report.detail.c_str());
        problems.push_back(fmt::format("node {} unreachable: {}", where, report.detail));
        continue;
      }
      std::string rights = report.has_monitor ? "pg_monitor" : "MISSING pg_monitor";
      if (cluster.failover_mode == config::FailoverMode::kPromote) {
        rights += report.can_promote ? ", pg_promote" : ", MISSING pg_promote";
      }
      rights += report.can_fence ? ", fence" : ", MISSING fence";
      std::printf("  %-22s %-8s %-8s %-9s %-28s %s\n", where.c_str(),
                  report.in_recovery ? "standby" : "primary",
                  fmt::format("PostgreSQL {}", report.version).c_str(), report.timeline.c_str(),
                  report.detail.c_str(), rights.c_str());
      if (!report.has_monitor) {
        problems.push_back(
            fmt::format("monitor_user {} on {} is not a member of pg_monitor: lock and replication "
                        "statistics would read as zero",
                        cluster.monitor_user, where));
      }
      // Every node may be the primary to fence one day. In follow mode pgpivot fences only
      // an old primary that comes back writable, and routes nothing to it either way.
      if (!report.can_fence && cluster.failover_mode != config::FailoverMode::kFollow) {
        problems.push_back(fmt::format(
            "monitor_user {} may not fence {} (needs pg_signal_backend, ALTER SYSTEM on "
            "default_transaction_read_only and EXECUTE on pg_reload_conf()): a stuck primary "
            "would wait for an operator and SWITCHOVER would abort",
            cluster.monitor_user, where));
      }
      if (report.in_recovery) {
        if (report.wal_receiver == "streaming") {
          ++streaming_standbys;
        } else {
          problems.push_back(fmt::format(
              "standby {} is not streaming from the primary (WAL "
              "receiver: {})",
              where, report.wal_receiver.empty() ? "not running" : report.wal_receiver));
        }
        if (cluster.failover_mode == config::FailoverMode::kPromote && !report.can_promote) {
          problems.push_back(fmt::format(
              "failover_mode = promote but monitor_user {} may not run pg_promote (EXECUTE on "
              "pg_promote, USAGE on plpgsql) on {}",
              cluster.monitor_user, where));
        }
      } else {
        ++primaries;
      }
    }
    if (primaries == 0) {
      problems.push_back("no node is a primary");
    } else if (primaries > 1) {
      problems.push_back(fmt::format("{} nodes are writable primaries (split brain)", primaries));
    }
    if (streaming_standbys == 0) {
      problems.push_back("no standby streams from the primary: nothing to fail over to");
    }
    const bool can_fail_over = primaries == 1 && streaming_standbys >= 1;
    std::printf("cluster %s: %d primary, %d streaming standby: failover %s\n", name.c_str(),
                primaries, streaming_standbys, can_fail_over ? "possible" : "NOT possible");
    for (const auto& problem : problems) {
      std::printf("cluster %s: problem: %s\n", name.c_str(), problem.c_str());
    }
    failures += static_cast<int>(problems.size());
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
