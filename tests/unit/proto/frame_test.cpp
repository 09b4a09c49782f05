// Header and whole-frame decoding: every split point, every interesting length.
#include "pgpivot/proto/frame.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "pgpivot/proto/constants.hpp"
#include "support/wire_builder.hpp"

namespace pgpivot::proto {
namespace {

const Limits kLimits{};

TEST_CASE("decodeHeader waits for all five header bytes at every split point", "[unit][proto]") {
  const std::string bytes = wire::query("SELECT 1");
  for (size_t cut = 0; cut < kHeaderSize; ++cut) {
    CAPTURE(cut);
    FrameHeader h;
    REQUIRE(decodeHeader(std::string_view(bytes).substr(0, cut), kLimits, h) == Decode::kNeedMore);
  }
  for (size_t cut = kHeaderSize; cut <= bytes.size(); ++cut) {
    CAPTURE(cut);
    FrameHeader h;
    REQUIRE(decodeHeader(std::string_view(bytes).substr(0, cut), kLimits, h) == Decode::kFrame);
    CHECK(h.tag == 'Q');
    CHECK(h.length == 13);
    CHECK(h.total() == bytes.size());
    CHECK(h.bodyLength() == 9);
  }
}

TEST_CASE("decodeHeader rejects lengths below four, negative or beyond the limit",
          "[unit][proto]") {
  const int32_t length = GENERATE(0, 1, 3, -1, -4, INT32_MIN, INT32_MAX,
                                  static_cast<int32_t>(0x80000000u), (1 << 30) + 1);
  CAPTURE(length);
  FrameHeader h;
  h.tag = '?';
  REQUIRE(decodeHeader(wire::header('Q', length), kLimits, h) == Decode::kInvalid);
  CHECK(h.tag == '?');  // untouched on failure
}

TEST_CASE("decodeHeader accepts length four (empty body) and the exact limit", "[unit][proto]") {
  FrameHeader h;
  REQUIRE(decodeHeader(wire::header('S', 4), kLimits, h) == Decode::kFrame);
  CHECK(h.bodyLength() == 0);
  CHECK(h.total() == 5);
  REQUIRE(decodeHeader(wire::header('d', 1 << 30), kLimits, h) == Decode::kFrame);
  CHECK(h.bodyLength() == (size_t{1} << 30) - 4);
}

TEST_CASE("decodeHeader honours a configured limit, up to the full int32 range", "[unit][proto]") {
  FrameHeader h;
  SECTION("a small limit") {
    const Limits small{.max_message_length = 100};
    CHECK(decodeHeader(wire::header('Q', 100), small, h) == Decode::kFrame);
    CHECK(decodeHeader(wire::header('Q', 101), small, h) == Decode::kInvalid);
  }
  SECTION("a limit above INT32_MAX still rejects negative lengths") {
    const Limits huge{.max_message_length = int64_t{1} << 40};
    REQUIRE(decodeHeader(wire::header('d', INT32_MAX), huge, h) == Decode::kFrame);
    CHECK(h.total() == size_t{1} + INT32_MAX);
    CHECK(decodeHeader(wire::header('d', static_cast<int32_t>(0x80000000u)), huge, h) ==
          Decode::kInvalid);
  }
}

TEST_CASE("nextFrame cuts whole messages and waits for incomplete bodies", "[unit][proto]") {
  const std::string stream =
      wire::concat(wire::query("SELECT 1"), wire::sync(), wire::copyData("abc"));
  SECTION("several messages in one buffer") {
    std::string_view rest = stream;
    std::string tags;
    std::vector<std::string_view> bodies;
    FrameView f;
    size_t consumed = 0;
    while (nextFrame(rest, kLimits, f, consumed) == Decode::kFrame) {
      tags.push_back(f.tag);
      bodies.push_back(f.body);
      rest.remove_prefix(consumed);
    }
    CHECK(rest.empty());
    CHECK(tags == "QSd");
    CHECK(bodies[0] == std::string_view("SELECT 1\0", 9));
    CHECK(bodies[1].empty());
    CHECK(bodies[2] == "abc");
  }
  SECTION("every prefix shorter than the first message needs more") {
    const size_t first = wire::query("SELECT 1").size();
    for (size_t cut = 0; cut < first; ++cut) {
      CAPTURE(cut);
      FrameView f;
      size_t consumed = 99;
      REQUIRE(nextFrame(std::string_view(stream).substr(0, cut), kLimits, f, consumed) ==
              Decode::kNeedMore);
      CHECK(consumed == 0);
    }
  }
  SECTION("a bad length is invalid even with a body present") {
    FrameView f;
    size_t consumed = 0;
    CHECK(nextFrame(wire::header('Q', 2) + "xxxx", kLimits, f, consumed) == Decode::kInvalid);
  }
}

TEST_CASE("decodeStartupHeader judges the length word alone", "[unit][proto]") {
  int32_t length = 0;
  SECTION("fewer than four bytes need more") {
    const std::string bytes = wire::sslRequest();
    for (size_t cut = 0; cut < 4; ++cut) {
      CAPTURE(cut);
      REQUIRE(decodeStartupHeader(std::string_view(bytes).substr(0, cut), length) ==
              Decode::kNeedMore);
    }
    REQUIRE(decodeStartupHeader(std::string_view(bytes).substr(0, 4), length) == Decode::kFrame);
    CHECK(length == 8);
  }
  SECTION("lengths outside [8, 10000] are invalid") {
    const int32_t bad = GENERATE(0, 4, 7, -1, INT32_MIN, 10001, INT32_MAX, 0x47455420 /*"GET "*/);
    CAPTURE(bad);
    CHECK(decodeStartupHeader(wire::be32(bad), length) == Decode::kInvalid);
  }
  SECTION("the bounds themselves are valid") {
    CHECK(decodeStartupHeader(wire::be32(8), length) == Decode::kFrame);
    CHECK(decodeStartupHeader(wire::be32(kMaxStartupPacketLength), length) == Decode::kFrame);
    CHECK(length == kMaxStartupPacketLength);
  }
}

TEST_CASE("nextStartupPacket returns the code and the body at every split point", "[unit][proto]") {
  const std::string packet = wire::startup({{"user", "alice"}, {"database", "shop"}});
  const std::string stream = packet + wire::query("x");
  for (size_t cut = 0; cut < packet.size(); ++cut) {
    CAPTURE(cut);
    StartupPacketView p;
    size_t consumed = 0;
    REQUIRE(nextStartupPacket(std::string_view(stream).substr(0, cut), p, consumed) ==
            Decode::kNeedMore);
  }
  StartupPacketView p;
  size_t consumed = 0;
  REQUIRE(nextStartupPacket(stream, p, consumed) == Decode::kFrame);
  CHECK(consumed == packet.size());
  CHECK(p.code == kProtocolVersion3);
  CHECK(p.body.size() == packet.size() - 4);
}

TEST_CASE("nextStartupPacket rejects garbage, truncated and oversized packets", "[unit][proto]") {
  StartupPacketView p;
  size_t consumed = 0;
  SECTION("an HTTP request is not a start-up packet") {
    CHECK(nextStartupPacket("GET / HTTP/1.1\r\n\r\n", p, consumed) == Decode::kInvalid);
  }
  SECTION("a typed message sent first is not a start-up packet") {
    CHECK(nextStartupPacket(wire::query("SELECT 1"), p, consumed) == Decode::kInvalid);
  }
  SECTION("too long") {
    const std::string body = wire::be32(kProtocolVersion3) + std::string(10000, 'a');
    CHECK(nextStartupPacket(wire::untyped(body), p, consumed) == Decode::kInvalid);
  }
  SECTION("truncated: the declared length never arrives") {
    const std::string packet = wire::startup({{"user", "u"}});
    CHECK(nextStartupPacket(std::string_view(packet).substr(0, packet.size() - 1), p, consumed) ==
          Decode::kNeedMore);
    CHECK(consumed == 0);
  }
}

}  // namespace
}  // namespace pgpivot::proto
