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
bool anyKeyword16(const char* p, bool held) {
  const __m128i fold = _mm_set1_epi8(0x20);
  const auto load = [&](int k) {
    return _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k)), fold);
  };
  const __m128i b0 = load(0);
  const __m128i b1 = load(1);
  const __m128i b2 = load(2);
  const __m128i b3 = load(3);
  const auto word = [&](const char* w) {
    return _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(b0, _mm_set1_epi8(w[0])),
                                       _mm_cmpeq_epi8(b1, _mm_set1_epi8(w[1]))),
                         _mm_and_si128(_mm_cmpeq_epi8(b2, _mm_set1_epi8(w[2])),
                                       _mm_cmpeq_epi8(b3, _mm_set1_epi8(w[3]))));
  };
  __m128i hits = _mm_or_si128(_mm_or_si128(word("temp"), word("advi")),
                              _mm_or_si128(word("list"), word("hold")));
  if (held) {
    hits = _mm_or_si128(hits, _mm_or_si128(word("disc"), word("clos")));
  }
  return _mm_movemask_epi8(hits) != 0;
}
#endif

bool SessionPins::mayMatter(std::string_view sql, bool held) {
  if (sql.size() < 4) {
    return false;
  }
  const char* p = sql.data();
  const std::size_t last = sql.size() - 4;
  std::size_t i = 0;
#if defined(__SSE2__)
  for (; i + 19 <= sql.size(); i += 16) {  // windows i..i+15 read bytes i..i+18
    if (anyKeyword16(p + i, held)) {
      return true;
    }
  }
#endif
  for (; i <= last; ++i) {
    uint32_t window = 0;
    std::memcpy(&window, p + i, 4);
    window |= kFold;
    if (window == kTemp || window == kAdvi || window == kList || window == kHold) {
      return true;
    }
    if (held && (window == kDisc || window == kClos)) {
      return true;
    }
  }
  return false;
}

void SessionPins::scan(std::string_view sql) {
  // As with standard_conforming_strings on: a backslash escapes in E'' strings only.
  SqlScanner tokens(sql);
  while (scanStatement(tokens, 0)) {
  }
}

bool SessionPins::scanStatement(SqlScanner& rest, int depth) {
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
        bits_ |= kAdvisoryLocks;
      } else if (calls(*t, following, kUnlockAll)) {
        bits_ &= static_cast<uint8_t>(~kAdvisoryLocks);
      } else if (is(*t, "create")) {
        created_temp = created_temp || createsTemp(rest.at(after_t));
      } else if (is(*t, "into") && selectsIntoTemp(before, rest.at(after_t))) {
        bits_ |= kTempTables;
      } else if (created_temp && is(*t, "on") && followedBy(rest.at(after_t), "commit", "drop")) {
        created_temp = false;  // every CREATE before it is dropped at commit
      } else if (depth > 0 && is(*t, "listen") && following != nullptr && isWord(*next)) {
        bits_ |= kListen;  // inside a DO block's body, after BEGIN or THEN
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
    bits_ |= kTempTables;
  }

  SqlScanner from_second = after_head;
  SqlToken second;
  const bool has_second = nextInStatement(from_second, second);
  if (is(head, "listen")) {
    bits_ |= kListen;
  } else if (is(head, "unlisten")) {
    if (has_second && isPunct(second, '*')) {
      bits_ &= static_cast<uint8_t>(~kListen);
    }
  } else if (is(head, "declare") && depth == 0) {
    SqlScanner words = after_head;
    SqlToken word;
    while (nextInStatement(words, word)) {
      if (is(word, "with") && followedBy(words, "hold")) {
        bits_ |= kHoldCursors;
      }
    }
  } else if (is(head, "close")) {
    if (has_second && is(second, "all")) {
      bits_ &= static_cast<uint8_t>(~kHoldCursors);
    }
  } else if (is(head, "discard")) {
    if (has_second && is(second, "all")) {
      bits_ = 0;  // DISCARD ALL: all of it (it cannot run inside a transaction block)
    } else if (has_second && isTempWord(second)) {
      bits_ &= static_cast<uint8_t>(~kTempTables);
    }
  } else if (is(head, "do") && depth == 0) {
    // DO [LANGUAGE x] 'body' | $$body$$: the body's statements run in this session.
    SqlScanner strings = after_head;
    SqlToken body;
    while (nextInStatement(strings, body)) {
      if (body.kind == SqlToken::Kind::kString) {
        SqlScanner inner(body.text);
        while (scanStatement(inner, depth + 1)) {
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
