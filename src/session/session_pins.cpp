#include "pgpivot/session/session_pins.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pgpivot/proto/sql_scanner.hpp"

namespace pgpivot::session {

namespace {

constexpr uint32_t pack(char a, char b, char c, char d) {
  return std::bit_cast<uint32_t>(std::array<char, 4>{a, b, c, d});
}

// OR-ing 0x20 into a byte folds an ASCII upper-case letter to its lower case and maps no
// other byte onto a lower-case letter, so a folded 4-byte window equals a lower-case
// keyword exactly when the text holds that keyword in any case.
constexpr uint32_t kFold = 0x20202020U;
constexpr uint32_t kTemp = pack('t', 'e', 'm', 'p');  // TEMP, TEMPORARY, pg_temp
constexpr uint32_t kAdvi = pack('a', 'd', 'v', 'i');  // pg_advisory_lock, ..._unlock_all
constexpr uint32_t kList = pack('l', 'i', 's', 't');  // LISTEN, UNLISTEN
constexpr uint32_t kHold = pack('h', 'o', 'l', 'd');  // WITH HOLD
constexpr uint32_t kDisc = pack('d', 'i', 's', 'c');  // DISCARD ALL / TEMP
constexpr uint32_t kClos = pack('c', 'l', 'o', 's');  // CLOSE ALL
constexpr uint32_t kComm = pack('c', 'o', 'm', 'm');  // COMMIT
constexpr uint32_t kRoll = pack('r', 'o', 'l', 'l');  // ROLLBACK
constexpr uint32_t kAbor = pack('a', 'b', 'o', 'r');  // ABORT
constexpr uint32_t kBegi = pack('b', 'e', 'g', 'i');  // BEGIN
constexpr uint32_t kStar = pack('s', 't', 'a', 'r');  // START TRANSACTION
// END, three letters: the window's first three bytes.
constexpr uint32_t kFirst3 =
    std::bit_cast<uint32_t>(std::array<unsigned char, 4>{0xFF, 0xFF, 0xFF, 0});
constexpr uint32_t kEnd = pack('e', 'n', 'd', '\0');

using proto::SqlScanner;
using proto::SqlToken;

// Quoted identifiers count as words, and compare in any case too: "pg_temp".t is the temp
// schema, and erring towards "held" is the safe side (session_pins.hpp).
bool isWord(const SqlToken& token) {
  return token.kind == SqlToken::Kind::kWord || token.kind == SqlToken::Kind::kQuotedIdent;
}

bool is(const SqlToken& token, std::string_view keyword) {
  return isWord(token) && proto::equalsKeyword(token.text, keyword);
}

bool isPunct(const SqlToken& token, char c) {
  return token.kind == SqlToken::Kind::kPunct && token.text.front() == c;
}

// The statement's next token; false at its end (its ';', which is taken, or the text's).
bool nextInStatement(SqlScanner& tokens, SqlToken& token) {
  return tokens.next(token) && !isPunct(token, ';');
}

// Whether the statement's next tokens, after the one `tokens` stands past, are `c`, the
// word `word`, or the words `first` and `second`. Looks ahead: the caller's scanner stays
// where it is.
bool followedBy(SqlScanner tokens, char c) {
  SqlToken token;
  return nextInStatement(tokens, token) && isPunct(token, c);
}

bool followedBy(SqlScanner tokens, std::string_view word) {
  SqlToken token;
  return nextInStatement(tokens, token) && is(token, word);
}

bool followedBy(SqlScanner tokens, std::string_view first, std::string_view second) {
  SqlToken token;
  return nextInStatement(tokens, token) && is(token, first) && followedBy(tokens, second);
}

// A function of `names` called at `word`, `next` the token after it if any (optionally
// schema-qualified: the word is what precedes the parenthesis).
template <std::size_t N>
bool calls(const SqlToken& word, const SqlToken* next,
           const std::array<std::string_view, N>& names) {
  if (next == nullptr || !isPunct(*next, '(')) {
    return false;
  }
  for (const std::string_view name : names) {
    if (is(word, name)) {
      return true;
    }
  }
  return false;
}

constexpr std::array<std::string_view, 4> kSessionLocks = {
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared"};
constexpr std::array<std::string_view, 1> kUnlockAll = {"pg_advisory_unlock_all"};

bool isTempWord(const SqlToken& token) {
  return is(token, "temp") || is(token, "temporary");
}

// CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} [UNLOGGED | RECURSIVE] {TABLE |
// VIEW | SEQUENCE} ..., or any CREATE of an object in the pg_temp schema, `after` standing
// just past the CREATE. (Whether ON COMMIT DROP follows is the caller's to see.)
bool createsTemp(SqlScanner after) {
  bool temp = false;
  SqlToken kind;  // TABLE, VIEW, FUNCTION, ...: the first word that is not a modifier
  bool have_kind = false;
  while ((have_kind = nextInStatement(after, kind))) {
    if (isTempWord(kind)) {
      temp = true;
    } else if (!(is(kind, "or") || is(kind, "replace") || is(kind, "global") || is(kind, "local") ||
                 is(kind, "unlogged") || is(kind, "recursive"))) {
      break;
    }
  }
  if (temp || !have_kind) {
    return temp;
  }
  // The object's name, within the next few tokens: CREATE TABLE [IF NOT EXISTS]
  // pg_temp.name, CREATE FUNCTION pg_temp.f(), ...
  SqlToken word;
  for (int i = 0; i < 4 && !temp && nextInStatement(after, word); ++i) {
    temp = is(word, "pg_temp") && followedBy(after, '.');
  }
  return temp;
}

// SELECT ... INTO [GLOBAL | LOCAL] {TEMP | TEMPORARY} [TABLE] name, `after` standing just
// past the INTO, `before` the token before it if any (not INSERT INTO or MERGE INTO a table
// that happens to be called temp).
bool selectsIntoTemp(const SqlToken* before, SqlScanner after) {
  if (before != nullptr && (is(*before, "insert") || is(*before, "merge"))) {
    return false;
  }
  SqlToken t;
  if (!nextInStatement(after, t)) {
    return false;
  }
  if ((is(t, "global") || is(t, "local")) && !nextInStatement(after, t)) {
    return false;
  }
  return isTempWord(t);
}

}  // namespace

#if defined(__SSE2__)
// 16 window positions at a time: byte k of every window is one unaligned load at +k.
bool anyKeyword16(const char* p, uint8_t words) {
  const __m128i fold = _mm_set1_epi8(0x20);
  const auto load = [&](int k) {
    return _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k)), fold);
  };
  const __m128i b0 = load(0);
  const __m128i b1 = load(1);
  const __m128i b2 = load(2);
  const __m128i b3 = load(3);
  const auto word3 = [&](const char* w) {
    return _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(b0, _mm_set1_epi8(w[0])),
                                       _mm_cmpeq_epi8(b1, _mm_set1_epi8(w[1]))),
                         _mm_cmpeq_epi8(b2, _mm_set1_epi8(w[2])));
  };
  const auto word = [&](const char* w) {
    return _mm_and_si128(word3(w), _mm_cmpeq_epi8(b3, _mm_set1_epi8(w[3])));
  };
  __m128i hits = _mm_or_si128(_mm_or_si128(word("temp"), word("advi")),
                              _mm_or_si128(word("list"), word("hold")));
  if ((words & SessionPins::kClearWords) != 0) {
    hits = _mm_or_si128(hits, _mm_or_si128(word("disc"), word("clos")));
  }
  if ((words & SessionPins::kEndWords) != 0) {
    hits = _mm_or_si128(hits, _mm_or_si128(_mm_or_si128(word("comm"), word("roll")),
                                           _mm_or_si128(word("abor"), word3("end"))));
  }
  if ((words & SessionPins::kBeginWords) != 0) {
    hits = _mm_or_si128(hits, _mm_or_si128(word("begi"), word("star")));
  }
  return _mm_movemask_epi8(hits) != 0;
}
#endif

