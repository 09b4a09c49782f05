// Named prepared statements across pooled server connections (transaction and statement
// mode), the way PgBouncer 1.21 does it: a client's Parse("s1", query) is kept by name and
// prepared on whichever server the client gets under a name derived from the query
// ("pgpivot_<hash>"), once per server connection; Bind, Describe and Close are rewritten to
// that name. Also used in session mode on a cluster's pool, where a failover moves the
// session to the new primary and its statements must be there; not on other session-mode
// pools, where a client keeps its server, nor with max_prepared_statements = 0, where
// statements pass through unchanged (as in PgBouncer).
//
// Ordering: every rewritten message still produces exactly the response the client
// expects, in place. A Parse of a statement the server already has becomes a Parse of the
// unnamed statement (same ParseComplete, no name clash); a statement missing on the server
// gets a Parse injected before the Bind/Describe that needs it, whose ParseComplete the
// server side drops; a Close becomes a Close of a name that does not exist, which
// PostgreSQL answers with CloseComplete.
//
// Each server connection keeps at most max_prepared_statements of them: preparing one more
// first closes the least recently used (a Close whose CloseComplete the client never sees).
//
// SQL the client sends about its statements: `DEALLOCATE [PREPARE] name` of a statement it
// prepared through the protocol never reaches the server as such (the server knows it under
// another name, or not at all); the server runs a statement with no effect instead and the
// client gets its CommandComplete "DEALLOCATE" (or the error of an aborted transaction, as
// from PostgreSQL). `DEALLOCATE ALL` and `DISCARD ALL` run on the server, which then has none
// of its statements left: when PostgreSQL reports them done, the server's list and the
// client's statements are emptied.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgpivot::session {

class ServerConn;

// `DEALLOCATE [PREPARE] name`, `DEALLOCATE [PREPARE] ALL`, as one statement (an optional
// trailing semicolon, whitespace and comments around it), read with proto::SqlScanner
// (sql_scanner.hpp). The name is folded as PostgreSQL folds identifiers: lower case unless
// double-quoted.
struct DeallocateSql {
  bool all = false;
  std::string name;
};
[[nodiscard]] std::optional<DeallocateSql> parseDeallocate(std::string_view sql);

// The statements one server connection holds, least recently used last. Lookups, touches and
// evictions do not allocate; adding a name allocates its list node.
class StatementLru final {
 public:
  bool contains(std::string_view name) const { return index_.count(name) > 0; }
  // Marks `name` as just used; false when it is not there.
  bool touch(std::string_view name);
  // Adds `name` as the most recently used (or touches it).
  void insert(std::string_view name);
  // Adds `name` as the least recently used (a statement believed closed that was not).
  void insertOldest(std::string_view name);
  void erase(std::string_view name);
  // The least recently used name; the list must not be empty.
  const std::string& oldest() const { return order_.back(); }
  void clear();
  std::size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }

 private:
  std::list<std::string> order_;  // front: most recently used
  std::unordered_map<std::string_view, std::list<std::string>::iterator> index_;
};

// The server side of prepared statements: which ones the connection holds, and the answers
// to come that pgpivot must drop or rewrite, in order. Messages are counted in batches: the
// replies before the Nth ReadyForQuery belong to batch N-1; what a batch still expects when
// its ReadyForQuery arrives was skipped after an error and never happened.
class ServerStatements final {
 public:
  void setCapacity(std::size_t capacity) { capacity_ = capacity; }
  // Whether `name` surely exists when the next message reaches the server: prepared, and
  // not by a batch still running (an error there may yet skip its Parse).
  bool has(std::string_view name) const {
    return cache_.contains(name) && (expected_.empty() || !pendingInEarlierBatch(name));
  }
  void touch(std::string_view name) { cache_.touch(name); }
  std::size_t size() const { return cache_.size(); }
  bool empty() const { return cache_.empty(); }

