// The answers of the admin console (private to admin/): each SHOW rendered from a
// Snapshot, with PgBouncer 1.18's column names and order where PgBouncer has the command
// (pgpivot only appends columns), and the report of SWITCHOVER/FAILOVER/DRILL.
#pragma once

#include <string>
#include <string_view>

#include "command.hpp"
#include "pgpivot/admin/backend.hpp"
#include "pgpivot/admin/snapshot.hpp"

namespace pgpivot::admin {

// What SHOW `kind` needs from the backend; nothing for HELP and VERSION.
[[nodiscard]] Parts partsFor(ShowKind kind);
[[nodiscard]] bool needsSnapshot(ShowKind kind);

// Appends the result set (or, for HELP, the notice) of SHOW `kind`, without
// CommandComplete.
void renderShow(std::string& out, ShowKind kind, const Snapshot& snapshot);

// Appends the steps of a failover run and a final "verdict" row, without CommandComplete.
void renderReport(std::string& out, const FailoverReport& report);

// "pgpivot 1.2.3, compatible with PgBouncer 1.18.0" (SHOW VERSION).
[[nodiscard]] std::string versionString();

}  // namespace pgpivot::admin
