// The SQL scanner: statements end and words are found only where PostgreSQL's lexer would
// find them, in every quoting form, with standard_conforming_strings on and off, and text
// that ends inside a quote or comment runs to its end without reading past it.
#include "pgpivot/proto/sql_scanner.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace pgpivot::proto {
namespace {

using Kind = SqlToken::Kind;
using Pieces = std::vector<std::string_view>;

Pieces splitStatements(std::string_view sql, bool backslash_quotes = false) {
  SqlScanner scanner(sql, backslash_quotes);
  Pieces out;
  std::string_view statement;
  while (scanner.nextStatement(statement)) {
    out.push_back(statement);
  }
  return out;
}

std::vector<SqlToken> tokens(std::string_view sql, bool backslash_quotes = false) {
  SqlScanner scanner(sql, backslash_quotes);
  std::vector<SqlToken> out;
  SqlToken token;
  while (scanner.next(token)) {
    out.push_back(token);
  }
  return out;
}

// The raw text of each token.
Pieces raws(std::string_view sql, bool backslash_quotes = false) {
  Pieces out;
  for (const SqlToken& token : tokens(sql, backslash_quotes)) {
    out.push_back(token.raw);
  }
  return out;
}

// The one token `sql` holds.
SqlToken only(std::string_view sql, bool backslash_quotes = false) {
  const std::vector<SqlToken> all = tokens(sql, backslash_quotes);
  REQUIRE(all.size() == 1);
  return all.front();
}

}  // namespace

TEST_CASE("splitStatements splits where PostgreSQL's lexer ends a statement", "[unit][sql]") {
  CHECK(splitStatements("DEALLOCATE a; SELECT 1") == Pieces{"DEALLOCATE a;", " SELECT 1"});
  CHECK(splitStatements("SELECT 1;") == Pieces{"SELECT 1;"});
  CHECK(splitStatements("") == Pieces{});
  CHECK(splitStatements("SELECT ';', 'it''s;'; SELECT 2") ==
        Pieces{"SELECT ';', 'it''s;';", " SELECT 2"});
  CHECK(splitStatements("SELECT E'\\';'; SELECT 2") == Pieces{"SELECT E'\\';';", " SELECT 2"});
  CHECK(splitStatements("SELECT \"a;\"\"b\" FROM t; X") ==
        Pieces{"SELECT \"a;\"\"b\" FROM t;", " X"});
  CHECK(splitStatements("SELECT 1 -- ; no\n; X") == Pieces{"SELECT 1 -- ; no\n;", " X"});
  CHECK(splitStatements("/* a /* ; */ ; */ SELECT 1; X") ==
        Pieces{"/* a /* ; */ ; */ SELECT 1;", " X"});
  CHECK(splitStatements("SELECT $$;$$, $tag$ $$; $tag$; X") ==
        Pieces{"SELECT $$;$$, $tag$ $$; $tag$;", " X"});
  // $1 is a parameter and a$b$ an identifier, not dollar quotes.
  CHECK(splitStatements("SELECT $1; SELECT a$b$; X") ==
        Pieces{"SELECT $1;", " SELECT a$b$;", " X"});
  // Unterminated quotes run to the end.
  CHECK(splitStatements("SELECT 'x; y") == Pieces{"SELECT 'x; y"});
  // standard_conforming_strings = off: a backslash escapes the quote in a plain string too.
  CHECK(splitStatements("SELECT 'a\\'; DEALLOCATE x'; SELECT 2") ==
        Pieces{"SELECT 'a\\';", " DEALLOCATE x'; SELECT 2"});
  CHECK(splitStatements("SELECT 'a\\'; DEALLOCATE x'; SELECT 2", true) ==
        Pieces{"SELECT 'a\\'; DEALLOCATE x';", " SELECT 2"});
}