bool SessionPins::mayMatter(std::string_view sql, uint8_t words) {
  const bool ends = (words & kEndWords) != 0;
  const auto isEnd = [](uint32_t window) { return (window & kFirst3) == kEnd; };
  if (sql.size() < 4) {
    // Only END is that short.
    uint32_t window = 0;
    if (!ends || sql.size() != 3) {
      return false;
    }
    std::memcpy(&window, sql.data(), 3);
    return isEnd(window | kFold);
  }
  const char* p = sql.data();
  const std::size_t last = sql.size() - 4;
  std::size_t i = 0;
#if defined(__SSE2__)
  for (; i + 19 <= sql.size(); i += 16) {  // windows i..i+15 read bytes i..i+18
    if (anyKeyword16(p + i, words)) {
      return true;
    }
  }
#endif
  const bool clears = (words & kClearWords) != 0;
  const bool begins = (words & kBeginWords) != 0;
  for (; i <= last; ++i) {
    uint32_t window = 0;
    std::memcpy(&window, p + i, 4);
    window |= kFold;
    if (window == kTemp || window == kAdvi || window == kList || window == kHold) {
      return true;
    }
    if (clears && (window == kDisc || window == kClos)) {
      return true;
    }
    if (ends && (window == kComm || window == kRoll || window == kAbor || isEnd(window))) {
      return true;
    }
    if (begins && (window == kBegi || window == kStar)) {
      return true;
    }
  }
  if (ends) {  // the last three bytes, which no 4-byte window starts at
    uint32_t window = 0;
    std::memcpy(&window, p + last + 1, 3);
    return isEnd(window | kFold);
  }
  return false;
}

