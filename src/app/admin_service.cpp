#include "pgpivot/app/admin_service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/log/log.hpp"

namespace pgpivot::app {

namespace {

template <class Row, class Key>
void sumInto(std::vector<Row>& total, std::vector<Row>&& part, Key key,
             void (*add)(Row&, const Row&)) {
  for (auto& row : part) {
    bool merged = false;
    for (auto& existing : total) {
      if (key(existing) == key(row)) {
        add(existing, row);
        merged = true;
        break;
      }
    }
    if (!merged) {
      total.push_back(std::move(row));
    }
  }
}

void addPool(admin::PoolRow& into, const admin::PoolRow& row) {
  into.cl_active += row.cl_active;
  into.cl_waiting += row.cl_waiting;
  into.sv_active += row.sv_active;
  into.sv_idle += row.sv_idle;
  into.sv_used += row.sv_used;
  into.sv_tested += row.sv_tested;
  into.sv_login += row.sv_login;
  into.max_wait_us = std::max(into.max_wait_us, row.max_wait_us);
}

// A mean over two workers, weighted by how many events each one's mean covers.
int64_t weighted(int64_t mean_a, int64_t count_a, int64_t mean_b, int64_t count_b) {
  if (count_a + count_b <= 0) {
    return std::max(mean_a, mean_b);
  }
  return (mean_a * count_a + mean_b * count_b) / (count_a + count_b);
}

void addStats(admin::StatsRow& into, const admin::StatsRow& row) {
  admin::StatAverages& a = into.averages;
  const admin::StatAverages& b = row.averages;
  a.xact_time_us = weighted(a.xact_time_us, a.xact_count, b.xact_time_us, b.xact_count);
  a.wait_time_us = weighted(a.wait_time_us, a.xact_count, b.wait_time_us, b.xact_count);
  a.query_time_us = weighted(a.query_time_us, a.query_count, b.query_time_us, b.query_count);
  a.xact_count += b.xact_count;
  a.query_count += b.query_count;
  a.bytes_received += b.bytes_received;
  a.bytes_sent += b.bytes_sent;
  into.totals.xact_count += row.totals.xact_count;
  into.totals.query_count += row.totals.query_count;
  into.totals.bytes_received += row.totals.bytes_received;
  into.totals.bytes_sent += row.totals.bytes_sent;
  into.totals.xact_time_us += row.totals.xact_time_us;
  into.totals.query_time_us += row.totals.query_time_us;
  into.totals.wait_time_us += row.totals.wait_time_us;
}

void addList(admin::ListRow& into, const admin::ListRow& row) {
  into.items += row.items;
}

void addMem(admin::MemRow& into, const admin::MemRow& row) {
  into.used += row.used;
  into.free += row.free;
  into.memtotal += row.memtotal;
}

// Gathers one snapshot from every worker, then completes on the asking worker's loop.
struct Gather {
  admin::Snapshot total;
  std::size_t remaining = 0;
  admin::Completion<admin::Snapshot> done;
  explicit Gather(admin::Completion<admin::Snapshot> d) : done(std::move(d)) {}
};

// Transactions failovers failed, and those on a lost server whose cause the session has
// not decided yet (it waits for its pool's evidence, up to a janitor tick after the pool
// moved): a completed run moved the pool, so they will be counted as failed too; the
// answer does not wait for that tick. One pending before the run and decided during it
// is in both sums once, so it does not count for this run.
int64_t failedOrUndecided(const admin::ProcessRow& p) {
  return p.failover_failed_transactions + p.lost_transactions_undecided;
}

// The "no_failed_transactions" check's detail: how many failed, and how many of their
// clients have been told so far (the rest sat idle in a transaction the fence aborted and
// are told 40001 at their next statement).
std::string failedTransactionsDetail(int64_t failed, int64_t errors) {
  std::string detail = std::to_string(failed) + " client transaction(s) failed while it ran; " +
                       std::to_string(errors) +
                       " failover error(s) (40001, 40003, 57P03) sent to clients so far";
  if (failed > errors) {
    detail += "; " + std::to_string(failed - errors) +
              " aborted while their client was idle in them, which is told 40001 at its next "
              "statement";
  }
  return detail;
}

}  // namespace

void mergeSnapshot(admin::Snapshot& total, admin::Snapshot&& part) {
  sumInto(
      total.pools, std::move(part.pools),
      [](const admin::PoolRow& r) { return std::make_pair(r.database, r.user); }, &addPool);
  sumInto(
      total.stats, std::move(part.stats), [](const admin::StatsRow& r) { return r.database; },
      &addStats);
  sumInto(
      total.lists, std::move(part.lists), [](const admin::ListRow& r) { return r.name; }, &addList);
  sumInto(
      total.mem, std::move(part.mem), [](const admin::MemRow& r) { return r.name; }, &addMem);
  for (auto& row : part.clients) {
    total.clients.push_back(std::move(row));
  }
  for (auto& row : part.servers) {
    total.servers.push_back(std::move(row));
  }
  // Process-wide rows are the same on every worker: the first one wins; counters add up.
  if (total.databases.empty()) {
    total.databases = std::move(part.databases);
  }
  if (total.users.empty()) {
    total.users = std::move(part.users);
  }
  if (total.config.empty()) {
    total.config = std::move(part.config);
  }
  if (total.clusters.empty() && total.nodes.empty()) {
    total.clusters = std::move(part.clusters);
    total.nodes = std::move(part.nodes);
    total.failovers = std::move(part.failovers);
  }
  total.process.workers += 1;
  total.process.start_time_us = part.process.start_time_us;
  total.process.clients_accepted += part.process.clients_accepted;
  total.process.login_failures += part.process.login_failures;
  total.process.cancel_requests += part.process.cancel_requests;
  total.process.failover_errors += part.process.failover_errors;
  total.process.failover_failed_transactions += part.process.failover_failed_transactions;
  total.process.lost_transactions_undecided += part.process.lost_transactions_undecided;
  total.process.client_connections += part.process.client_connections;
  total.process.server_connections += part.process.server_connections;
}

void AdminService::snapshot(const admin::Parts& parts, admin::Completion<admin::Snapshot> done) {
  auto gather = std::make_shared<Gather>(std::move(done));
  const auto& peers = worker_.peers();
  gather->remaining = peers.size();
  Worker* origin = &worker_;
  for (Worker* peer : peers) {
    peer->post([peer, origin, gather, parts] {
      admin::Snapshot part = peer->collectSnapshot(parts);
      origin->post([gather, part = std::move(part)]() mutable {
        mergeSnapshot(gather->total, std::move(part));
        if (--gather->remaining == 0) {
          gather->done(std::move(gather->total));
        }
      });
    });
  }
}

void AdminService::sampleStats(uint64_t now_ms) {
  // At least a second: a shorter period would average over a handful of events.
  const auto period =
      static_cast<uint64_t>(std::max<int64_t>(1000, worker_.config().stats_period.count()));
  if (sampled_at_ms_ != 0 && now_ms - sampled_at_ms_ < period) {
    return;
  }
  admin::Parts parts;
  parts.stats = true;
  admin::Snapshot mine = worker_.collectSnapshot(parts);
  std::map<std::string, admin::StatTotals> sample;
  for (admin::StatsRow& row : mine.stats) {
    sample[row.database] = row.totals;
  }
  if (sampled_at_ms_ != 0) {
    const double seconds = static_cast<double>(now_ms - sampled_at_ms_) / 1000.0;
    averages_.clear();
    for (const auto& [database, totals] : sample) {
      const auto before = sampled_.find(database);
      averages_[database] = admin::computeAverages(
          before != sampled_.end() ? before->second : admin::StatTotals{}, totals, seconds);
    }
  }
  sampled_ = std::move(sample);
  sampled_at_ms_ = now_ms;
}

void AdminService::runOnEveryWorker(const admin::Command& command,
                                    admin::Completion<admin::CommandOutput> done) {
  struct Fanout {
    int found = 0;
    std::size_t remaining = 0;
    admin::Command command;
    admin::Completion<admin::CommandOutput> done;
    explicit Fanout(admin::Completion<admin::CommandOutput> d) : done(std::move(d)) {}
  };
  auto fanout = std::make_shared<Fanout>(std::move(done));
  fanout->command = command;
  const auto& peers = worker_.peers();
  fanout->remaining = peers.size();
  Worker* origin = &worker_;
  for (Worker* peer : peers) {
    peer->post([peer, origin, fanout] {
      int found = 0;
      peer->applyAdminCommand(fanout->command, found);
      origin->post([fanout, found] {
        fanout->found += found;
        if (--fanout->remaining > 0) {
          return;
        }
        const auto kind = fanout->command.kind;
        if (kind == admin::CommandKind::kKillClient && fanout->found == 0) {
          fanout->done(
              fail(admin::code::kUndefinedObject,
                   fmt::format("pgpivot: no client with id {}", fanout->command.client_id)));
          return;
        }
        if ((kind == admin::CommandKind::kResume || kind == admin::CommandKind::kEnable) &&
            fanout->found == 0) {
          fanout->done(fail(admin::code::kObjectNotInPrerequisiteState,
                            kind == admin::CommandKind::kResume
                                ? "pgpivot: nothing is paused or suspended"
                                : "pgpivot: that database is not disabled"));
          return;
        }
        fanout->done(admin::CommandOutput{});
      });
    });
  }
}

// SWITCHOVER, DRILL and FAILOVER answer once the run has ended, with its steps, its checks
// and a verdict. The client transactions it failed (every worker's counter, before and
// after) become the check "no_failed_transactions": those told at once (40001/40003 for a
// statement in flight, 57P03 for one that waited too long) and those whose client sat idle
// inside them when the fence aborted them after drain_timeout (failedOrUndecided). Those
// clients are told 40001 only at their next statement, usually after the answer;
// counting errors sent would miss them and call a drill that aborted them clean.
// A SWITCHOVER or FAILOVER the monitor refuses is an error (55000); a DRILL reports its
// failed pre-checks as its verdict.
void AdminService::runIncident(const admin::Command& command,
                               admin::Completion<admin::CommandOutput> done) {
  const ProcessHooks* hooks = worker_.processHooks();
  if (hooks == nullptr || !hooks->cluster_run) {
    done(fail(sqlstate::kFeatureNotSupported, "pgpivot: no health monitor runs here"));
    return;
  }
  struct Run {
    admin::Completion<admin::CommandOutput> done;
    int64_t errors_before = 0;
    int64_t failed_before = 0;
    explicit Run(admin::Completion<admin::CommandOutput> d) : done(std::move(d)) {}
  };
  auto run = std::make_shared<Run>(std::move(done));
  const bool drill = command.kind == admin::CommandKind::kDrill;
  cluster::AdminKind kind = cluster::AdminKind::kSwitchover;
  if (drill) {
    kind = cluster::AdminKind::kDrill;
  } else if (command.kind == admin::CommandKind::kFailover) {
    kind = cluster::AdminKind::kFailover;
  }
  admin::Parts parts;
  parts.process = true;
  Worker* origin = &worker_;
  snapshot(
      parts, admin::Completion<admin::Snapshot>([this, run, hooks, origin, parts, drill, kind,
                                                 command](Result<admin::Snapshot> before) {
        run->errors_before = before ? before->process.failover_errors : 0;
        run->failed_before = before ? failedOrUndecided(before->process) : 0;
        hooks->cluster_run(
            command.target, kind, command.to_node,
            [this, run, origin, parts, drill](Result<admin::FailoverReport> report) {
              origin->post([this, run, parts, drill, report = std::move(report)] {
                if (!report) {
                  run->done(tl::unexpected(report.error()));
                  return;
                }
                if (report->failover_id.empty() && !drill) {
                  run->done(fail(admin::code::kObjectNotInPrerequisiteState,
                                 "pgpivot: " + report->kind + " " + report->verdict));
                  return;
                }
                snapshot(
                    parts,
                    admin::Completion<admin::Snapshot>(
                        [run, report = *report](Result<admin::Snapshot> after) mutable {
                          if (!report.failover_id.empty()) {
                            int64_t failed = 0;
                            int64_t errors = 0;
                            if (after) {
                              failed = std::max<int64_t>(
                                  failedOrUndecided(after->process) - run->failed_before, 0);
                              errors = std::max<int64_t>(
                                  after->process.failover_errors - run->errors_before, 0);
                            }
                            report.failed_transactions = failed;
                            report.checks.push_back({"no_failed_transactions", failed == 0,
                                                     failedTransactionsDetail(failed, errors)});
                            report.passed =
                                std::all_of(report.checks.begin(), report.checks.end(),
                                            [](const admin::FailoverCheck& c) { return c.passed; });
                          }
                          admin::CommandOutput output;
                          output.report = std::move(report);
                          run->done(std::move(output));
                        }));
              });
            });
      }));
}

// WAIT_CLOSE [db]: every worker is asked, every kWaitClosePollMs, how many of its servers
// (of `db`, or all) RECONNECT, a reload or a failover marked close_needed are still open;
// the command completes when none is, or fails (57014) after kWaitCloseLimitMs with the
// count, so a client that never releases its server cannot hold the console forever.
namespace {

constexpr uint64_t kWaitClosePollMs = 100;
constexpr uint64_t kWaitCloseLimitMs = 60000;

struct WaitClose {
  AdminService* service = nullptr;
  Worker* worker = nullptr;
  std::string database;
  uint64_t started_ms = 0;
  admin::Completion<admin::CommandOutput> done;
  uv_timer_t timer{};
  explicit WaitClose(admin::Completion<admin::CommandOutput> d) : done(std::move(d)) {}
};

void pollWaitClose(uv_timer_t* timer) noexcept {
  auto* w = static_cast<WaitClose*>(timer->data);
  admin::Parts parts;
  parts.servers = true;
  w->service->snapshot(
      parts, admin::Completion<admin::Snapshot>([w](Result<admin::Snapshot> s) {
        int64_t open = 0;
        if (s) {
          for (const admin::ConnRow& row : s->servers) {
            if (row.close_needed && (w->database.empty() || row.database == w->database)) {
              ++open;
            }
          }
        }
        const uint64_t waited = w->worker->now() - w->started_ms;
        if (s && open > 0 && waited < kWaitCloseLimitMs) {
          uv_timer_start(&w->timer, pollWaitClose, kWaitClosePollMs, 0);
          return;
        }
        if (!s) {
          w->done(tl::unexpected(s.error()));
        } else if (open > 0) {
          w->done(fail(sqlstate::kQueryCanceled,
                       fmt::format("pgpivot: WAIT_CLOSE: {} server connection(s) marked for close "
                                   "are still in use after {} s",
                                   open, waited / 1000)));
        } else {
          w->done(admin::CommandOutput{});
        }
        uv_close(reinterpret_cast<uv_handle_t*>(&w->timer),
                 [](uv_handle_t* h) noexcept { delete static_cast<WaitClose*>(h->data); });
      }));
}

}  // namespace

void AdminService::waitClose(const admin::Command& command,
                             admin::Completion<admin::CommandOutput> done) {
  auto* wait = new WaitClose(std::move(done));
  wait->service = this;
  wait->worker = &worker_;
  wait->database = command.target;
  wait->started_ms = worker_.now();
  uv_timer_init(worker_.loop(), &wait->timer);
  wait->timer.data = wait;
  // Not a reason to keep the loop running at shutdown.
  uv_unref(reinterpret_cast<uv_handle_t*>(&wait->timer));
  uv_timer_start(&wait->timer, pollWaitClose, 0, 0);
}

// SUSPEND: every worker stops reading its sockets (console sessions excepted, so RESUME
// can be sent), then the command completes once every worker's connections have written
// out what they had queued, polled every kFlushPollMs; after kFlushLimitMs it fails
// (57014) and the process stays suspended until RESUME.
namespace {

constexpr uint64_t kFlushPollMs = 20;
constexpr uint64_t kFlushLimitMs = 30000;

struct Flush {
  Worker* worker = nullptr;
  uint64_t started_ms = 0;
  admin::Completion<admin::CommandOutput> done;
  uv_timer_t timer{};
  explicit Flush(admin::Completion<admin::CommandOutput> d) : done(std::move(d)) {}
};

void finishFlush(Flush* f, Result<admin::CommandOutput> result) {
  f->done(std::move(result));
  uv_close(reinterpret_cast<uv_handle_t*>(&f->timer),
           [](uv_handle_t* h) noexcept { delete static_cast<Flush*>(h->data); });
}

void pollFlush(uv_timer_t* timer) noexcept {
  auto* f = static_cast<Flush*>(timer->data);
  struct Sum {
    std::size_t total = 0;
    std::size_t remaining = 0;
  };
  auto sum = std::make_shared<Sum>();
  const auto& peers = f->worker->peers();
  sum->remaining = peers.size();
  Worker* origin = f->worker;
  for (Worker* peer : peers) {
    peer->post([peer, origin, sum, f] {
      const std::size_t bytes = peer->unflushedBytes();
      origin->post([sum, f, bytes] {
        sum->total += bytes;
        if (--sum->remaining > 0) {
          return;
        }
        const uint64_t waited = f->worker->now() - f->started_ms;
        if (sum->total == 0) {
          finishFlush(f, admin::CommandOutput{});
        } else if (waited >= kFlushLimitMs) {
          finishFlush(f, fail(sqlstate::kQueryCanceled,
                              fmt::format("pgpivot: SUSPEND: {} byte(s) still unsent after {} s; "
                                          "reads stay suspended until RESUME",
                                          sum->total, waited / 1000)));
        } else {
          uv_timer_start(&f->timer, pollFlush, kFlushPollMs, 0);
        }
      });
    });
  }
}

}  // namespace

void AdminService::suspend(const admin::Command& command,
                           admin::Completion<admin::CommandOutput> done) {
  Worker* worker = &worker_;
  runOnEveryWorker(
      command,
      admin::Completion<admin::CommandOutput>(
          [worker, done = std::move(done)](Result<admin::CommandOutput> suspended) mutable {
            if (!suspended) {
              done(std::move(suspended));
              return;
            }
            auto* flush = new Flush(std::move(done));
            flush->worker = worker;
            flush->started_ms = worker->now();
            uv_timer_init(worker->loop(), &flush->timer);
            flush->timer.data = flush;
            uv_unref(reinterpret_cast<uv_handle_t*>(&flush->timer));
            uv_timer_start(&flush->timer, pollFlush, 0, 0);
          }));
}

void AdminService::run(const admin::Command& command,
                       admin::Completion<admin::CommandOutput> done) {
  PGPIVOT_LOG_INFO("admin console: {} runs command {}", command.caller,
                   static_cast<int>(command.kind));
  switch (command.kind) {
    case admin::CommandKind::kPause:
    case admin::CommandKind::kResume:
    case admin::CommandKind::kDisable:
    case admin::CommandKind::kEnable:
    case admin::CommandKind::kReconnect:
    case admin::CommandKind::kKill:
    case admin::CommandKind::kKillClient:
      runOnEveryWorker(command, std::move(done));
      return;
    case admin::CommandKind::kWaitClose:
      waitClose(command, std::move(done));
      return;
    case admin::CommandKind::kReload: {
      const ProcessHooks* hooks = worker_.processHooks();
      if (hooks == nullptr || !hooks->reload) {
        done(fail(sqlstate::kFeatureNotSupported, "pgpivot: RELOAD is not available here"));
        return;
      }
      auto shared = std::make_shared<admin::Completion<admin::CommandOutput>>(std::move(done));
      Worker* origin = &worker_;
      // The answer comes on the supervisor's thread; the completion runs on ours.
      hooks->reload([shared, origin](Result<std::vector<std::string>> result) {
        origin->post([shared, result = std::move(result)]() mutable {
          if (!result) {
            (*shared)(tl::unexpected(result.error()));
            return;
          }
          admin::CommandOutput output;
          output.notices = std::move(*result);
          (*shared)(std::move(output));
        });
      });
      return;
    }
    case admin::CommandKind::kShutdown: {
      const ProcessHooks* hooks = worker_.processHooks();
      done(admin::CommandOutput{});
      if (hooks != nullptr && hooks->shutdown) {
        hooks->shutdown();
      }
      return;
    }
    case admin::CommandKind::kSet: {
      const ProcessHooks* hooks = worker_.processHooks();
      if (hooks == nullptr || !hooks->set) {
        done(fail(sqlstate::kFeatureNotSupported, "pgpivot: SET is not available here"));
        return;
      }
      std::string key = command.key;
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!admin::changeableAtRuntime(key)) {
        // 55P02 cant_change_runtime_param, as PostgreSQL answers SET of a postmaster GUC.
        done(fail("55P02", "pgpivot: " + key +
                               " cannot be changed while pgpivot runs: edit the file and restart"));
        return;
      }
      auto shared = std::make_shared<admin::Completion<admin::CommandOutput>>(std::move(done));
      Worker* origin = &worker_;
      hooks->set(key, command.value, [shared, origin](Result<std::vector<std::string>> result) {
        origin->post([shared, result = std::move(result)]() mutable {
          if (!result) {
            (*shared)(tl::unexpected(result.error()));
            return;
          }
          admin::CommandOutput output;
          output.notices = std::move(*result);
          (*shared)(std::move(output));
        });
      });
      return;
    }
    case admin::CommandKind::kSuspend:
      suspend(command, std::move(done));
      return;
    case admin::CommandKind::kSwitchover:
    case admin::CommandKind::kDrill:
    case admin::CommandKind::kFailover:
      runIncident(command, std::move(done));
      return;
    case admin::CommandKind::kSetPrimary:
    case admin::CommandKind::kResumeCluster:
    case admin::CommandKind::kFence:
    case admin::CommandKind::kUnfence: {
      const ProcessHooks* hooks = worker_.processHooks();
      if (hooks == nullptr || !hooks->cluster_admin) {
        done(fail(sqlstate::kFeatureNotSupported, "pgpivot: no health monitor runs here"));
        return;
      }
      cluster::AdminKind kind = cluster::AdminKind::kResume;
      std::string cluster_name = command.target;
      std::string node = command.to_node;
      switch (command.kind) {
        case admin::CommandKind::kSetPrimary:
          kind = cluster::AdminKind::kSetPrimary;
          break;
        case admin::CommandKind::kFence:
        case admin::CommandKind::kUnfence:
          // FENCE node: the monitor finds the node's cluster.
          kind = command.kind == admin::CommandKind::kFence ? cluster::AdminKind::kFence
                                                            : cluster::AdminKind::kUnfence;
          cluster_name.clear();
          node = command.target;
          break;
        default:
          break;
      }
      auto shared = std::make_shared<admin::Completion<admin::CommandOutput>>(std::move(done));
      Worker* origin = &worker_;
      hooks->cluster_admin(cluster_name, kind, node, [shared, origin](Result<std::string> reply) {
        origin->post([shared, reply = std::move(reply)] {
          if (!reply) {
            (*shared)(tl::unexpected(reply.error()));
            return;
          }
          admin::CommandOutput output;
          output.notices.push_back("pgpivot: " + *reply);
          (*shared)(std::move(output));
        });
      });
      return;
    }
  }
  done(fail(sqlstate::kInternalError, "pgpivot: unknown admin command"));
}

}  // namespace pgpivot::app
