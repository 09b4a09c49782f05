// Snapshot -> Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Each family is written
// as a block: # HELP, # TYPE, then every sample of it, because the format requires a
// family's samples to be contiguous. Counters keep PgBouncer's meaning but in base units:
// microseconds become seconds.
#include <array>
#include <charconv>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "pgpivot/admin/metrics.hpp"

#ifndef PGPIVOT_VERSION
#define PGPIVOT_VERSION "0.0.0"
#endif

namespace pgpivot::admin {
namespace {

using Label = std::pair<std::string_view, std::string_view>;

double seconds(int64_t us) {
  return static_cast<double>(us) / 1e6;
}

void appendEscaped(std::string& out, std::string_view text, bool quote_too) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote_too) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void appendNumber(std::string& out, double value) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  out.append(buf, ec == std::errc{} ? end : buf);
}

void appendNumber(std::string& out, int64_t value) {
  out += std::to_string(value);
}

// Writes one family; the header only goes out with the first sample, so a family with
// no rows leaves no trace.
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name), type_(type), help_(help) {}

  template <class Number>
  void sample(std::initializer_list<Label> labels, Number value) {
    if (!started_) {
      out_ += "# HELP ";
      out_ += name_;
      out_ += ' ';
      appendEscaped(out_, help_, false);
      out_ += "\n# TYPE ";
      out_ += name_;
      out_ += ' ';
      out_ += type_;
      out_ += '\n';
      started_ = true;
    }
    out_ += name_;
    if (labels.size() > 0) {
      char sep = '{';
      for (const auto& [key, label_value] : labels) {
        out_ += sep;
        out_ += key;
        out_ += "=\"";
        appendEscaped(out_, label_value, true);
        out_ += '"';
        sep = ',';
      }
      out_ += '}';
    }
    out_ += ' ';
    appendNumber(out_, value);
    out_ += '\n';
  }

 private:
  std::string& out_;
  std::string_view name_;
  std::string_view type_;
  std::string_view help_;
  bool started_ = false;
};

constexpr std::string_view kGauge = "gauge";
constexpr std::string_view kCounter = "counter";

void renderProcess(std::string& out, const ProcessRow& p) {
  Family(out, "pgpivot_info", kGauge, "pgpivot's version; always 1")
      .sample({{"version", PGPIVOT_VERSION}}, int64_t{1});
  Family(out, "pgpivot_start_time_seconds", kGauge, "Unix time pgpivot started")
      .sample({}, seconds(p.start_time_us));
  Family(out, "pgpivot_workers", kGauge, "Worker threads").sample({}, p.workers);
  Family(out, "pgpivot_client_connections", kGauge, "Client connections open now")
      .sample({}, p.client_connections);
  Family(out, "pgpivot_server_connections", kGauge, "Server connections open now")
      .sample({}, p.server_connections);
  Family(out, "pgpivot_clients_accepted_total", kCounter, "Client connections accepted")
      .sample({}, p.clients_accepted);
  Family(out, "pgpivot_client_login_failures_total", kCounter, "Client logins refused")
      .sample({}, p.login_failures);
  Family(out, "pgpivot_cancel_requests_total", kCounter, "Cancel requests forwarded to servers")
      .sample({}, p.cancel_requests);
  Family(out, "pgpivot_client_failover_errors_total", kCounter,
         "Failover errors sent to clients (40001, 40003, 57P03)")
      .sample({}, p.failover_errors);
}

void renderPools(std::string& out, const std::vector<PoolRow>& pools) {
  Family clients(out, "pgpivot_pool_client_connections", kGauge,
                 "Client connections of a pool by state (SHOW POOLS cl_*)");
  for (const PoolRow& p : pools) {
    const std::array<std::pair<std::string_view, int64_t>, 4> states{{
        {"active", p.cl_active},
        {"waiting", p.cl_waiting},
        {"active_cancel_req", p.cl_active_cancel_req},
        {"waiting_cancel_req", p.cl_waiting_cancel_req},
    }};
    for (const auto& [state, n] : states) {
      clients.sample({{"database", p.database}, {"user", p.user}, {"state", state}}, n);
    }
  }
  Family servers(out, "pgpivot_pool_server_connections", kGauge,
                 "Server connections of a pool by state (SHOW POOLS sv_*)");
  for (const PoolRow& p : pools) {
    const std::array<std::pair<std::string_view, int64_t>, 7> states{{
        {"active", p.sv_active},
        {"active_cancel", p.sv_active_cancel},
        {"being_canceled", p.sv_being_canceled},
        {"idle", p.sv_idle},
        {"used", p.sv_used},
        {"tested", p.sv_tested},
        {"login", p.sv_login},
    }};
    for (const auto& [state, n] : states) {
      servers.sample({{"database", p.database}, {"user", p.user}, {"state", state}}, n);
    }
  }
  Family wait(out, "pgpivot_pool_max_wait_seconds", kGauge,
              "How long the oldest waiting client of a pool has waited");
  for (const PoolRow& p : pools) {
    wait.sample({{"database", p.database}, {"user", p.user}}, seconds(p.max_wait_us));
  }
}

