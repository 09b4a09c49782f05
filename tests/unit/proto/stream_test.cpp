// FrameScanner against every way a stream can be cut: every split point, every pair of
// split points, fixed chunk sizes, bodies larger than any chunk, and bad lengths.
#include "pgpivot/proto/stream.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/wire_builder.hpp"

namespace pgpivot::proto {
namespace {

struct Seen {
  size_t stream_pos;  // where the header's tag byte sits in the whole stream
  char tag;
  int32_t length;
  bool operator==(const Seen&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << "{" << s.stream_pos << ", '" << s.tag << "', " << s.length << "}";
}

// What the scanner must report: the frames nextFrame() finds in the whole stream.
std::vector<Seen> expectedFrames(std::string_view stream) {
  std::vector<Seen> out;
  size_t pos = 0;
  FrameView f;
  size_t consumed = 0;
  while (nextFrame(stream.substr(pos), Limits{}, f, consumed) == Decode::kFrame) {
    out.push_back({pos, f.tag, static_cast<int32_t>(f.body.size() + 4)});
    pos += consumed;
  }
  REQUIRE(pos == stream.size());
  return out;
}

// Feeds `chunks` in order, following the scan() contract, and records every header in
// stream coordinates. Fails the test on kInvalid.
std::vector<Seen> scanAll(FrameScanner& scanner, const std::vector<std::string_view>& chunks) {
  std::vector<Seen> seen;
  size_t base = 0;
  for (const std::string_view chunk : chunks) {
    for (;;) {
      size_t offset = 999999;
      FrameHeader h;
      const Decode d = scanner.scan(chunk, offset, h);
      REQUIRE(d != Decode::kInvalid);
      if (d == Decode::kNeedMore) {
        break;
      }
      const size_t carried = scanner.carriedHeaderBytes();
      REQUIRE(carried <= 4);
      if (carried > 0) {
        REQUIRE(offset == 0);
        seen.push_back({base - carried, h.tag, h.length});
      } else {
        REQUIRE(offset < chunk.size());
        seen.push_back({base + offset, h.tag, h.length});
      }
    }
    base += chunk.size();
  }
  return seen;
}

std::vector<std::string_view> cutAt(std::string_view s, std::vector<size_t> cuts) {
  std::vector<std::string_view> out;
  size_t from = 0;
  cuts.push_back(s.size());
  for (const size_t c : cuts) {
    out.push_back(s.substr(from, c - from));
    from = c;
  }
  return out;
}

std::vector<std::string_view> chunksOf(std::string_view s, size_t size) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size(); i += size) {
    out.push_back(s.substr(i, size));
  }
  return out;
}

std::string smallStream() {
  return wire::concat(wire::query("SELECT 1"), wire::sync(), wire::parse("s1", "SELECT $1", {23}),
                      wire::bind("", "s1", {std::string_view("7")}), wire::execute(),
                      wire::copyData(""), wire::sync(), wire::terminate());
}

TEST_CASE("FrameScanner follows the documented example", "[unit][proto]") {
  const std::string stream = wire::query("SELECT 1") + wire::sync();
  REQUIRE(stream.size() == 19);
  const std::string_view chunk1 = std::string_view(stream).substr(0, 3);
  const std::string_view chunk2 = std::string_view(stream).substr(3);
  FrameScanner scanner;
  size_t offset = 0;
  FrameHeader h;
  CHECK(scanner.scan(chunk1, offset, h) == Decode::kNeedMore);
  CHECK(scanner.pendingHeaderBytes() == 3);
  REQUIRE(scanner.scan(chunk2, offset, h) == Decode::kFrame);
  CHECK(h.tag == 'Q');
  CHECK(h.length == 13);
  CHECK(offset == 0);
  CHECK(scanner.carriedHeaderBytes() == 3);
  CHECK(scanner.bodyRemaining() == 9);
  REQUIRE(scanner.scan(chunk2, offset, h) == Decode::kFrame);
  CHECK(h.tag == 'S');
  CHECK(offset == 11);
  CHECK(scanner.carriedHeaderBytes() == 0);
  CHECK(scanner.scan(chunk2, offset, h) == Decode::kNeedMore);
  CHECK(scanner.atBoundary());
}

TEST_CASE("FrameScanner reports every header once at every split point", "[unit][proto]") {
  const std::string stream = smallStream();
  const std::vector<Seen> expected = expectedFrames(stream);
  REQUIRE(expected.size() == 8);
  SECTION("one cut") {
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      CAPTURE(cut);
      FrameScanner scanner;
      REQUIRE(scanAll(scanner, cutAt(stream, {cut})) == expected);
      CHECK(scanner.atBoundary());
    }
  }
  SECTION("two cuts") {
    for (size_t a = 0; a <= stream.size(); ++a) {
      for (size_t b = a; b <= stream.size(); ++b) {
        CAPTURE(a, b);
        FrameScanner scanner;
        REQUIRE(scanAll(scanner, cutAt(stream, {a, b})) == expected);
        CHECK(scanner.atBoundary());
      }
    }
  }
  SECTION("fixed chunk sizes") {
    for (size_t size = 1; size <= stream.size(); ++size) {
      CAPTURE(size);
      FrameScanner scanner;
      REQUIRE(scanAll(scanner, chunksOf(stream, size)) == expected);
      CHECK(scanner.atBoundary());
    }
  }
}

