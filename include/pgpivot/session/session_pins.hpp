// Server state a session-mode client holds that cannot be re-created on another server
// (issue 4): temporary tables, session-level advisory locks, LISTEN and WITH HOLD cursors.
// A client without any moves to the new primary at a failover without noticing; one with
// any is ended with a clear error instead of silently losing it.
//
// Tracked on the way in, from the SQL the client sends (simple Query, and the query text of
// a Parse): when the old primary is dead there is nobody left to ask. What may create such
// state counts (a Parse never executed, a statement an error skipped), and only what
// provably removes all of it of one kind clears it (DISCARD ALL, DISCARD TEMP,
// pg_advisory_unlock_all(), UNLISTEN *, CLOSE ALL). A false "held" ends a session that
// could have moved; a false "not held" loses state silently. NotificationResponse from the
// server is a reliable LISTEN signal and is counted too. Not seen: state created inside a
// function the client calls (other than a DO block's body, which is scanned), or by a
// FunctionCall message.
//
// Transaction blocks. Temp tables, LISTEN, WITH HOLD cursors and the clearing statements
// are transactional: what a block does is pending until the block ends, held when it
// commits and dropped when it rolls back (ROLLBACK or ABORT, or any end of a failed
// block). Session-level advisory locks and pg_advisory_unlock_all() are not: they count at
// once, rolled back or not. Where the statements stand comes from two sources: the status
// of the server's last ReadyForQuery, which ClientSession passes in at each request
// (noteServer, noteRequest), and the BEGIN, COMMIT, ROLLBACK ... the scanned text holds, in
// order. The status before and after a request brackets it exactly only when the client
// waits for each answer: with requests pipelined, or a prepared statement run (it may
// be a COMMIT, unseen), or a Query scanned only in part, the pins stop telling a block's
// end and keep what it made (the safe side).
//
// The SQL is read with proto::SqlScanner (sql_scanner.hpp), so that nothing in a string,
// dollar quote, quoted identifier or comment counts, with the session's
// standard_conforming_strings (off: a backslash escapes in every string literal).
//
// Only pools that can fail over (cluster-managed) in session mode track it. In transaction
// and statement mode such state is already broken by pooling (the next transaction may run
// on another server), as PgBouncer documents for its transaction mode; nothing is tracked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pgpivot/proto/constants.hpp"

namespace pgpivot::proto {
class SqlScanner;
struct SqlToken;
}  // namespace pgpivot::proto

namespace pgpivot::session {

class SessionPins final {
 public:
  enum Kind : uint8_t {
    kTempTables = 1U << 0U,
    kAdvisoryLocks = 1U << 1U,
    kListen = 1U << 2U,
    kHoldCursors = 1U << 3U,
  };

  // Where SQL comes from: a simple Query runs as it arrives, an unnamed Parse runs in the
  // same batch (its Bind and Execute follow), a named Parse whenever it is bound, in
  // whatever block is open then.
  enum class Source : uint8_t { kQuery, kUnnamedParse, kNamedParse };

  // The server as the session sees it when a message that may carry SQL or a request goes
  // to it: the status of its last ReadyForQuery, and whether every request sent so far has
  // been answered (then the status is the one after the last of them).
  void noteServer(proto::TxStatus status, bool settled) {
    if (unresolved_ != 0) {
      settle(status, settled);
    }
  }
  // A request the server answers with one ReadyForQuery (Query, Sync, FunctionCall) goes
  // to it.
  void noteRequest(proto::TxStatus status, bool settled) {
    noteServer(status, settled);
    if (unresolved_ < 2) {
      ++unresolved_;
    }
  }

