// Framing of the PostgreSQL v3 protocol: where one message ends and the next begins.
// decodeHeader() judges a typed header (tag + Int32 length) and decodeStartupHeader() the
// untyped first packet; nextFrame()/nextStartupPacket() cut whole messages out of a buffer.
// Lengths are validated in signed arithmetic before any size is derived from them, so a
// hostile length can never wrap. This module does not read message bodies (see reader.hpp,
// views.hpp) and keeps no state between calls (see stream.hpp for the incremental scanner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pgpivot/core/assert.hpp"

namespace pgpivot::proto {

// Three-valued on purpose (STYLE.md 3.4): "wait for bytes" and "this is garbage" must
// never share a value.
enum class Decode {
  kNeedMore,  // not enough bytes yet to decide; call again with more
  kFrame,     // a header (or whole frame) was decoded
  kInvalid,   // the bytes cannot be a valid message: the connection must be closed
};

struct Limits {
  // Largest accepted length field (as on the wire, so including its own 4 bytes).
  // PostgreSQL itself caps most messages at 1 GB (PQ_LARGE_MESSAGE_LIMIT is 1 GB - 1).
  int64_t max_message_length = int64_t{1} << 30;
};

// Tag byte plus Int32 length.
inline constexpr size_t kHeaderSize = 5;

struct FrameHeader {
  char tag = 0;
  // As on the wire: counts the 4 length bytes and the body, not the tag.
  int32_t length = 0;

  // Only meaningful for a header that decodeHeader() accepted (length >= 4).
  [[nodiscard]] size_t total() const noexcept {
    PGPIVOT_ASSERT(length >= 4);
    return 1 + static_cast<size_t>(length);
  }
  [[nodiscard]] size_t bodyLength() const noexcept {
    PGPIVOT_ASSERT(length >= 4);
    return static_cast<size_t>(length) - 4;
  }
};

// Decodes the 5-byte header at the front of `in`.
//   kNeedMore  fewer than 5 bytes;
//   kInvalid   length < 4 (negative included) or length > limits.max_message_length;
//   kFrame     `out` is filled; the body may still be incomplete.
[[nodiscard]] Decode decodeHeader(std::string_view in, const Limits& limits,
                                  FrameHeader& out) noexcept;

// Decodes the length word of an untyped start-up packet (StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest). Four bytes suffice to judge the length, so:
//   kNeedMore  fewer than 4 bytes;
//   kInvalid   length < kMinStartupPacketLength (8) or > kMaxStartupPacketLength;
//   kFrame     `length` is set (as on the wire, counting its own 4 bytes).
[[nodiscard]] Decode decodeStartupHeader(std::string_view in, int32_t& length) noexcept;

// A whole typed message. `body` views the caller's buffer and excludes tag and length.
struct FrameView {
  char tag = 0;
  std::string_view body;
};

// Cuts the first complete message off `in`. kFrame sets `out` and `consumed` (= 1 + length);
// kNeedMore also covers a valid header whose body has not fully arrived. `consumed` is 0
// unless kFrame is returned.
[[nodiscard]] Decode nextFrame(std::string_view in, const Limits& limits, FrameView& out,
                               size_t& consumed) noexcept;

// A whole untyped start-up packet. `body` starts right after the length word, so its first
// 4 bytes are the code (also decoded into `code`); parseStartup() and parseCancelRequest()
// take this `body`.
struct StartupPacketView {
  int32_t code = 0;
  std::string_view body;
};

[[nodiscard]] Decode nextStartupPacket(std::string_view in, StartupPacketView& out,
                                       size_t& consumed) noexcept;

}  // namespace pgpivot::proto
