#include "pgpivot/proto/sql_scanner.hpp"

#include <array>

namespace pgpivot::proto {

namespace {

// What a byte can be at a token's start or inside a word, looked up once per byte.
enum CharClass : uint8_t {
  kOther = 0,
  kSpace = 1,  // scan.l's space (\v included, as PostgreSQL 16 has it)
  kIdent = 2,  // scan.l's ident_cont: letters, digits, '_', '$' and bytes >= 0x80
};

constexpr std::array<uint8_t, 256> kClasses = [] {
  std::array<uint8_t, 256> classes{};
  for (const char c : {' ', '\t', '\n', '\r', '\f', '\v'}) {
    classes[static_cast<unsigned char>(c)] = kSpace;
  }
  for (int c = 0; c < 256; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '$' || c >= 0x80) {
      classes[static_cast<std::size_t>(c)] = kIdent;
    }
  }
  return classes;
}();

bool isSpace(char c) {
  return kClasses[static_cast<unsigned char>(c)] == kSpace;
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// A word also takes a leading digit or '$' here ($1, 42): such a run never hides a quote or
// a statement end.
bool isIdentChar(char c) {
  return kClasses[static_cast<unsigned char>(c)] == kIdent;
}

}  // namespace

bool equalsKeyword(std::string_view word, std::string_view lower_keyword) {
  if (word.size() != lower_keyword.size()) {
    return false;
  }
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = word[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != lower_keyword[i]) {
      return false;
    }
  }
  return true;
}

void SqlScanner::skipBlank() {
  // Locals, not members, in the loops: the compiler keeps them in registers.
  const char* const sql = sql_.data();
  const std::size_t n = sql_.size();
  std::size_t i = pos_;
  while (i < n) {
    const char c = sql[i];
    if (isSpace(c)) {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      // To the end of the line: scan.l's comment is "--" followed by [^\n\r]*.
      const std::size_t end = sql_.find_first_of("\n\r", i + 2);
      i = end == std::string_view::npos ? n : end + 1;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      // Block comments nest in PostgreSQL (unlike the SQL standard's).
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
      if (depth > 0) {
        truncated_ = true;
      }
    } else {
      break;
    }
  }
  pos_ = i;
}

std::size_t SqlScanner::wordEnd(std::size_t from) const {
  const char* const sql = sql_.data();
  const std::size_t n = sql_.size();
  while (from < n && isIdentChar(sql[from])) {
    ++from;
  }
  return from;
}

bool SqlScanner::next(SqlToken& token) {
  const std::size_t n = sql_.size();
  if (pos_ < n && (isSpace(sql_[pos_]) || sql_[pos_] == '-' || sql_[pos_] == '/')) {
    skipBlank();
  }
  if (pos_ >= n) {
    return false;
  }
  const std::size_t start = pos_;
  const char c = sql_[start];
  token.terminated = true;
  if (c == '\'') {
    literal(token, start + 1, backslash_quotes_);
    return true;
  }
  if ((c == 'E' || c == 'e') && start + 1 < n && sql_[start + 1] == '\'') {
    literal(token, start + 2, true);  // at a token's start: the E is not the end of a word
    return true;
  }
  if (c == '"') {
    quotedIdentifier(token);
    return true;
  }
  if (c == '$' && dollarQuote(token)) {
    return true;
  }
  if (isIdentChar(c)) {
    pos_ = wordEnd(start + 1);
    token.kind = SqlToken::Kind::kWord;
    token.text = token.raw = std::string_view(sql_.data() + start, pos_ - start);
    return true;
  }
  token.kind = SqlToken::Kind::kPunct;
  token.text = token.raw = std::string_view(sql_.data() + start, 1);
  ++pos_;
  return true;
}

void SqlScanner::literal(SqlToken& token, std::size_t body, bool escapes) {
  token.kind = SqlToken::Kind::kString;
  const std::size_t n = sql_.size();
  std::size_t i = body;
  while (i < n) {
    if (escapes && sql_[i] == '\\') {
      i += 2;  // whatever follows, a quote included, is escaped
      continue;
    }
    if (sql_[i] == '\'') {
      if (i + 1 < n && sql_[i + 1] == '\'') {
        i += 2;
        continue;
      }
      token.text = sql_.substr(body, i - body);
      token.raw = sql_.substr(pos_, i + 1 - pos_);
      pos_ = i + 1;
      return;
    }
    ++i;
  }
  unterminated(token, pos_, body);
}

void SqlScanner::quotedIdentifier(SqlToken& token) {
  token.kind = SqlToken::Kind::kQuotedIdent;
  const std::size_t body = pos_ + 1;
  std::size_t i = body;
  while (true) {
    const std::size_t quote = sql_.find('"', i);
    if (quote == std::string_view::npos) {
      unterminated(token, pos_, body);
      return;
    }
    if (quote + 1 < sql_.size() && sql_[quote + 1] == '"') {
      i = quote + 2;
      continue;
    }
    token.text = sql_.substr(body, quote - body);
    token.raw = sql_.substr(pos_, quote + 1 - pos_);
    pos_ = quote + 1;
    return;
  }
}

bool SqlScanner::dollarQuote(SqlToken& token) {
  // $tag$: the tag may be empty; it is letters, digits, '_' and bytes >= 0x80, not starting
  // with a digit. A '$' that follows a word's last character never gets here: the word
  // took it.
  const std::size_t n = sql_.size();
  std::size_t j = pos_ + 1;
  while (j < n && sql_[j] != '$' && isIdentChar(sql_[j])) {
    ++j;
  }
  if (j >= n || sql_[j] != '$' || (j > pos_ + 1 && isDigit(sql_[pos_ + 1]))) {
    return false;
  }
  token.kind = SqlToken::Kind::kString;
  const std::string_view tag = sql_.substr(pos_, j + 1 - pos_);
  const std::size_t body = j + 1;
  const std::size_t end = sql_.find(tag, body);
  if (end == std::string_view::npos) {
    unterminated(token, pos_, body);
    return true;
  }
  token.text = sql_.substr(body, end - body);
  token.raw = sql_.substr(pos_, end + tag.size() - pos_);
  pos_ = end + tag.size();
  return true;
}

void SqlScanner::unterminated(SqlToken& token, std::size_t start, std::size_t body) {
  const std::size_t n = sql_.size();
  token.text = sql_.substr(body < n ? body : n);
  token.raw = sql_.substr(start);
  token.terminated = false;
  truncated_ = true;
  pos_ = n;
}

bool SqlScanner::nextStatement(std::string_view& statement) {
  const std::size_t n = sql_.size();
  if (pos_ >= n) {
    return false;
  }
  const std::size_t start = pos_;
  SqlToken token;
  while (true) {
    skipBlank();
    if (pos_ >= n) {
      break;
    }
    const char c = sql_[pos_];
    if (c == ';') {
      ++pos_;
      break;
    }
    // Only a token that starts with a quote or '$' can hide a ';': every other one is
    // stepped over without making a token of it (a word starting with E may be E'').
    if (c == '\'' || c == '"' || c == '$' || c == 'E' || c == 'e') {
      (void)next(token);
    } else {
      pos_ = isIdentChar(c) ? wordEnd(pos_ + 1) : pos_ + 1;
    }
  }
  statement = std::string_view(sql_.data() + start, pos_ - start);
  return true;
}

}  // namespace pgpivot::proto