  // The client sent a message answered by ReadyForQuery (Sync, Query, FunctionCall); or
  // Syncs that COPY made the server ignore.
  void noteBatchSent() { ++batches_sent_; }
  void forgetBatches(int count) {
    batches_sent_ -= std::min<uint64_t>(batches_sent_, static_cast<uint64_t>(count));
  }
  // A new link: nothing is outstanding.
  void resetBatches();

  // Appends to `out` what makes `server_name` exist on the server: a Close of the least
  // recently used statement when the connection is full, a Close of `server_name` itself
  // (it may exist after all, if an error skipped the Close that was to remove it), then
  // `parse_message`. `drop`: the ParseComplete is pgpivot's, not the client's.
  void prepare(std::string& out, std::string_view server_name, std::string_view parse_message,
               bool drop, std::string_view client_name = {});
  // A Parse or Close the client sent, answered to the client as PostgreSQL answers it.
  // `client_name`: the client's named statement it creates (forgotten if the Parse fails);
  // `duplicate`: a Parse PostgreSQL refuses because the client's name is in use.
  void expectClientParseComplete(std::string_view client_name = {}, bool duplicate = false);
  void expectClientCloseComplete() { expect(Reply::kCloseComplete, false, {}, batches_sent_); }
  // The stand-in for a client's DEALLOCATE (kDeallocateStandIn) was just sent, as a Query
  // (`as_query`: already counted by noteBatchSent) or as an unnamed Parse: its
  // CommandComplete reads `tag` for the client, and then the client's statement
  // `client_name` is gone.
  void expectCommandTag(std::string_view tag, std::string_view client_name, bool as_query);

  // Receiving side. Whether the next such message needs a decision (consume, not forward).
  bool expectsReplies() const { return !expected_.empty(); }
  bool expectsCommandTag() const { return command_tags_ > 0; }
  // A ParseComplete or CloseComplete arrived: whether the client gets it.
  bool onParseComplete() { return onComplete(Reply::kParseComplete); }
  bool onCloseComplete() { return onComplete(Reply::kCloseComplete); }
  // Whether the ParseComplete or CloseComplete due next is the client's (onParseComplete
  // or onCloseComplete would say so), so it can be forwarded as it arrives.
  bool parseCompleteIsClients() const { return dueIsClients(Reply::kParseComplete); }
  bool closeCompleteIsClients() const { return dueIsClients(Reply::kCloseComplete); }
  // A CommandComplete arrived: the tag the client must get instead and the client's
  // statement it ends (for the stand-in's), or nullopt. DEALLOCATE ALL and DISCARD ALL empty the
  // list (the caller empties the client's).
  struct Rewrite {
    std::string_view tag;
    std::string client_name;
  };
  std::optional<Rewrite> onCommandComplete(std::string_view tag);
  // A statement run by pgpivot itself (reset query) completed with `tag`.
  void onInternalCommandComplete(std::string_view tag);
  void onReadyForQuery();
  // The client's statements whose Parse failed or was skipped, found by onReadyForQuery.
  const std::vector<std::string>& failedClientParses() const { return failed_; }
  void clearFailedClientParses() { failed_.clear(); }
  // The client's name in use when the reply due next is the refusal of a duplicate Parse
  // (the server's error names pgpivot's statement instead).
  std::optional<std::string_view> duplicateParseName() const;

 private:
  enum class Reply : uint8_t { kParseComplete, kCloseComplete, kCommandComplete };
  struct Expected {
    Reply reply;
    bool drop;                     // pgpivot's own message: the client must not see the answer
    uint64_t batch;                // which batch it belongs to
    std::string name;              // Parse: the statement it creates; Close: the one it removes;
                                   // CommandComplete: the client's statement it deallocates
    std::string_view tag;          // kCommandComplete: what the client reads (a string literal)
    std::string client_name = {};  // kParseComplete of a client's named statement
    bool duplicate = false;        // ... that PostgreSQL refuses: the name is in use
  };