TEST_CASE("FrameScanner finds many messages in one chunk", "[unit][proto]") {
  std::string stream;
  for (int i = 0; i < 1000; ++i) {
    stream += (i % 2 == 0) ? wire::sync() : wire::dataRow({std::string_view("x")});
  }
  FrameScanner scanner;
  const auto seen = scanAll(scanner, {stream});
  CHECK(seen == expectedFrames(stream));
  CHECK(seen.size() == 1000);
}

TEST_CASE("FrameScanner counts down a body larger than any chunk", "[unit][proto]") {
  const std::string big = wire::copyData(std::string(size_t{300} * 1024, 'z'));
  const std::string stream = wire::concat(wire::sync(), big, wire::copyDone(), wire::query("x"));
  const std::vector<Seen> expected = expectedFrames(stream);
  REQUIRE(expected.size() == 4);
  SECTION("fixed chunk sizes") {
    const size_t size = GENERATE(1, 2, 3, 4, 5, 6, 7, 4096, 16384, 65536, size_t{1} << 20);
    CAPTURE(size);
    FrameScanner scanner;
    CHECK(scanAll(scanner, chunksOf(stream, size)) == expected);
    CHECK(scanner.atBoundary());
  }
  SECTION("two cuts near every message boundary") {
    std::vector<size_t> points;
    for (const Seen& s : expected) {
      for (size_t d = 0; d < 8; ++d) {
        if (s.stream_pos + d >= 3) {
          points.push_back(s.stream_pos + d - 3);
        }
      }
    }
    for (const size_t a : points) {
      for (const size_t b : points) {
        if (b < a) {
          continue;
        }
        CAPTURE(a, b);
        FrameScanner scanner;
        REQUIRE(scanAll(scanner, cutAt(stream, {a, b})) == expected);
      }
    }
  }
}

TEST_CASE("FrameScanner relays a 100 MB CopyData without seeing its body", "[unit][proto]") {
  constexpr int32_t kBody = 100 * 1024 * 1024;
  const std::string zeros(size_t{64} * 1024, '\0');  // body bytes; reused for every chunk
  FrameScanner scanner;
  size_t offset = 0;
  FrameHeader h;

  // First chunk: the header split after 2 bytes, so it completes in the next chunk.
  const std::string head = wire::header('d', kBody + 4);
  REQUIRE(scanner.scan(std::string_view(head).substr(0, 2), offset, h) == Decode::kNeedMore);
  const std::string second = head.substr(2) + zeros.substr(0, 1000);
  REQUIRE(scanner.scan(second, offset, h) == Decode::kFrame);
  CHECK(h.tag == 'd');
  CHECK(h.bodyLength() == static_cast<size_t>(kBody));
  CHECK(scanner.scan(second, offset, h) == Decode::kNeedMore);

  int64_t left = kBody - 1000;
  while (left > static_cast<int64_t>(zeros.size())) {
    REQUIRE(scanner.scan(zeros, offset, h) == Decode::kNeedMore);
    left -= static_cast<int64_t>(zeros.size());
    REQUIRE(scanner.bodyRemaining() == left);
  }
  // The last chunk ends the body and carries two more messages.
  const std::string last =
      wire::concat(zeros.substr(0, static_cast<size_t>(left)), wire::copyDone(), wire::sync());
  REQUIRE(scanner.scan(last, offset, h) == Decode::kFrame);
  CHECK(h.tag == 'c');
  CHECK(offset == static_cast<size_t>(left));
  REQUIRE(scanner.scan(last, offset, h) == Decode::kFrame);
  CHECK(h.tag == 'S');
  CHECK(offset == static_cast<size_t>(left) + 5);
  CHECK(scanner.scan(last, offset, h) == Decode::kNeedMore);
  CHECK(scanner.atBoundary());
}

TEST_CASE("FrameScanner stops at a bad length wherever the header is cut", "[unit][proto]") {
  const int32_t bad =
      GENERATE(0, 3, -1, INT32_MIN, static_cast<int32_t>(0x80000000u), (1 << 30) + 1);
  CAPTURE(bad);
  const std::string stream = wire::concat(wire::sync(), wire::header('Q', bad), wire::sync());
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    FrameScanner scanner;
    size_t offset = 0;
    FrameHeader h;
    Decode last = Decode::kNeedMore;
    int frames = 0;
    for (const std::string_view chunk : cutAt(stream, {cut})) {
      do {
        last = scanner.scan(chunk, offset, h);
        frames += last == Decode::kFrame ? 1 : 0;
      } while (last == Decode::kFrame);
      if (last == Decode::kInvalid) {
        break;
      }
    }
    CHECK(last == Decode::kInvalid);
    CHECK(frames == 1);  // the first Sync only
    CHECK(scanner.broken());
    // Sticky: even a good chunk is refused until reset().
    CHECK(scanner.scan(wire::sync(), offset, h) == Decode::kInvalid);
    scanner.reset();
    CHECK(scanner.scan(wire::sync(), offset, h) == Decode::kFrame);
  }
}

TEST_CASE("FrameScanner applies its limits and ignores empty chunks", "[unit][proto]") {
  FrameScanner scanner(Limits{.max_message_length = 16});
  size_t offset = 0;
  FrameHeader h;
  CHECK(scanner.scan("", offset, h) == Decode::kNeedMore);
  CHECK(scanner.atBoundary());
  const std::string ok = wire::copyData(std::string(12, 'a'));  // length 16
  REQUIRE(scanner.scan(ok, offset, h) == Decode::kFrame);
  CHECK(scanner.scan(ok, offset, h) == Decode::kNeedMore);
  CHECK(scanner.scan(wire::copyData(std::string(13, 'a')), offset, h) == Decode::kInvalid);
}

}  // namespace
}  // namespace pgpivot::proto