void renderStats(std::string& out, const std::vector<StatsRow>& stats) {
  struct Counter {
    std::string_view name;
    std::string_view help;
    int64_t StatTotals::*field;
    bool microseconds;
  };
  const std::array<Counter, 7> counters{{
      {"pgpivot_transactions_total", "Transactions pooled", &StatTotals::xact_count, false},
      {"pgpivot_queries_total", "Queries pooled", &StatTotals::query_count, false},
      {"pgpivot_received_bytes_total", "Bytes received from clients", &StatTotals::bytes_received,
       false},
      {"pgpivot_sent_bytes_total", "Bytes sent to clients", &StatTotals::bytes_sent, false},
      {"pgpivot_transaction_seconds_total", "Time spent in transactions on a server",
       &StatTotals::xact_time_us, true},
      {"pgpivot_query_seconds_total", "Time spent running queries", &StatTotals::query_time_us,
       true},
      {"pgpivot_client_wait_seconds_total", "Time clients spent waiting for a server",
       &StatTotals::wait_time_us, true},
  }};
  for (const Counter& c : counters) {
    Family family(out, c.name, kCounter, c.help);
    for (const StatsRow& r : stats) {
      const int64_t v = r.totals.*(c.field);
      if (c.microseconds) {
        family.sample({{"database", r.database}}, seconds(v));
      } else {
        family.sample({{"database", r.database}}, v);
      }
    }
  }
}

void renderDatabases(std::string& out, const std::vector<DatabaseRow>& databases) {
  struct Gauge {
    std::string_view name;
    std::string_view help;
    int64_t (*get)(const DatabaseRow&);
  };
  const std::array<Gauge, 5> gauges{{
      {"pgpivot_database_pool_size", "Configured pool size",
       [](const DatabaseRow& d) { return d.pool_size; }},
      {"pgpivot_database_max_connections", "max_db_connections; 0 is unlimited",
       [](const DatabaseRow& d) { return d.max_connections; }},
      {"pgpivot_database_current_connections", "Server connections to the database",
       [](const DatabaseRow& d) { return d.current_connections; }},
      {"pgpivot_database_paused", "1 if the database is paused",
       [](const DatabaseRow& d) { return int64_t{d.paused ? 1 : 0}; }},
      {"pgpivot_database_disabled", "1 if the database is disabled",
       [](const DatabaseRow& d) { return int64_t{d.disabled ? 1 : 0}; }},
  }};
  for (const Gauge& g : gauges) {
    Family family(out, g.name, kGauge, g.help);
    for (const DatabaseRow& d : databases) {
      family.sample({{"database", d.name}}, g.get(d));
    }
  }
}

void renderClusters(std::string& out, const std::vector<ClusterRow>& clusters) {
  Family state(out, "pgpivot_cluster_state", kGauge,
               "The failover state machine's state of a cluster; always 1");
  for (const ClusterRow& c : clusters) {
    state.sample({{"cluster", c.name}, {"state", c.state}, {"primary", c.primary}}, int64_t{1});
  }
  Family nodes(out, "pgpivot_cluster_nodes", kGauge, "Nodes of the cluster");
  for (const ClusterRow& c : clusters) {
    nodes.sample({{"cluster", c.name}}, c.nodes);
  }
  Family healthy(out, "pgpivot_cluster_healthy_nodes", kGauge, "Nodes that pass health probes");
  for (const ClusterRow& c : clusters) {
    healthy.sample({{"cluster", c.name}}, c.healthy_nodes);
  }
  Family paused(out, "pgpivot_cluster_paused", kGauge,
                "1 while new transactions to the cluster are held");
  for (const ClusterRow& c : clusters) {
    paused.sample({{"cluster", c.name}}, int64_t{c.paused ? 1 : 0});
  }
  Family failovers(out, "pgpivot_cluster_failovers_total", kCounter,
                   "Completed failovers and switchovers");
  for (const ClusterRow& c : clusters) {
    failovers.sample({{"cluster", c.name}}, c.failovers);
  }
  Family time(out, "pgpivot_cluster_failover_seconds_total", kCounter, "Time spent failing over");
  for (const ClusterRow& c : clusters) {
    time.sample({{"cluster", c.name}}, seconds(c.failover_time_us));
  }
  Family last(out, "pgpivot_cluster_last_failover_timestamp_seconds", kGauge,
              "Unix time the last failover started; 0 if never");
  for (const ClusterRow& c : clusters) {
    last.sample({{"cluster", c.name}}, seconds(c.last_failover_time_us));
  }
}

