#include "pgpivot/session/session_pins.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pgpivot/session/prepared_statements.hpp"

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

bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool isIdentChar(char c) {
  return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$';
}

struct Token {
  enum Kind : uint8_t { kWord, kPunct, kString };
  Kind kind;
  std::string_view text;  // a word (quoted identifiers without their quotes), one
                          // punctuation character, or a literal's contents
};

bool is(const Token& token, std::string_view keyword) {
  if (token.kind != Token::kWord || token.text.size() != keyword.size()) {
    return false;
  }
  for (std::size_t i = 0; i < keyword.size(); ++i) {
    const char c = token.text[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != keyword[i]) {
      return false;
    }
  }
  return true;
}

bool isPunct(const Token& token, char c) {
  return token.kind == Token::kPunct && token.text.front() == c;
}

// The tokens of one statement, lexed as PostgreSQL's lexer would split them where it
// matters here (the same rules as splitStatements): comments dropped, string literals,
// dollar quotes and quoted identifiers kept whole so that nothing inside them reads as a
// keyword. Assumes standard_conforming_strings (backslashes escape only in E'').
std::vector<Token> lex(std::string_view sql) {
  std::vector<Token> out;
  const std::size_t n = sql.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = sql[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++i;
      continue;
    }
    if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      const std::size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? n : end + 1;
      continue;
    }
    if (c == '/' && i + 1 < n && sql[i + 1] == '*') {  // comments nest in PostgreSQL
      int depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
      continue;
    }
    if (c == '\'') {
      // 'text' with '' inside; E'text' also with backslash escapes (the E was lexed as a
      // word just before: it is part of the literal, not a keyword).
      bool escapes = false;
      if (!out.empty() && out.back().kind == Token::kWord && out.back().text.size() == 1 &&
          (out.back().text.front() == 'E' || out.back().text.front() == 'e') &&
          out.back().text.data() + 1 == sql.data() + i) {
        escapes = true;
        out.pop_back();
      }
      const std::size_t start = ++i;
      while (i < n) {
        if (escapes && sql[i] == '\\') {
          i += 2;
          continue;
        }
        if (sql[i] == '\'') {
          if (i + 1 < n && sql[i + 1] == '\'') {
            i += 2;
            continue;
          }
          break;
        }
        ++i;
      }
      const std::size_t end = std::min(i, n);
      out.push_back({Token::kString, sql.substr(start, end - start)});
      i = end + 1;
      continue;
    }
    if (c == '"') {
      const std::size_t end = sql.find('"', i + 1);
      const std::size_t stop = end == std::string_view::npos ? n : end;
      out.push_back({Token::kWord, sql.substr(i + 1, stop - i - 1)});
      i = stop + 1;
      continue;
    }
    if (c == '$') {
      // $tag$ ... $tag$ (the tag may be empty and does not start with a digit: $1 is a
      // parameter). A '$' inside a word was taken with the word.
      std::size_t j = i + 1;
      while (j < n && sql[j] != '$' && isIdentChar(sql[j])) {
        ++j;
      }
      if (j < n && sql[j] == '$' && (j == i + 1 || !(sql[i + 1] >= '0' && sql[i + 1] <= '9'))) {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const std::size_t body = j + 1;
        const std::size_t end = sql.find(tag, body);
        const std::size_t stop = end == std::string_view::npos ? n : end;
        out.push_back({Token::kString, sql.substr(body, stop - body)});
        i = end == std::string_view::npos ? n : end + tag.size();
        continue;
      }
    }
    if (isIdentChar(c)) {
      const std::size_t start = i;
      while (i < n && isIdentChar(sql[i])) {
        ++i;
      }
      out.push_back({Token::kWord, sql.substr(start, i - start)});
      continue;
    }
    out.push_back({Token::kPunct, sql.substr(i, 1)});
    ++i;
  }
  return out;
}

// A function of `names` called at token `i` (optionally schema-qualified: the word is
// what precedes the parenthesis).
template <std::size_t N>
bool calls(const std::vector<Token>& tokens, std::size_t i,
           const std::array<std::string_view, N>& names) {
  if (i + 1 >= tokens.size() || !isPunct(tokens[i + 1], '(')) {
    return false;
  }
  for (const std::string_view name : names) {
    if (is(tokens[i], name)) {
      return true;
    }
  }
  return false;
}

