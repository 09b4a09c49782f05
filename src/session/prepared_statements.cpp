#include "pgpivot/session/prepared_statements.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "pgpivot/proto/frame.hpp"
#include "pgpivot/proto/messages.hpp"
#include "pgpivot/proto/sql_scanner.hpp"
#include "pgpivot/proto/views.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::session {

namespace {

// What the server runs instead of a client's DEALLOCATE of a statement it only knows under
// another name: no effect, no rows, and like DEALLOCATE it fails in an aborted transaction.
// Its CommandComplete is told from the client's by its tag (a client of a transaction
// pooler has no use for UNLISTEN: LISTEN does not survive it).
constexpr std::string_view kDeallocateStandIn = "UNLISTEN pgpivot_deallocate";
constexpr std::string_view kDeallocateStandInTag = "UNLISTEN";

// The server-side name of a statement: the same query and parameter types give the same
// name on every connection, so one preparation serves every client of that server.
std::string serverName(std::string_view query, const std::vector<uint32_t>& types) {
  std::string key(query);
  for (const uint32_t type : types) {
    key += fmt::format(",{}", type);
  }
  return fmt::format("pgpivot_{:016x}_{}", std::hash<std::string>{}(key), key.size());
}

// A message rewritten on every execution of a prepared statement (its Bind) is built here:
// this thread's buffer keeps its capacity, so the hot path allocates nothing. Empty on
// return; the caller hands it to writeOwned, which copies what it does not write at once.
std::string& rewriteBuffer() {
  thread_local std::string buffer;
  buffer.clear();
  return buffer;
}

// Where the NUL-terminated string starting at `from` ends, or npos.
std::size_t cstringEnd(std::string_view body, std::size_t from) {
  return from < body.size() ? body.find('\0', from) : std::string_view::npos;
}

// A message header (tag and length) for a body of `body_size` bytes.
void appendHeader(std::string& out, char tag, std::size_t body_size) {
  const uint32_t length = htonl(static_cast<uint32_t>(body_size + 4));
  out.push_back(tag);
  out.append(reinterpret_cast<const char*>(&length), 4);
}

// A Bind, Describe or Close body with one NUL-terminated name replaced: `before` (up to
// the name), `name`, NUL, `after`.
void appendRenamed(std::string& out, char tag, std::string_view before, std::string_view name,
                   std::string_view after) {
  appendHeader(out, tag, before.size() + name.size() + 1 + after.size());
  out.append(before);
  out.append(name);
  out.push_back('\0');
  out.append(after);
}

void appendFrame(std::string& out, char tag, std::string_view body) {
  appendHeader(out, tag, body.size());
  out.append(body);
}

// An identifier token as PostgreSQL reads it: an unquoted one folded to lower case, a
// quoted one with its doubled quotes undone. False for anything else ("" included).
bool identifier(const proto::SqlToken& token, std::string& out, bool& quoted) {
  out.clear();
  quoted = token.kind == proto::SqlToken::Kind::kQuotedIdent;
  if (quoted) {
    if (!token.terminated || token.text.empty()) {
      return false;
    }
    for (std::size_t i = 0; i < token.text.size(); ++i) {
      out.push_back(token.text[i]);
      if (token.text[i] == '"') {
        ++i;  // the second of a doubled quote
      }
    }
    return true;
  }
  const char first = token.text.empty() ? '\0' : token.text.front();
  if (token.kind != proto::SqlToken::Kind::kWord ||
      !((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || first == '_' ||
        static_cast<unsigned char>(first) >= 0x80)) {
    return false;  // 1a, $1: not an identifier
  }
  for (const char c : token.text) {
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return true;
}

bool isSemicolon(const proto::SqlToken& token) {
  return token.kind == proto::SqlToken::Kind::kPunct && token.text.front() == ';';
}

}  // namespace

std::optional<DeallocateSql> parseDeallocate(std::string_view sql) {
  // Every unnamed Parse comes here: most leave at their first character, which is neither
  // DEALLOCATE's nor a comment's.
  std::size_t first = 0;
  while (first < sql.size() && (sql[first] == ' ' || (sql[first] >= '\t' && sql[first] <= '\r'))) {
    ++first;
  }
  if (first == sql.size() ||
      (sql[first] != 'd' && sql[first] != 'D' && sql[first] != '-' && sql[first] != '/')) {
    return std::nullopt;
  }
  proto::SqlScanner scanner(sql);
  proto::SqlToken token;
  if (!scanner.next(token) || token.kind != proto::SqlToken::Kind::kWord ||
      !proto::equalsKeyword(token.text, "deallocate")) {
    return std::nullopt;
  }
  std::string word;
  bool quoted = false;
  if (!scanner.next(token) || !identifier(token, word, quoted)) {
    return std::nullopt;
  }
  // DEALLOCATE PREPARE name: unless "prepare" is the statement's own name.
  if (!quoted && word == "prepare" && scanner.peek(token) && !isSemicolon(token)) {
    if (!scanner.next(token) || !identifier(token, word, quoted)) {
      return std::nullopt;
    }
  }
  if (scanner.next(token) && (!isSemicolon(token) || scanner.next(token))) {
    return std::nullopt;  // more than one statement, or not one we understand
  }
  if (scanner.truncated()) {
    return std::nullopt;  // a comment that does not end
  }
  DeallocateSql out;
  out.all = !quoted && word == "all";
  if (!out.all) {
    out.name = std::move(word);
  }
  return out;
}

// --- StatementLru ---------------------------------------------------------------------------

bool StatementLru::touch(std::string_view name) {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    return false;
  }
  order_.splice(order_.begin(), order_, it->second);
  return true;
}

void StatementLru::insert(std::string_view name) {
  if (touch(name)) {
    return;
  }
  order_.emplace_front(name);
  index_.emplace(order_.front(), order_.begin());
}

void StatementLru::insertOldest(std::string_view name) {
  if (contains(name)) {
    return;
  }
  order_.emplace_back(name);
  index_.emplace(order_.back(), std::prev(order_.end()));
}

void StatementLru::erase(std::string_view name) {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    return;
  }
  const auto node = it->second;
  index_.erase(it);  // before the string its key views goes away
  order_.erase(node);
}

