// The three pure judgements: the witness (research §7.3 2), the election (§4.2) and the
// primary search with its split-brain and timeline rules (§3.3, §7.6).
#include "pgpivot/cluster/election.hpp"

#include <catch2/catch.hpp>
#include <deque>

namespace pgpivot::cluster {
namespace {

const std::string kSysid = "7712878630329562490";
const std::string kNames[] = {"db0:5432", "db1:5432", "db2:5432"};

// Owns the samples the views point at.
struct Nodes {
  std::deque<ProbeSample> samples;
  std::vector<NodeView> views;

  ProbeSample& add(bool in_recovery, uint32_t timeline, uint64_t lsn, uint64_t at = 10000) {
    ProbeSample s;
    s.at_ms = at;
    s.in_recovery = in_recovery;
    s.timeline = timeline;
    s.system_identifier = kSysid;
    if (in_recovery) {
      s.receive_lsn = lsn;
      s.replay_lsn = lsn;
      s.wal_receiver_streaming = true;
      s.last_msg_receipt_age_ms = 100;
    } else {
      s.current_lsn = lsn;
    }
    samples.push_back(s);
    const std::size_t i = views.size();
    views.push_back(NodeView{.index = i, .name = kNames[i], .stats = &samples.back()});
    return samples.back();
  }
  void addSilent() {
    const std::size_t i = views.size();
    views.push_back(NodeView{.index = i, .name = kNames[i]});
  }
  ProbeSample& operator[](std::size_t i) { return const_cast<ProbeSample&>(*views[i].stats); }
};

// ---- witness ---------------------------------------------------------------------------

// The primary (node 0) last answered pgpivot at t = 5000 and has been failing since 5000.
Witness judge(Nodes& n, const Settings& s = {}) {
  return judgeWitness(n.views, 0, 5000, 5000, kSysid, s);
}

TEST_CASE("witness: a standby whose WAL receiver stopped lost the primary too", "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  ProbeSample& sb = n.add(true, 1, 0x3000000, 6000);
  sb.wal_receiver_streaming = false;
  sb.last_msg_receipt_age_ms.reset();
  const Witness w = judge(n);
  CHECK(w.verdict == WitnessVerdict::kPrimaryLost);
  CHECK(w.node == std::size_t{1});
  CHECK(w.reason == "db1:5432: WAL receiver not streaming");
}

TEST_CASE("witness: nothing from the primary for witness_stale means lost", "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  ProbeSample& sb = n.add(true, 1, 0x3000000, 15000);
  sb.last_msg_receipt_age_ms = 9999;  // received at 5001: no later than pgpivot's contact
  CHECK(judge(n).verdict == WitnessVerdict::kUndecided);
  sb.last_msg_receipt_age_ms = 10000;
  CHECK(judge(n).verdict == WitnessVerdict::kPrimaryLost);
}

TEST_CASE("witness: a standby that heard from the primary after pgpivot lost it vetoes",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  ProbeSample& sb = n.add(true, 1, 0x3000000, 9000);
  sb.last_msg_receipt_age_ms = 200;  // received at 8800, long after pgpivot's 5000
  const Witness w = judge(n);
  CHECK(w.verdict == WitnessVerdict::kPrimaryAlive);
  CHECK(w.reason.find("after pgpivot last did") != std::string::npos);
  SECTION("within witness_slack it proves nothing yet") {
    sb.last_msg_receipt_age_ms = 9000 - 5000 - 999;  // received at 5999
    CHECK(judge(n).verdict == WitnessVerdict::kUndecided);
  }
}

TEST_CASE("witness: one standby alive beats another one lost", "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  n.add(true, 1, 0x3000000, 9000).wal_receiver_streaming = false;
  n.add(true, 1, 0x3000000, 9000).last_msg_receipt_age_ms = 100;
  CHECK(judge(n).verdict == WitnessVerdict::kPrimaryAlive);
}

TEST_CASE("witness: only fresh standbys of this cluster sampled after the failure count",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  SECTION("no standby answers") {
    n.addSilent();
    CHECK(judge(n).verdict == WitnessVerdict::kNoWitness);
  }
  SECTION("a sample from before the primary failed") {
    n.add(true, 1, 0x3000000, 4000).wal_receiver_streaming = false;
    CHECK(judge(n).verdict == WitnessVerdict::kNoWitness);
  }
  SECTION("another cluster's standby") {
    ProbeSample& sb = n.add(true, 1, 0x3000000, 6000);
    sb.wal_receiver_streaming = false;
    sb.system_identifier = "1";
    CHECK(judge(n).verdict == WitnessVerdict::kNoWitness);
  }
  SECTION("a writable node is no witness") {
    n.add(false, 2, 0x3000000, 6000);
    CHECK(judge(n).verdict == WitnessVerdict::kNoWitness);
  }
}

// ---- election ----------------------------------------------------------------------------

ElectionInput input(uint64_t primary_lsn = 0x3000000) {
  return ElectionInput{.old_primary = 0,
                       .timeline = 1,
                       .primary_lsn = primary_lsn,
                       .max_lag = 1024 * 1024,
                       .system_identifier = kSysid};
}

TEST_CASE("election: the highest receive LSN wins, then replay, then node order",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  n.add(true, 1, 0x2F00000);
  n.add(true, 1, 0x3000000);
  Election e = elect(n.views, input());
  CHECK(e.chosen == std::size_t{2});
  n[1].receive_lsn = 0x3000000;  // tie on receive: replay decides
  n[1].replay_lsn = 0x3000000;
  n[2].replay_lsn = 0x2FFFF00;
  e = elect(n.views, input());
  CHECK(e.chosen == std::size_t{1});
  n[2].replay_lsn = n[1].replay_lsn;  // full tie: the first in the config
  e = elect(n.views, input());
  CHECK(e.chosen == std::size_t{1});
  CHECK(e.candidates.size() == 2);
}

TEST_CASE("election: standbys lagging beyond max_lag_on_failover are not eligible",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  n.add(true, 1, 0x3000000 - 1024 * 1024 - 1);
  Election e = elect(n.views, input());
  CHECK_FALSE(e.chosen);
  CHECK(e.candidates[0].lag_bytes == 1024 * 1024 + 1);
  CHECK(e.whyNone() == "db1:5432: lag 1.0 MB over max_lag_on_failover 1.0 MB");
  n[1].receive_lsn += 1;  // exactly at the limit
  CHECK(elect(n.views, input()).chosen == std::size_t{1});
}

TEST_CASE("election: each eligibility rule", "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  n.add(true, 1, 0x3000000);
  ElectionInput in = input();
  SECTION("not answering") {
    n.views[1].stats = nullptr;
    CHECK(elect(n.views, in).whyNone() == "db1:5432: not answering");
  }
  SECTION("not a standby") {
    n[1].in_recovery = false;
    CHECK(elect(n.views, in).whyNone() == "db1:5432: not a standby");
  }
  SECTION("another cluster") {
    n[1].system_identifier = "1";
    CHECK_FALSE(elect(n.views, in).chosen);
  }
  SECTION("fenced") {
    n.views[1].fenced = true;
    CHECK(elect(n.views, in).whyNone() == "db1:5432: fenced");
  }
  SECTION("another timeline") {
    n[1].timeline = 2;
    CHECK(elect(n.views, in).whyNone() == "db1:5432: on timeline 2, the primary was on 1");
  }
  SECTION("replay paused") {
    n[1].replay_paused = true;
    CHECK_FALSE(elect(n.views, in).chosen);
  }
  SECTION("the old primary's position unknown") {
    in.primary_lsn = 0;
    CHECK_FALSE(elect(n.views, in).chosen);
    in.ignore_lag = true;
    CHECK(elect(n.views, in).chosen == std::size_t{1});
  }
  SECTION("the old primary is never a candidate") {
    CHECK(elect(n.views, in).candidates.size() == 1);
  }
}

TEST_CASE("election: an operator's target wins only if eligible, naming it accepts its lag",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  n.add(true, 1, 0x3000000);
  n.add(true, 1, 0x1000000);  // 32 MB behind
  ElectionInput in = input();
  in.target = 2;
  CHECK_FALSE(elect(n.views, in).chosen);
  in.ignore_lag = true;
  CHECK(elect(n.views, in).chosen == std::size_t{2});
}

TEST_CASE("election evidence lists every candidate as in the research's example",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();
  n.add(true, 1, 0x3006520);
  n.add(true, 1, 0x3006000);
  const Evidence e = elect(n.views, input(0x3006520)).evidence();
  const auto& list = std::get<std::vector<Evidence>>(*findField(e, "candidates"));
  REQUIRE(list.size() == 2);
  CHECK(std::get<std::string>(*findField(list[0], "receive_lsn")) == "0/3006520");
  CHECK(std::get<int64_t>(*findField(list[1], "lag_bytes")) == 0x520);
  CHECK(std::get<std::string>(*findField(e, "chosen")) == "db1:5432");
}

// ---- the primary ---------------------------------------------------------------------------

RoutingState routed(std::string primary, uint32_t timeline) {
  RoutingState r;
  r.epoch = 3;
  r.system_identifier = kSysid;
  r.expected_primary = std::move(primary);
  r.min_timeline = timeline;
  return r;
}

TEST_CASE("primary search: the one writable node", "[unit][cluster]") {
  Nodes n;
  n.add(false, 1, 0x3000000);
  n.add(true, 1, 0x3000000);
  const PrimarySearch p = findPrimary(n.views, RoutingState{});
  CHECK(p.primary == std::size_t{0});
  CHECK(p.split_brain.empty());
  CHECK(p.old_primaries.empty());
}

TEST_CASE("primary search: a node on an older timeline is an old primary, never chosen",
          "[unit][cluster]") {
  Nodes n;
  n.add(false, 1, 0x3000000);  // the old primary, restarted (research fault 14)
  n.add(false, 2, 0x3100000);  // promoted
  const PrimarySearch p = findPrimary(n.views, routed("db1:5432", 2));
  CHECK(p.primary == std::size_t{1});
  CHECK(p.old_primaries == std::vector<std::size_t>{0});
  // Before pgpivot routed to the new one (its failover still searching): same answer.
  const PrimarySearch searching = findPrimary(n.views, routed("", 1));
  CHECK(searching.primary == std::size_t{1});
  // Below min_timeline even when alone.
  n.views[1].stats = nullptr;
  const PrimarySearch alone = findPrimary(n.views, routed("db1:5432", 2));
  CHECK_FALSE(alone.primary);
  CHECK(alone.old_primaries == std::vector<std::size_t>{0});
}

TEST_CASE("primary search: two nodes writable at the same time on one timeline are a split brain",
          "[unit][cluster]") {
  Nodes n;
  n.add(false, 2, 0x3000000, 10000);
  n.add(false, 2, 0x3100000, 10100);
  n.views[0].writable_since = 5000;
  n.views[1].writable_since = 8000;
  const PrimarySearch p = findPrimary(n.views, routed("db0:5432", 2));
  CHECK_FALSE(p.primary);
  CHECK(p.split_brain == std::vector<std::size_t>{0, 1});
  SECTION("not yet when one stopped before the other started") {
    n.views[1].writable_since = 10050;  // after node 0's newest sample
    const PrimarySearch q = findPrimary(n.views, routed("db0:5432", 2));
    CHECK_FALSE(q.primary);
    CHECK(q.split_brain.empty());
  }
}

TEST_CASE(
    "primary search: the expected primary still writable when another was promoted is a "
    "split brain",
    "[unit][cluster]") {
  Nodes n;
  n.add(false, 1, 0x3000000, 10000);  // never demoted
  n.add(false, 2, 0x3100000, 10000);  // promoted by someone else meanwhile
  n.views[0].writable_since = 1000;
  n.views[1].writable_since = 9000;
  const PrimarySearch p = findPrimary(n.views, routed("db0:5432", 1));
  CHECK_FALSE(p.primary);
  CHECK(p.split_brain == std::vector<std::size_t>{0, 1});
  SECTION("unless it stopped being writable before the other started") {
    n.views[1].writable_since = 10001;
    CHECK(findPrimary(n.views, routed("db0:5432", 1)).primary == std::size_t{1});
  }
}

TEST_CASE("primary search: a writable sibling on the routed timeline is a fork, not a successor",
          "[unit][cluster]") {
  Nodes n;
  n.addSilent();               // the expected primary, down
  n.add(false, 2, 0x3100000);  // promoted from a timeline-1 standby: also timeline 2
  PrimarySearch p = findPrimary(n.views, routed("db0:5432", 2));
  CHECK_FALSE(p.primary);
  CHECK(p.reason.find("a fork") != std::string::npos);
  n[1].timeline = 3;  // a real successor of the routed timeline
  p = findPrimary(n.views, routed("db0:5432", 2));
  CHECK(p.primary == std::size_t{1});
  // The expected primary itself may come back on the same timeline (a restart).
  Nodes back;
  back.add(false, 2, 0x3000000);
  CHECK(findPrimary(back.views, routed("db0:5432", 2)).primary == std::size_t{0});
}

TEST_CASE("primary search: fenced nodes are never the primary", "[unit][cluster]") {
  Nodes n;
  n.add(false, 2, 0x3000000);
  n.views[0].fenced = true;
  const PrimarySearch p = findPrimary(n.views, routed("db0:5432", 2));
  CHECK_FALSE(p.primary);
  CHECK(p.old_primaries == std::vector<std::size_t>{0});
}

TEST_CASE("primary search: a standby following a newer timeline blocks the choice",
          "[unit][cluster]") {
  Nodes n;
  n.add(false, 2, 0x3000000);
  n.add(true, 3, 0x3200000);  // streams from a timeline-3 primary pgpivot cannot see
  const PrimarySearch p = findPrimary(n.views, routed("db0:5432", 2));
  CHECK_FALSE(p.primary);
  CHECK(p.reason == "db1:5432 follows timeline 3, newer than db0:5432's 2");
}

TEST_CASE("primary search: another cluster's writable node is ignored", "[unit][cluster]") {
  Nodes n;
  n.add(false, 5, 0x3000000).system_identifier = "1";
  n.add(false, 2, 0x3000000);
  CHECK(findPrimary(n.views, routed("db1:5432", 2)).primary == std::size_t{1});
}

}  // namespace
}  // namespace pgpivot::cluster
