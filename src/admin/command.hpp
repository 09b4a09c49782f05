// Parsing admin console queries into statements (private to admin/). The grammar is
// PgBouncer's, one command per statement, plus pgpivot's failover commands:
//
//   SHOW what | PAUSE [db] | RESUME [db] | DISABLE db | ENABLE db | RECONNECT [db]
//   KILL db | KILL_CLIENT id | SUSPEND | WAIT_CLOSE [db] | RELOAD | SHUTDOWN
//   SET key = value | SET key TO value
//   SWITCHOVER cluster [TO node] | FAILOVER cluster [TO node] | FENCE node
//   UNFENCE node | DRILL cluster | SET_PRIMARY cluster TO node | RESUME_CLUSTER cluster
//
// Keywords are case-insensitive. A name is a bare word (anything up to whitespace, ';',
// '=' or a quote, kept as written) or a "double-quoted" identifier ("" for a quote). SET
// takes the rest of the statement as the value, or the content of one 'single-quoted'
// string ('' for a quote). -- and /* */ comments are skipped, as PostgreSQL does.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "pgpivot/admin/backend.hpp"
#include "pgpivot/core/result.hpp"

namespace pgpivot::admin {

enum class ShowKind {
  kHelp,
  kPools,
  kClients,
  kServers,
  kStats,
  kStatsTotals,
  kStatsAverages,
  kTotals,
  kDatabases,
  kUsers,
  kConfig,
  kLists,
  kMem,
  kVersion,
  kSockets,
  kActiveSockets,
  kDnsHosts,
  kDnsZones,
  kClusters,
  kNodes,
  kFailovers,
};

struct Statement {
  std::variant<ShowKind, Command> what;
  std::string text;  // as written, without comments' surroundings trimmed; for messages
};

// Every statement of `query`, in order; empty statements (";;", only comments) are left
// out, so an empty vector means there was nothing to run. Any malformed statement fails
// the whole query with SQLSTATE 42601.
[[nodiscard]] Result<std::vector<Statement>> parseQuery(std::string_view query);

// The CommandComplete tag: "SHOW" for every SHOW, otherwise the command's keyword
// ("PAUSE", "KILL_CLIENT", "SET", ...).
[[nodiscard]] std::string_view commandTag(const Statement& statement);
[[nodiscard]] std::string_view commandName(CommandKind kind);

}  // namespace pgpivot::admin