  // SQL the client sent: a simple Query's text (one or more statements) or a Parse's.
  // `backslash_quotes()` says whether the session's standard_conforming_strings is off; it
  // is asked only when the text is scanned. Cheap when the text cannot matter (a few
  // compares per byte); one pass over the tokens when it may. Never allocates.
  template <typename BackslashQuotes>
  void noteSql(std::string_view sql, Source source, BackslashQuotes&& backslash_quotes) {
    if (mayMatter(sql, words())) {
      scan(sql, source, backslash_quotes());
    }
  }
  void noteSql(std::string_view sql) {
    noteSql(sql, Source::kQuery, [] { return false; });
  }
  // Whether a request now may end a block unseen and that would matter (noteBlind).
  bool watchesBlind() const { return block_ != Block::kNone || (pend_set_ | commit_set_) != 0; }
  // Something in the current request may change the transaction status where the pins
  // cannot see it: a Bind of a named statement, a Query scanned only in part.
  void noteBlind();
  // The server connection was lost: `settled` and `status` as for noteServer;
  // `not_committed`: the open block provably did not commit (nothing in flight may).
  void noteServerLost(proto::TxStatus status, bool settled, bool not_committed);
  // The server delivered a NotificationResponse: this session listens.
  void noteNotification() { bits_ |= kListen; }

  // What may be held: what is (bits()), and what a block made whose end has not been
  // settled yet (noteServer, noteServerLost settle it).
  bool any() const { return all() != 0; }
  bool has(Kind kind) const { return (all() & kind) != 0; }
  // What is held: made outside a block or by one that committed.
  uint8_t bits() const { return bits_; }
  // "temp tables", "advisory locks and LISTEN", ... for the error message.
  std::string describe() const;

  // The pre-check: whether `sql` contains, in any case, a word that may create such
  // state ("temp", "advisory", "listen", "hold"), or one of the `words` groups: kClearWords
  // ("discard", "close": something is held), kEndWords ("commit", "end", "rollback",
  // "abort": a block is open), kBeginWords ("begin", "start": a block's end awaits its
  // answer). Quotes and comments are not looked at here.
  enum Words : uint8_t {
    kClearWords = 1U << 0U,
    kEndWords = 1U << 1U,
    kBeginWords = 1U << 2U,
  };
  static bool mayMatter(std::string_view sql, uint8_t words);

 private:
  // Whether the statements being noted run inside a transaction block, as far as known.
  enum class Block : uint8_t {
    kNone,     // autocommit: what they make is held at once
    kOpen,     // inside BEGIN ...: pending until the block ends
    kFailed,   // inside a failed block: whatever ends it rolls back
    kUnknown,  // not known (pipelined, blind): what they make is held at once
  };

  uint8_t all() const {
    return static_cast<uint8_t>(bits_ | pend_set_ | commit_set_ | rolled_back_ | superseded_);
  }
  uint8_t words() const {
    uint8_t words = 0;
    if (bits_ != 0) {
      words |= kClearWords;
    }
    if (block_ == Block::kOpen || block_ == Block::kFailed) {
      words |= kEndWords;
    }
    if ((commit_set_ | commit_clear_ | rolled_back_) != 0) {
      words |= kBeginWords;
    }
    return words;
  }
  void settle(proto::TxStatus status, bool settled);
  void scan(std::string_view sql, Source source, bool backslash_quotes);
  // The statement `tokens` stands at, leaving it past the statement's end; false when no
  // statement is left. `depth`: 1 inside a DO block's body.
  bool scanStatement(proto::SqlScanner& tokens, int depth, Source source);
  // A statement made or cleared state of `kind`, in the block it runs in.
  void make(uint8_t kind, Source source);
  void clear(uint8_t kind, Source source);
  // BEGIN, COMMIT, ROLLBACK ... at the head of a statement, `after_head` standing past it.
  void transactionControl(const proto::SqlToken& head, proto::SqlScanner after_head);
  // The open block commits / rolls back / its end cannot be told (held: the safe side).
  void commitPending();
  void foldAll();

  uint8_t bits_ = 0;        // held
  uint8_t pend_set_ = 0;    // made by the open block
  uint8_t pend_clear_ = 0;  // cleared by the open block (applied when it commits)
  // Ended by a COMMIT or ROLLBACK of the current request's text, until its answer says
  // the statement ran: an error before it leaves the block failed instead (status 'E').
  uint8_t commit_set_ = 0;
  uint8_t commit_clear_ = 0;
  uint8_t rolled_back_ = 0;
  uint8_t superseded_ = 0;  // rolled back, and a BEGIN after it in the same text
  uint8_t unresolved_ = 0;  // requests sent since the last settled look (at most 2)
  Block block_ = Block::kNone;
  Block start_ = Block::kNone;  // block_ as the current request started
};

}  // namespace pgpivot::session