  void expect(Reply reply, bool drop, std::string_view name, uint64_t batch);
  bool onComplete(Reply reply);
  bool dueIsClients(Reply reply) const;
  bool pendingInEarlierBatch(std::string_view name) const;
  // An expected reply that will not come (skipped after an error): undo what it assumed.
  // Undone newest first; `later` is where the entries of batches still running begin.
  void undo(const Expected& expected, std::size_t later);
  // Undoes and removes the first `count` entries.
  void undoFirst(std::size_t count);

  StatementLru cache_;
  std::size_t capacity_ = 200;
  std::deque<Expected> expected_;
  std::size_t command_tags_ = 0;  // kCommandComplete entries in expected_
  uint64_t batches_sent_ = 0;
  uint64_t batches_done_ = 0;
  std::vector<std::string> failed_;
};

class PreparedStatements final {
 public:
  // Handles one whole Parse ('P'), Bind ('B'), Describe ('D'), Close ('C') or Query ('Q')
  // from the client: writes what the server must get instead. Returns false for a message
  // it could not parse (the caller then forwards nothing and reports a protocol violation).
  [[nodiscard]] bool relay(char tag, std::string_view body, ServerConn& server);

  // A whole Parse, Bind, Describe or Close that the server may get as the client sent it
  // (the unnamed statement, a portal, a name the client never prepared): notes the reply
  // it brings and returns true, and the relay forwards it from the receive buffer without
  // copying it. False: relay() must take it and write what the server gets instead.
  [[nodiscard]] bool forwardsUnchanged(char tag, std::string_view body, ServerConn& server);

  // A Parse, Bind, Describe or Close too large for the receive buffer, of which `head` is
  // the start of the body: whether it may be forwarded unchanged. A Parse or Bind of the
  // unnamed statement, and a Bind of a name the client never prepared, may. A Bind of one
  // of the client's statements may when `can_write` (nothing received before it is still
  // to be sent): its statement is prepared on the server under the client's own name first.
  [[nodiscard]] bool relayLarge(char tag, std::string_view head, ServerConn& server,
                                bool can_write);

  std::size_t size() const { return statements_.size(); }
  bool empty() const { return statements_.empty(); }
  // Where a Parse, Bind, Describe or Close too large for the receive buffer, and not
  // forwardable unchanged, collects before relay() takes it whole (Action::kGather).
  std::string& gatherBuffer() { return gathered_; }
  // The session's standard_conforming_strings is off: a Query's SQL is split accordingly.
  void setBackslashQuotes(bool on) { backslash_quotes_ = on; }
  // DEALLOCATE ALL or DISCARD ALL succeeded on the client's server.
  void forgetAll() { statements_.clear(); }
  // The client's DEALLOCATE of `name` succeeded.
  void forget(std::string_view name) {
    if (const auto it = statements_.find(name); it != statements_.end()) {
      statements_.erase(it);
    }
  }

 private:
  struct Statement {
    std::string server_name;
    std::string parse_message;  // the whole Parse under server_name, to inject on demand
  };
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };

  bool relayParse(std::string_view body, ServerConn& server);
  bool relayBind(std::string_view body, ServerConn& server);
  bool relayDescribeOrClose(char tag, std::string_view body, ServerConn& server);
  bool relayQuery(std::string_view body, ServerConn& server);
  // A Query of several statements with DEALLOCATEs of our statements among them: sent with
  // those rewritten; false (nothing sent) when it has none.
  bool relayMultiStatementQuery(std::string_view sql, ServerConn& server);
  // Makes sure `statement` exists on `server`, appending its Parse to `out` if not.
  void ensurePrepared(const Statement& statement, ServerConn& server, std::string& out);

  std::unordered_map<std::string, Statement, NameHash, std::equal_to<>> statements_;
  std::string gathered_;
  bool backslash_quotes_ = false;
};

}  // namespace pgpivot::session