// --- transaction blocks ---------------------------------------------------------------------

void SessionPins::settle(proto::TxStatus status, bool settled) {
  if (!settled || unresolved_ > 1) {
    // Answers are missing (the client pipelines), or several came since the last look:
    // how each request ended is not known. What the blocks made is kept, and until the
    // next settled look nothing is known of the block statements run in.
    foldAll();
    if (!settled) {
      block_ = Block::kUnknown;
      unresolved_ = 2;  // the next settled look is not exact either
      return;
    }
  } else if (status == proto::TxStatus::kIdle) {
    // No statement failed inside a block (that leaves 'E'): every COMMIT and ROLLBACK of
    // the text ran. A block still pending ended unseen: rolled back if it had failed and
    // nothing in the text took it out of failure, committed otherwise (a COMMIT that
    // fails a deferred constraint is the one case this keeps by mistake, the safe side).
    bits_ = static_cast<uint8_t>((bits_ & ~commit_clear_) | commit_set_);
    if (start_ == Block::kFailed && block_ == Block::kFailed) {
      pend_set_ = pend_clear_ = 0;
    } else {
      commitPending();
    }
  } else {
    // Still inside a block ('T': an unnamed Parse of the COMMIT or ROLLBACK that was not
    // run; 'E': an error came before it, and the statements after were skipped): what
    // it ended is the open block's again. A ROLLBACK that a BEGIN followed did run unless
    // the block failed before it.
    pend_set_ |= static_cast<uint8_t>(commit_set_ | rolled_back_ |
                                      (status == proto::TxStatus::kFailed ? superseded_ : 0U));
  }
  commit_set_ = commit_clear_ = rolled_back_ = superseded_ = 0;
  block_ = start_ = status == proto::TxStatus::kIdle            ? Block::kNone
                    : status == proto::TxStatus::kInTransaction ? Block::kOpen
                                                                : Block::kFailed;
  unresolved_ = 0;
}

void SessionPins::noteBlind() {
  foldAll();
  block_ = Block::kUnknown;
}

void SessionPins::noteServerLost(proto::TxStatus status, bool settled, bool not_committed) {
  if (settled && unresolved_ != 0) {
    settle(status, true);
  }
  if (not_committed) {
    // The open block died with the server, uncommitted.
    pend_set_ = pend_clear_ = commit_set_ = commit_clear_ = rolled_back_ = superseded_ = 0;
  } else {
    foldAll();  // a COMMIT may have been in flight
  }
  // A next server starts outside any block.
  block_ = start_ = Block::kNone;
  unresolved_ = 0;
}

void SessionPins::commitPending() {
  bits_ = static_cast<uint8_t>((bits_ & ~pend_clear_) | pend_set_);
  pend_set_ = pend_clear_ = 0;
}

void SessionPins::foldAll() {
  // Whatever was made counts; a clear that may not have committed does not.
  bits_ |= static_cast<uint8_t>(pend_set_ | commit_set_ | rolled_back_ | superseded_);
  pend_set_ = pend_clear_ = commit_set_ = commit_clear_ = rolled_back_ = superseded_ = 0;
}

void SessionPins::make(uint8_t kind, Source source) {
  if (source != Source::kNamedParse && (block_ == Block::kOpen || block_ == Block::kFailed)) {
    pend_set_ |= kind;
  } else {
    bits_ |= kind;  // autocommit, or a block not known: held now
  }
}

