// The election's synchronous-standby rule: a standby the old primary's last good sample
// listed as synchronous, with everything that sample said it had flushed, holds every
// acknowledged commit however far the old primary's WAL ran ahead; and the parsing of
// what that rule reads (pg_stat_replication rows, synchronous_standby_names).
#include <catch2/catch.hpp>
#include <deque>

#include "pgpivot/cluster/election.hpp"
#include "pgpivot/cluster/probe_sample.hpp"
#include "pgpivot/cluster/probe_sql.hpp"

namespace pgpivot::cluster {
namespace {

const std::string kSysid = "7712878630329562490";
const std::string kNames[] = {"127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"};

constexpr uint64_t kPrimaryEnd = 0x5000000;  // the old primary's last known pg_current_wal_lsn
constexpr uint64_t kFlushed = 0x3000000;     // what it said its standbys had flushed
constexpr uint64_t kMaxLag = 1024 * 1024;

// Node 0 is the old primary: no fresh sample (it died), only its last good one. Nodes 1
// and 2 are standbys that received kFlushed + 0x100: 32 MB behind the primary's last
// position, far over max_lag_on_failover.
struct Cluster {
  ProbeSample primary;
  std::deque<ProbeSample> standbys;
  std::vector<NodeView> views;

  explicit Cluster(std::string_view sync_standby_names, int standbys_count = 2) {
    primary.in_recovery = false;
    primary.timeline = 1;
    primary.system_identifier = kSysid;
    primary.current_lsn = kPrimaryEnd;
    primary.at_ms = 9000;
    primary.sync_names = parseSyncStandbyNames(sync_standby_names);
    views.push_back(NodeView{.index = 0, .name = kNames[0], .last_ok = &primary});
    for (int i = 1; i <= standbys_count; ++i) {
      ProbeSample s;
      s.in_recovery = true;
      s.timeline = 1;
      s.system_identifier = kSysid;
      s.receive_lsn = kFlushed + 0x100;
      s.replay_lsn = kFlushed;
      s.at_ms = 10000;
      standbys.push_back(s);
      views.push_back(NodeView{.index = static_cast<std::size_t>(i),
                               .name = kNames[i],
                               .stats = &standbys.back(),
                               .last_ok = &standbys.back()});
    }
  }
  // A pg_stat_replication row of the old primary's last good sample.
  void replica(const std::string& application_name, const std::string& sync_state,
               uint64_t flush = kFlushed) {
    primary.replicas.push_back(ReplicaRow{.application_name = application_name,
                                          .state = "streaming",
                                          .sync_state = sync_state,
                                          .write_lsn = flush,
                                          .flush_lsn = flush,
                                          .replay_lsn = flush});
  }
  ProbeSample& standby(std::size_t node) { return standbys.at(node - 1); }
  Election elect(std::optional<std::size_t> target = std::nullopt) const {
    return cluster::elect(views, ElectionInput{.old_primary = 0,
                                               .timeline = 1,
                                               .primary_lsn = kPrimaryEnd,
                                               .max_lag = kMaxLag,
                                               .system_identifier = kSysid,
                                               .target = target});
  }
};

const Candidate& candidate(const Election& e, std::size_t node) {
  for (const Candidate& c : e.candidates) {
    if (c.node == node) {
      return c;
    }
  }
  FAIL("no candidate " << node);
  return e.candidates.front();
}

TEST_CASE("election: the synchronous standby is eligible though the old primary's WAL ran ahead",
          "[unit][cluster]") {
  Cluster c("FIRST 1 (\"127.0.0.1:5002\", \"127.0.0.1:5003\")");
  c.replica(kNames[1], "sync");
  c.replica(kNames[2], "potential");
  c.standby(2).receive_lsn = kFlushed;  // behind the sync one
  const Election e = c.elect();
  REQUIRE(e.chosen == std::size_t{1});
  CHECK(candidate(e, 1).rule == EligibleBy::kSyncStandby);
  CHECK(candidate(e, 1).lag_bytes > kMaxLag);  // the async rule alone would refuse it
  // The potential standby is judged by the async rule, and it lags.
  CHECK_FALSE(candidate(e, 2).eligible);
  CHECK(candidate(e, 2).why_not_sync ==
        "sync_state potential in the old primary's last good sample");
  CHECK(candidate(e, 2).why_not.find("lag 32.0 MB over max_lag_on_failover 1.0 MB") == 0);

  // The event log says which rule, and what the old primary said of the node.
  const Evidence ev = e.evidence();
  const auto& list = std::get<std::vector<Evidence>>(*findField(ev, "candidates"));
  REQUIRE(list.size() == 2);
  CHECK(std::get<std::string>(*findField(list[0], "rule")) == "synchronous_standby");
  const auto& saw = std::get<Evidence>(*findField(list[0], "old_primary_saw"));
  CHECK(std::get<std::string>(*findField(saw, "sync_state")) == "sync");
  CHECK(std::get<std::string>(*findField(saw, "flush_lsn")) == "0/3000000");
  CHECK(std::get<int64_t>(*findField(saw, "sampled_at_ms")) == 9000);
  CHECK(findField(list[1], "rule") == nullptr);
  CHECK(std::get<std::string>(*findField(list[1], "why_not_sync")) ==
        "sync_state potential in the old primary's last good sample");
}

TEST_CASE("election: a synchronous standby short of the flush LSN reported for it is not proven",
          "[unit][cluster]") {
  Cluster c("*", 1);
  c.replica(kNames[1], "sync", kFlushed + 0x200);  // it had flushed more than it has now
  const Election e = c.elect();
  CHECK_FALSE(e.chosen);
  CHECK(candidate(e, 1).why_not_sync ==
        "received 0/3000100, short of the flush LSN 0/3000200 the old primary reported for it");
  CHECK(e.whyNone() ==
        "127.0.0.1:5002: lag 31.9 MB over max_lag_on_failover 1.0 MB, and not provably holding "
        "every acknowledged commit (received 0/3000100, short of the flush LSN 0/3000200 the old "
        "primary reported for it)");
}

TEST_CASE("election: the synchronous rule needs the node by its application_name, once",
          "[unit][cluster]") {
  Cluster c("*", 1);
  SECTION("not listed: the WAL receiver's default application_name") {
    c.replica("walreceiver", "sync");
    CHECK_FALSE(c.elect().chosen);
    CHECK(candidate(c.elect(), 1).why_not_sync.find("had no application_name '127.0.0.1:5002'") !=
          std::string::npos);
  }
  SECTION("two walsenders under its name: which one it is is unknown") {
    c.replica(kNames[1], "sync");
    c.replica(kNames[1], "potential");
    CHECK_FALSE(c.elect().chosen);
  }
  SECTION("matched ignoring case, as PostgreSQL matches synchronous_standby_names") {
    c.replica("127.0.0.1:5002", "sync");
    c.views[1].name = "LOCALHOST:5002";
    c.primary.replicas[0].application_name = "localhost:5002";
    CHECK(c.elect().chosen == std::size_t{1});
  }
  SECTION("no sample of the old primary at all") {
    c.replica(kNames[1], "sync");
    c.views[0].last_ok = nullptr;
    CHECK_FALSE(c.elect().chosen);
    CHECK(candidate(c.elect(), 1).why_not ==
          "lag 31.9 MB over max_lag_on_failover 1.0 MB");  // nothing says sync was on
  }
  SECTION("the old primary's sample is another cluster's") {
    c.replica(kNames[1], "sync");
    c.primary.system_identifier = "1";
    CHECK_FALSE(c.elect().chosen);
  }
  SECTION("synchronous replication off") {
    c.replica(kNames[1], "sync");
    c.primary.sync_names = parseSyncStandbyNames("");
    CHECK_FALSE(c.elect().chosen);
  }
}

TEST_CASE("election: the common eligibility rules still hold for a synchronous standby",
          "[unit][cluster]") {
  Cluster c("*", 1);
  c.replica(kNames[1], "sync");
  SECTION("fenced") {
    c.views[1].fenced = true;
    CHECK(c.elect().whyNone() == "127.0.0.1:5002: fenced");
  }
  SECTION("another timeline") {
    c.standby(1).timeline = 2;
    CHECK_FALSE(c.elect().chosen);
  }
  SECTION("replay paused") {
    c.standby(1).replay_paused = true;
    CHECK_FALSE(c.elect().chosen);
  }
  SECTION("not answering now") {
    c.views[1].stats = nullptr;
    CHECK(c.elect().whyNone() == "127.0.0.1:5002: not answering");
  }
  SECTION("an operator's other target") {
    CHECK_FALSE(c.elect(std::size_t{2}).chosen);
  }
}

TEST_CASE("election: a standby ahead of the proven synchronous one is eligible and wins",
          "[unit][cluster]") {
  // The sync set may have changed after the sample (the potential standby took over):
  // the one that received more WAL has everything the sync one has, and more.
  Cluster c("FIRST 1 (\"127.0.0.1:5002\", \"127.0.0.1:5003\")");
  c.replica(kNames[1], "sync");
  c.replica(kNames[2], "potential");
  c.standby(2).receive_lsn = kFlushed + 0x900;
  const Election e = c.elect();
  REQUIRE(e.chosen == std::size_t{2});
  CHECK(candidate(e, 2).rule == EligibleBy::kAheadOfSync);
  CHECK(candidate(e, 1).rule == EligibleBy::kSyncStandby);
  CHECK(candidate(e, 1).eligible);
}

TEST_CASE("election: an async standby within max_lag keeps the async rule", "[unit][cluster]") {
  Cluster c("*", 1);
  c.replica(kNames[1], "async");
  c.standby(1).receive_lsn = kPrimaryEnd - 100;
  const Election e = c.elect();
  REQUIRE(e.chosen == std::size_t{1});
  CHECK(candidate(e, 1).rule == EligibleBy::kLag);
}

TEST_CASE("election: a quorum standby is proven only when the quorum needed every one of them",
          "[unit][cluster]") {
  SECTION("ANY 1 of 2 connected: each commit may be on the other one only") {
    Cluster c("ANY 1 (\"127.0.0.1:5002\", \"127.0.0.1:5003\")");
    c.replica(kNames[1], "quorum");
    c.replica(kNames[2], "quorum");
    c.standby(2).receive_lsn = kFlushed;
    const Election e = c.elect();
    CHECK_FALSE(e.chosen);
    CHECK(candidate(e, 1).why_not_sync ==
          "quorum standby of ANY 1 among 2 that could acknowledge: a commit needed none from "
          "this one");
  }
  SECTION("ANY 1, one quorum standby and one catching up: that one may join and acknowledge") {
    Cluster c("ANY 1 (\"127.0.0.1:5002\", \"127.0.0.1:5003\")");
    c.replica(kNames[1], "quorum");
    c.replica(kNames[2], "potential");
    c.standby(2).receive_lsn = kFlushed;
    CHECK_FALSE(c.elect().chosen);
  }
  SECTION("ANY 2 of 2 connected: each commit is on both") {
    Cluster c("ANY 2 (\"127.0.0.1:5002\", \"127.0.0.1:5003\")");
    c.replica(kNames[1], "quorum");
    c.replica(kNames[2], "quorum");
    c.standby(2).receive_lsn = kFlushed;
    const Election e = c.elect();
    REQUIRE(e.chosen == std::size_t{1});
    CHECK(candidate(e, 1).rule == EligibleBy::kQuorumStandby);
    CHECK(candidate(e, 2).rule == EligibleBy::kQuorumStandby);
  }
  SECTION("ANY 1 with only one quorum standby connected") {
    Cluster c("ANY 1 (\"127.0.0.1:5002\", \"127.0.0.1:5003\")");
    c.replica(kNames[1], "quorum");
    CHECK(c.elect().chosen == std::size_t{1});
  }
  SECTION("'quorum' rows but a setting that does not read as ANY: not trusted") {
    Cluster c("ANY 1 (unterminated");
    c.replica(kNames[1], "quorum");
    CHECK_FALSE(c.elect().chosen);
  }
}

TEST_CASE("synchronous_standby_names reads as PostgreSQL's grammar", "[unit][cluster]") {
  using M = SyncStandbyNames::Method;
  struct Case {
    std::string_view text;
    M method;
    int32_t num;
    std::vector<std::string> names;
  };
  const Case cases[] = {
      {"", M::kOff, 0, {}},
      {"   ", M::kOff, 0, {}},
      {"*", M::kPriority, 1, {"*"}},
      {"a, b", M::kPriority, 1, {"a", "b"}},
      {"2 (a, b, c)", M::kPriority, 2, {"a", "b", "c"}},
      {"FIRST 2 (a,b)", M::kPriority, 2, {"a", "b"}},
      {"first 1 (a)", M::kPriority, 1, {"a"}},
      {"ANY 2 (\"127.0.0.1:5002\", \"x\"\"y\", s_1)",
       M::kQuorum,
       2,
       {"127.0.0.1:5002", "x\"y", "s_1"}},
      {"any 1 (*)", M::kQuorum, 1, {"*"}},
      {"\"any\"", M::kPriority, 1, {"any"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const SyncStandbyNames s = parseSyncStandbyNames(c.text);
    CHECK(s.method == c.method);
    CHECK(s.num == c.num);
    CHECK(s.names == c.names);
  }
  for (const std::string_view bad :
       {"ANY 1 (a", "ANY (a)", "a,", "a b", "127.0.0.1:5002", "ANY 0 (a)", "(a)", "\"a", "a)"}) {
    CAPTURE(bad);
    CHECK(parseSyncStandbyNames(bad).method == M::kUnknown);
  }
}

TEST_CASE("pg_stat_replication rows read from the replicas column", "[unit][cluster]") {
  const auto rows = parseReplicaRows(
      "streaming sync 0/3000100 0/3000100 0/3000000 127.0.0.1:5002\n"
      "catchup - - - - my standby\n"
      "streaming async 0/3000000 0/2FFFF00 0/2FFFF00 ");
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[0].application_name == "127.0.0.1:5002");
  CHECK((*rows)[0].sync_state == "sync");
  CHECK((*rows)[0].write_lsn == 0x3000100);
  CHECK((*rows)[0].flush_lsn == 0x3000100);
  CHECK((*rows)[0].replay_lsn == 0x3000000);
  CHECK((*rows)[1].state == "catchup");
  CHECK((*rows)[1].sync_state.empty());
  CHECK((*rows)[1].flush_lsn == 0);
  CHECK((*rows)[1].application_name == "my standby");
  CHECK((*rows)[2].application_name.empty());

  const auto short_line = parseReplicaRows("streaming sync 0/1 0/1");
  REQUIRE_FALSE(short_line);
  CHECK(short_line.error().message == "stats query column replicas, line 1: fewer than 6 fields");
  const auto bad_lsn = parseReplicaRows("streaming sync 0/1 zz 0/1 a");
  REQUIRE_FALSE(bad_lsn);
  CHECK(bad_lsn.error().message == "stats query column replicas, line 1: not an LSN: zz");
}

TEST_CASE("the stats row carries the replicas and synchronous_standby_names", "[unit][cluster]") {
  ColumnRow row{
      {"in_recovery", "f"},
      {"system_identifier", kSysid},
      {"server_version_num", "150018"},
      {"timeline", "1"},
      {"current_lsn", "0/3000FC0"},
      {"flush_lsn", "0/3000FC0"},
      {"receive_lsn", std::nullopt},
      {"replay_lsn", std::nullopt},
      {"replay_paused", std::nullopt},
      {"wal_receiver_status", std::nullopt},
      {"last_msg_receipt_age_ms", std::nullopt},
      {"default_read_only", "f"},
      {"can_read_all_stats", "t"},
      {"max_connections", "100"},
      {"active_backends", "0"},
      {"blocked_backends", "0"},
      {"io_waiters", "0"},
      {"syncrep_waiters", "0"},
      {"idle_in_tx", "0"},
      {"oldest_idle_in_tx_ms", "0"},
      {"lock_waiters", "0"},
      {"oldest_lock_wait_ms", "0"},
      {"deadlocks", "0"},
      {"xact_total", "1"},
      {"streaming_standbys", "1"},
      {"sync_standbys", "1"},
      {"replicas", "streaming sync 0/3000F00 0/3000F00 0/3000E00 127.0.0.1:5002"},
      {"sync_standby_names", "*"},
  };
  auto s = parseStatsRow(row, 0, 0);
  REQUIRE(s);
  REQUIRE(s->replicas.size() == 1);
  CHECK(s->replicas[0].flush_lsn == 0x3000F00);
  CHECK(s->sync_names.method == SyncStandbyNames::Method::kPriority);
  CHECK(sql::kStatsQuery.find(" AS replicas") != std::string_view::npos);
  CHECK(sql::kStatsQuery.find(" AS sync_standby_names") != std::string_view::npos);

  row["replicas"] = std::nullopt;  // a primary without walsenders
  s = parseStatsRow(row, 0, 0);
  REQUIRE(s);
  CHECK(s->replicas.empty());
  row["replicas"] = "streaming sync 0/1";
  s = parseStatsRow(row, 0, 0);
  REQUIRE_FALSE(s);
  CHECK(s.error().message == "stats query column replicas, line 1: fewer than 6 fields");
}

}  // namespace
}  // namespace pgpivot::cluster
