#include "pgpivot/cluster/commit_risk.hpp"

#include <catch2/catch.hpp>
#include <string>

using pgpivot::cluster::CommitRisk;
using pgpivot::cluster::sqlMayCommit;

namespace {

std::string parseBody(const std::string& name, const std::string& query) {
  std::string body = name + '\0' + query + '\0';
  body.append(2, '\0');  // no parameter types
  return body;
}

std::string bindBody(const std::string& portal, const std::string& statement) {
  std::string body = portal + '\0' + statement + '\0';
  body.append(6, '\0');  // no formats, no parameters, no result formats
  return body;
}

}  // namespace

TEST_CASE("SQL that may commit a transaction block is recognised by its words", "[unit][cluster]") {
  CHECK(sqlMayCommit("COMMIT"));
  CHECK(sqlMayCommit("commit;"));
  CHECK(sqlMayCommit("END;"));
  CHECK(sqlMayCommit("  end  "));
  CHECK(sqlMayCommit("COMMIT AND CHAIN"));
  CHECK(sqlMayCommit("PREPARE TRANSACTION 'x'"));
  CHECK(sqlMayCommit("SELECT pg_sleep(1); COMMIT"));
  CHECK(sqlMayCommit("INSERT INTO t VALUES (1);\nCoMmIt"));
  // Conservative: a word in a literal or an expression still counts ("unknown" answer).
  CHECK(sqlMayCommit("SELECT CASE WHEN true THEN 1 END"));
  CHECK(sqlMayCommit("SELECT 'commit'"));

  CHECK_FALSE(sqlMayCommit("SELECT pg_sleep(60)"));
  CHECK_FALSE(sqlMayCommit("INSERT INTO t VALUES (1)"));
  CHECK_FALSE(sqlMayCommit("ROLLBACK"));
  CHECK_FALSE(sqlMayCommit("ABORT"));
  CHECK_FALSE(sqlMayCommit("UPDATE committed SET ending = 1"));  // words, not substrings
  CHECK_FALSE(sqlMayCommit("SELECT commit_ts, end_lsn FROM x"));
  CHECK_FALSE(sqlMayCommit(""));
}

TEST_CASE("a simple query may commit when its text says so or is not all here", "[unit][cluster]") {
  CommitRisk risk;
  CHECK(risk.noteMessage('Q', std::string("COMMIT") + '\0', true));
  CHECK_FALSE(risk.noteMessage('Q', std::string("SELECT 1") + '\0', true));
  CHECK(risk.noteMessage('Q', "SELECT 1", false));
  CHECK(risk.trackedStatements() == 0);  // simple queries leave nothing behind
}

TEST_CASE("a Bind may commit when the statement it binds was prepared from a commit",
          "[unit][cluster]") {
  CommitRisk risk;
  // pgpivot's own messages: Parse runs nothing.
  CHECK_FALSE(risk.noteMessage('P', parseBody("P0_1", "BEGIN;"), true));
  CHECK_FALSE(risk.noteMessage('P', parseBody("P0_3", "END;"), true));
  CHECK_FALSE(risk.noteMessage('P', parseBody("", "SELECT $1"), true));
  CHECK_FALSE(risk.noteMessage('B', bindBody("", "P0_1"), true));
  CHECK(risk.noteMessage('B', bindBody("", "P0_3"), true));
  CHECK_FALSE(risk.noteMessage('B', bindBody("", ""), true));
  CHECK_FALSE(risk.noteMessage('E', std::string(5, '\0'), true));

  // The unnamed statement re-parsed as a COMMIT, then as a SELECT again.
  CHECK_FALSE(risk.noteMessage('P', parseBody("", "COMMIT"), true));
  CHECK(risk.noteMessage('B', bindBody("", ""), true));
  CHECK_FALSE(risk.noteMessage('P', parseBody("", "SELECT 2"), true));
  CHECK_FALSE(risk.noteMessage('B', bindBody("", ""), true));

  // A Parse whose query is not all here counts as one that may commit.
  CHECK_FALSE(risk.noteMessage('P', std::string("long") + '\0' + "SELECT 1, 2", false));
  CHECK(risk.noteMessage('B', bindBody("", "long"), true));
  // A Bind whose statement name cannot be read yet may commit.
  CHECK(risk.noteMessage('B', "portal", false));
}

TEST_CASE("a Parse whose name could not be read makes every later Bind count as a commit",
          "[unit][cluster]") {
  CommitRisk risk;
  CHECK_FALSE(risk.noteMessage('P', parseBody("s1", "SELECT 1"), true));
  CHECK_FALSE(risk.noteMessage('B', bindBody("", "s1"), true));
  CHECK_FALSE(risk.noteMessage('P', "abcdef", false));
  CHECK(risk.noteMessage('B', bindBody("", "s1"), true));
}
