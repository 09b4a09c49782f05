// The failover machine's three judgements, as pure functions over a snapshot of the
// nodes, so each rule is tested on its own:
//  - judgeWitness: did a standby lose the primary too (research §7.3 2)? Keeps a
//    network problem between pgpivot and the primary from becoming a failover.
//  - elect: the most advanced eligible standby (§4.2).
//  - findPrimary: the one writable node writes may go to, the old primaries to fence,
//    or a split brain (§3.3, §7.6).
// Not here: acting on the answers, timers, or probes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/cluster/evidence.hpp"
#include "pgpivot/cluster/node_health.hpp"
#include "pgpivot/cluster/probe_sample.hpp"
#include "pgpivot/cluster/routing_state.hpp"
#include "pgpivot/cluster/settings.hpp"

namespace pgpivot::cluster {

// What the judgements see of one node at one moment.
struct NodeView {
  std::size_t index = 0;
  std::string_view name;
  // The newest L sample, when it succeeded and is fresh (Settings::staleAfterMs); null
  // otherwise: a node whose last probe failed says nothing about its role now.
  const ProbeSample* stats = nullptr;
  // The newest successful L sample however old (NodeHealth::stats()): for the old primary
  // at an election, the last good sample, whose pg_stat_replication rows say which
  // standby was synchronous. Null when the node never answered.
  const ProbeSample* last_ok = nullptr;
  NodeState state = NodeState::kUnknown;
  bool fenced = false;
  std::optional<uint64_t> writable_since = {};  // NodeHealth::writableSinceMs
};

// ---- witness -------------------------------------------------------------------------

enum class WitnessVerdict : uint8_t {
  kPrimaryLost,   // a standby lost the primary too: go on
  kPrimaryAlive,  // a standby still hears from it: pgpivot is partitioned, do not fail over
  kUndecided,     // standbys answer, but none has an answer yet: ask again next tick
  kNoWitness,     // no standby answers at all
};
std::string_view toString(WitnessVerdict verdict);

struct Witness {
  WitnessVerdict verdict = WitnessVerdict::kNoWitness;
  std::optional<std::size_t> node;  // the standby that decided
  std::string reason;
  Evidence evidence;
};

// Standbys (fresh, in recovery, same system identifier) sampled at or after `since_ms`
// (when the primary stopped answering pgpivot) are asked, each by its WAL receiver:
//  - alive: streaming, and its last message from the primary arrived more than
//    witness_slack after pgpivot's last contact with the primary;
//  - lost: not streaming, or its last message is witness_stale old or older;
//  - otherwise undecided.
// Any "alive" wins over any "lost": positive proof of life beats a standby with
// trouble of its own.
Witness judgeWitness(std::span<const NodeView> nodes, std::size_t primary,
                     uint64_t primary_last_contact_ms, uint64_t since_ms,
                     std::string_view system_identifier, const Settings& settings);

// ---- election ------------------------------------------------------------------------

struct ElectionInput {
  std::optional<std::size_t> old_primary = {};  // never a candidate
  uint32_t timeline = 0;                        // the old primary's: candidates must be on it
  uint64_t primary_lsn = 0;  // the old primary's last known WAL position; 0: unknown
  uint64_t max_lag = 0;      // max_lag_on_failover, bytes
  std::string_view system_identifier;
  std::optional<std::size_t> target = {};  // an operator's choice: only it may win
  bool ignore_lag = false;                 // the operator named the target and accepts loss
};

// Which rule made a candidate eligible (the event log's `rule`).
enum class EligibleBy : uint8_t {
  kNone,
  kLag,             // lag against the old primary's last known WAL end <= max_lag
  kSyncStandby,     // it was the synchronous standby: every acknowledged commit is on it
  kQuorumStandby,   // it was in a quorum that needed every quorum standby's ack
  kAheadOfSync,     // it received at least as much WAL as a candidate of the two above
  kOperatorTarget,  // the operator named it and accepted its lag
};
std::string_view toString(EligibleBy rule);

struct Candidate {
  std::size_t node = 0;
  std::string name;
  bool eligible = false;
  EligibleBy rule = EligibleBy::kNone;
  std::string why_not;  // empty when eligible
  // What the old primary's last good sample said of this node, when it listed it:
  // {"sync_state", "flush_lsn", "sampled_at_ms", ...}; and why the synchronous rule did
  // not apply, when it did not.
  Evidence sync_evidence = {};
  std::string why_not_sync = {};
  uint64_t receive_lsn = 0;
  uint64_t replay_lsn = 0;
  uint64_t lag_bytes = 0;
  uint32_t timeline = 0;
};

struct Election {
  std::optional<std::size_t> chosen;
  std::vector<Candidate> candidates;  // every node but the old primary, in node order

  // {"candidates":[{node, receive_lsn, replay_lsn, lag_bytes, tli, eligible, why_not}],
  //  "chosen": name or null}, as in the research's example event.
  [[nodiscard]] Evidence evidence() const;
  // "db-b:5432: lag 2.0 MB over max_lag_on_failover; db-c:5432: not answering"
  [[nodiscard]] std::string whyNone() const;
};

// Eligible: answering, in recovery, same system identifier, not fenced, on the old
// primary's timeline, replay not paused, and one of:
//  - synchronous standby: the old primary's last good sample (its NodeView's last_ok)
//    lists it, by application_name = node name, with sync_state 'sync' (or 'quorum'
//    where the quorum needed every quorum standby: see election.cpp), and its receive
//    LSN is >= the flush LSN that sample reported for it. The primary acknowledged no
//    commit it had not flushed, so no acknowledged commit is missing, however far the
//    old primary's WAL (written, not acknowledged) ran ahead;
//  - ahead of such a standby: its receive LSN >= that standby's (same timeline, so the
//    same WAL): it holds everything that one does;
//  - lag <= max_lag (the asynchronous rule: lag against the old primary's last known
//    position, so an unknown position makes nobody eligible by it);
//  - the operator named it and accepted its lag.
// Highest receive LSN wins; then highest replay LSN; then node order (the order of
// `nodes` in the config is the priority).
Election elect(std::span<const NodeView> nodes, const ElectionInput& input);

// ---- the primary -----------------------------------------------------------------------

struct PrimarySearch {
  std::optional<std::size_t> primary;      // the one node writes may go to
  std::vector<std::size_t> split_brain;    // two or more writable at once on the newest TLI
  std::vector<std::size_t> old_primaries;  // writable on an older timeline: fence them
  std::string reason;                      // why no primary, for the event log
};

// Writable = fresh, not in recovery, same system identifier. Among writable nodes that
// are not fenced the newest timeline wins; the others, and every fenced writable node,
// are old primaries (a timeline is a fencing token: each promotion starts a new one).
// Accepted only when:
//  - it is alone on that timeline (two nodes that were writable at the same time there
//    are a split brain; two whose writable spans do not overlap yet are left undecided
//    until the next samples),
//  - its timeline is >= routing.min_timeline, and strictly newer when it is not the
//    expected primary: a second node on the routed timeline is a fork (two standbys
//    promoted from one primary both take the next timeline number), not a successor,
//  - no standby reports a newer timeline (that standby follows a primary we cannot see).
// The expected primary, still writable (and not fenced) at the same time as a node on a
// newer timeline, is not an old primary but the other half of a split brain: nothing
// demoted it.
PrimarySearch findPrimary(std::span<const NodeView> nodes, const RoutingState& routing);

}  // namespace pgpivot::cluster
