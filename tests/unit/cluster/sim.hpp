// A simulated cluster for FailoverMachine walks: fake nodes produce the L, C and W samples
// a real HealthMonitor would, on a simulated clock; the simulator carries out the
// machine's actions the way the I/O side would (acks, promotions, fences). Faults are
// set on the nodes (mode = kDead, kFrozen, ...). Deterministic: no threads, no clock.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "pgpivot/cluster/event_log.hpp"
#include "pgpivot/cluster/failover.hpp"

namespace pgpivot::cluster::test {

inline constexpr uint64_t kStart = 1'000'000;  // simulated monotonic ms at start
inline const std::string kSysid = "7712878630329562490";

struct FakeNode {
  enum class Mode {
    kUp,           // answers everything
    kDead,         // postmaster gone: refused (the first L answer is 57P01)
    kFrozen,       // SIGSTOP / black hole: every probe times out
    kPartitioned,  // only pgpivot cannot reach it: timeouts, but it keeps feeding standbys
    kStarting,     // crash recovery: connections get 57P03
  };
  Mode mode = Mode::kUp;
  bool in_recovery = false;
  uint32_t timeline = 1;
  uint64_t lsn = 0x3000000;   // primary: current; standby: receive and replay
  uint64_t replay_lag = 0;    // standby: replay_lsn = lsn - replay_lag
  uint64_t recovery_end = 0;  // promoted: where its recovery ended (pg_last_wal_replay_lsn)
  std::string sysid = kSysid;
  int upstream = -1;  // standby: the node it streams from
  uint64_t last_receipt_ms = kStart;
  bool replay_paused = false;
  bool read_only = false;  // default_transaction_read_only (a fence)
  int lock_waiters = 0;
  uint64_t oldest_lock_wait_ms = 0;
  int io_waiters = 0;
  int syncrep_waiters = 0;
  // W's answer while up: kOk, or a timeout / SQLSTATE.
  ProbeOutcome write_outcome = ProbeOutcome::kOk;
  std::string write_sqlstate;
  bool first_l_after_death = true;

  static FakeNode primary() { return FakeNode{}; }
  static FakeNode standby(int upstream) {
    FakeNode n;
    n.in_recovery = true;
    n.upstream = upstream;
    return n;
  }
};

class Sim {
 public:
  Sim(const Settings& settings, std::vector<FakeNode> nodes, RoutingState restored = {})
      : nodes_(std::move(nodes)),
        machine_(names(nodes_.size()), settings, std::move(restored)),
        settings_(settings) {
    take(machine_.start(now_));
  }

  static std::vector<std::string> names(std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) {
      out.push_back("db" + std::to_string(i) + ":5432");
    }
    return out;
  }

  FailoverMachine& machine() { return machine_; }
  FakeNode& node(std::size_t i) { return nodes_[i]; }
  uint64_t now() const { return now_; }
  ClusterState state() const { return machine_.state(); }

  // How the simulated I/O side answers actions.
  ActionStatus promote_status = ActionStatus::kOk;
  ActionStatus persist_status = ActionStatus::kOk;
  bool ack_pause = true;
  bool ack_resume = true;
  bool execute_promote = true;  // kOk promotions really promote the node

  std::vector<Event> events;
  std::vector<Action> actions;

