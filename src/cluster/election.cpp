// Witness, election and primary search: the rules are in election.hpp; this file only
// applies them and says why, in words and in evidence, for the event log.
#include "pgpivot/cluster/election.hpp"

#include <algorithm>

#include "format.hpp"

namespace pgpivot::cluster {
namespace {

bool sameCluster(const ProbeSample& s, std::string_view system_identifier) {
  return system_identifier.empty() || s.system_identifier == system_identifier;
}

bool writable(const NodeView& n, std::string_view system_identifier) {
  return n.stats != nullptr && !n.stats->in_recovery && sameCluster(*n.stats, system_identifier);
}

std::string formatBytes(uint64_t bytes) {
  if (bytes < 1024 * 1024) {
    return std::to_string(bytes) + " bytes";
  }
  const uint64_t tenths = bytes * 10 / (1024 * 1024);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " MB";
}

}  // namespace

std::string_view toString(WitnessVerdict verdict) {
  switch (verdict) {
    case WitnessVerdict::kPrimaryLost:
      return "primary_lost";
    case WitnessVerdict::kPrimaryAlive:
      return "primary_alive";
    case WitnessVerdict::kUndecided:
      return "undecided";
    case WitnessVerdict::kNoWitness:
      return "no_witness";
  }
  return "no_witness";
}

Witness judgeWitness(std::span<const NodeView> nodes, std::size_t primary,
                     uint64_t primary_last_contact_ms, uint64_t since_ms,
                     std::string_view system_identifier, const Settings& settings) {
  std::optional<Witness> lost;
  bool asked = false;
  for (const NodeView& n : nodes) {
    if (n.index == primary || n.stats == nullptr || !n.stats->in_recovery ||
        !sameCluster(*n.stats, system_identifier) || n.stats->at_ms < since_ms) {
      continue;
    }
    asked = true;
    const ProbeSample& s = *n.stats;
    Evidence e{{"node", n.name},
               {"wal_receiver_status", s.wal_receiver_streaming ? "streaming" : "not streaming"}};
    if (s.last_msg_receipt_age_ms) {
      e.emplace_back("last_msg_receipt_age_ms", *s.last_msg_receipt_age_ms);
    }
    if (!s.wal_receiver_streaming) {
      lost = lost.value_or(Witness{WitnessVerdict::kPrimaryLost, n.index,
                                   std::string(n.name) + ": WAL receiver not streaming", e});
      continue;
    }
    if (!s.last_msg_receipt_age_ms) {
      continue;
    }
    const uint64_t age = *s.last_msg_receipt_age_ms;
    const uint64_t receipt = s.at_ms > age ? s.at_ms - age : 0;
    if (receipt > primary_last_contact_ms + settings.witness_slack_ms) {
      e.emplace_back("heard_after_pgpivot_ms", receipt - primary_last_contact_ms);
      return Witness{WitnessVerdict::kPrimaryAlive, n.index,
                     std::string(n.name) + " heard from the primary " +
                         formatSeconds(receipt - primary_last_contact_ms) +
                         " after pgpivot last did",
                     e};
    }
    if (age >= settings.witness_stale_ms) {
      lost = lost.value_or(
          Witness{WitnessVerdict::kPrimaryLost, n.index,
                  std::string(n.name) + ": nothing from the primary for " + formatSeconds(age), e});
    }
  }
  if (lost) {
    return *lost;
  }
  if (asked) {
    return Witness{WitnessVerdict::kUndecided,
                   std::nullopt,
                   "standbys still within witness_stale of their last message",
                   {}};
  }
  return Witness{WitnessVerdict::kNoWitness, std::nullopt, "no standby answers", {}};
}

// ---- election --------------------------------------------------------------------------

std::string_view toString(EligibleBy rule) {
  switch (rule) {
    case EligibleBy::kNone:
      return "none";
    case EligibleBy::kLag:
      return "lag_within_max_lag_on_failover";
    case EligibleBy::kSyncStandby:
      return "synchronous_standby";
    case EligibleBy::kQuorumStandby:
      return "quorum_standby";
    case EligibleBy::kAheadOfSync:
      return "ahead_of_synchronous_standby";
    case EligibleBy::kOperatorTarget:
      return "operator_target";
  }
  return "none";
}

Evidence Election::evidence() const {
  std::vector<Evidence> list;
  for (const Candidate& c : candidates) {
    Evidence e{{"node", c.name},
               {"receive_lsn", formatLsn(c.receive_lsn)},
               {"replay_lsn", formatLsn(c.replay_lsn)},
               {"lag_bytes", c.lag_bytes},
               {"tli", c.timeline},
               {"eligible", c.eligible}};
    if (c.eligible) {
      e.emplace_back("rule", toString(c.rule));
    } else {
      e.emplace_back("why_not", c.why_not);
    }
    if (!c.sync_evidence.empty()) {
      e.emplace_back("old_primary_saw", c.sync_evidence);
    }
    if (!c.why_not_sync.empty() && c.rule != EligibleBy::kSyncStandby &&
        c.rule != EligibleBy::kQuorumStandby) {
      e.emplace_back("why_not_sync", c.why_not_sync);
    }
    list.push_back(std::move(e));
  }
  Evidence out{{"candidates", std::move(list)}};
  if (chosen) {
    for (const Candidate& c : candidates) {
      if (c.node == *chosen) {
        out.emplace_back("chosen", c.name);
      }
    }
  } else {
    out.emplace_back("chosen", nullptr);
  }
  return out;
}

std::string Election::whyNone() const {
  std::string out;
  for (const Candidate& c : candidates) {
    if (!c.eligible) {
      out += (out.empty() ? "" : "; ") + c.name + ": " + c.why_not;
    }
  }
  return out.empty() ? "no standby" : out;
}

namespace {

bool sameNameIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

// Is every commit the old primary acknowledged on this candidate, by what the primary's
// last good sample said of it? Sets c.rule to kSyncStandby / kQuorumStandby when so,
// otherwise c.why_not_sync; fills c.sync_evidence with what the sample said.
//
// Why the sample suffices: with synchronous replication a commit is acknowledged to its
// client only after the synchronous standbys flushed it (applied it, with remote_apply).
// So a standby that was 'sync' holds every commit acknowledged while it was, and its
// receive LSN (pg_last_wal_receive_lsn(), what it flushed; the WAL receiver flushes what
// it wrote when it loses the primary) at or past the flush LSN the primary reported for
// it shows it is the node the primary saw and kept what it had acknowledged. WAL the
// primary wrote past that (pg_current_wal_lsn(), the async rule's yardstick) holds no
// acknowledged commit it lacks: any later commit waited for it.
// What the sample cannot show: a change of the synchronous set after it was taken (at
// most one probe interval before the primary was lost): a higher-priority standby
// becoming sync, or a standby that was sync only with the quorum of another. A standby
// that took over and received more WAL is still found: it is ahead of this one, so it is
// eligible too (kAheadOfSync) and, being the most advanced, wins. Only one that took over
// and then stopped answering pgpivot as well (a second failure) goes unseen.
void proveSync(Candidate& c, const NodeView& n, const ProbeSample* primary) {
  if (primary == nullptr || primary->in_recovery) {
    c.why_not_sync = "no good sample of the old primary's pg_stat_replication";
    return;
  }
  if (primary->sync_names.method == SyncStandbyNames::Method::kOff) {
    c.why_not_sync = "synchronous_standby_names was empty on the old primary";
    return;
  }
  const ReplicaRow* row = nullptr;
  int matches = 0;
  for (const ReplicaRow& r : primary->replicas) {
    if (sameNameIgnoringCase(r.application_name, n.name)) {
      row = &r;
      ++matches;
    }
  }
  if (matches == 0) {
    c.why_not_sync = "the old primary's pg_stat_replication had no application_name '" +
                     std::string(n.name) +
                     "' (set it in the standby's primary_conninfo to be recognised)";
    return;
  }
  if (matches > 1) {
    c.why_not_sync = std::to_string(matches) + " walsenders of the old primary used " +
                     "application_name '" + std::string(n.name) + "': which one is this node " +
                     "is unknown";
    return;
  }
  c.sync_evidence = {{"sync_state", row->sync_state.empty() ? "unknown" : row->sync_state},
                     {"state", row->state.empty() ? "unknown" : row->state},
                     {"flush_lsn", formatLsn(row->flush_lsn)},
                     {"replay_lsn", formatLsn(row->replay_lsn)},
                     {"sampled_at_ms", primary->at_ms}};
  EligibleBy rule = EligibleBy::kNone;
  if (row->sync_state == "sync") {
    rule = EligibleBy::kSyncStandby;
  } else if (row->sync_state == "quorum") {
    // ANY n (...): each commit waits for n of the quorum standbys, any n. A 'quorum' row
    // says only that this standby may be among them: with ANY 1 of 2 connected, every
    // commit may have been acknowledged by the other one alone, so the row, and the
    // count of quorum rows on its own, prove nothing. Certain only when n is at least the
    // number of standbys that could acknowledge: the quorum ones and the 'potential' ones
    // (listed, still catching up: they join the quorum as soon as they stream). Then each
    // commit needed all of them, this one included. n is not in pg_stat_replication; it
    // comes from synchronous_standby_names, which must parse. (A listed standby that
    // connects only after the sample is the window documented above.)
    int32_t quorum_rows = 0;
    for (const ReplicaRow& r : primary->replicas) {
      quorum_rows += r.sync_state == "quorum" || r.sync_state == "potential" ? 1 : 0;
    }
    c.sync_evidence.emplace_back("quorum_rows", quorum_rows);
    if (primary->sync_names.method != SyncStandbyNames::Method::kQuorum) {
      c.why_not_sync = "sync_state quorum, but synchronous_standby_names could not be read";
      return;
    }
    c.sync_evidence.emplace_back("quorum_num", primary->sync_names.num);
    if (primary->sync_names.num < quorum_rows) {
      c.why_not_sync = "quorum standby of ANY " + std::to_string(primary->sync_names.num) +
                       " among " + std::to_string(quorum_rows) +
                       " that could acknowledge: a commit needed none from this one";
      return;
    }
    rule = EligibleBy::kQuorumStandby;
  } else {
    c.why_not_sync = "sync_state " + (row->sync_state.empty() ? "unknown" : row->sync_state) +
                     " in the old primary's last good sample";
    return;
  }
  if (row->flush_lsn == 0) {
    c.why_not_sync = "the old primary reported no flush LSN for it";
    return;
  }
  if (c.receive_lsn < row->flush_lsn) {
    c.why_not_sync = "received " + formatLsn(c.receive_lsn) + ", short of the flush LSN " +
                     formatLsn(row->flush_lsn) + " the old primary reported for it";
    return;
  }
  c.rule = rule;
}

// The candidate, and whether lag (the async rule) was all that kept it out.
struct Judged {
  Candidate c;
  bool lag_only = false;
};

Judged judgeCandidate(const NodeView& n, const ElectionInput& in, const ProbeSample* primary) {
  Judged j;
  Candidate& c = j.c;
  c.node = n.index;
  c.name = std::string(n.name);
  const auto no = [&](std::string why) {
    c.why_not = std::move(why);
    return j;
  };
  if (n.stats == nullptr) {
    return no("not answering");
  }
  const ProbeSample& s = *n.stats;
  c.receive_lsn = std::max(s.receive_lsn, s.replay_lsn);  // NULL receive: restored from archive
  c.replay_lsn = s.replay_lsn;
  c.timeline = s.timeline;
  if (in.primary_lsn > c.receive_lsn) {
    c.lag_bytes = in.primary_lsn - c.receive_lsn;
  }
  if (!s.in_recovery) {
    return no("not a standby");
  }
  if (!sameCluster(s, in.system_identifier)) {
    return no("system identifier " + s.system_identifier + " is another cluster's");
  }
  if (n.fenced) {
    return no("fenced");
  }
  if (s.timeline != in.timeline) {
    return no("on timeline " + std::to_string(s.timeline) + ", the primary was on " +
              std::to_string(in.timeline));
  }
  if (s.replay_paused) {
    return no("WAL replay is paused (pg_wal_replay_resume() first)");
  }
  proveSync(c, n, primary);
  if (c.rule != EligibleBy::kNone) {
    c.eligible = true;
    return j;
  }
  std::string lag_problem;
  if (in.primary_lsn == 0) {
    lag_problem = "the old primary's WAL position is unknown, so its lag is";
  } else if (c.lag_bytes > in.max_lag) {
    lag_problem =
        "lag " + formatBytes(c.lag_bytes) + " over max_lag_on_failover " + formatBytes(in.max_lag);
  }
  if (lag_problem.empty()) {
    c.rule = EligibleBy::kLag;
  } else if (in.ignore_lag) {
    c.rule = EligibleBy::kOperatorTarget;
  } else {
    j.lag_only = true;
    // Where synchronous replication was on, say why that rule did not clear it either.
    const bool sync_on =
        primary != nullptr && primary->sync_names.method != SyncStandbyNames::Method::kOff;
    return no(sync_on ? lag_problem + ", and not provably holding every acknowledged commit (" +
                            c.why_not_sync + ")"
                      : lag_problem);
  }
  c.eligible = true;
  return j;
}

}  // namespace

Election elect(std::span<const NodeView> nodes, const ElectionInput& input) {
  const ProbeSample* primary = nullptr;
  if (input.old_primary) {
    for (const NodeView& n : nodes) {
      if (n.index == *input.old_primary && n.last_ok != nullptr && !n.last_ok->in_recovery &&
          sameCluster(*n.last_ok, input.system_identifier)) {
        primary = n.last_ok;
      }
    }
  }
  std::vector<Judged> judged;
  for (const NodeView& n : nodes) {
    if (input.old_primary && n.index == *input.old_primary) {
      continue;
    }
    judged.push_back(judgeCandidate(n, input, primary));
  }
  // A standby that received at least as much WAL as one proven to hold every
  // acknowledged commit holds them too: on one timeline WAL up to a position is the same
  // everywhere.
  std::optional<uint64_t> proven_lsn;
  std::string proven_by;
  for (const Judged& j : judged) {
    if ((j.c.rule == EligibleBy::kSyncStandby || j.c.rule == EligibleBy::kQuorumStandby) &&
        (!proven_lsn || j.c.receive_lsn < *proven_lsn)) {
      proven_lsn = j.c.receive_lsn;
      proven_by = j.c.name;
    }
  }
  Election e;
  for (Judged& j : judged) {
    Candidate& c = j.c;
    if (j.lag_only && proven_lsn && c.receive_lsn >= *proven_lsn) {
      c.eligible = true;
      c.rule = EligibleBy::kAheadOfSync;
      c.why_not.clear();
      c.why_not_sync = "received at least as much WAL as " + proven_by + ", which is proven";
    }
    if (c.eligible && input.target && c.node != *input.target) {
      c.eligible = false;
      c.why_not = "not the operator's choice";
    }
    e.candidates.push_back(std::move(c));
  }
  const Candidate* best = nullptr;
  for (const Candidate& c : e.candidates) {
    if (!c.eligible) {
      continue;
    }
    if (best == nullptr || c.receive_lsn > best->receive_lsn ||
        (c.receive_lsn == best->receive_lsn && c.replay_lsn > best->replay_lsn)) {
      best = &c;  // ties keep the earlier node: config order is the priority
    }
  }
  if (best != nullptr) {
    e.chosen = best->node;
  }
  return e;
}

// ---- the primary -----------------------------------------------------------------------

PrimarySearch findPrimary(std::span<const NodeView> nodes, const RoutingState& routing) {
  PrimarySearch out;
  const std::string_view sysid = routing.system_identifier;
  // A fenced node is out whatever its timeline: it is an old primary (fenced by
  // pgpivot) or the loser of an operator's SET PRIMARY.
  uint32_t top = 0;
  for (const NodeView& n : nodes) {
    if (writable(n, sysid) && !n.fenced) {
      top = std::max(top, n.stats->timeline);
    }
  }
  std::vector<const NodeView*> at_top;
  for (const NodeView& n : nodes) {
    if (!writable(n, sysid)) {
      continue;
    }
    if (n.fenced || n.stats->timeline < top || n.stats->timeline < routing.min_timeline) {
      out.old_primaries.push_back(n.index);
    } else {
      at_top.push_back(&n);
    }
  }
  if (at_top.empty()) {
    out.reason = out.old_primaries.empty() ? "no writable node"
                                           : "every writable node is on a timeline older than " +
                                                 std::to_string(routing.min_timeline);
    return out;
  }
  if (at_top.size() > 1) {
    // Writable at the same time: each one's writable span reaches the other's newest
    // sample. Otherwise one may have stopped before the other started (a switchover seen
    // between two probes): wait for the next samples.
    const auto overlap = [](const NodeView* a, const NodeView* b) {
      return a->writable_since.value_or(a->stats->at_ms) <= b->stats->at_ms &&
             b->writable_since.value_or(b->stats->at_ms) <= a->stats->at_ms;
    };
    for (std::size_t i = 0; i < at_top.size(); ++i) {
      for (std::size_t j = i + 1; j < at_top.size(); ++j) {
        if (overlap(at_top[i], at_top[j])) {
          for (const NodeView* n : at_top) {
            out.split_brain.push_back(n->index);
          }
          out.reason = "more than one writable node on timeline " + std::to_string(top);
          return out;
        }
      }
    }
    out.reason = "two writable nodes on timeline " + std::to_string(top) +
                 " seen at different moments; waiting for newer samples";
    return out;
  }
  const NodeView& x = *at_top.front();
  const uint32_t tli = x.stats->timeline;
  // The expected primary still writable while another node was promoted past it: no
  // failover demoted it, so this is two primaries, not an old one (research §3.3 5).
  for (const std::size_t i : out.old_primaries) {
    const NodeView& e = nodes[i];
    if (!e.fenced && !routing.expected_primary.empty() && e.name == routing.expected_primary &&
        e.writable_since.value_or(e.stats->at_ms) <= x.stats->at_ms &&
        x.writable_since.value_or(x.stats->at_ms) <= e.stats->at_ms) {
      out.split_brain = {e.index, x.index};
      out.old_primaries.clear();
      out.reason = std::string(e.name) + " (expected primary, timeline " +
                   std::to_string(e.stats->timeline) + ") and " + std::string(x.name) +
                   " (timeline " + std::to_string(tli) + ") are both writable";
      return out;
    }
  }
  const bool expected = !routing.expected_primary.empty() && x.name == routing.expected_primary;
  if (!expected && !routing.expected_primary.empty() && tli <= routing.min_timeline) {
    out.reason = std::string(x.name) + " is writable on timeline " + std::to_string(tli) +
                 ", not newer than the routed " + std::to_string(routing.min_timeline) + " of " +
                 routing.expected_primary + ": a fork, not a successor";
    return out;
  }
  for (const NodeView& n : nodes) {
    if (n.stats != nullptr && n.stats->in_recovery && sameCluster(*n.stats, sysid) &&
        n.stats->timeline > tli) {
      out.reason = std::string(n.name) + " follows timeline " + std::to_string(n.stats->timeline) +
                   ", newer than " + std::string(x.name) + "'s " + std::to_string(tli);
      return out;
    }
  }
  out.primary = x.index;
  return out;
}

}  // namespace pgpivot::cluster