constexpr std::array<std::string_view, 4> kSessionLocks = {
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared"};
constexpr std::array<std::string_view, 1> kUnlockAll = {"pg_advisory_unlock_all"};

bool isTempWord(const Token& token) {
  return is(token, "temp") || is(token, "temporary");
}

// CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} [UNLOGGED | RECURSIVE] {TABLE |
// VIEW | SEQUENCE} ..., or any CREATE of an object in the pg_temp schema, starting at the
// CREATE at `at`; not one whose table is dropped at commit (ON COMMIT DROP: gone by the
// time the statement's transaction ends).
bool createsTemp(const std::vector<Token>& tokens, std::size_t at) {
  bool temp = false;
  std::size_t i = at + 1;
  for (; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (isTempWord(t)) {
      temp = true;
    } else if (!(is(t, "or") || is(t, "replace") || is(t, "global") || is(t, "local") ||
                 is(t, "unlogged") || is(t, "recursive"))) {
      break;
    }
  }
  // The object's name: CREATE TABLE [IF NOT EXISTS] pg_temp.name, CREATE FUNCTION
  // pg_temp.f(), ...
  for (std::size_t j = i + 1; !temp && j + 1 < tokens.size() && j <= i + 4; ++j) {
    temp = is(tokens[j], "pg_temp") && isPunct(tokens[j + 1], '.');
  }
  if (!temp) {
    return false;
  }
  for (std::size_t j = i; j + 2 < tokens.size(); ++j) {
    if (is(tokens[j], "on") && is(tokens[j + 1], "commit") && is(tokens[j + 2], "drop")) {
      return false;
    }
  }
  return true;
}

// SELECT ... INTO [GLOBAL | LOCAL] {TEMP | TEMPORARY} [TABLE] name, at the INTO at `at`
// (not INSERT INTO or MERGE INTO a table that happens to be called temp).
bool selectsIntoTemp(const std::vector<Token>& tokens, std::size_t at) {
  if (at > 0 && (is(tokens[at - 1], "insert") || is(tokens[at - 1], "merge"))) {
    return false;
  }
  std::size_t i = at + 1;
  if (i < tokens.size() && (is(tokens[i], "global") || is(tokens[i], "local"))) {
    ++i;
  }
  return i < tokens.size() && isTempWord(tokens[i]);
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
  for (const std::string_view statement : splitStatements(sql)) {
    scanStatement(statement, 0);
  }
}

void SessionPins::scanStatement(std::string_view statement, int depth) {
  const std::vector<Token> tokens = lex(statement);
  std::size_t first = 0;
  while (first < tokens.size() && tokens[first].kind != Token::kWord) {
    ++first;  // "(SELECT ...) UNION ...", a stray ';'
  }
  if (first == tokens.size()) {
    return;
  }
  const Token& head = tokens[first];
  const auto next = [&](std::size_t i) -> const Token* {
    return i + 1 < tokens.size() ? &tokens[i + 1] : nullptr;
  };
  // Anywhere in the statement, in order: session-level advisory locks (the _xact_ ones end
  // with the transaction), temporary tables.
  for (std::size_t i = first; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (t.kind != Token::kWord) {
      continue;
    }
    if (calls(tokens, i, kSessionLocks)) {
      bits_ |= kAdvisoryLocks;
    } else if (calls(tokens, i, kUnlockAll)) {
      bits_ &= static_cast<uint8_t>(~kAdvisoryLocks);
    } else if ((is(t, "create") && createsTemp(tokens, i)) ||
               (is(t, "into") && selectsIntoTemp(tokens, i))) {
      bits_ |= kTempTables;
    } else if (depth > 0 && is(t, "listen") && next(i) != nullptr &&
               next(i)->kind == Token::kWord) {
      bits_ |= kListen;  // inside a DO block's body, after BEGIN or THEN
    }
  }
  const Token* second = next(first);
  if (is(head, "listen")) {
    bits_ |= kListen;
  } else if (is(head, "unlisten")) {
    if (second != nullptr && isPunct(*second, '*')) {
      bits_ &= static_cast<uint8_t>(~kListen);
    }
  } else if (is(head, "declare") && depth == 0) {
    for (std::size_t i = first; i + 1 < tokens.size(); ++i) {
      if (is(tokens[i], "with") && is(tokens[i + 1], "hold")) {
        bits_ |= kHoldCursors;
      }
    }
  } else if (is(head, "close")) {
    if (second != nullptr && is(*second, "all")) {
      bits_ &= static_cast<uint8_t>(~kHoldCursors);
    }
  } else if (is(head, "discard")) {
    if (second != nullptr && is(*second, "all")) {
      bits_ = 0;  // DISCARD ALL: all of it (it cannot run inside a transaction block)
    } else if (second != nullptr && isTempWord(*second)) {
      bits_ &= static_cast<uint8_t>(~kTempTables);
    }
  } else if (is(head, "do") && depth == 0) {
    // DO [LANGUAGE x] 'body' | $$body$$: the body's statements run in this session.
    for (std::size_t i = first + 1; i < tokens.size(); ++i) {
      if (tokens[i].kind == Token::kString) {
        for (const std::string_view inner : splitStatements(tokens[i].text)) {
          scanStatement(inner, depth + 1);
        }
      }
    }
  }
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