void StatementLru::clear() {
  index_.clear();
  order_.clear();
}

// --- ServerStatements -----------------------------------------------------------------------

void ServerStatements::resetBatches() {
  undoFirst(expected_.size());
  command_tags_ = 0;
  batches_sent_ = 0;
  batches_done_ = 0;
}

void ServerStatements::expect(Reply reply, bool drop, std::string_view name, uint64_t batch) {
  expected_.push_back(Expected{reply, drop, batch, std::string(name), {}});
}

void ServerStatements::expectClientParseComplete(std::string_view client_name, bool duplicate) {
  expect(Reply::kParseComplete, false, {}, batches_sent_);
  expected_.back().client_name = client_name;
  expected_.back().duplicate = duplicate;
}

std::optional<std::string_view> ServerStatements::duplicateParseName() const {
  for (const Expected& expected : expected_) {
    if (expected.reply != Reply::kCommandComplete) {
      if (expected.reply == Reply::kParseComplete && expected.duplicate) {
        return std::string_view(expected.client_name);
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void ServerStatements::prepare(std::string& out, std::string_view server_name,
                               std::string_view parse_message, bool drop,
                               std::string_view client_name) {
  while (capacity_ > 0 && cache_.size() >= capacity_ && !cache_.contains(server_name)) {
    // Full: the least recently used goes first. Its CloseComplete is ours.
    const std::string& victim = cache_.oldest();
    proto::writeClose(out, proto::ObjectKind::kStatement, victim);
    expect(Reply::kCloseComplete, true, victim, batches_sent_);
    cache_.erase(victim);
  }
  proto::writeClose(out, proto::ObjectKind::kStatement, server_name);
  expect(Reply::kCloseComplete, true, {}, batches_sent_);
  out.append(parse_message);
  cache_.insert(server_name);
  expect(Reply::kParseComplete, drop, server_name, batches_sent_);
  expected_.back().client_name = client_name;
}

void ServerStatements::expectCommandTag(std::string_view tag, std::string_view client_name,
                                        bool as_query) {
  // A Query was counted when it was sent: it ends batch batches_sent_ - 1.
  expected_.push_back(Expected{Reply::kCommandComplete, false,
                               as_query && batches_sent_ > 0 ? batches_sent_ - 1 : batches_sent_,
                               std::string(client_name), tag});
  ++command_tags_;
}

bool ServerStatements::pendingInEarlierBatch(std::string_view name) const {
  for (const Expected& expected : expected_) {
    if (expected.reply == Reply::kParseComplete && expected.batch < batches_sent_ &&
        expected.name == name) {
      return true;
    }
  }
  return false;
}

namespace {

// ParseCompletes and CloseCompletes come in the order their messages were sent; the
// CommandComplete of a stand-in may still be due between them.
template <typename List, typename Reply>
auto dueReply(List& expected, Reply command_complete) {
  auto it = expected.begin();
  while (it != expected.end() && it->reply == command_complete) {
    ++it;
  }
  return it;
}

}  // namespace

bool ServerStatements::onComplete(Reply reply) {
  const auto it = dueReply(expected_, Reply::kCommandComplete);
  if (it == expected_.end() || it->reply != reply) {
    return true;  // not one pgpivot accounted for: the client's
  }
  const bool drop = it->drop;
  expected_.erase(it);
  return !drop;
}

bool ServerStatements::dueIsClients(Reply reply) const {
  const auto it = dueReply(expected_, Reply::kCommandComplete);
  return it == expected_.end() || it->reply != reply || !it->drop;
}

std::optional<ServerStatements::Rewrite> ServerStatements::onCommandComplete(std::string_view tag) {
  if (tag == "DEALLOCATE ALL" || tag == "DISCARD ALL") {
    cache_.clear();
  }
  if (command_tags_ == 0 || tag != kDeallocateStandInTag) {
    return std::nullopt;
  }
  for (auto it = expected_.begin(); it != expected_.end(); ++it) {
    if (it->reply != Reply::kCommandComplete) {
      continue;
    }
    Rewrite rewrite{it->tag, std::move(it->name)};
    expected_.erase(it);
    --command_tags_;
    return rewrite;
  }
  return std::nullopt;
}

void ServerStatements::onInternalCommandComplete(std::string_view tag) {
  if (tag == "DEALLOCATE ALL" || tag == "DISCARD ALL") {
    cache_.clear();
  }
}

void ServerStatements::onReadyForQuery() {
  ++batches_done_;
  std::size_t done = 0;
  while (done < expected_.size() && expected_[done].batch < batches_done_) {
    ++done;
  }
  undoFirst(done);
}

void ServerStatements::undoFirst(std::size_t count) {
  // Newest first, as a rollback: a skipped Close of a statement whose Parse was skipped
  // too must not bring it back.
  for (std::size_t i = count; i-- > 0;) {
    undo(expected_[i], count);
  }
  expected_.erase(expected_.begin(), expected_.begin() + static_cast<std::ptrdiff_t>(count));
}

void ServerStatements::undo(const Expected& expected, std::size_t later) {
  // A batch still running that prepares or closes the same statement decides where it
  // stands; the list already says so.
  const auto decidedLater = [&] {
    return std::any_of(expected_.begin() + static_cast<std::ptrdiff_t>(later), expected_.end(),
                       [&](const Expected& next) {
                         return next.reply != Reply::kCommandComplete && next.name == expected.name;
                       });
  };
  switch (expected.reply) {
    case Reply::kParseComplete:
      // Failed or skipped after an error: the statement was never created, neither on
      // the server nor for the client.
      if (!expected.name.empty() && !decidedLater()) {
        cache_.erase(expected.name);
      }
      if (!expected.client_name.empty() && !expected.duplicate) {
        failed_.push_back(expected.client_name);
      }
      return;
    case Reply::kCloseComplete:
      // Skipped: the statement pgpivot meant to close is still there.
      if (!expected.name.empty() && !decidedLater()) {
        cache_.insertOldest(expected.name);
      }
      return;
    case Reply::kCommandComplete:
      --command_tags_;
      return;
  }
}

// --- PreparedStatements (one client's statements) -------------------------------------------

bool PreparedStatements::relay(char tag, std::string_view body, ServerConn& server) {
  switch (tag) {
    case 'P':
      return relayParse(body, server);
    case 'B':
      return relayBind(body, server);
    case 'D':
    case 'C':
      return relayDescribeOrClose(tag, body, server);
    case 'Q':
      return relayQuery(body, server);
    default: {
      std::string out;
      appendFrame(out, tag, body);
      server.stream().writeOwned(out);
      return true;
    }
  }
}

bool PreparedStatements::forwardsUnchanged(char tag, std::string_view body, ServerConn& server) {
  switch (tag) {
    case 'P': {
      // Parse: name\0 query\0 ... Only the unnamed statement passes as it is, unless its
      // query is a DEALLOCATE of one of the client's statements (psycopg sends those so).
      if (body.empty() || body.front() != '\0') {
        return false;
      }
      if (!statements_.empty()) {
        const std::string_view query = body.substr(1, cstringEnd(body, 1) - 1);
        if (parseDeallocate(query)) {
          return false;
        }
      }
      server.statements().expectClientParseComplete();
      return true;
    }
    case 'B': {
      // Bind: portal\0 statement\0 rest.
      const std::size_t portal_end = cstringEnd(body, 0);
      const std::size_t name_end = cstringEnd(body, portal_end + 1);
      if (portal_end == std::string_view::npos || name_end == std::string_view::npos) {
        return false;  // malformed: relay() reports it
      }
      const std::string_view name = body.substr(portal_end + 1, name_end - portal_end - 1);
      return name.empty() || !statements_.contains(name);
    }
    case 'D':
    case 'C': {
      // Describe/Close: kind ('S' statement, 'P' portal) then name\0.
      const std::size_t name_end = cstringEnd(body, 1);
      if (body.empty() || name_end == std::string_view::npos || name_end + 1 != body.size()) {
        return false;
      }
      const std::string_view name = body.substr(1, name_end - 1);
      if (body[0] == 'S' && !name.empty() && statements_.contains(name)) {
        return false;
      }
      if (tag == 'C') {
        server.statements().expectClientCloseComplete();
      }
      return true;
    }
    default:
      return false;
  }
}

bool PreparedStatements::relayLarge(char tag, std::string_view head, ServerConn& server,
                                    bool can_write) {
  if (tag == 'P') {
    // Parse: name\0 query\0 ... A named one is kept by its whole message: gathered
    // (Action::kGather) and relayed whole.
    if (head.empty() || head.front() != '\0') {
      return false;
    }
    server.statements().expectClientParseComplete();
    return true;
  }
  if (tag != 'B') {
    return false;
  }
  const std::size_t portal_end = cstringEnd(head, 0);
  const std::size_t name_end = cstringEnd(head, portal_end + 1);
  if (portal_end == std::string_view::npos || name_end == std::string_view::npos) {
    return false;  // the names are not all here yet
  }
  const std::string_view name = head.substr(portal_end + 1, name_end - portal_end - 1);
  const auto it = name.empty() ? statements_.end() : statements_.find(name);
  if (it == statements_.end()) {
    return true;  // unnamed, or unknown: PostgreSQL says so
  }
  if (!can_write) {
    return false;  // what came before must reach the server first
  }
  // Prepared under the client's own name, never trusted to be there already (another
  // client may have left its own statement of that name).
  auto parse =
      proto::parseParse(std::string_view(it->second.parse_message).substr(proto::kHeaderSize));
  if (!parse) {
    return false;
  }
  std::string parse_message;
  proto::writeParse(parse_message, name, parse->query, parse->param_types);
  std::string out;
  server.statements().prepare(out, name, parse_message, true);
  server.stream().writeOwned(out);
  return true;
}

bool PreparedStatements::relayParse(std::string_view body, ServerConn& server) {
  auto parse = proto::parseParse(body);
  if (!parse) {
    return false;
  }
  ServerStatements& on_server = server.statements();
  std::string out;
  if (parse->name.empty()) {
    on_server.expectClientParseComplete();
    // DEALLOCATE through the extended protocol (psycopg does so): as for a Query.
    const auto deallocate = statements_.empty() ? std::nullopt : parseDeallocate(parse->query);
    const auto it =
        deallocate && !deallocate->all ? statements_.find(deallocate->name) : statements_.end();
    if (it != statements_.end()) {
      proto::writeParse(out, "", kDeallocateStandIn, {});
      on_server.expectCommandTag("DEALLOCATE", it->first, false);
    } else {
      appendFrame(out, 'P', body);
    }
    server.stream().writeOwned(out);
    return true;
  }
  if (const auto existing = statements_.find(parse->name); existing != statements_.end()) {
    // PostgreSQL refuses a name in use (42P05), in place: parsing under pgpivot's name of
    // the statement already there gets the server to say so (the error is renamed on its
    // way back).
    ensurePrepared(existing->second, server, out);
    proto::writeParse(out, existing->second.server_name, parse->query, parse->param_types);
    on_server.expectClientParseComplete(parse->name, true);
    server.stream().writeOwned(out);
    return true;
  }
  Statement statement;
  statement.server_name = serverName(parse->query, parse->param_types);
  proto::writeParse(statement.parse_message, statement.server_name, parse->query,
                    parse->param_types);
  if (on_server.has(statement.server_name)) {
    // Already there: parse it as the unnamed statement instead, so the client still gets
    // its ParseComplete (and its errors) at this very place.
    on_server.touch(statement.server_name);
    proto::writeParse(out, "", parse->query, parse->param_types);
    on_server.expectClientParseComplete(parse->name);
  } else {
    on_server.prepare(out, statement.server_name, statement.parse_message, false, parse->name);
  }
  statements_.emplace(std::string(parse->name), std::move(statement));
  server.stream().writeOwned(out);
  return true;
}

bool PreparedStatements::relayMultiStatementQuery(std::string_view sql, ServerConn& server) {
  proto::SqlScanner statements(sql, backslash_quotes_);
  std::string_view piece;
  if (!statements.nextStatement(piece) || statements.offset() == sql.size()) {
    return false;  // one statement: relayQuery() decides (nothing allocated to find out)
  }
  // Each DEALLOCATE of one of our statements becomes the stand-in, answered in its place
  // as for a Query of its own. A name deallocated twice is forwarded the second time:
  // PostgreSQL says 26000 then, as it would.
  std::string rewritten;
  std::vector<std::string> names;
  do {
    const auto deallocate = parseDeallocate(piece);
    const auto it =
        deallocate && !deallocate->all ? statements_.find(deallocate->name) : statements_.end();
    if (it == statements_.end() ||
        std::find(names.begin(), names.end(), it->first) != names.end()) {
      rewritten.append(piece);
      continue;
    }
    names.push_back(it->first);
    rewritten.append(kDeallocateStandIn);
    if (piece.back() == ';') {
      rewritten.push_back(';');
    }
  } while (statements.nextStatement(piece));
  if (names.empty()) {
    return false;
  }
  std::string out;
  proto::writeQuery(out, rewritten);
  for (const std::string& name : names) {
    server.statements().expectCommandTag("DEALLOCATE", name, true);
  }
  server.stream().writeOwned(out);
  return true;
}

void PreparedStatements::ensurePrepared(const Statement& statement, ServerConn& server,
                                        std::string& out) {
  ServerStatements& on_server = server.statements();
  if (on_server.has(statement.server_name)) {
    on_server.touch(statement.server_name);
    return;
  }
  on_server.prepare(out, statement.server_name, statement.parse_message, true);
}

bool PreparedStatements::relayBind(std::string_view body, ServerConn& server) {
  // Bind: portal\0 statement\0 rest. Only the statement name changes.
  const std::size_t portal_end = cstringEnd(body, 0);
  const std::size_t name_end = cstringEnd(body, portal_end + 1);
  if (portal_end == std::string_view::npos || name_end == std::string_view::npos) {
    return false;
  }
  const std::string_view name = body.substr(portal_end + 1, name_end - portal_end - 1);
  const auto it = name.empty() ? statements_.end() : statements_.find(name);
  std::string& out = rewriteBuffer();
  if (it == statements_.end()) {
    appendFrame(out, 'B', body);  // unnamed, or unknown: PostgreSQL says so
  } else {
    ensurePrepared(it->second, server, out);
    appendRenamed(out, 'B', body.substr(0, portal_end + 1), it->second.server_name,
                  body.substr(name_end + 1));
  }
  server.stream().writeOwned(out);
  return true;
}

bool PreparedStatements::relayDescribeOrClose(char tag, std::string_view body, ServerConn& server) {
  // Describe/Close: kind ('S' statement, 'P' portal) then name\0.
  const std::size_t name_end = cstringEnd(body, 1);
  if (body.empty() || name_end == std::string_view::npos || name_end + 1 != body.size()) {
    return false;
  }
  if (tag == 'C') {
    server.statements().expectClientCloseComplete();
  }
  const std::string_view name = body.substr(1, name_end - 1);
  const auto it = body[0] == 'S' && !name.empty() ? statements_.find(name) : statements_.end();
  std::string& out = rewriteBuffer();
  if (it == statements_.end()) {
    appendFrame(out, tag, body);
  } else if (tag == 'D') {
    ensurePrepared(it->second, server, out);
    appendRenamed(out, tag, "S", it->second.server_name, {});
  } else {
    // The server keeps its copy for other clients; the client's name is gone. Closing a
    // name that does not exist is not an error: the client gets its CloseComplete.
    statements_.erase(it);
    appendRenamed(out, tag, "S", "pgpivot_closed", {});
  }
  server.stream().writeOwned(out);
  return true;
}

bool PreparedStatements::relayQuery(std::string_view body, ServerConn& server) {
  auto sql = proto::parseQuery(body);
  if (!sql) {
    return false;
  }
  std::string out;
  const auto deallocate = parseDeallocate(*sql);
  const auto it =
      deallocate && !deallocate->all ? statements_.find(deallocate->name) : statements_.end();
  if (!deallocate && relayMultiStatementQuery(*sql, server)) {
    return true;
  }
  if (it == statements_.end()) {
    // Anything else, a name the client never prepared through the protocol (PostgreSQL
    // answers, 26000 if it has no such statement either), or DEALLOCATE ALL (the server's
    // CommandComplete empties the lists).
    appendFrame(out, 'Q', body);
  } else {
    // Forgotten when the server says it is done: in an aborted transaction the stand-in
    // fails as the DEALLOCATE would, and the statement stays.
    proto::writeQuery(out, kDeallocateStandIn);
    server.statements().expectCommandTag("DEALLOCATE", it->first, true);
  }
  server.stream().writeOwned(out);
  return true;
}

}  // namespace pgpivot::session