void SessionPins::clear(uint8_t kind, Source source) {
  if (source == Source::kNamedParse) {
    return;  // runs later, or never
  }
  const auto keep = static_cast<uint8_t>(~kind);
  if (block_ == Block::kNone) {
    bits_ &= keep;
    pend_set_ &= keep;
  } else if (block_ == Block::kOpen) {
    pend_set_ &= keep;  // at commit (a rollback brings it back)
    pend_clear_ |= kind;
  }
  // In a failed block it does not run; in one not known it may not have.
}

void SessionPins::transactionControl(const SqlToken& head, SqlScanner after_head) {
  if (is(head, "begin") || (is(head, "start") && followedBy(after_head, "transaction"))) {
    // If this runs, the end before it in the text did: a later failure is this block's.
    bits_ = static_cast<uint8_t>((bits_ & ~commit_clear_) | commit_set_);
    commit_set_ = commit_clear_ = 0;
    superseded_ |= rolled_back_;
    rolled_back_ = 0;
    if (block_ == Block::kNone || block_ == Block::kUnknown) {
      block_ = Block::kOpen;
    }
    return;
  }
  const bool commits = is(head, "commit") || is(head, "end");
  const bool rolls_back = is(head, "rollback") || is(head, "abort");
  const bool prepares = is(head, "prepare") && followedBy(after_head, "transaction");
  if (!(commits || rolls_back || prepares)) {
    return;
  }
  // The head's next words but WORK and TRANSACTION, enough to tell TO (a savepoint),
  // PREPARED (another transaction's) and AND [NO] CHAIN apart.
  std::array<SqlToken, 2> next;
  std::size_t count = 0;
  SqlToken token;
  while (count < next.size() && nextInStatement(after_head, token)) {
    if (!(is(token, "work") || is(token, "transaction"))) {
      next[count++] = token;
    }
  }
  const auto word = [&](std::size_t i, std::string_view keyword) {
    return i < count && is(next[i], keyword);
  };
  const bool chain = word(0, "and") && word(1, "chain");
  if (word(0, "prepared")) {
    return;  // COMMIT PREPARED, ROLLBACK PREPARED: another transaction's
  }
  if (rolls_back && word(0, "to")) {
    if (block_ == Block::kFailed) {
      block_ = Block::kOpen;  // ROLLBACK TO SAVEPOINT: out of failure
    }
    return;
  }
  if (block_ != Block::kOpen && block_ != Block::kFailed) {
    return;  // no block to end (a WARNING), or one not known
  }
  if (block_ == Block::kOpen && !rolls_back) {
    // COMMIT, END, PREPARE TRANSACTION (which fails on such state, and rolls back: kept,
    // the safe side).
    if (chain) {
      commitPending();  // and a new block at once: a later failure may be either's
      return;
    }
    commit_set_ = pend_set_;
    commit_clear_ = pend_clear_;
  } else if (chain) {
    superseded_ |= pend_set_;  // ROLLBACK AND CHAIN: as ROLLBACK; BEGIN
  } else {
    rolled_back_ |= pend_set_;  // ROLLBACK, or any end of a failed block
  }
  pend_set_ = pend_clear_ = 0;
  block_ = chain ? Block::kOpen : Block::kNone;
}

// --- the scan -------------------------------------------------------------------------------

void SessionPins::scan(std::string_view sql, Source source, bool backslash_quotes) {
  SqlScanner tokens(sql, backslash_quotes);
  while (scanStatement(tokens, 0, source)) {
  }
}

