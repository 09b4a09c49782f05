// The parts of prepared-statement handling that need no server: recognising a DEALLOCATE,
// the per-server LRU, and which replies pgpivot drops, keeps or rewrites.
#include "pgpivot/session/prepared_statements.hpp"

#include <catch2/catch.hpp>

#include "pgpivot/proto/frame.hpp"
#include "pgpivot/proto/messages.hpp"

namespace pgpivot::session {
namespace {

TEST_CASE("parseDeallocate recognises one DEALLOCATE statement", "[unit][prepared]") {
  const auto name = [](std::string_view sql) {
    auto parsed = parseDeallocate(sql);
    REQUIRE(parsed);
    CHECK_FALSE(parsed->all);
    return parsed->name;
  };
  CHECK(name("DEALLOCATE s1") == "s1");
  CHECK(name("deallocate S1;") == "s1");  // folded, as PostgreSQL folds identifiers
  CHECK(name("  DeAllocate PREPARE _pg3_0 ;  ") == "_pg3_0");
  CHECK(name("DEALLOCATE \"Mixed\"\"Case\"") == "Mixed\"Case");
  CHECK(name("/* c /* nested */ */ DEALLOCATE -- line\n x$1") == "x$1");
  CHECK(name("DEALLOCATE prepare") == "prepare");  // a statement named prepare
  CHECK(name("DEALLOCATE \"all\"") == "all");
  for (const char* all : {"DEALLOCATE ALL", "deallocate prepare all;", "DEALLOCATE all -- x"}) {
    CAPTURE(all);
    auto parsed = parseDeallocate(all);
    REQUIRE(parsed);
    CHECK(parsed->all);
  }
  for (const char* other :
       {"", "SELECT 1", "DEALLOCATE", "DEALLOCATE ;", "DEALLOCATE a; DEALLOCATE b",
        "DEALLOCATE a b", "DEALLOCATEx a", "DEALLOCATE \"\"", "DEALLOCATE \"open",
        "DEALLOCATE a /* open", "DISCARD ALL", "DEALLOCATE 1a"}) {
    CAPTURE(other);
    CHECK_FALSE(parseDeallocate(other));
  }
}

TEST_CASE("StatementLru keeps use order and evicts the least recently used", "[unit][prepared]") {
  StatementLru lru;
  lru.insert("a");
  lru.insert("b");
  lru.insert("c");
  CHECK(lru.size() == 3);
  CHECK(lru.oldest() == "a");
  CHECK(lru.touch("a"));
  CHECK(lru.oldest() == "b");
  CHECK_FALSE(lru.touch("zz"));
  lru.erase("b");
  CHECK_FALSE(lru.contains("b"));
  CHECK(lru.oldest() == "c");
  lru.insertOldest("b");
  CHECK(lru.oldest() == "b");
  lru.insert("c");  // a touch, not a second entry
  CHECK(lru.size() == 3);
  lru.clear();
  CHECK(lru.empty());
}

// The messages in `bytes`, as tag + name-ish text, for checking what prepare() wrote.
std::vector<std::string> tags(const std::string& bytes) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos + proto::kHeaderSize <= bytes.size()) {
    uint32_t length = 0;
    for (int i = 1; i <= 4; ++i) {
      length = (length << 8) | static_cast<unsigned char>(bytes[pos + static_cast<std::size_t>(i)]);
    }
    const std::string body = bytes.substr(pos + proto::kHeaderSize, length - 4);
    const std::size_t name_from = bytes[pos] == 'C' ? 1 : 0;
    out.push_back(std::string(1, bytes[pos]) + ":" +
                  body.substr(name_from, body.find('\0', name_from) - name_from));
    pos += 1 + length;
  }
  return out;
}

std::string parseOf(const std::string& name) {
  std::string out;
  proto::writeParse(out, name, "SELECT 1", {});
  return out;
}

TEST_CASE("ServerStatements closes the least recently used statement when full",
          "[unit][prepared]") {
  ServerStatements server;
  server.setCapacity(2);
  std::string out;
  server.prepare(out, "s1", parseOf("s1"), false);
  server.prepare(out, "s2", parseOf("s2"), true);
  // Each Parse goes after a Close of its own name, which may exist after all.
  CHECK(tags(out) == std::vector<std::string>{"C:s1", "P:s1", "C:s2", "P:s2"});
  server.touch("s1");
  out.clear();
  server.prepare(out, "s3", parseOf("s3"), true);
  CHECK(tags(out) == std::vector<std::string>{"C:s2", "C:s3", "P:s3"});
  CHECK(server.size() == 2);
  CHECK(server.has("s1"));
  CHECK_FALSE(server.has("s2"));
  // Replies in order: the client's ParseComplete is the only one the client sees.
  CHECK(server.expectsReplies());
  CHECK_FALSE(server.onCloseComplete());
  CHECK(server.onParseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onParseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onParseComplete());
  CHECK_FALSE(server.expectsReplies());
  CHECK(server.onCloseComplete());  // nothing expected: the client's own
}

