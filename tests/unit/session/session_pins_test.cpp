// Which server state a session-mode client holds that cannot move to another server:
// what the SQL it sends creates and clears, with quotes, comments and dollar quotes
// respected.
#include "pgpivot/session/session_pins.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "pgpivot/proto/constants.hpp"

namespace pgpivot::session {
namespace {

constexpr proto::TxStatus I = proto::TxStatus::kIdle;
constexpr proto::TxStatus T = proto::TxStatus::kInTransaction;
constexpr proto::TxStatus E = proto::TxStatus::kFailed;

// A client and its server, one request at a time, as ClientSession tells the pins: before a
// request the status of the server's last ReadyForQuery, with nothing in flight.
struct Session {
  SessionPins pins;
  proto::TxStatus status = I;
  bool backslash_quotes = false;  // standard_conforming_strings = off

  // The client sends `sql` as a simple Query; the server's ReadyForQuery says `then`.
  Session& query(std::string_view sql, proto::TxStatus then = I) {
    pins.noteServer(status, true);
    pins.noteSql(sql, SessionPins::Source::kQuery, [this] { return backslash_quotes; });
    pins.noteRequest(status, true);
    status = then;
    return *this;
  }
  // What is held once the last answer is in.
  uint8_t held() {
    pins.noteServer(status, true);
    return pins.bits();
  }
};

// The pins after the client sends each of `sqls` in order, each one answered in autocommit.
uint8_t after(std::initializer_list<std::string_view> sqls) {
  Session session;
  for (const std::string_view sql : sqls) {
    session.query(sql);
  }
  return session.held();
}

constexpr uint8_t kTemp = SessionPins::kTempTables;
constexpr uint8_t kLocks = SessionPins::kAdvisoryLocks;
constexpr uint8_t kListen = SessionPins::kListen;
constexpr uint8_t kHold = SessionPins::kHoldCursors;

}  // namespace

TEST_CASE("temporary tables, views and sequences pin a session, in any spelling",
          "[unit][session_pins]") {
  CHECK(after({"CREATE TEMP TABLE t (a int)"}) == kTemp);
  CHECK(after({"create temporary table t (a int);"}) == kTemp);
  CHECK(after({"CREATE LOCAL TEMPORARY TABLE t AS SELECT 1"}) == kTemp);
  CHECK(after({"CREATE GLOBAL TEMP TABLE t (a int)"}) == kTemp);
  CHECK(after({"CREATE TEMP VIEW v AS SELECT 1"}) == kTemp);
  CHECK(after({"CREATE OR REPLACE TEMP VIEW v AS SELECT 1"}) == kTemp);
  CHECK(after({"CREATE TEMPORARY RECURSIVE VIEW v (n) AS VALUES (1)"}) == kTemp);
  CHECK(after({"CREATE TEMP SEQUENCE s"}) == kTemp);
  CHECK(after({"CREATE TABLE pg_temp.t (a int)"}) == kTemp);
  CHECK(after({"CREATE TABLE IF NOT EXISTS pg_temp.t (a int)"}) == kTemp);
  CHECK(after({"SELECT 1 AS a INTO TEMP t"}) == kTemp);
  CHECK(after({"SELECT * INTO TEMPORARY TABLE t FROM x"}) == kTemp);
  CHECK(after({"WITH w AS (SELECT 1) SELECT * INTO LOCAL TEMP t FROM w"}) == kTemp);
  // In the middle of a batch, behind a comment.
  CHECK(after({"SELECT 1; /* setup */ CREATE TEMP TABLE t (a int); SELECT 2"}) == kTemp);
  CHECK(after({"BEGIN; CREATE TEMP TABLE t (a int); COMMIT;"}) == kTemp);
}

TEST_CASE("what only looks like a temporary table does not pin a session", "[unit][session_pins]") {
  CHECK(after({"CREATE TABLE t (a int)"}) == 0);
  CHECK(after({"CREATE TABLE temp (a int)"}) == 0);
  CHECK(after({"INSERT INTO temp VALUES (1)"}) == 0);
  CHECK(after({"INSERT INTO temp SELECT 1"}) == 0);
  CHECK(after({"SELECT * FROM temperatures"}) == 0);
  CHECK(after({"SELECT 'CREATE TEMP TABLE t (a int)'"}) == 0);
  CHECK(after({"SELECT E'it''s \\' CREATE TEMP TABLE x(a int)'"}) == 0);
  CHECK(after({"SELECT 1 -- CREATE TEMP TABLE t (a int)"}) == 0);
  CHECK(after({"SELECT /* CREATE /* nested */ TEMP TABLE t */ 1"}) == 0);
  CHECK(after({"SELECT $$CREATE TEMP TABLE t (a int)$$"}) == 0);
  CHECK(after({"SELECT $body$ ; CREATE TEMP TABLE t (a int); $body$"}) == 0);
  CHECK(after({"SELECT \"CREATE TEMP TABLE t\" FROM x"}) == 0);
  // Dropped when its transaction commits: nothing is left to move.
  CHECK(after({"CREATE TEMP TABLE t (a int) ON COMMIT DROP"}) == 0);
  // ON COMMIT DROP covers the CREATE it follows, not one after it.
  CHECK(after({"CREATE TEMP TABLE t (a int) ON COMMIT DROP; CREATE TEMP TABLE u (a int)"}) ==
        kTemp);
  CHECK(after({"CREATE TEMP TABLE u (a int); CREATE TEMP TABLE t (a int) ON COMMIT DROP"}) ==
        kTemp);
  CHECK(after({"CREATE TEMP TABLE t (a int); SELECT 'on commit drop'"}) == kTemp);
  // DISCARD clears.
  CHECK(after({"CREATE TEMP TABLE t (a int)", "DISCARD TEMP"}) == 0);
  CHECK(after({"CREATE TEMP TABLE t (a int)", "discard temporary;"}) == 0);
}

TEST_CASE("session-level advisory locks pin a session, transaction-level ones do not",
          "[unit][session_pins]") {
  CHECK(after({"SELECT pg_advisory_lock(1)"}) == kLocks);
  CHECK(after({"SELECT pg_advisory_lock_shared(1, 2)"}) == kLocks);
  CHECK(after({"SELECT pg_try_advisory_lock(42)"}) == kLocks);
  CHECK(after({"select PG_TRY_ADVISORY_LOCK_SHARED (42)"}) == kLocks);
  CHECK(after({"SELECT pg_catalog.pg_advisory_lock(1)"}) == kLocks);
  CHECK(after({"SELECT pg_advisory_xact_lock(1)"}) == 0);
  CHECK(after({"SELECT pg_advisory_xact_lock_shared(1)"}) == 0);
  CHECK(after({"SELECT pg_try_advisory_xact_lock(1)"}) == 0);
  CHECK(after({"SELECT pg_try_advisory_xact_lock_shared(1)"}) == 0);
  CHECK(after({"SELECT 'pg_advisory_lock(1)'"}) == 0);
  CHECK(after({"SELECT 1 /* pg_advisory_lock(1) */"}) == 0);
  CHECK(after({"SELECT $q$pg_advisory_lock(1)$q$"}) == 0);
  CHECK(after({"SELECT objid FROM pg_locks WHERE locktype = 'advisory'"}) == 0);
  // Released: all of them at once only (one unlock may leave another lock held).
  CHECK(after({"SELECT pg_advisory_lock(1)", "SELECT pg_advisory_unlock(1)"}) == kLocks);
  CHECK(after({"SELECT pg_advisory_lock(1)", "SELECT pg_advisory_unlock_all()"}) == 0);
  CHECK(after({"SELECT pg_advisory_unlock_all(), pg_advisory_lock(2)"}) == kLocks);
  // A DO block's body runs in the session: it is looked at.
  CHECK(after({"DO $$BEGIN PERFORM pg_advisory_lock(7); END$$"}) == kLocks);
  CHECK(after({"DO $$BEGIN PERFORM pg_advisory_xact_lock(7); END$$"}) == 0);
  CHECK(after({"DO LANGUAGE plpgsql $f$ BEGIN CREATE TEMP TABLE t (a int); END $f$"}) == kTemp);
}

TEST_CASE("LISTEN pins a session until UNLISTEN *", "[unit][session_pins]") {
  CHECK(after({"LISTEN jobs"}) == kListen);
  CHECK(after({"listen \"Jobs\";"}) == kListen);
  CHECK(after({"SELECT 1; LISTEN jobs; SELECT 2"}) == kListen);
  CHECK(after({"LISTEN jobs", "UNLISTEN *"}) == 0);
  CHECK(after({"LISTEN jobs", "unlisten   * ;"}) == 0);
  // One channel of possibly several: still listening as far as pgpivot can tell.
  CHECK(after({"LISTEN jobs", "UNLISTEN jobs"}) == kListen);
  CHECK(after({"SELECT 'LISTEN jobs'"}) == 0);
  CHECK(after({"NOTIFY jobs, 'listen to this'"}) == 0);
  CHECK(after({"SELECT listen FROM t"}) == 0);
  SessionPins pins;
  pins.noteNotification();  // the server delivered one: proof enough
  CHECK(pins.bits() == kListen);
  pins.noteSql("UNLISTEN *");
  CHECK(pins.bits() == 0);
}

TEST_CASE("WITH HOLD cursors pin a session until CLOSE ALL", "[unit][session_pins]") {
  CHECK(after({"DECLARE c CURSOR WITH HOLD FOR SELECT 1"}) == kHold);
  CHECK(after({"declare c no scroll cursor with hold for select 1"}) == kHold);
  CHECK(after({"DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1"}) == 0);
  CHECK(after({"DECLARE c CURSOR FOR SELECT 'with hold'"}) == 0);
  CHECK(after({"DECLARE c CURSOR WITH HOLD FOR SELECT 1", "CLOSE c"}) == kHold);
  CHECK(after({"DECLARE c CURSOR WITH HOLD FOR SELECT 1", "CLOSE ALL"}) == 0);
}

TEST_CASE("DISCARD ALL clears every kind, the pins say what is held", "[unit][session_pins]") {
  SessionPins pins;
  pins.noteSql(
      "CREATE TEMP TABLE t (a int); SELECT pg_advisory_lock(1); LISTEN c; "
      "DECLARE k CURSOR WITH HOLD FOR SELECT 1");
  CHECK(pins.bits() == (kTemp | kLocks | kListen | kHold));
  CHECK(pins.describe() == "temp tables, advisory locks, LISTEN and WITH HOLD cursors");
  pins.noteSql("DISCARD ALL");
  CHECK_FALSE(pins.any());
  pins.noteSql("LISTEN c");
  CHECK(pins.describe() == "LISTEN");
  pins.noteSql("SELECT pg_try_advisory_lock(3)");
  CHECK(pins.describe() == "advisory locks and LISTEN");
}

TEST_CASE("statements end where PostgreSQL ends them, however the text is quoted or cut",
          "[unit][session_pins]") {
  // What follows a statement's ';' is the next statement's head.
  CHECK(after({"SELECT 'a;' ; LISTEN jobs"}) == kListen);
  CHECK(after({"SELECT $$;$$; LISTEN jobs"}) == kListen);
  CHECK(after({";;LISTEN jobs"}) == kListen);
  // Not when the ';' is quoted: then LISTEN is inside the literal, or not a head.
  CHECK(after({"SELECT $$; LISTEN jobs$$"}) == 0);
  CHECK(after({"SELECT \"a;\" LISTEN jobs"}) == 0);
  // A statement cut off inside a quote or comment (a Query larger than the receive buffer
  // is scanned by its start): what came before it still counts.
  CHECK(after({"LISTEN jobs; SELECT 'unterminated"}) == kListen);
  CHECK(after({"SELECT pg_advisory_lock(1) /* unterminated"}) == kLocks);
  CHECK(after({"DO $$BEGIN PERFORM pg_advisory_lock(7); END"}) == kLocks);
  CHECK(after({"SELECT 1; CREATE TEMP TABLE \"t"}) == kTemp);
}

TEST_CASE("the pre-check finds the few words in any case and nothing else",
          "[unit][session_pins]") {
  CHECK(SessionPins::mayMatter("create TeMp table t()", false));
  CHECK(SessionPins::mayMatter("SELECT PG_ADVISORY_LOCK(1)", false));
  CHECK(SessionPins::mayMatter("UNLISTEN *", false));
  CHECK(SessionPins::mayMatter("x with HOLD", false));
  CHECK_FALSE(
      SessionPins::mayMatter("SELECT abalance FROM pgbench_accounts WHERE aid = $1", false));
  CHECK_FALSE(
      SessionPins::mayMatter("UPDATE pgbench_branches SET bbalance = bbalance + $1", false));
  CHECK_FALSE(SessionPins::mayMatter("tem", false));
  CHECK_FALSE(SessionPins::mayMatter("", false));
  // Words that only clear are looked for only when something is held.
  CHECK_FALSE(SessionPins::mayMatter("DISCARD ALL", false));
  CHECK(SessionPins::mayMatter("DISCARD ALL", true));
  CHECK(SessionPins::mayMatter("close all", true));
  // At every offset of a longer text (16 windows at a time, then one by one).
  const std::string filler(61, 'x');
  CHECK_FALSE(SessionPins::mayMatter(filler, true));
  for (const char* word : {"TEMP", "Advisory", "listen", "hOLd"}) {
    for (std::size_t at = 0; at + 4 <= filler.size(); ++at) {
      std::string sql = filler;
      sql.replace(at, 4, std::string_view(word).substr(0, 4));
      CAPTURE(word, at);
      CHECK(SessionPins::mayMatter(sql, false));
    }
  }
  // Bytes that fold onto letters only when they are letters: '@' | 0x20 is '`'.
  CHECK_FALSE(SessionPins::mayMatter("T\x05MP", false));
  CHECK_FALSE(SessionPins::mayMatter("TEM\x10", false));
}

TEST_CASE("with standard_conforming_strings off a backslash escapes a quote in a plain string",
          "[unit][session_pins]") {
  // The whole text is one string literal: nothing in it runs.
  Session off;
  off.backslash_quotes = true;
  CHECK(off.query("SELECT 'a\\'; LISTEN x; --'").held() == 0);
  CHECK(off.query("SELECT 'a\\'; CREATE TEMP TABLE t (a int); SELECT '").held() == 0);
  CHECK(off.query("SELECT 'it''s\\' LISTEN y'; LISTEN z").held() == kListen);
  // On (the default), the backslash is a character and the quote after it ends the string.
  Session on;
  CHECK(on.query("SELECT 'a\\'; LISTEN x; --'").held() == kListen);
}

TEST_CASE("a -- comment ends at a carriage return too", "[unit][session_pins]") {
  CHECK(after({"SELECT 1 --c\r; LISTEN jobs"}) == kListen);
  CHECK(after({"SELECT 1 -- note\r;CREATE TEMP TABLE t (a int)"}) == kTemp);
  CHECK(after({"SELECT 1 -- LISTEN jobs\r\n"}) == 0);
}

TEST_CASE("state made inside a transaction block that rolls back is not held",
          "[unit][session_pins]") {
  // In one Query, and one statement at a time.
  CHECK(Session().query("BEGIN; CREATE TEMP TABLE t (a int); ROLLBACK;").held() == 0);
  CHECK(Session()
            .query("BEGIN", T)
            .query("CREATE TEMP TABLE t (a int)", T)
            .query("ROLLBACK")
            .held() == 0);
  CHECK(Session().query("START TRANSACTION", T).query("LISTEN c", T).query("abort").held() == 0);
  CHECK(Session()
            .query("BEGIN", T)
            .query("DECLARE k CURSOR WITH HOLD FOR SELECT 1", T)
            .query("ROLLBACK WORK")
            .held() == 0);
  // Not held while the block is open: a failover then ends it, uncommitted.
  Session open;
  CHECK(open.query("BEGIN", T).query("CREATE TEMP TABLE t (a int)", T).held() == 0);
  // A failed block rolls back whatever ends it: COMMIT, END or ROLLBACK.
  CHECK(Session()
            .query("BEGIN", T)
            .query("CREATE TEMP TABLE t (a int)", T)
            .query("SELECT 1/0", E)
            .query("COMMIT")
            .held() == 0);
  CHECK(Session()
            .query("BEGIN; LISTEN c; SELECT 1/0; COMMIT", E)  // the COMMIT did not run
            .query("END")
            .held() == 0);
  CHECK(Session().query("BEGIN; LISTEN c; SELECT 1/0; COMMIT", E).query("ROLLBACK").held() == 0);
}

TEST_CASE("state made inside a transaction block that commits is held", "[unit][session_pins]") {
  CHECK(
      Session().query("BEGIN", T).query("CREATE TEMP TABLE t (a int)", T).query("COMMIT").held() ==
      kTemp);
  CHECK(Session().query("BEGIN", T).query("LISTEN c", T).query("END;").held() == kListen);
  CHECK(Session().query("BEGIN; DECLARE k CURSOR WITH HOLD FOR SELECT 1; COMMIT").held() == kHold);
  // COMMIT AND CHAIN commits and opens the next block at once.
  CHECK(Session()
            .query("BEGIN", T)
            .query("LISTEN c", T)
            .query("COMMIT AND CHAIN", T)
            .query("ROLLBACK")
            .held() == kListen);
  // A savepoint's rollback takes the block out of failure: the block may still commit.
  CHECK(Session()
            .query("BEGIN", T)
            .query("CREATE TEMP TABLE t (a int)", T)
            .query("SAVEPOINT s", T)
            .query("SELECT 1/0", E)
            .query("ROLLBACK TO SAVEPOINT s", T)
            .query("COMMIT")
            .held() == kTemp);
  // One block commits, the next rolls back, in one Query.
  CHECK(Session()
            .query("BEGIN; CREATE TEMP TABLE a (x int); COMMIT; BEGIN; LISTEN c; ROLLBACK")
            .held() == kTemp);
  // The COMMIT ran: the failure is the next block's.
  CHECK(Session()
            .query("BEGIN; CREATE TEMP TABLE t (a int); COMMIT; BEGIN; SELECT 1/0", E)
            .query("ROLLBACK")
            .held() == kTemp);
  // Outside a block a statement commits by itself.
  CHECK(Session().query("BEGIN", T).query("ROLLBACK; CREATE TEMP TABLE t (a int)").held() == kTemp);
}

TEST_CASE("session-level advisory locks survive a rollback, transaction-level ones never pin",
          "[unit][session_pins]") {
  CHECK(
      Session().query("BEGIN", T).query("SELECT pg_advisory_lock(1)", T).query("ROLLBACK").held() ==
      kLocks);
  CHECK(Session().query("BEGIN; SELECT pg_try_advisory_lock(1); ROLLBACK").held() == kLocks);
  CHECK(Session()
            .query("BEGIN", T)
            .query("SELECT pg_advisory_xact_lock(1)", T)
            .query("COMMIT")
            .held() == 0);
}

TEST_CASE("what a rolled-back block cleared is still held, a committed one's clear counts",
          "[unit][session_pins]") {
  CHECK(Session()
            .query("CREATE TEMP TABLE t (a int)")
            .query("BEGIN", T)
            .query("DISCARD TEMP", T)
            .query("ROLLBACK")
            .held() == kTemp);
  CHECK(Session()
            .query("CREATE TEMP TABLE t (a int)")
            .query("BEGIN", T)
            .query("DISCARD TEMP", T)
            .query("COMMIT")
            .held() == 0);
  CHECK(Session().query("LISTEN c").query("BEGIN; UNLISTEN *; ROLLBACK").held() == kListen);
  CHECK(Session().query("LISTEN c").query("BEGIN; UNLISTEN *; COMMIT").held() == 0);
}

TEST_CASE("when the pins cannot tell how a block ended they keep what it made",
          "[unit][session_pins]") {
  SECTION("requests pipelined: a ReadyForQuery between them was not seen") {
    Session s;
    s.query("BEGIN", T);
    s.pins.noteServer(T, true);
    s.pins.noteSql("CREATE TEMP TABLE t (a int)");
    s.pins.noteRequest(T, true);
    s.pins.noteServer(T, false);  // the next one goes before the answer
    s.pins.noteSql("ROLLBACK");
    s.pins.noteRequest(T, false);
    s.status = I;
    CHECK(s.held() == kTemp);
  }
  SECTION("a named statement ran inside the block") {
    Session s;
    s.query("BEGIN", T).query("CREATE TEMP TABLE t (a int)", T);
    s.pins.noteServer(T, true);
    REQUIRE(s.pins.watchesBlind());
    s.pins.noteBlind();  // Bind of a prepared statement: it may be a COMMIT
    s.pins.noteRequest(T, true);
    s.status = T;
    CHECK(s.query("ROLLBACK").held() == kTemp);
  }
  SECTION("a named Parse runs later, in whatever block is open then") {
    Session s;
    s.query("BEGIN", T);
    s.pins.noteServer(T, true);
    s.pins.noteSql("LISTEN c", SessionPins::Source::kNamedParse, [] { return false; });
    s.pins.noteRequest(T, true);
    CHECK(s.query("ROLLBACK").held() == kListen);
  }
  SECTION("nothing in a block is watched for blind spots") {
    CHECK_FALSE(Session().pins.watchesBlind());
  }
}

TEST_CASE("a lost server: what its open block made is gone unless a COMMIT was in flight",
          "[unit][session_pins]") {
  Session idle_in_block;
  idle_in_block.query("BEGIN", T).query("CREATE TEMP TABLE t (a int)", T);
  idle_in_block.pins.noteServerLost(T, true, true);
  CHECK_FALSE(idle_in_block.pins.any());

  Session failed;
  failed.query("BEGIN; LISTEN c; SELECT 1/0", E);
  failed.pins.noteServerLost(E, true, true);
  CHECK_FALSE(failed.pins.any());

  Session committing;
  committing.query("BEGIN", T).query("CREATE TEMP TABLE t (a int)", T);
  committing.pins.noteServer(T, true);
  committing.pins.noteSql("COMMIT");
  committing.pins.noteRequest(T, true);
  committing.pins.noteServerLost(T, false, false);  // lost before the answer
  CHECK(committing.pins.bits() == kTemp);

  // Committed before the loss: held.
  Session committed;
  committed.query("BEGIN", T).query("CREATE TEMP TABLE t (a int)", T).query("COMMIT");
  committed.pins.noteServerLost(I, true, false);
  CHECK(committed.pins.bits() == kTemp);
}

TEST_CASE("the pre-check looks for the words that end a block only inside one",
          "[unit][session_pins]") {
  constexpr uint8_t kEnds = SessionPins::kEndWords;
  constexpr uint8_t kBegins = SessionPins::kBeginWords;
  for (const char* sql : {"ROLLBACK", "abort;", "COMMIT", "END", "end;", "x; End"}) {
    CAPTURE(sql);
    CHECK_FALSE(SessionPins::mayMatter(sql, 0));
    CHECK(SessionPins::mayMatter(sql, kEnds));
  }
  CHECK(SessionPins::mayMatter("BEGIN", kBegins));
  CHECK(SessionPins::mayMatter("start transaction", kBegins));
  CHECK_FALSE(SessionPins::mayMatter("BEGIN", kEnds));
  CHECK_FALSE(SessionPins::mayMatter("SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                                     kEnds | kBegins));
  const std::string filler(61, 'x');
  for (std::size_t at = 0; at + 3 <= filler.size(); ++at) {
    std::string sql = filler;
    sql.replace(at, 3, "END");
    CAPTURE(at);
    CHECK(SessionPins::mayMatter(sql, kEnds));
  }
}

}  // namespace pgpivot::session
