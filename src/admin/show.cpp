#include "show.hpp"

#include <array>
#include <cstdio>

#include "pgpivot/proto/messages.hpp"
#include "table.hpp"

#ifndef PGPIVOT_VERSION
#define PGPIVOT_VERSION "0.0.0"
#endif

namespace pgpivot::admin {
namespace {

using enum ColumnType;
constexpr int64_t kMicrosPerSecond = 1'000'000;

// --- column lists: PgBouncer 1.18's names and order; pgpivot's additions at the end -----

constexpr std::array kPoolColumns{
    Column{"database"},
    Column{"user"},
    Column{"cl_active", kInt8},
    Column{"cl_waiting", kInt8},
    Column{"cl_active_cancel_req", kInt8},
    Column{"cl_waiting_cancel_req", kInt8},
    Column{"sv_active", kInt8},
    Column{"sv_active_cancel", kInt8},
    Column{"sv_being_canceled", kInt8},
    Column{"sv_idle", kInt8},
    Column{"sv_used", kInt8},
    Column{"sv_tested", kInt8},
    Column{"sv_login", kInt8},
    Column{"maxwait", kInt8},
    Column{"maxwait_us", kInt8},
    Column{"pool_mode"},
};

// SHOW CLIENTS and SHOW SERVERS; `id` is pgpivot's (what KILL_CLIENT takes).
constexpr std::array kConnColumns{
    Column{"type"},
    Column{"user"},
    Column{"database"},
    Column{"state"},
    Column{"addr"},
    Column{"port", kInt8},
    Column{"local_addr"},
    Column{"local_port", kInt8},
    Column{"connect_time"},
    Column{"request_time"},
    Column{"wait", kInt8},
    Column{"wait_us", kInt8},
    Column{"close_needed", kInt8},
    Column{"ptr"},
    Column{"link"},
    Column{"remote_pid", kInt8},
    Column{"tls"},
    Column{"application_name"},
    Column{"id", kInt8},
    Column{"worker", kInt8},
};

constexpr std::array kSocketColumns{
    Column{"type"},
    Column{"user"},
    Column{"database"},
    Column{"state"},
    Column{"addr"},
    Column{"port", kInt8},
    Column{"local_addr"},
    Column{"local_port", kInt8},
    Column{"connect_time"},
    Column{"request_time"},
    Column{"wait", kInt8},
    Column{"wait_us", kInt8},
    Column{"close_needed", kInt8},
    Column{"ptr"},
    Column{"link"},
    Column{"remote_pid", kInt8},
    Column{"tls"},
    Column{"application_name"},
    Column{"recv_pos", kInt8},
    Column{"pkt_pos", kInt8},
    Column{"pkt_remain", kInt8},
    Column{"send_pos", kInt8},
    Column{"send_remain", kInt8},
    Column{"pkt_avail", kInt8},
    Column{"send_avail", kInt8},
    Column{"id", kInt8},
};

constexpr std::array kStatsColumns{
    Column{"database"},
    Column{"total_xact_count", kInt8},
    Column{"total_query_count", kInt8},
    Column{"total_received", kInt8},
    Column{"total_sent", kInt8},
    Column{"total_xact_time", kInt8},
    Column{"total_query_time", kInt8},
    Column{"total_wait_time", kInt8},
    Column{"avg_xact_count", kInt8},
    Column{"avg_query_count", kInt8},
    Column{"avg_recv", kInt8},
    Column{"avg_sent", kInt8},
    Column{"avg_xact_time", kInt8},
    Column{"avg_query_time", kInt8},
    Column{"avg_wait_time", kInt8},
};

// SHOW STATS_TOTALS and SHOW STATS_AVERAGES share their names.
constexpr std::array kStatPartColumns{
    Column{"database"},           Column{"xact_count", kInt8},
    Column{"query_count", kInt8}, Column{"bytes_received", kInt8},
    Column{"bytes_sent", kInt8},  Column{"xact_time", kInt8},
    Column{"query_time", kInt8},  Column{"wait_time", kInt8},
};

constexpr std::array kNameValueColumns{Column{"name"}, Column{"value", kInt8}};

constexpr std::array kDatabaseColumns{
    Column{"name"},
    Column{"host"},
    Column{"port", kInt8},
    Column{"database"},
    Column{"force_user"},
    Column{"pool_size", kInt8},
    Column{"min_pool_size", kInt8},
    Column{"reserve_pool", kInt8},
    Column{"pool_mode"},
    Column{"max_connections", kInt8},
    Column{"current_connections", kInt8},
    Column{"paused", kInt8},
    Column{"disabled", kInt8},
    Column{"cluster"},
};

constexpr std::array kUserColumns{Column{"name"}, Column{"pool_mode"}};
constexpr std::array kListColumns{Column{"list"}, Column{"items", kInt8}};
constexpr std::array kMemColumns{Column{"name"}, Column{"size", kInt8}, Column{"used", kInt8},
                                 Column{"free", kInt8}, Column{"memtotal", kInt8}};
constexpr std::array kConfigColumns{Column{"key"}, Column{"value"}, Column{"default"},
                                    Column{"changeable"}};
constexpr std::array kVersionColumns{Column{"version"}};
constexpr std::array kDnsHostColumns{Column{"hostname"}, Column{"ttl", kInt8}, Column{"addrs"}};
constexpr std::array kDnsZoneColumns{Column{"zonename"}, Column{"serial", kInt8},
                                     Column{"count", kInt8}};

constexpr std::array kClusterColumns{
    Column{"cluster"},
    Column{"state"},
    Column{"reason"},
    Column{"primary"},
    Column{"failover_mode"},
    Column{"profile"},
    Column{"nodes", kInt8},
    Column{"healthy_nodes", kInt8},
    Column{"paused", kInt8},
    Column{"failovers", kInt8},
    Column{"failover_time_ms", kInt8},
    Column{"last_failover"},
};

constexpr std::array kNodeColumns{
    Column{"cluster"},
    Column{"node"},
    Column{"role"},
    Column{"health"},
    Column{"fenced", kInt8},
    Column{"timeline", kInt8},
    Column{"lsn"},
    Column{"lag_bytes", kInt8},
    Column{"last_probe"},
    Column{"probe_latency_us", kInt8},
    Column{"lock_waiters", kInt8},
    Column{"oldest_lock_wait_ms", kInt8},
    Column{"blocked_backends", kInt8},
    Column{"active_backends", kInt8},
    Column{"stalled_queries", kInt8},
    Column{"server_version"},
};

// SHOW FAILOVERS and the reports of SWITCHOVER/FAILOVER/DRILL.
constexpr std::array kFailoverColumns{
    Column{"failover_id"},       Column{"cluster"}, Column{"kind"},   Column{"time"},
    Column{"elapsed_ms", kInt8}, Column{"step"},    Column{"result"}, Column{"detail"},
    Column{"possibly_lost"},
};

std::string hexId(uint64_t id) {
  if (id == 0) {
    return {};
  }
  char buf[24];
  const int n = std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(id));
  return std::string(buf, static_cast<std::size_t>(n));
}

// PgBouncer splits a wait into whole seconds and the microseconds left over.
void splitWait(Table& t, int64_t us) {
  t.number(us / kMicrosPerSecond).number(us % kMicrosPerSecond);
}

void renderPools(std::string& out, const Snapshot& s) {
  Table t(out, kPoolColumns);
  for (const PoolRow& p : s.pools) {
    t.text(p.database).text(p.user);
    t.number(p.cl_active).number(p.cl_waiting).number(p.cl_active_cancel_req);
    t.number(p.cl_waiting_cancel_req).number(p.sv_active).number(p.sv_active_cancel);
    t.number(p.sv_being_canceled).number(p.sv_idle).number(p.sv_used).number(p.sv_tested);
    t.number(p.sv_login);
    splitWait(t, p.max_wait_us);
    t.text(p.pool_mode);
    t.endRow();
  }
}

void connCells(Table& t, std::string_view type, std::string_view state, const ConnRow& c) {
  t.text(type).text(c.user).text(c.database).text(state).text(c.addr).number(c.port);
  t.text(c.local_addr).number(c.local_port);
  t.text(formatTimestamp(c.connect_time_us)).text(formatTimestamp(c.request_time_us));
  splitWait(t, c.wait_us);
  t.number(c.close_needed ? 1 : 0).text(hexId(c.id)).text(hexId(c.link_id));
  t.number(c.remote_pid).text(c.tls).text(c.application_name);
}

void renderConns(std::string& out, const std::vector<ConnRow>& rows, std::string_view type) {
  Table t(out, kConnColumns);
  for (const ConnRow& c : rows) {
    connCells(t, type, c.state, c);
    t.number(static_cast<int64_t>(c.id)).number(c.worker);
    t.endRow();
  }
}

bool isActiveSocket(const ConnRow& c) {
  return c.pkt_remain > 0 || c.send_remain > 0 || c.recv_pos > c.pkt_pos;
}

void renderSockets(std::string& out, const Snapshot& s, bool only_active) {
  Table t(out, kSocketColumns);
  auto emit = [&](const std::vector<ConnRow>& rows, std::string_view type,
                  std::string_view prefix) {
    for (const ConnRow& c : rows) {
      if (only_active && !isActiveSocket(c)) {
        continue;
      }
      connCells(t, type, std::string(prefix) + c.state, c);
      t.number(c.recv_pos).number(c.pkt_pos).number(c.pkt_remain).number(c.send_pos);
      t.number(c.send_remain).number(c.pkt_avail).number(c.send_avail);
      t.number(static_cast<int64_t>(c.id));
      t.endRow();
    }
  };
  emit(s.clients, "C", "cl_");
  emit(s.servers, "S", "sv_");
}

void statCells(Table& t, const StatTotals& v) {
  t.number(v.xact_count).number(v.query_count).number(v.bytes_received).number(v.bytes_sent);
  t.number(v.xact_time_us).number(v.query_time_us).number(v.wait_time_us);
}
void statCells(Table& t, const StatAverages& v) {
  t.number(v.xact_count).number(v.query_count).number(v.bytes_received).number(v.bytes_sent);
  t.number(v.xact_time_us).number(v.query_time_us).number(v.wait_time_us);
}

void renderStats(std::string& out, const Snapshot& s, ShowKind kind) {
  if (kind == ShowKind::kStats) {
    Table t(out, kStatsColumns);
    for (const StatsRow& r : s.stats) {
      t.text(r.database);
      statCells(t, r.totals);
      statCells(t, r.averages);
      t.endRow();
    }
    return;
  }
  Table t(out, kStatPartColumns);
  for (const StatsRow& r : s.stats) {
    t.text(r.database);
    if (kind == ShowKind::kStatsTotals) {
      statCells(t, r.totals);
    } else {
      statCells(t, r.averages);
    }
    t.endRow();
  }
}

// Mean of per-database means, weighted by how many events each mean covers.
int64_t weightedMean(const std::vector<StatsRow>& rows, int64_t StatAverages::*mean,
                     int64_t StatAverages::*count) {
  long double sum = 0;
  long double weight = 0;
  for (const StatsRow& r : rows) {
    sum += static_cast<long double>(r.averages.*mean) * static_cast<long double>(r.averages.*count);
    weight += static_cast<long double>(r.averages.*count);
  }
  return weight > 0 ? static_cast<int64_t>(sum / weight) : 0;
}

// SHOW TOTALS: the same figures over every database, as PgBouncer names them.
void renderTotals(std::string& out, const Snapshot& s) {
  StatTotals total;
  StatAverages rate;
  for (const StatsRow& r : s.stats) {
    total.xact_count += r.totals.xact_count;
    total.query_count += r.totals.query_count;
    total.bytes_received += r.totals.bytes_received;
    total.bytes_sent += r.totals.bytes_sent;
    total.xact_time_us += r.totals.xact_time_us;
    total.query_time_us += r.totals.query_time_us;
    total.wait_time_us += r.totals.wait_time_us;
    rate.xact_count += r.averages.xact_count;
    rate.query_count += r.averages.query_count;
    rate.bytes_received += r.averages.bytes_received;
    rate.bytes_sent += r.averages.bytes_sent;
  }
  using A = StatAverages;
  const std::array<std::pair<std::string_view, int64_t>, 14> rows{{
      {"total_xact_count", total.xact_count},
      {"total_query_count", total.query_count},
      {"total_client_bytes", total.bytes_received},
      {"total_server_bytes", total.bytes_sent},
      {"total_xact_time", total.xact_time_us},
      {"total_query_time", total.query_time_us},
      {"total_wait_time", total.wait_time_us},
      {"avg_xact_count", rate.xact_count},
      {"avg_query_count", rate.query_count},
      {"avg_client_bytes", rate.bytes_received},
      {"avg_server_bytes", rate.bytes_sent},
      {"avg_xact_time", weightedMean(s.stats, &A::xact_time_us, &A::xact_count)},
      {"avg_query_time", weightedMean(s.stats, &A::query_time_us, &A::query_count)},
      {"avg_wait_time", weightedMean(s.stats, &A::wait_time_us, &A::xact_count)},
  }};
  Table t(out, kNameValueColumns);
  for (const auto& [name, value] : rows) {
    t.text(name).number(value).endRow();
  }
}

void renderDatabases(std::string& out, const Snapshot& s) {
  Table t(out, kDatabaseColumns);
  for (const DatabaseRow& d : s.databases) {
    t.text(d.name).textOrNull(d.host).number(d.port).text(d.database).textOrNull(d.force_user);
    t.number(d.pool_size).number(d.min_pool_size).number(d.reserve_pool).textOrNull(d.pool_mode);
    t.number(d.max_connections).number(d.current_connections);
    t.number(d.paused ? 1 : 0).number(d.disabled ? 1 : 0).textOrNull(d.cluster);
    t.endRow();
  }
}

void renderSmallLists(std::string& out, const Snapshot& s, ShowKind kind) {
  if (kind == ShowKind::kUsers) {
    Table t(out, kUserColumns);
    for (const UserRow& u : s.users) {
      t.text(u.name).textOrNull(u.pool_mode).endRow();
    }
  } else if (kind == ShowKind::kLists) {
    Table t(out, kListColumns);
    for (const ListRow& l : s.lists) {
      t.text(l.name).number(l.items).endRow();
    }
  } else if (kind == ShowKind::kMem) {
    Table t(out, kMemColumns);
    for (const MemRow& m : s.mem) {
      t.text(m.name).number(m.size).number(m.used).number(m.free).number(m.memtotal).endRow();
    }
  } else if (kind == ShowKind::kConfig) {
    Table t(out, kConfigColumns);
    for (const ConfigRow& c : s.config) {
      t.text(c.key).text(c.value).text(c.default_value).text(c.changeable ? "yes" : "no");
      t.endRow();
    }
  } else if (kind == ShowKind::kDnsHosts) {
    Table t(out, kDnsHostColumns);  // pgpivot keeps no DNS cache: always empty
  } else if (kind == ShowKind::kDnsZones) {
    Table t(out, kDnsZoneColumns);
  }
}

void renderClusters(std::string& out, const Snapshot& s) {
  Table t(out, kClusterColumns);
  for (const ClusterRow& c : s.clusters) {
    t.text(c.name).text(c.state).textOrNull(c.reason).textOrNull(c.primary);
    t.text(c.failover_mode).text(c.profile);
    t.number(c.nodes).number(c.healthy_nodes).number(c.paused ? 1 : 0).number(c.failovers);
    t.number(c.failover_time_us / 1000).textOrNull(formatTimestamp(c.last_failover_time_us));
    t.endRow();
  }
}

void renderNodes(std::string& out, const Snapshot& s) {
  Table t(out, kNodeColumns);
  for (const NodeRow& n : s.nodes) {
    t.text(n.cluster).text(n.node).text(n.role).text(n.health).number(n.fenced ? 1 : 0);
    t.number(n.timeline).textOrNull(n.lsn);
    if (n.lag_bytes) {
      t.number(*n.lag_bytes);
    } else {
      t.null();
    }
    t.textOrNull(formatTimestamp(n.last_probe_time_us)).number(n.probe_latency_us);
    t.number(n.lock_waiters).number(n.oldest_lock_wait_us / 1000).number(n.blocked_backends);
    t.number(n.active_backends).number(n.stalled_queries).textOrNull(n.server_version);
    t.endRow();
  }
}

void failoverCells(Table& t, const FailoverStepRow& f) {
  t.text(f.failover_id).text(f.cluster).text(f.kind);
  t.text(formatTimestamp(f.time_us)).number(f.elapsed_us / 1000);
  t.text(f.step).text(f.result).text(f.detail).textOrNull(f.possibly_lost);
}

void renderFailovers(std::string& out, const Snapshot& s) {
  Table t(out, kFailoverColumns);
  for (const FailoverStepRow& f : s.failovers) {
    failoverCells(t, f);
    t.endRow();
  }
}

constexpr std::string_view kHelp =
    "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"
    "\n\tSHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM"
    "\n\tSHOW DNS_HOSTS|DNS_ZONES"
    "\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS"
    "\n\tSHOW CLUSTERS|NODES|FAILOVERS"
    "\n\tSET key = arg"
    "\n\tRELOAD"
    "\n\tPAUSE [<db>]"
    "\n\tRESUME [<db>]"
    "\n\tDISABLE <db>"
    "\n\tENABLE <db>"
    "\n\tRECONNECT [<db>]"
    "\n\tKILL <db>"
    "\n\tKILL_CLIENT <id>"
    "\n\tSUSPEND"
    "\n\tSHUTDOWN"
    "\n\tWAIT_CLOSE [<db>]"
    "\n\tSWITCHOVER <cluster> [TO <node>]"
    "\n\tFAILOVER <cluster> [TO <node>]"
    "\n\tFENCE <node>    (a standby: any time; the primary: failover_mode = manual, or while"
    "\n\t                 the cluster waits for an operator)"
    "\n\tUNFENCE <node>  (refused while it is writable and not the routed primary: rewind it"
    "\n\t                 and start it as a standby first)"
    "\n\tDRILL <cluster> (a switchover that reports its steps, checks and verdict)"
    "\n\tSET_PRIMARY <cluster> TO <node>"
    "\n\tRESUME_CLUSTER <cluster>";

}  // namespace