// Role and health as label-valued "state set" gauges, plus 0/1 gauges to alert on.
void renderNodeStates(std::string& out, const std::vector<NodeRow>& nodes) {
  Family health(out, "pgpivot_node_health", kGauge,
                "Health of a node as the monitor judges it; always 1");
  Family up(out, "pgpivot_node_up", kGauge, "1 unless the node is down");
  Family role(out, "pgpivot_node_role", kGauge, "Role of a node; always 1");
  Family primary(out, "pgpivot_node_is_primary", kGauge, "1 if the node is the primary");
  for (const NodeRow& n : nodes) {
    health.sample({{"cluster", n.cluster}, {"node", n.node}, {"health", n.health}}, int64_t{1});
  }
  for (const NodeRow& n : nodes) {
    up.sample({{"cluster", n.cluster}, {"node", n.node}}, int64_t{n.health == "down" ? 0 : 1});
  }
  for (const NodeRow& n : nodes) {
    role.sample({{"cluster", n.cluster}, {"node", n.node}, {"role", n.role}}, int64_t{1});
  }
  for (const NodeRow& n : nodes) {
    primary.sample({{"cluster", n.cluster}, {"node", n.node}},
                   int64_t{n.role == "primary" ? 1 : 0});
  }
}

void renderNodeGauges(std::string& out, const std::vector<NodeRow>& nodes) {
  Family lag(out, "pgpivot_node_replication_lag_bytes", kGauge,
             "Bytes of WAL the node is behind the primary");
  for (const NodeRow& n : nodes) {
    if (n.lag_bytes) {
      lag.sample({{"cluster", n.cluster}, {"node", n.node}}, *n.lag_bytes);
    }
  }
  struct Gauge {
    std::string_view name;
    std::string_view help;
    int64_t NodeRow::*field;
    bool microseconds;
  };
  const std::array<Gauge, 9> gauges{{
      {"pgpivot_node_fenced", "1 if the node is fenced", nullptr, false},
      {"pgpivot_node_timeline", "Timeline of the node", &NodeRow::timeline, false},
      {"pgpivot_node_probe_latency_seconds", "Duration of the last health probe",
       &NodeRow::probe_latency_us, true},
      {"pgpivot_node_last_probe_timestamp_seconds", "Unix time of the last health probe",
       &NodeRow::last_probe_time_us, true},
      {"pgpivot_node_lock_waiters", "Sessions waiting on a lock", &NodeRow::lock_waiters, false},
      {"pgpivot_node_oldest_lock_wait_seconds", "Age of the oldest lock wait",
       &NodeRow::oldest_lock_wait_us, true},
      {"pgpivot_node_blocked_backends", "Backends blocked by another", &NodeRow::blocked_backends,
       false},
      {"pgpivot_node_active_backends", "Backends running a query", &NodeRow::active_backends,
       false},
      {"pgpivot_node_stalled_queries", "pgpivot's queries with no reply for too long",
       &NodeRow::stalled_queries, false},
  }};
  for (const Gauge& g : gauges) {
    Family family(out, g.name, kGauge, g.help);
    for (const NodeRow& n : nodes) {
      const std::initializer_list<Label> labels{{"cluster", n.cluster}, {"node", n.node}};
      if (g.field == nullptr) {
        family.sample(labels, int64_t{n.fenced ? 1 : 0});
      } else if (g.microseconds) {
        family.sample(labels, seconds(n.*(g.field)));
      } else {
        family.sample(labels, n.*(g.field));
      }
    }
  }
}

}  // namespace

Parts metricsParts() {
  Parts p;
  p.pools = p.stats = p.databases = p.clusters = p.nodes = p.process = true;
  return p;
}

std::string renderMetrics(const Snapshot& snapshot) {
  std::string out;
  renderProcess(out, snapshot.process);
  renderPools(out, snapshot.pools);
  renderStats(out, snapshot.stats);
  renderDatabases(out, snapshot.databases);
  renderClusters(out, snapshot.clusters);
  renderNodeStates(out, snapshot.nodes);
  renderNodeGauges(out, snapshot.nodes);
  return out;
}

}  // namespace pgpivot::admin
