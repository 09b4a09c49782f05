// Auth file parsing (PgBouncer userlist.txt format) and secret classification.
#include "pgpivot/auth/auth_file.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

using namespace pgpivot;
using namespace pgpivot::auth;

namespace {

constexpr std::string_view kScram =
    "SCRAM-SHA-256$4096:GDb0YvxnGiyZGkxx39PJaw==$7bIMIyiiK3ewJtwnB5gxu7YjXEAUypMDl7I7zEtmNSA=:"
    "sOT3buAhiiVluJE15d1eFI8zDAXYJNe65yn1Mhrdvio=";

std::string errorOf(std::string_view text) {
  std::vector<std::string> warnings;
  auto parsed = parseAuthFile(text, "userlist.txt", warnings);
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().sqlstate == sqlstate::kConfigFileError);
  return parsed.error().message;
}

}  // namespace

TEST_CASE("auth file parses quoted users, doubled quotes, comments and blank lines",
          "[unit][auth]") {
  const std::string text =
      std::string("; PgBouncer-style comment\n") +
      "# hash comment\n"
      "\n"
      "   \t\n"
      "\"alice\" \"wonderland\"\n"
      "  \"bob\"\t\"md57c2b0036225b2bb23a93d2fcec38fcff\"   trailing text ignored\n"
      "\"we\"\"ird\" \"pa\"\"ss word\"\r\n"
      "\"carol\"\"\"\"\" \"\"\"\"\n"
      "\"dave\"\t\"" +
      std::string(kScram) + "\"";  // tab separator, no final newline
  std::vector<std::string> warnings;
  auto parsed = parseAuthFile(text, "userlist.txt", warnings);
  INFO((parsed ? std::string() : parsed.error().message));
  REQUIRE(parsed.has_value());
  CHECK(warnings.empty());
  CHECK(parsed->users.size() == 5);

  const AuthFileEntry* alice = parsed->find("alice");
  REQUIRE(alice != nullptr);
  CHECK(alice->user == "alice");
  CHECK(alice->secret == "wonderland");
  CHECK(alice->line == 5);

  REQUIRE(parsed->find("bob") != nullptr);
  CHECK(parsed->find("bob")->secret == "md57c2b0036225b2bb23a93d2fcec38fcff");
  CHECK(parsed->find("bob")->line == 6);

  REQUIRE(parsed->find("we\"ird") != nullptr);
  CHECK(parsed->find("we\"ird")->secret == "pa\"ss word");

  REQUIRE(parsed->find("carol\"\"") != nullptr);
  CHECK(parsed->find("carol\"\"")->secret == "\"");

  REQUIRE(parsed->find("dave") != nullptr);
  CHECK(parsed->find("dave")->secret == kScram);
  CHECK(parsed->find("dave")->line == 9);

  CHECK(parsed->find("mallory") == nullptr);
  CHECK(parsed->find("Alice") == nullptr);
}

TEST_CASE("auth file errors name the file and line", "[unit][auth]") {
  CHECK(errorOf("\"ok\" \"pw\"\nalice \"pw\"\n") ==
        "userlist.txt:2: expected a double-quoted user name");
  CHECK(errorOf("\n\n\"alice \"pw\"\n") ==
        "userlist.txt:3: expected a double-quoted password after the user name");
  CHECK(errorOf("\"alice\n\"pw\"\n") == "userlist.txt:1: unterminated quoted user name");
  CHECK(errorOf("\"alice\"\n") ==
        "userlist.txt:1: expected a double-quoted password after the user name");
  CHECK(errorOf("\"alice\" pw\n") ==
        "userlist.txt:1: expected a double-quoted password after the user name");
  CHECK(errorOf("\"alice\" \"pw\n\"\n") == "userlist.txt:1: unterminated quoted password");
  CHECK(errorOf("\"\" \"pw\"\n") == "userlist.txt:1: empty user name");
  CHECK(errorOf("\"" + std::string(129, 'u') + "\" \"pw\"") ==
        "userlist.txt:1: user name longer than 128 bytes");
  CHECK(errorOf("\"u\" \"" + std::string(2049, 'p') + "\"") ==
        "userlist.txt:1: password longer than 2048 bytes");
}

TEST_CASE("auth file warns about duplicates and empty passwords", "[unit][auth]") {
  std::vector<std::string> warnings;
  auto parsed = parseAuthFile(
      "\"alice\" \"old\"\n\"alice\" \"new\"\n\"bob\" \"\"\n\"eve\" \"SCRAM-SHA-256$broken\"\n",
      "users.txt", warnings);
  REQUIRE(parsed.has_value());
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[0] ==
        "users.txt:2: duplicate entry for user \"alice\" (first at line 1); this line wins");
  CHECK(warnings[1].starts_with("users.txt:3: user \"bob\" has an empty password"));
  CHECK(warnings[2].starts_with("users.txt:4: user \"eve\" has a malformed SCRAM secret"));
  CHECK(parsed->find("alice")->secret == "new");
  CHECK(parsed->find("alice")->line == 2);
}

TEST_CASE("an empty auth file or one with a byte order mark parses", "[unit][auth]") {
  std::vector<std::string> warnings;
  CHECK(parseAuthFile("", "f", warnings).value().users.empty());
  auto bom = parseAuthFile("\xEF\xBB\xBF\"alice\" \"pw\"\n", "f", warnings);
  REQUIRE(bom.has_value());
  CHECK(bom->find("alice") != nullptr);
}

TEST_CASE("loadAuthFile reads a file and reports unreadable paths", "[unit][auth]") {
  char dir_template[] = "/tmp/pgpivot_auth_XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string path = dir + "/userlist.txt";
  {
    std::ofstream out(path);
    out << "\"alice\" \"pw\"\nbroken\n";
  }
  std::vector<std::string> warnings;
  auto bad = loadAuthFile(path, warnings);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message == path + ":2: expected a double-quoted user name");
  {
    std::ofstream out(path);
    out << "\"alice\" \"pw\"\n";
  }
  auto good = loadAuthFile(path, warnings);
  REQUIRE(good.has_value());
  CHECK(good->find("alice")->secret == "pw");

  auto missing = loadAuthFile(dir + "/nope.txt", warnings);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message ==
        "cannot open auth file " + dir + "/nope.txt: No such file or directory");
  auto directory = loadAuthFile(dir, warnings);
  REQUIRE_FALSE(directory.has_value());
  CHECK(directory.error().message.find(dir) != std::string::npos);

  std::remove(path.c_str());
  rmdir(dir.c_str());
}

TEST_CASE("secretKind tells plain passwords, md5 and SCRAM secrets apart", "[unit][auth]") {
  CHECK(secretKind("wonderland") == SecretKind::kPlain);
  CHECK(secretKind("") == SecretKind::kPlain);
  CHECK(secretKind("md57c2b0036225b2bb23a93d2fcec38fcff") == SecretKind::kMd5);
  CHECK(secretKind("md57C2B0036225B2BB23A93D2FCEC38FCFF") == SecretKind::kPlain);
  CHECK(secretKind("md5short") == SecretKind::kPlain);
  CHECK(secretKind(kScram) == SecretKind::kScram);
  CHECK(secretKind("SCRAM-SHA-256$broken") == SecretKind::kPlain);
}