Parts partsFor(ShowKind kind) {
  Parts p;
  switch (kind) {
    case ShowKind::kHelp:
    case ShowKind::kVersion:
    case ShowKind::kDnsHosts:
    case ShowKind::kDnsZones:
      break;
    case ShowKind::kPools:
      p.pools = true;
      break;
    case ShowKind::kClients:
      p.clients = true;
      break;
    case ShowKind::kServers:
      p.servers = true;
      break;
    case ShowKind::kSockets:
    case ShowKind::kActiveSockets:
      p.clients = p.servers = true;
      break;
    case ShowKind::kStats:
    case ShowKind::kStatsTotals:
    case ShowKind::kStatsAverages:
    case ShowKind::kTotals:
      p.stats = true;
      break;
    case ShowKind::kDatabases:
      p.databases = true;
      break;
    case ShowKind::kUsers:
      p.users = true;
      break;
    case ShowKind::kConfig:
      p.config = true;
      break;
    case ShowKind::kLists:
      p.lists = true;
      break;
    case ShowKind::kMem:
      p.mem = true;
      break;
    case ShowKind::kClusters:
      p.clusters = true;
      break;
    case ShowKind::kNodes:
      p.nodes = true;
      break;
    case ShowKind::kFailovers:
      p.failovers = true;
      break;
  }
  return p;
}

