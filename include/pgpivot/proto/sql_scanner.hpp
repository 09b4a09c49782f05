// SQL a client sends, cut into statements and tokens where PostgreSQL's lexer (scan.l)
// would cut it, for the few places the pooler must read SQL: the session pins
// (session_pins.hpp) and a client's DEALLOCATE of its prepared statements
// (prepared_statements.hpp). What it guarantees: nothing inside a string literal, dollar
// quote, quoted identifier or comment reads as a word or ends a statement. What it is not:
// a parser. It knows no grammar, does not check that a literal is valid, and unescapes
// nothing. Tokens are views into the scanned text; scanning never allocates.
//
// Quoting forms (PostgreSQL 15 "Lexical Structure", 4.1):
//   'it''s'        a string; '' is a quote inside it
//   E'it\'s'       an escape string: a backslash also escapes, so \' does not end it
//   'it\'s'        the same when `backslash_quotes` (standard_conforming_strings = off)
//   $$x$$ $t$x$t$  dollar quotes: nothing is special inside, up to the same tag; a tag does
//                  not start with a digit ($1 is a parameter) nor follows a word (a$b$ is
//                  one identifier)
//   "a""b"         a quoted identifier; "" is a quote inside it
//   -- x           a comment to the end of the line, which \n or \r ends (scan.l's
//                  non_newline); /* x /* y */ */ nests
// B'', X'', N'' and U&'' are a word followed by a string here: their prefix does not move
// where the literal ends.
//
// Text that ends inside a literal, quoted identifier or block comment ("unterminated")
// runs to its end as PostgreSQL reads it before it reports the syntax error: that last
// token has `terminated` false and the scanner reports truncated().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgpivot::proto {

struct SqlToken {
  enum class Kind : uint8_t {
    kWord,         // a keyword or unquoted identifier, as written (also $1, 42: a run of
                   // letters, digits, '_', '$' and bytes >= 0x80)
    kQuotedIdent,  // "..."; text: between the quotes, doubled quotes left doubled
    kString,       // '...', E'...' or a dollar quote; text: the contents, not unescaped
    kPunct,        // any other single character; ';' ends a statement
  };
  Kind kind = Kind::kPunct;
  std::string_view text;   // see Kind
  std::string_view raw;    // the whole token as it stands in the SQL
  bool terminated = true;  // false: the text ended inside it
};

// Whether `word` is `lower_keyword` in any ASCII case (PostgreSQL folds unquoted
// identifiers and keywords to lower case; bytes >= 0x80 are left alone).
[[nodiscard]] bool equalsKeyword(std::string_view word, std::string_view lower_keyword);

// A cursor over one SQL text. Copying it is cheap and gives an independent cursor at the
// same place: that is how callers look ahead.
class SqlScanner final {
 public:
  // `backslash_quotes`: the session's standard_conforming_strings is off, so a backslash
  // escapes in every string literal, not only in E''.
  explicit SqlScanner(std::string_view sql, bool backslash_quotes = false)
      : sql_(sql), backslash_quotes_(backslash_quotes) {}

  // The next token, skipping whitespace and comments; false when only they are left.
  [[nodiscard]] bool next(SqlToken& token);
  // The token next() would return, without moving.
  [[nodiscard]] bool peek(SqlToken& token) const {
    SqlScanner ahead = *this;
    return ahead.next(token);
  }
  // The next statement: the text up to and including the next ';' that ends one, with the
  // whitespace and comments before it (the last statement may have no ';', or be only
  // whitespace and comments). False when nothing is left. Use either this or next() on
  // one scanner, not both.
  [[nodiscard]] bool nextStatement(std::string_view& statement);

  // A cursor at `offset` of the same text: one this scanner's offset() gave.
  [[nodiscard]] SqlScanner at(std::size_t offset) const {
    SqlScanner moved = *this;
    moved.pos_ = offset;
    return moved;
  }

  // Whether the text scanned so far ended inside a literal, quoted identifier or block
  // comment.
  [[nodiscard]] bool truncated() const { return truncated_; }
  // Where scanning stands in the text.
  [[nodiscard]] std::size_t offset() const { return pos_; }
  // Whether a backslash escapes in every string literal (the constructor's argument).
  [[nodiscard]] bool backslashQuotes() const { return backslash_quotes_; }

 private:
  void skipBlank();
  // Where the word whose later characters start at `from` ends.
  std::size_t wordEnd(std::size_t from) const;
  // A '...' literal whose contents start at `body`; `escapes`: backslashes escape.
  void literal(SqlToken& token, std::size_t body, bool escapes);
  void quotedIdentifier(SqlToken& token);
  // A dollar quote at pos_, if one starts there.
  bool dollarQuote(SqlToken& token);
  // From `start` to the end of the text: the token ended inside it.
  void unterminated(SqlToken& token, std::size_t start, std::size_t body);

  std::string_view sql_;
  std::size_t pos_ = 0;
  bool backslash_quotes_ = false;
  bool truncated_ = false;
};

}  // namespace pgpivot::proto
