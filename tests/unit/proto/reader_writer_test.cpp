// Reader's sticky failure and Writer's back-patched lengths.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "pgpivot/proto/reader.hpp"
#include "pgpivot/proto/writer.hpp"
#include "support/wire_builder.hpp"

namespace pgpivot::proto {
namespace {

TEST_CASE("Reader decodes integers in network byte order", "[unit][proto]") {
  const std::string body = std::string("\x7f", 1) + wire::be16(-2) + wire::be32(0x01020304) +
                           wire::be32(-1) + wire::be32(static_cast<int32_t>(0xfffffffeu));
  Reader r(body);
  CHECK(r.byte() == 0x7f);
  CHECK(r.int16() == -2);
  CHECK(r.int32() == 0x01020304);
  CHECK(r.int32() == -1);
  CHECK(r.uint32() == 0xfffffffeu);
  CHECK(r.consumedExactly());
}

TEST_CASE("Reader reads C strings as views without the NUL", "[unit][proto]") {
  const std::string body = wire::concat(wire::cstr("abc"), wire::cstr(""), std::string("tail"));
  Reader r(body);
  const std::string_view a = r.cstring();
  CHECK(a == "abc");
  CHECK(a.data() == body.data());  // a view, not a copy
  CHECK(r.cstring().empty());
  CHECK(r.ok());
  CHECK(r.remaining() == 4);
  CHECK_FALSE(r.consumedExactly());
  CHECK(r.cstring().empty());  // "tail" has no NUL
  CHECK_FALSE(r.ok());
}

TEST_CASE("Reader failure is sticky", "[unit][proto]") {
  const std::string body = wire::be32(42) + wire::cstr("x") + "yz";
  Reader r(body);
  SECTION("after an integer overrun") {
    CHECK(r.bytes(7) == std::string_view(body).substr(0, 7));
    CHECK(r.int16() == 0);  // only one byte left
  }
  SECTION("after a negative byte count") {
    CHECK(r.bytes(-1).empty());
  }
  SECTION("after a byte count past the end") {
    CHECK(r.bytes(9).empty());
  }
  SECTION("after a huge byte count") {
    CHECK(r.bytes(INT64_MAX).empty());
  }
  SECTION("after fail()") {
    r.fail();
  }
  CHECK_FALSE(r.ok());
  // Every accessor now yields zero or empty, even where bytes remain.
  CHECK(r.byte() == 0);
  CHECK(r.int16() == 0);
  CHECK(r.int32() == 0);
  CHECK(r.uint32() == 0);
  CHECK(r.cstring().empty());
  CHECK(r.bytes(0).empty());
  CHECK(r.rest().empty());
  CHECK(r.remaining() == 0);
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.consumedExactly());
}

TEST_CASE("Reader bytes(0) and rest() at the end succeed", "[unit][proto]") {
  Reader r("ab");
  CHECK(r.bytes(0).empty());
  CHECK(r.rest() == "ab");
  CHECK(r.rest().empty());
  CHECK(r.consumedExactly());
  CHECK(r.position() == 2);
}

TEST_CASE("Reader on an empty body fails on any read", "[unit][proto]") {
  Reader r("");
  CHECK(r.consumedExactly());
  CHECK(r.byte() == 0);
  CHECK_FALSE(r.ok());
}

TEST_CASE("Writer back-patches the length of typed and untyped messages", "[unit][proto]") {
  std::string out = "prefix";
  Writer w(out);
  w.begin('Q').cstring("SELECT 1");
  w.finish();
  w.beginUntagged().int32(80877103);
  w.finish();
  w.begin('S');
  w.finish();
  CHECK(out == wire::concat(std::string("prefix"), wire::frame('Q', wire::cstr("SELECT 1")),
                            wire::be32(8), wire::be32(80877103), wire::frame('S', "")));
}

TEST_CASE("Writer encodes every field type big-endian", "[unit][proto]") {
  std::string out;
  Writer w(out);
  w.begin('x')
      .int8(-1)
      .byte('B')
      .int16(0x0102)
      .int32(-2)
      .uint32(0xdeadbeef)
      .count16(3)
      .bytes("raw")
      .value(std::nullopt)
      .value(std::string_view("v"));
  w.finish();
  const std::string body = wire::concat(
      std::string("\xff"
                  "B",
                  2),
      wire::be16(0x0102), wire::be32(-2), wire::be32(static_cast<int32_t>(0xdeadbeefu)),
      wire::be16(3), std::string("raw"), wire::be32(-1), wire::be32(1), std::string("v"));
  CHECK(out == wire::frame('x', body));
}

TEST_CASE("Writer cuts a string at an embedded NUL so the frame stays well-formed",
          "[unit][proto]") {
  std::string out;
  Writer w(out);
  w.begin('Q').cstring(std::string_view("ab\0cd", 5));
  w.finish();
  CHECK(out == wire::frame('Q', wire::cstr("ab")));
}

}  // namespace
}  // namespace pgpivot::proto