TEST_CASE("a reply due to the client is known before it is taken, so it can be forwarded",
          "[unit][prepared]") {
  ServerStatements server;
  std::string out;
  server.expectClientParseComplete();  // the client's unnamed Parse, forwarded as it was
  server.prepare(out, "s1", parseOf("s1"), true);  // then one pgpivot injects for a Bind
  server.expectClientCloseComplete();
  // Asking does not take: the same answer until the reply is accounted for.
  CHECK(server.parseCompleteIsClients());
  CHECK(server.parseCompleteIsClients());
  CHECK(server.onParseComplete());
  // Next: the Close pgpivot sent before its Parse, then that Parse: both pgpivot's.
  CHECK_FALSE(server.closeCompleteIsClients());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.parseCompleteIsClients());
  CHECK_FALSE(server.onParseComplete());
  CHECK(server.closeCompleteIsClients());
  CHECK(server.onCloseComplete());
  CHECK_FALSE(server.expectsReplies());
  // Nothing expected: whatever comes is the client's.
  CHECK(server.parseCompleteIsClients());
  CHECK(server.closeCompleteIsClients());
}

TEST_CASE("ServerStatements undoes what a batch skipped after an error", "[unit][prepared]") {
  ServerStatements server;
  server.setCapacity(1);
  std::string out;
  server.prepare(out, "old", parseOf("old"), false);
  server.noteBatchSent();  // Sync
  CHECK_FALSE(server.onCloseComplete());
  CHECK(server.onParseComplete());
  server.onReadyForQuery();
  // Next batch: closing "old" to make room for "new", and then an error skips both.
  out.clear();
  server.prepare(out, "new", parseOf("new"), false);
  server.noteBatchSent();
  // A pipelined third batch prepares "third" before the second one's ReadyForQuery.
  server.prepare(out, "third", parseOf("third"), false);
  server.noteBatchSent();
  server.onReadyForQuery();  // the second batch failed: no Close, no Parse happened
  CHECK(server.has("old"));
  CHECK_FALSE(server.has("new"));
  // "third" is not sure yet: its batch may fail as well.
  CHECK_FALSE(server.has("third"));
  // The third batch's replies still count: pgpivot's Closes of "new" (to make room) and of
  // "third" (no error for a missing statement), then the client's ParseComplete.
  CHECK(server.expectsReplies());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK(server.onParseComplete());
  CHECK_FALSE(server.expectsReplies());
  CHECK(server.has("third"));
}

TEST_CASE("ServerStatements rewrites the tag of the stand-in for a DEALLOCATE",
          "[unit][prepared]") {
  ServerStatements server;
  server.noteBatchSent();  // an earlier Sync, still unanswered
  server.noteBatchSent();  // the Query
  server.expectCommandTag("DEALLOCATE", "s1", true);
  CHECK(server.expectsCommandTag());
  // The earlier batch's CommandComplete is not the one.
  CHECK_FALSE(server.onCommandComplete("SELECT 1"));
  server.onReadyForQuery();
  const auto tag = server.onCommandComplete("UNLISTEN");
  REQUIRE(tag);
  CHECK(tag->tag == "DEALLOCATE");
  CHECK(tag->client_name == "s1");
  server.onReadyForQuery();
  CHECK_FALSE(server.expectsCommandTag());
  // An aborted transaction answers the stand-in with an error: the expectation ends with
  // its batch.
  server.noteBatchSent();
  server.expectCommandTag("DEALLOCATE", "s1", true);
  server.onReadyForQuery();
  CHECK_FALSE(server.expectsCommandTag());
  CHECK_FALSE(server.expectsReplies());
}

