// Which server state a session-mode client holds that cannot move to another server:
// what the SQL it sends creates and clears, with quotes, comments and dollar quotes
// respected.
#include "pgpivot/session/session_pins.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace pgpivot::session {
namespace {

// The pins after the client sends each of `sqls` in order.
uint8_t after(std::initializer_list<std::string_view> sqls) {
  SessionPins pins;
  for (const std::string_view sql : sqls) {
    pins.noteSql(sql);
  }
  return pins.bits();
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

TEST_CASE("session-level advisory locks pin a session; transaction-level ones do not",
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

TEST_CASE("DISCARD ALL clears every kind; the pins say what is held", "[unit][session_pins]") {
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

}  // namespace pgpivot::session
