// What a failover may have lost, as pgpivot reports it (issue 4: "acknowledged writes lost
// must be 0 with synchronous replication, and reported (LSN range) with async"), and why a
// cluster is in its state (SHOW CLUSTERS' reason), on real PostgreSQL 15 in follow mode:
// an external manager promotes, pgpivot finds the new primary and reports the old
// primary's WAL past the new timeline's switch point, in the event log (failover_complete:
// possible_lost_commits_lsn_range), the main log's summary line and SHOW FAILOVERS'
// possibly_lost column.
#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pgpivot/cluster/probe_sample.hpp"
#include "support/cluster_fixture.hpp"
#include "support/pgpivot_fixture.hpp"

using namespace pgpivot::test;
using namespace std::chrono_literals;
using pgpivot::cluster::formatLsn;
using pgpivot::cluster::parseLsn;

namespace {

// One write through pgpivot: the WAL insert position before it and the WAL position after
// its commit was acknowledged, both read through pgpivot on the node that ran it.
struct Write {
  int id = 0;
  uint64_t before = 0;
  uint64_t after = 0;
};

uint64_t lsnOf(PGconn* conn, const std::string& sql) {
  const std::string text = scalar(conn, sql);
  const auto lsn = parseLsn(text);
  INFO(sql << " -> " << text);
  REQUIRE(lsn);
  return *lsn;
}

// Acknowledged writes ids [from, to] into lost_range(id), each bracketed by WAL positions.
std::vector<Write> writeRows(PGconn* conn, int from, int to) {
  std::vector<Write> out;
  for (int id = from; id <= to; ++id) {
    Write w{.id = id};
    w.before = lsnOf(conn, "SELECT pg_current_wal_insert_lsn()");
    REQUIRE(scalar(conn, "INSERT INTO lost_range VALUES (" + std::to_string(id) +
                             ") RETURNING id") == std::to_string(id));
    w.after = lsnOf(conn, "SELECT pg_current_wal_lsn()");
    out.push_back(w);
  }
  return out;
}

// Waits until pgpivot's stats probe has seen the primary at `lsn` or past it (SHOW NODES),
// so that the old primary's last position it knows covers every write made so far.
void waitProbedPast(PGconn* admin, int port, uint64_t lsn) {
  std::string seen;
  const bool probed = eventually(10s, [&] {
    seen = nodeColumn(admin, nodeName(port), "lsn");
    const auto at = parseLsn(seen);
    return at && *at >= lsn;
  });
  INFO("SHOW NODES lsn " << seen << ", waiting for " << formatLsn(lsn));
  REQUIRE(probed);
}

// The ids the node holds now, read through pgpivot.
std::set<int> idsPresent(PGconn* conn) {
  Res rows(PQexec(conn, "SELECT id FROM lost_range"));
  REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
  std::set<int> ids;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    ids.insert(std::stoi(PQgetvalue(rows.get(), r, 0)));
  }
  return ids;
}

// Until a write through `conn` is acknowledged by the server on `port` (30 s at most).
bool writesGoTo(PGconn* conn, int port) {
  std::string last;
  const bool moved = eventually(30s, [&] {
    last = scalar(conn, "SELECT inet_server_port()");
    return last == std::to_string(port);
  });
  INFO("last answer: " << last);
  return moved;
}

// The event log's failover_complete line, parsed; null when there is none.
nlohmann::json failoverComplete(const std::string& events) {
  std::istringstream lines(events);
  nlohmann::json found;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"failover_complete\"") != std::string::npos) {
      found = nlohmann::json::parse(line, nullptr, false);
    }
  }
  return found;
}

// SHOW FAILOVERS' possibly_lost of the failover_complete step; nullopt when the step or the
// value is missing.
std::optional<std::string> showFailoversPossiblyLost(PGconn* admin) {
  Res rows(PQexec(admin, "SHOW FAILOVERS"));
  REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
  const int step = PQfnumber(rows.get(), "step");
  const int lost = PQfnumber(rows.get(), "possibly_lost");
  REQUIRE(step >= 0);
  REQUIRE(lost >= 0);
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    if (std::string(PQgetvalue(rows.get(), r, step)) == "failover_complete" &&
        PQgetisnull(rows.get(), r, lost) == 0) {
      return std::string(PQgetvalue(rows.get(), r, lost));
    }
  }
  return std::nullopt;
}

// Stops a standby's WAL receiver for good: the primary's WAL from now on never reaches it
// (asynchronous replication at its worst). The node stays in recovery and answers.
void stopWalReceiver(const TwoNodeCluster& cluster) {
  const int port = cluster.standbyPort();
  const std::string& data = cluster.standbyData();
  REQUIRE(cluster.query(port, data, "ALTER SYSTEM SET primary_conninfo = ''") == "ALTER SYSTEM");
  REQUIRE(cluster.query(port, data, "SELECT pg_reload_conf()") == "t");
  REQUIRE(eventually(15s, [&] {
    return cluster.query(port, data, "SELECT count(*) FROM pg_stat_wal_receiver") == "0";
  }));
}