bool needsSnapshot(ShowKind kind) {
  return kind != ShowKind::kHelp && kind != ShowKind::kVersion && kind != ShowKind::kDnsHosts &&
         kind != ShowKind::kDnsZones;
}

void renderShow(std::string& out, ShowKind kind, const Snapshot& snapshot) {
  switch (kind) {
    case ShowKind::kHelp:
      // PgBouncer answers HELP with a notice, not rows; psql prints it the same way.
      proto::writeNoticeResponse(out, proto::severity::kNotice, "00000", "Console usage", kHelp);
      return;
    case ShowKind::kVersion: {
      Table t(out, kVersionColumns);
      t.text(versionString()).endRow();
      return;
    }
    case ShowKind::kPools:
      return renderPools(out, snapshot);
    case ShowKind::kClients:
      return renderConns(out, snapshot.clients, "C");
    case ShowKind::kServers:
      return renderConns(out, snapshot.servers, "S");
    case ShowKind::kSockets:
    case ShowKind::kActiveSockets:
      return renderSockets(out, snapshot, kind == ShowKind::kActiveSockets);
    case ShowKind::kStats:
    case ShowKind::kStatsTotals:
    case ShowKind::kStatsAverages:
      return renderStats(out, snapshot, kind);
    case ShowKind::kTotals:
      return renderTotals(out, snapshot);
    case ShowKind::kDatabases:
      return renderDatabases(out, snapshot);
    case ShowKind::kUsers:
    case ShowKind::kLists:
    case ShowKind::kMem:
    case ShowKind::kConfig:
    case ShowKind::kDnsHosts:
    case ShowKind::kDnsZones:
      return renderSmallLists(out, snapshot, kind);
    case ShowKind::kClusters:
      return renderClusters(out, snapshot);
    case ShowKind::kNodes:
      return renderNodes(out, snapshot);
    case ShowKind::kFailovers:
      return renderFailovers(out, snapshot);
  }
}

