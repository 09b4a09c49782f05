// Server state a session-mode client holds that cannot be re-created on another server
// (issue 4): temporary tables, session-level advisory locks, LISTEN and WITH HOLD cursors.
// A client without any moves to the new primary at a failover without noticing; one with
// any is ended with a clear error instead of silently losing it.
//
// Tracked on the way in, from the SQL the client sends (simple Query, and the query text of
// a Parse): when the old primary is dead there is nobody left to ask. The scan is
// conservative: what may create such state counts (a CREATE TEMP TABLE that was rolled
// back, a Parse never executed), and only what provably removes all of it of one kind
// clears it (DISCARD ALL, DISCARD TEMP, pg_advisory_unlock_all(), UNLISTEN *, CLOSE ALL).
// A false "held" ends a session that could have moved; a false "not held" loses state
// silently, as before. NotificationResponse from the server is a reliable LISTEN signal
// and is counted too. Not seen: state created inside a function the client calls (other
// than a DO block's body, which is scanned), or by a FunctionCall message.
//
// The SQL is read with proto::SqlScanner (sql_scanner.hpp), so that nothing in a string,
// dollar quote, quoted identifier or comment counts, as with standard_conforming_strings
// on (a backslash escapes in E'' strings only).
//
// Only pools that can fail over (cluster-managed) in session mode track it. In transaction
// and statement mode such state is already broken by pooling (the next transaction may run
// on another server), as PgBouncer documents for its transaction mode; nothing is tracked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgpivot::proto {
class SqlScanner;
}

namespace pgpivot::session {

class SessionPins final {
 public:
  enum Kind : uint8_t {
    kTempTables = 1U << 0U,
    kAdvisoryLocks = 1U << 1U,
    kListen = 1U << 2U,
    kHoldCursors = 1U << 3U,
  };

  // SQL the client sent: a simple Query's text (one or more statements) or a Parse's.
  // Cheap when the text cannot matter (a few 4-byte compares per byte); one pass over the
  // tokens when it may. Never allocates.
  void noteSql(std::string_view sql) {
    if (mayMatter(sql, bits_ != 0)) {
      scan(sql);
    }
  }
  // The server delivered a NotificationResponse: this session listens.
  void noteNotification() { bits_ |= kListen; }
  // The session is on a fresh server (nothing of the old one's state is left).
  void clear() { bits_ = 0; }

  bool any() const { return bits_ != 0; }
  bool has(Kind kind) const { return (bits_ & kind) != 0; }
  uint8_t bits() const { return bits_; }
  // "temp tables", "advisory locks and LISTEN", ... for the error message.
  std::string describe() const;

  // The pre-check: whether `sql` contains, in any case, a word that may create such
  // state ("temp", "advisory", "listen", "hold"), or, when `held`, one that may clear it
  // ("discard", "close"). Quotes and comments are not looked at here.
  static bool mayMatter(std::string_view sql, bool held);

 private:
  void scan(std::string_view sql);
  // The statement `tokens` stands at, leaving it past the statement's end; false when no
  // statement is left. `depth`: 1 inside a DO block's body.
  bool scanStatement(proto::SqlScanner& tokens, int depth);

  uint8_t bits_ = 0;
};

}  // namespace pgpivot::session