// Commits wait for the standby (synchronous_standby_names = '*').
void makeSynchronous(const TwoNodeCluster& cluster) {
  const int port = cluster.primaryPort();
  const std::string& data = cluster.primaryData();
  REQUIRE(cluster.query(port, data, "ALTER SYSTEM SET synchronous_commit = 'on'") != "ERROR");
  REQUIRE(cluster.query(port, data, "ALTER SYSTEM SET synchronous_standby_names = '*'") != "ERROR");
  REQUIRE(cluster.query(port, data, "SELECT pg_reload_conf()") == "t");
  REQUIRE(eventually(10s, [&] {
    return cluster.query(port, data,
                         "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") ==
           "1";
  }));
}

struct FollowCluster {
  TwoNodeCluster cluster;
  ScratchFile events{scratchPath("events-lost")};
  Pgpivot pgpivot{pgpivotOn(cluster, OnCluster().withMode("follow").withLog(events.path))};
  Conn admin;
  Conn client;

  void start() {
    pgpivot.start();
    admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
    REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
    waitSteady(admin.get());
    client = connect(pgpivot.conninfo());
    REQUIRE(PQstatus(client.get()) == CONNECTION_OK);
    REQUIRE(scalar(client.get(), "CREATE TABLE lost_range (id int PRIMARY KEY)").empty());
  }
  // kill -9 of the primary, then the external manager promotes the standby; pgpivot must
  // route the client's writes there.
  void failOver() {
    cluster.killPrimary();
    cluster.promoteStandby();
    const bool moved = writesGoTo(client.get(), cluster.standbyPort());
    INFO("events:\n" << readFile(events.path) << "\nlog:\n" << pgpivot.logText());
    REQUIRE(moved);
  }
  // failover_complete, once the incident is over (RESUMING ends it).
  nlohmann::json complete() {
    nlohmann::json done;
    const bool logged = eventually(10s, [&] {
      done = failoverComplete(readFile(events.path));
      return done.is_object();
    });
    INFO("events:\n" << readFile(events.path));
    REQUIRE(logged);
    return done;
  }
};

}  // namespace

TEST_CASE(
    "follow mode, asynchronous replication: the WAL the promoted standby never got is "
    "reported as an LSN range covering every acknowledged write it lacks",
    "[pg][failover]") {
  FollowCluster f;
  f.start();
  PGconn* client = f.client.get();
  // Replicated and replayed: these survive the failover.
  const std::vector<Write> kept = writeRows(client, 1, 20);
  f.cluster.waitReplayed();
  // Acknowledged by the primary only: the standby's WAL receiver is stopped.
  stopWalReceiver(f.cluster);
  const std::vector<Write> unreplicated = writeRows(client, 21, 60);
  waitProbedPast(f.admin.get(), f.cluster.primaryPort(), unreplicated.back().after);

  f.failOver();
  const nlohmann::json done = f.complete();
  INFO("failover_complete: " << done.dump());
  const nlohmann::json& evidence = done["evidence"];
  REQUIRE(evidence.contains("possible_lost_commits_lsn_range"));
  const auto& range = evidence["possible_lost_commits_lsn_range"];
  REQUIRE(range.is_array());
  REQUIRE(range.size() == 2);
  const auto from = parseLsn(range[0].get<std::string>());
  const auto to = parseLsn(range[1].get<std::string>());
  REQUIRE(from);
  REQUIRE(to);
  CHECK(evidence["promoted_at_source"] == "pg_last_wal_replay_lsn");
  CHECK(evidence["old_primary_sync_standbys"] == 0);
  CHECK(*from < *to);
  CHECK(evidence["possibly_lost_bytes_at_least"] == *to - *from);

  // Which acknowledged writes the new primary lacks: exactly those it never received,
  // and the range covers each of them; the writes it kept lie before the range.
  const std::set<int> present = idsPresent(client);
  std::vector<int> lost;
  for (const Write& w : unreplicated) {
    CAPTURE(w.id, formatLsn(w.before), formatLsn(w.after));
    CHECK(present.count(w.id) == 0);
    lost.push_back(w.id);
    CHECK(w.before >= *from);  // the whole transaction lies past the switch point...
    CHECK(w.after <= *to);     // ...and its commit no later than the range's end
  }
  for (const Write& w : kept) {
    CAPTURE(w.id, formatLsn(w.before), formatLsn(w.after));
    CHECK(present.count(w.id) == 1);
    CHECK(w.after <= *from);
  }
  WARN("async follow failover: " << lost.size() << " acknowledged writes lost, reported range "
                                 << formatLsn(*from) << " .. " << formatLsn(*to) << " ("
                                 << (*to - *from) << " bytes)");

  // The same range where an operator looks: SHOW FAILOVERS and the main log.
  const std::string text = "LSN " + formatLsn(*from) + " .. " + formatLsn(*to) + " (" +
                           std::to_string(*to - *from) + " bytes)";
  CHECK(evidence["possibly_lost"] == text);
  CHECK(showFailoversPossiblyLost(f.admin.get()) == text);
  CHECK_THAT(f.pgpivot.logText(), Catch::Contains("possibly lost: " + text));
}