TEST_CASE("statements keep what surrounds them: blanks, comments, empty statements",
          "[unit][sql]") {
  CHECK(splitStatements("SELECT 1;  ") == Pieces{"SELECT 1;", "  "});
  CHECK(splitStatements(";;") == Pieces{";", ";"});
  CHECK(splitStatements("-- only a comment") == Pieces{"-- only a comment"});
  CHECK(splitStatements("A; /* c; */ B;\n-- d;\n") == Pieces{"A;", " /* c; */ B;", "\n-- d;\n"});
}

TEST_CASE("each quoting form is one token whose contents are not looked into", "[unit][sql]") {
  SECTION("a string; '' is a quote inside it") {
    const SqlToken t = only("'it''s; -- not a comment'");
    CHECK(t.kind == Kind::kString);
    CHECK(t.text == "it''s; -- not a comment");
    CHECK(t.terminated);
  }
  SECTION("an escape string, in either case of E") {
    for (const std::string_view sql : {"E'a\\'b;'", "e'a\\'b;'"}) {
      CAPTURE(sql);
      const SqlToken t = only(sql);
      CHECK(t.kind == Kind::kString);
      CHECK(t.text == "a\\'b;");
      CHECK(t.raw == sql);
    }
    CHECK(only("E'\\\\'").text == "\\\\");  // an escaped backslash does not escape the quote
  }
  SECTION("a word ending in E is not an escape string's prefix") {
    CHECK(raws("SOME'a\\'") == Pieces{"SOME", "'a\\'"});
    CHECK(tokens("SOME'a\\'")[1].terminated);
  }
  SECTION("B'', X'', N'' and U&'' are a word and a string") {
    CHECK(raws("B'01' X'ff' N'n' U&'u'") ==
          Pieces{"B", "'01'", "X", "'ff'", "N", "'n'", "U", "&", "'u'"});
  }
  SECTION("dollar quotes, with and without a tag") {
    const SqlToken empty_tag = only("$$ 'x\" ; -- $$");
    CHECK(empty_tag.kind == Kind::kString);
    CHECK(empty_tag.text == " 'x\" ; -- ");
    const SqlToken tagged = only("$fn_1$ $$ $fn$ ; $fn_1$");
    CHECK(tagged.kind == Kind::kString);
    CHECK(tagged.text == " $$ $fn$ ; ");
    CHECK(only("$é$x$é$").text == "x");  // bytes >= 0x80 may be in a tag
  }
  SECTION("a dollar quote ends only at its own tag, even where another tag overlaps it") {
    CHECK(only("$a$ $ab$ $a$").text == " $ab$ ");
    CHECK(only("$b$x$ab$b$").text == "x$ab");
  }
  SECTION("what is not a dollar quote: a parameter, a '$' inside a word, a digit-led tag") {
    CHECK(raws("$1 a$b$ $1$ x") == Pieces{"$1", "a$b$", "$1$", "x"});
    CHECK(tokens("$1")[0].kind == Kind::kWord);
    CHECK(raws("$ ;") == Pieces{"$", ";"});
  }
  SECTION("a dollar quote may follow another directly") {
    CHECK(raws("$$a$$$$;$$;") == Pieces{"$$a$$", "$$;$$", ";"});
  }
  SECTION("a quoted identifier; \"\" is a quote inside it") {
    const SqlToken t = only("\"a\"\"; b\"");
    CHECK(t.kind == Kind::kQuotedIdent);
    CHECK(t.text == "a\"\"; b");
    CHECK(only("\"\"").text.empty());
  }
  SECTION("comments: to the end of the line, and nested blocks") {
    CHECK(raws("a -- b ' \" $$\nc") == Pieces{"a", "c"});
    CHECK(raws("a /* b /* c */ ' */ d") == Pieces{"a", "d"});
    CHECK(raws("a/**/b") == Pieces{"a", "b"});
    CHECK(raws("a - - b / * c") == Pieces{"a", "-", "-", "b", "/", "*", "c"});
  }
  SECTION("quotes and comments inside one another do not count") {
    CHECK(raws("'--' \"/*\" $$'$$ /* ' */ x") == Pieces{"'--'", "\"/*\"", "$$'$$", "x"});
  }
}