  // Runs the world for `ms` in 250 ms ticks: L on every node each probe_interval, W where
  // the machine's plan says, C at the plan's interval.
  void run(uint64_t ms) {
    const uint64_t end = now_ + ms;
    while (now_ < end) {
      now_ += 250;
      feedStandbys();
      if ((now_ - kStart) % settings_.probe_interval_ms == 0) {
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
          probe(i);
        }
      }
      take(machine_.tick(now_));
      deliverResults();
    }
  }

  // Runs until `pred` holds or `ms` passed; returns whether it held.
  template <class Pred>
  bool runUntil(uint64_t ms, Pred pred) {
    const uint64_t end = now_ + ms;
    while (now_ < end) {
      if (pred()) {
        return true;
      }
      run(250);
    }
    return pred();
  }

  Output admin(AdminCommand command) {
    Output out = machine_.onAdmin(command, now_);
    take(out);
    deliverResults();
    return out;
  }

  // The external manager (follow mode) or an operator promotes a standby.
  void promoteExternally(std::size_t i) {
    FakeNode& n = nodes_[i];
    n.in_recovery = false;
    n.recovery_end = n.lsn;  // a promotion replays all it received first
    ++n.timeline;
    n.upstream = -1;
    n.replay_lag = 0;
  }

  bool sawEvent(std::string_view name) const {
    return std::any_of(events.begin(), events.end(),
                       [&](const Event& e) { return e.event == name; });
  }
  const Event* lastEvent(std::string_view name) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->event == name) {
        return &*it;
      }
    }
    return nullptr;
  }
  bool visited(ClusterState s) const {
    return std::any_of(events.begin(), events.end(), [&](const Event& e) {
      return e.event == "state_change" && e.to == toString(s);
    });
  }
  // The sequence of states entered, from the state_change events.
  std::vector<std::string> path() const {
    std::vector<std::string> out;
    for (const Event& e : events) {
      if (e.event == "state_change") {
        out.push_back(e.to);
      }
    }
    return out;
  }
  std::size_t count(ActionKind kind) const {
    return static_cast<std::size_t>(std::count_if(actions.begin(), actions.end(),
                                                  [&](const Action& a) { return a.kind == kind; }));
  }
  const Action* lastAction(ActionKind kind) const {
    for (auto it = actions.rbegin(); it != actions.rend(); ++it) {
      if (it->kind == kind) {
        return &*it;
      }
    }
    return nullptr;
  }
  // The event log so far, one summary line per event, for INFO() on failure.
  std::string dump() const {
    const EventLogFormatter log("sim", "main");
    std::string out;
    for (const Event& e : events) {
      out += "  +" + std::to_string(e.mono_ms - kStart) + " " + log.summary(e) + "\n";
    }
    return out;
  }
  void clearLog() {
    events.clear();
    actions.clear();
  }

 private:
  void take(const Output& out) {
    for (const Event& e : out.events) {
      events.push_back(e);
    }
    for (const Action& a : out.actions) {
      actions.push_back(a);
      pending_.push_back(a);
    }
  }

  bool reachable(std::size_t i) const { return nodes_[i].mode == FakeNode::Mode::kUp; }

  void feedStandbys() {
    for (FakeNode& n : nodes_) {
      if (!n.in_recovery || n.upstream < 0 || n.mode != FakeNode::Mode::kUp) {
        continue;
      }
      const FakeNode& up = nodes_[static_cast<std::size_t>(n.upstream)];
      if (up.mode == FakeNode::Mode::kUp || up.mode == FakeNode::Mode::kPartitioned) {
        n.last_receipt_ms = now_;
        n.lsn = std::max(n.lsn, up.lsn);
      }
    }
  }

  bool streaming(const FakeNode& n) const {
    if (n.upstream < 0) {
      return false;
    }
    const FakeNode& up = nodes_[static_cast<std::size_t>(n.upstream)];
    // A killed or crashed upstream closes the connection; a frozen one keeps it open.
    return up.mode != FakeNode::Mode::kDead && up.mode != FakeNode::Mode::kStarting &&
           !(up.in_recovery && up.upstream < 0);
  }

  void probe(std::size_t i) {
    FakeNode& n = nodes_[i];
    const ProbePlan plan = machine_.probePlan(i);
    take(machine_.onStats(i, stats(i), now_));
    if (plan.write) {
      WriteSample w;
      w.at_ms = now_ - 2;
      w.latency_ms = 2;
      outcomeFor(n, w.outcome, w.sqlstate, w.at_ms, w.latency_ms);
      if (w.outcome == ProbeOutcome::kOk) {
        if (n.in_recovery || n.read_only) {
          w.outcome = ProbeOutcome::kError;
          w.sqlstate = "25006";
        } else if (n.write_outcome != ProbeOutcome::kOk) {
          w.outcome = n.write_outcome;
          w.sqlstate = n.write_sqlstate;
          if (w.outcome == ProbeOutcome::kTimeout) {
            w.at_ms = now_ - settings_.probe_timeout_ms;
            w.latency_ms = static_cast<uint32_t>(settings_.probe_timeout_ms);
          }
        } else {
          n.lsn += 0x100;  // the heartbeat writes WAL
        }
      }
      take(machine_.onWrite(i, w, now_));
    }
    if ((now_ - kStart) % plan.connect_interval_ms == 0) {
      ConnectSample c;
      c.at_ms = now_ - 2;
      c.latency_ms = 2;
      outcomeFor(n, c.outcome, c.sqlstate, c.at_ms, c.latency_ms);
      if (c.outcome == ProbeOutcome::kReset) {
        c.outcome = ProbeOutcome::kRefused;  // a fresh connection to a dead postmaster
      }
      take(machine_.onConnect(i, c, now_));
    }
  }

  void outcomeFor(const FakeNode& n, ProbeOutcome& outcome, std::string& sqlstate, uint64_t& at,
                  uint32_t& latency) const {
    switch (n.mode) {
      case FakeNode::Mode::kUp:
        outcome = ProbeOutcome::kOk;
        return;
      case FakeNode::Mode::kDead:
        outcome = ProbeOutcome::kReset;
        return;
      case FakeNode::Mode::kFrozen:
      case FakeNode::Mode::kPartitioned:
        outcome = ProbeOutcome::kTimeout;
        at = now_ - settings_.probe_timeout_ms;
        latency = static_cast<uint32_t>(settings_.probe_timeout_ms);
        return;
      case FakeNode::Mode::kStarting:
        outcome = ProbeOutcome::kError;
        sqlstate = "57P03";
        return;
    }
  }

  ProbeSample stats(std::size_t i) {
    FakeNode& n = nodes_[i];
    ProbeSample s;
    s.at_ms = now_ - 3;
    s.latency_ms = 3;
    outcomeFor(n, s.outcome, s.sqlstate, s.at_ms, s.latency_ms);
    if (n.mode == FakeNode::Mode::kDead) {
      if (n.first_l_after_death) {
        s.outcome = ProbeOutcome::kError;
        s.sqlstate = "57P01";  // terminating connection due to unexpected postmaster exit
        n.first_l_after_death = false;
      } else {
        s.outcome = ProbeOutcome::kRefused;
      }
    }
    if (!s.ok()) {
      return s;
    }
    n.first_l_after_death = true;
    s.in_recovery = n.in_recovery;
    s.timeline = n.timeline;
    s.system_identifier = n.sysid;
    s.server_version_num = 150018;
    if (n.in_recovery) {
      s.receive_lsn = n.lsn;
      s.replay_lsn = n.lsn - n.replay_lag;
      s.replay_paused = n.replay_paused;
      s.wal_receiver_streaming = streaming(n);
      if (s.wal_receiver_streaming) {
        s.last_msg_receipt_age_ms = now_ - n.last_receipt_ms;
      }
    } else {
      s.current_lsn = n.lsn;
      s.flush_lsn = n.lsn;
      s.recovery_end_lsn = n.recovery_end;
    }
    s.default_read_only = n.read_only;
    s.max_connections = 100;
    s.lock_waiters = n.lock_waiters;
    s.oldest_lock_wait_ms = n.oldest_lock_wait_ms;
    s.blocked_backends = n.lock_waiters;
    s.active_backends = n.lock_waiters + 1;
    s.io_waiters = n.io_waiters;
    s.syncrep_waiters = n.syncrep_waiters;
    return s;
  }

  // The I/O side's half: every action that wants a result gets one, as it would.
  void deliverResults() {
    while (!pending_.empty()) {
      std::vector<Action> batch;
      batch.swap(pending_);
      for (const Action& a : batch) {
        std::optional<ActionResult> r = execute(a);
        if (r) {
          take(machine_.onActionResult(*r, now_));
        }
      }
    }
  }

  std::optional<ActionResult> execute(const Action& a) {
    ActionResult r;
    r.id = a.id;
    r.duration_ms = 5;
    switch (a.kind) {
      case ActionKind::kRoute:
      case ActionKind::kAlert:
      case ActionKind::kRefuseWrites:
        return std::nullopt;
      case ActionKind::kPersistState:
        r.status = persist_status;
        r.error = persist_status == ActionStatus::kOk ? "" : "No space left on device";
        return r;
      case ActionKind::kPauseClients:
        if (!ack_pause) {
          return std::nullopt;
        }
        return r;
      case ActionKind::kResumeClients:
        if (!ack_resume) {
          return std::nullopt;
        }
        return r;
      case ActionKind::kFence:
        if (nodes_[*a.node].mode == FakeNode::Mode::kFrozen ||
            nodes_[*a.node].mode == FakeNode::Mode::kPartitioned) {
          return std::nullopt;  // the fence's connection hangs: no answer for a long time
        }
        if (!reachable(*a.node)) {
          r.status = ActionStatus::kUnreachable;
          r.error = "connection refused";
          return r;
        }
        nodes_[*a.node].read_only = true;
        return r;
      case ActionKind::kUnfence:
        nodes_[*a.node].read_only = false;
        return r;
      case ActionKind::kPromote:
        r.status = promote_status;
        r.duration_ms = 290;
        if (promote_status == ActionStatus::kOk && execute_promote) {
          promoteExternally(*a.node);
        } else if (promote_status != ActionStatus::kOk) {
          r.error = "pg_promote() returned false";
        }
        return r;
      default:
        return r;
    }
  }

  std::vector<FakeNode> nodes_;
  FailoverMachine machine_;
  Settings settings_;
  uint64_t now_ = kStart;
  std::vector<Action> pending_;
};

// Settings for walks: the defaults with a mode.
inline Settings walkSettings(config::FailoverMode mode) {
  Settings s;
  s.mode = mode;
  return s;
}

// A primary and `standbys` streaming standbys, STEADY for a few seconds, log cleared.
inline Sim steadyCluster(const Settings& settings, std::size_t standbys = 1) {
  std::vector<FakeNode> nodes{FakeNode::primary()};
  for (std::size_t i = 0; i < standbys; ++i) {
    nodes.push_back(FakeNode::standby(0));
  }
  Sim sim(settings, std::move(nodes));
  REQUIRE(sim.runUntil(5000, [&] { return sim.state() == ClusterState::kSteady; }));
  sim.run(3000);
  sim.clearLog();
  return sim;
}

// STEADY again, routing to `node`.
inline bool steadyOn(Sim& sim, std::size_t node) {
  return sim.state() == ClusterState::kSteady && sim.machine().routedPrimary() == node;
}

}  // namespace pgpivot::cluster::test
