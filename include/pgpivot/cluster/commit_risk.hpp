// What a client had in flight when the primary of its cluster was lost decides what it is
// told (issue 4): inside a transaction block with nothing in flight that could commit it,
// the transaction provably did not commit (40001, may be retried); otherwise the outcome
// is unknown (40003). This module answers "could this message commit?" from the client's
// bytes alone; ServerConn keeps the answer per request until the server has replied.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>

namespace pgpivot::cluster {

// Whether SQL text may end a transaction block with a commit: it contains COMMIT, END or
// PREPARE (PREPARE TRANSACTION) as a word anywhere, a literal or comment included. A false
// "yes" only turns the answer into "outcome unknown", never into a lie.
bool sqlMayCommit(std::string_view sql);

// Per client: remembers which prepared statements' SQL may commit, so that a Bind of one
// (pgbench -M prepared binds "END;" like any other statement) counts as a commit.
class CommitRisk final {
 public:
  // A message the client sent, with as much of its body as is at hand (`complete` when all
  // of it is). Returns whether running it may commit a transaction block.
  bool noteMessage(char tag, std::string_view body, bool complete);
  std::size_t trackedStatements() const { return committing_.size(); }

 private:
  std::unordered_set<std::string> committing_;  // statement names, "" = the unnamed one
  bool lost_track_ = false;                     // a Parse whose name could not be read
};

}  // namespace pgpivot::cluster