TEST_CASE("words, punctuation and keywords", "[unit][sql]") {
  const std::vector<SqlToken> all = tokens("Select x1_$, 42::int FROM \"T\" WHERE é>=$2;");
  REQUIRE(all.size() == 15);
  CHECK(all[0].kind == Kind::kWord);
  CHECK(all[0].text == "Select");
  CHECK(all[1].text == "x1_$");
  CHECK(all[2].kind == Kind::kPunct);
  CHECK(all[3].text == "42");
  CHECK(all[4].text == ":");
  CHECK(all[5].text == ":");
  CHECK(all[8].kind == Kind::kQuotedIdent);
  CHECK(all[10].text == "é");
  CHECK(all[13].text == "$2");
  CHECK(all[14].text == ";");
  CHECK(equalsKeyword("SeLeCt", "select"));
  CHECK(equalsKeyword("", ""));
  CHECK_FALSE(equalsKeyword("selects", "select"));
  CHECK_FALSE(equalsKeyword("sel", "select"));
  CHECK_FALSE(equalsKeyword("SÉLECT", "sélect"));  // only ASCII folds, as in PostgreSQL
}

TEST_CASE("standard_conforming_strings decides whether a backslash escapes in a plain string",
          "[unit][sql]") {
  const std::string_view sql = "'a\\' ; b'";
  SECTION("on (the default): the backslash is a character, the quote after it ends") {
    CHECK(raws(sql) == Pieces{"'a\\'", ";", "b", "'"});
    CHECK(splitStatements(sql) == Pieces{"'a\\' ;", " b'"});
  }
  SECTION("off: the quote is escaped and the literal goes on") {
    const SqlToken t = only(sql, true);
    CHECK(t.text == "a\\' ; b");
    CHECK(splitStatements(sql, true) == Pieces{sql});
  }
  SECTION("E'' escapes either way; '' is a quote either way") {
    for (const bool off : {false, true}) {
      CAPTURE(off);
      CHECK(only("E'a\\' ; b'", off).text == "a\\' ; b");
      CHECK(only("'a'' ; b'", off).text == "a'' ; b");
    }
  }
  SECTION("neither changes dollar quotes, quoted identifiers or comments") {
    for (const bool off : {false, true}) {
      CAPTURE(off);
      CHECK(raws("$$a\\$$ \"b\\\" /* \\*/ c", off) == Pieces{"$$a\\$$", "\"b\\\"", "c"});
    }
  }
}

TEST_CASE("text that ends inside a quote or comment runs to its end and says so", "[unit][sql]") {
  struct Case {
    std::string_view sql;
    std::string_view text;  // of the last token
  };
  for (const Case& c : {
           Case{"SELECT 'ab", "ab"},
           Case{"SELECT 'ab''", "ab''"},
           Case{"SELECT E'ab\\'", "ab\\'"},
           Case{"SELECT E'ab\\", "ab\\"},
           Case{"SELECT $$ab", "ab"},
           Case{"SELECT $t$ab$t", "ab$t"},
           Case{"SELECT $t$", ""},
           Case{"SELECT \"ab", "ab"},
           Case{"SELECT \"ab\"\"", "ab\"\""},
       }) {
    CAPTURE(c.sql);
    SqlScanner scanner(c.sql);
    SqlToken token;
    SqlToken last;
    while (scanner.next(token)) {
      CHECK(scanner.truncated() == !token.terminated);
      last = token;
    }
    CHECK(scanner.truncated());
    CHECK_FALSE(last.terminated);
    CHECK(last.text == c.text);
    CHECK(last.raw.data() + last.raw.size() == c.sql.data() + c.sql.size());
    CHECK(scanner.offset() == c.sql.size());
    CHECK(splitStatements(c.sql) == Pieces{c.sql});
  }
  SECTION("a block comment, nested or not; a line comment needs no newline") {
    for (const std::string_view sql : {"SELECT 1 /* x", "SELECT 1 /* x /* y */", "x /*/"}) {
      CAPTURE(sql);
      SqlScanner scanner(sql);
      SqlToken token;
      while (scanner.next(token)) {
      }
      CHECK(scanner.truncated());
    }
    SqlScanner line("SELECT 1 -- x");
    SqlToken token;
    while (line.next(token)) {
    }
    CHECK_FALSE(line.truncated());
  }
  SECTION("the scanner stays truncated once it was") {
    SqlScanner scanner("'a");
    SqlToken token;
    REQUIRE(scanner.next(token));
    CHECK_FALSE(scanner.next(token));
    CHECK(scanner.truncated());
  }
}