TEST_CASE("DEALLOCATE ALL and DISCARD ALL empty a server's statements", "[unit][prepared]") {
  ServerStatements server;
  std::string out;
  const auto prepareOne = [&] {
    server.prepare(out, "s1", parseOf("s1"), false);
    server.noteBatchSent();
    CHECK_FALSE(server.onCloseComplete());
    CHECK(server.onParseComplete());
    server.onReadyForQuery();
    CHECK_FALSE(server.empty());
  };
  prepareOne();
  CHECK_FALSE(server.onCommandComplete("DEALLOCATE ALL"));
  CHECK(server.empty());
  prepareOne();
  server.onInternalCommandComplete("DISCARD ALL");
  CHECK(server.empty());
}

}  // namespace
}  // namespace pgpivot::session

namespace pgpivot::session {
namespace {

TEST_CASE("a stand-in sent as an unnamed Parse keeps later replies in order", "[unit][prepared]") {
  ServerStatements server;
  std::string out;
  server.expectClientParseComplete();  // Parse("", stand-in)
  server.expectCommandTag("DEALLOCATE", "s1", false);
  server.prepare(out, "next", parseOf("next"), true);  // a Bind further on needs it
  CHECK(server.onParseComplete());
  // No Execute of the stand-in in this batch: its CommandComplete never comes.
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onParseComplete());
  CHECK(server.expectsCommandTag());
  server.noteBatchSent();
  server.onReadyForQuery();
  CHECK_FALSE(server.expectsCommandTag());
  CHECK(server.has("next"));
}

}  // namespace
}  // namespace pgpivot::session

namespace pgpivot::session {
namespace {

TEST_CASE("a batch skipped after an error is undone newest first", "[unit][prepared]") {
  ServerStatements server;
  server.setCapacity(1);
  std::string out;
  server.prepare(out, "a", parseOf("a"), false);
  server.noteBatchSent();
  CHECK_FALSE(server.onCloseComplete());
  CHECK(server.onParseComplete());
  server.onReadyForQuery();
  // One batch: an error, then "b" (closing "a") and "c" (closing "b"), both skipped.
  server.prepare(out, "b", parseOf("b"), true);
  server.prepare(out, "c", parseOf("c"), true);
  server.noteBatchSent();
  server.onReadyForQuery();
  CHECK(server.has("a"));
  CHECK_FALSE(server.has("b"));  // its Parse never ran, whatever its skipped Close implied
  CHECK_FALSE(server.has("c"));
  CHECK(server.size() == 1);
}

}  // namespace
}  // namespace pgpivot::session

namespace pgpivot::session {
namespace {

TEST_CASE("a skipped batch does not undo what later batches already did", "[unit][prepared]") {
  ServerStatements server;
  server.setCapacity(1);
  std::string out;
  server.prepare(out, "a", parseOf("a"), false);
  server.noteBatchSent();
  CHECK_FALSE(server.onCloseComplete());
  CHECK(server.onParseComplete());
  server.onReadyForQuery();
  // Batch 1 (to fail): "b", closing "a". Batch 2, sent before batch 1's outcome is known:
  // "c", closing "b".
  server.prepare(out, "b", parseOf("b"), true);
  server.noteBatchSent();
  server.prepare(out, "c", parseOf("c"), true);
  server.noteBatchSent();
  server.onReadyForQuery();  // batch 1 failed: "a" was not closed, "b" never prepared
  CHECK(server.has("a"));
  CHECK_FALSE(server.has("b"));
  // Batch 2: Close "b", Close "c", Parse "c".
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onParseComplete());
  server.onReadyForQuery();
  CHECK(server.has("c"));
  CHECK(server.has("a"));  // over the limit: the next one prepared closes it first
  out.clear();
  server.prepare(out, "d", parseOf("d"), true);
  CHECK(tags(out) == std::vector<std::string>{"C:a", "C:c", "C:d", "P:d"});

  // A statement closed by a later batch is not brought back by an earlier one's undo.
  server.noteBatchSent();
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onCloseComplete());
  CHECK_FALSE(server.onParseComplete());
  server.onReadyForQuery();
  out.clear();
  server.prepare(out, "e", parseOf("e"), true);  // batch to fail: closes "d"
  server.noteBatchSent();
  server.prepare(out, "d", parseOf("d"), true);  // next batch: "d" again, closing "e"
  server.prepare(out, "f", parseOf("f"), true);  // then "f", closing "d"
  server.noteBatchSent();
  server.onReadyForQuery();
  CHECK_FALSE(server.has("d"));  // the next batch closes it whatever happened before
  CHECK(server.size() == 1);
}

}  // namespace
}  // namespace pgpivot::session