// One row per step (elapsed_ms: since the run started), one per check (step "check"), and
// the verdict last (elapsed_ms: the whole run).
void renderReport(std::string& out, const FailoverReport& report) {
  Table t(out, kFailoverColumns);
  FailoverStepRow last;
  last.failover_id = report.failover_id;
  last.cluster = report.cluster;
  last.kind = report.kind;
  for (const FailoverStepRow& f : report.steps) {
    failoverCells(t, f);
    t.endRow();
    last = f;
  }
  if (!report.failover_id.empty()) {
    last.failover_id = report.failover_id;
  }
  for (const FailoverCheck& c : report.checks) {
    FailoverStepRow row = last;
    row.step = "check";
    row.possibly_lost.clear();
    row.result = c.passed ? "passed" : "failed";
    row.detail = c.name + ": " + c.detail;
    failoverCells(t, row);
    t.endRow();
  }
  std::string detail = report.verdict;
  if (!report.new_primary.empty()) {
    detail += "; primary: " + report.new_primary;
  }
  detail += "; clients paused " + std::to_string(report.paused_us / 1000) + " ms; " +
            std::to_string(report.failed_transactions) + " transaction(s) failed";
  last.step = "verdict";
  last.result = report.passed ? "passed" : "failed";
  last.detail = std::move(detail);
  if (report.duration_us > 0) {
    last.elapsed_us = report.duration_us;
  }
  failoverCells(t, last);
  t.endRow();
}

std::string versionString() {
  return std::string("pgpivot ") + PGPIVOT_VERSION + ", compatible with PgBouncer 1.18.0";
}

}  // namespace pgpivot::admin