TEST_CASE(
    "follow mode, synchronous replication: no acknowledged write lost and an empty range "
    "reported",
    "[pg][failover]") {
  FollowCluster f;
  makeSynchronous(f.cluster);
  f.start();
  PGconn* client = f.client.get();
  const std::vector<Write> writes = writeRows(client, 1, 40);
  waitProbedPast(f.admin.get(), f.cluster.primaryPort(), writes.back().after);

  f.failOver();
  const nlohmann::json done = f.complete();
  INFO("failover_complete: " << done.dump());
  const nlohmann::json& evidence = done["evidence"];
  CHECK(evidence["old_primary_sync_standbys"] == 1);
  CHECK(evidence["possibly_lost_bytes_at_least"] == 0);
  const auto from = parseLsn(evidence["promoted_at_lsn"].get<std::string>());
  const auto to = parseLsn(evidence["old_primary_last_lsn"].get<std::string>());
  REQUIRE(from);
  REQUIRE(to);
  CHECK(*to <= *from);
  const std::set<int> present = idsPresent(client);
  int lost = 0;
  for (const Write& w : writes) {
    lost += present.count(w.id) == 0 ? 1 : 0;
    CHECK(w.after <= *from);  // every acknowledged commit is before the switch point
  }
  CHECK(lost == 0);
  const auto shown = showFailoversPossiblyLost(f.admin.get());
  REQUIRE(shown);
  CHECK_THAT(*shown, Catch::StartsWith("none (promoted at " + formatLsn(*from)));
}

TEST_CASE("SHOW CLUSTERS says why the cluster waits for an operator", "[pg][failover][admin]") {
  TwoNodeCluster cluster;
  const ScratchFile events(scratchPath("events-reason"));
  Pgpivot pgpivot(pgpivotOn(cluster, OnCluster().withMode("manual").withLog(events.path)));
  pgpivot.start();
  Conn admin = connect(pgpivot.conninfo(kScramUser, "pgpivot"));
  REQUIRE(PQstatus(admin.get()) == CONNECTION_OK);
  waitSteady(admin.get());
  CHECK_THAT(clusterColumn(admin.get(), "reason"), Catch::StartsWith("clients resumed on "));

  cluster.killPrimary();
  std::string state;
  const bool waiting = eventually(20s, [&] {
    state = clusterColumn(admin.get(), "state");
    return state == "WAIT_OPERATOR";
  });
  INFO("state " << state << "\nevents:\n" << readFile(events.path));
  REQUIRE(waiting);

  // As a script would read it: psql --csv, columns by name.
  const std::string command = "PGPASSWORD=" + std::string(kPassword) +
                              " /usr/lib/postgresql/15/bin/psql --csv -X -h 127.0.0.1 -p " +
                              std::to_string(pgpivot.port()) + " -U " + kScramUser +
                              " -d pgpivot -c 'SHOW CLUSTERS' 2>&1";
  std::string csv;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) {
      csv.append(buf, n);
    }
    ::pclose(pipe);
  }
  INFO("psql --csv:\n" << csv);
  std::istringstream lines(csv);
  std::string header;
  std::string row;
  REQUIRE(std::getline(lines, header));
  REQUIRE(std::getline(lines, row));
  CHECK_THAT(header, Catch::StartsWith("cluster,state,reason,primary,"));
  CHECK_THAT(row, Catch::StartsWith("main,WAIT_OPERATOR,\"failover_mode = manual: "));
  CHECK_THAT(row, Catch::Contains("run FAILOVER, SET PRIMARY or RESUME on the admin console"));

  // The same reason as the state change in the event log.
  const std::string reason = clusterColumn(admin.get(), "reason");
  std::istringstream log(readFile(events.path));
  std::string to_wait;
  for (std::string line; std::getline(log, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "state_change" &&
        j.value("to", "") == "WAIT_OPERATOR") {
      to_wait = j.value("reason", "");
    }
  }
  CHECK(reason == to_wait);
}