TEST_CASE("every prefix of a text in every form scans within itself into whole statements",
          "[unit][sql]") {
  // Each cut ends inside some construct or just after it: the scanner must never read past
  // the cut (ASan sees to that), and the statements must tile the text exactly.
  const std::string_view full =
      "SELECT 'a''b', E'c\\'d', $$e;$$, $t$f$t$, \"g\"\"h\" /* i /* j */ k */ -- l\n"
      "FROM t; LISTEN x;\tSELECT $1";
  for (const bool off : {false, true}) {
    for (std::size_t cut = 0; cut <= full.size(); ++cut) {
      CAPTURE(off, cut);
      const std::string prefix(full.substr(0, cut));  // its own allocation: ASan bounds
      std::string joined;
      for (const std::string_view statement : splitStatements(prefix, off)) {
        CHECK(statement.data() >= prefix.data());
        CHECK(statement.data() + statement.size() <= prefix.data() + prefix.size());
        joined.append(statement);
      }
      CHECK(joined == prefix);
      for (const SqlToken& token : tokens(prefix, off)) {
        CHECK(token.raw.data() + token.raw.size() <= prefix.data() + prefix.size());
        CHECK(token.text.data() >= token.raw.data());
        CHECK(token.text.data() + token.text.size() <= token.raw.data() + token.raw.size());
      }
    }
  }
  // Whole, it is three statements whatever the setting (no plain string has a backslash).
  CHECK(splitStatements(full).size() == 3);
  CHECK(splitStatements(full, true).size() == 3);
}

TEST_CASE("peek looks ahead without moving, a copy is an independent cursor", "[unit][sql]") {
  SqlScanner scanner("a 'b' c");
  SqlToken token;
  REQUIRE(scanner.peek(token));
  CHECK(token.raw == "a");
  REQUIRE(scanner.next(token));
  CHECK(token.raw == "a");
  SqlScanner copy = scanner;
  REQUIRE(copy.next(token));
  CHECK(token.raw == "'b'");
  REQUIRE(scanner.next(token));
  CHECK(token.raw == "'b'");
  REQUIRE(scanner.next(token));
  CHECK(token.raw == "c");
  CHECK_FALSE(scanner.next(token));
  CHECK_FALSE(scanner.peek(token));
  CHECK(copy.offset() == 5);
}

TEST_CASE("a -- comment ends at a carriage return as at a newline (scan.l's non_newline)",
          "[unit][sql]") {
  // Old Mac line ends, or a client that sends \r alone: what follows is SQL again.
  CHECK(raws("SELECT 1 -- one\rLISTEN jobs") == Pieces{"SELECT", "1", "LISTEN", "jobs"});
  CHECK(raws("SELECT 1 -- one\r\n, 2") == Pieces{"SELECT", "1", ",", "2"});
  CHECK(raws("-- a\r-- b\rx") == Pieces{"x"});
  CHECK(splitStatements("SELECT 1 --c\r; LISTEN jobs") ==
        Pieces{"SELECT 1 --c\r;", " LISTEN jobs"});
  CHECK(splitStatements("SELECT 1 --c;\r; SELECT 2") == Pieces{"SELECT 1 --c;\r;", " SELECT 2"});
  // Inside a block comment a \r changes nothing.
  CHECK(raws("/* -- \r */ x") == Pieces{"x"});
}

}  // namespace pgpivot::proto
