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

Evidence Election::evidence() const {
  std::vector<Evidence> list;
  for (const Candidate& c : candidates) {
    Evidence e{{"node", c.name},
               {"receive_lsn", formatLsn(c.receive_lsn)},
               {"replay_lsn", formatLsn(c.replay_lsn)},
               {"lag_bytes", c.lag_bytes},
               {"tli", c.timeline},
               {"eligible", c.eligible}};
    if (!c.eligible) {
      e.emplace_back("why_not", c.why_not);
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

Candidate judgeCandidate(const NodeView& n, const ElectionInput& in) {
  Candidate c;
  c.node = n.index;
  c.name = std::string(n.name);
  const auto no = [&](std::string why) {
    c.why_not = std::move(why);
    return c;
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
  if (!in.ignore_lag) {
    if (in.primary_lsn == 0) {
      return no("the old primary's WAL position is unknown, so its lag is");
    }
    if (c.lag_bytes > in.max_lag) {
      return no("lag " + formatBytes(c.lag_bytes) + " over max_lag_on_failover " +
                formatBytes(in.max_lag));
    }
  }
  c.eligible = true;
  return c;
}

}  // namespace

Election elect(std::span<const NodeView> nodes, const ElectionInput& input) {
  Election e;
  for (const NodeView& n : nodes) {
    if (input.old_primary && n.index == *input.old_primary) {
      continue;
    }
    Candidate c = judgeCandidate(n, input);
    if (c.eligible && input.target && n.index != *input.target) {
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