bool SessionPins::scanStatement(SqlScanner& rest, int depth, Source source) {
  // Tokens are looked at in place, in one pass over the text: `rest` stands just past the
  // current token, and a copy of it looks ahead (never past the statement's end). Nothing
  // is collected, so nothing is allocated.
  SqlToken head;
  do {
    if (!rest.next(head)) {
      return false;
    }
    if (isPunct(head, ';')) {
      return true;  // an empty statement
    }
  } while (!isWord(head));  // "(SELECT ...) UNION ..."
  const SqlScanner after_head = rest;
  // Anywhere in the statement, in order: session-level advisory locks (the _xact_ ones end
  // with the transaction), temporary tables. Each token is lexed once, into one of three
  // slots that take turns as the one before, the current one and the one after (turns,
  // not copies: copying a token just written stalls on store forwarding, and this loop
  // runs on every query that passes the pre-check).
  std::array<SqlToken, 3> slots;
  slots[0] = head;
  SqlToken* before = nullptr;
  SqlToken* t = &slots[0];
  SqlToken* next = &slots[1];
  SqlToken* spare = &slots[2];
  std::size_t after_t = rest.offset();
  bool has_next = nextInStatement(rest, *next);
  // A temporary table created here unless ON COMMIT DROP follows (gone by the time the
  // statement's transaction ends): looked for in this same pass, so that a statement of
  // many CREATEs costs no more than one scan.
  bool created_temp = false;
  while (true) {
    if (isWord(*t)) {
      const SqlToken* following = has_next ? next : nullptr;
      if (calls(*t, following, kSessionLocks)) {
        bits_ |= kAdvisoryLocks;  // session-level: held at once, whatever the block does
      } else if (calls(*t, following, kUnlockAll)) {
        if (source != Source::kNamedParse && (block_ == Block::kNone || block_ == Block::kOpen)) {
          bits_ &= static_cast<uint8_t>(~kAdvisoryLocks);  // at once too
        }
      } else if (is(*t, "create")) {
        created_temp = created_temp || createsTemp(rest.at(after_t));
      } else if (is(*t, "into") && selectsIntoTemp(before, rest.at(after_t))) {
        make(kTempTables, source);
      } else if (created_temp && is(*t, "on") && followedBy(rest.at(after_t), "commit", "drop")) {
        created_temp = false;  // every CREATE before it is dropped at commit
      } else if (depth > 0 && is(*t, "listen") && following != nullptr && isWord(*next)) {
        make(kListen, source);  // inside a DO block's body, after BEGIN or THEN
      }
    }
    if (!has_next) {
      break;  // `rest` stands past the statement's ';'
    }
    SqlToken* const freed = before != nullptr ? before : spare;
    before = t;
    t = next;
    next = freed;
    after_t = rest.offset();
    has_next = nextInStatement(rest, *next);
  }
  if (created_temp) {
    make(kTempTables, source);
  }

  SqlScanner from_second = after_head;
  SqlToken second;
  const bool has_second = nextInStatement(from_second, second);
  if (is(head, "listen")) {
    make(kListen, source);
  } else if (is(head, "unlisten")) {
    if (has_second && isPunct(second, '*')) {
      clear(kListen, source);
    }
  } else if (is(head, "declare") && depth == 0) {
    SqlScanner words = after_head;
    SqlToken word;
    while (nextInStatement(words, word)) {
      if (is(word, "with") && followedBy(words, "hold")) {
        make(kHoldCursors, source);
      }
    }
  } else if (is(head, "close")) {
    if (has_second && is(second, "all")) {
      clear(kHoldCursors, source);
    }
  } else if (is(head, "discard")) {
    if (has_second && is(second, "all")) {
      if (source != Source::kNamedParse && block_ == Block::kNone) {
        bits_ = 0;  // DISCARD ALL: all of it (it cannot run inside a transaction block)
      }
    } else if (has_second && isTempWord(second)) {
      clear(kTempTables, source);
    }
  } else if (depth == 0 && source != Source::kNamedParse) {
    transactionControl(head, after_head);
  }
  if (is(head, "do") && depth == 0) {
    // DO [LANGUAGE x] 'body' | $$body$$: the body's statements run in this session.
    SqlScanner strings = after_head;
    SqlToken body;
    while (nextInStatement(strings, body)) {
      if (body.kind == SqlToken::Kind::kString) {
        SqlScanner inner(body.text, rest.backslashQuotes());
        while (scanStatement(inner, depth + 1, source)) {
        }
      }
    }
  }
  return true;
}

std::string SessionPins::describe() const {
  static constexpr std::array<std::pair<Kind, std::string_view>, 4> kNames = {{
      {kTempTables, "temp tables"},
      {kAdvisoryLocks, "advisory locks"},
      {kListen, "LISTEN"},
      {kHoldCursors, "WITH HOLD cursors"},
  }};
  std::vector<std::string_view> held;
  for (const auto& [kind, name] : kNames) {
    if (has(kind)) {
      held.push_back(name);
    }
  }
  std::string out;
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (i > 0) {
      out += i + 1 == held.size() ? " and " : ", ";
    }
    out += held[i];
  }
  return out;
}

}  // namespace pgpivot::session
