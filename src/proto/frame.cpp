// Header and whole-frame decoding. The order of checks is the point of this file: the
// length is judged as a signed 32-bit value against signed 64-bit limits before it is
// ever turned into a size_t, so no hostile length can wrap (Odyssey's kiwi_read lesson).
#include "pgpivot/proto/frame.hpp"

#include "pgpivot/proto/byte_order.hpp"
#include "pgpivot/proto/constants.hpp"

namespace pgpivot::proto {

Decode decodeHeader(std::string_view in, const Limits& limits, FrameHeader& out) noexcept {
  if (in.size() < kHeaderSize) {
    return Decode::kNeedMore;
  }
  const int32_t length = loadInt32(in.data() + 1);
  // length counts itself, so anything below 4 (negative included) is garbage; a length
  // above the limit is refused before the caller waits for gigabytes that never come.
  if (length < 4 || static_cast<int64_t>(length) > limits.max_message_length) {
    return Decode::kInvalid;
  }
  out.tag = in[0];
  out.length = length;
  return Decode::kFrame;
}

Decode decodeStartupHeader(std::string_view in, int32_t& length) noexcept {
  if (in.size() < 4) {
    return Decode::kNeedMore;
  }
  const int32_t value = loadInt32(in.data());
  if (value < kMinStartupPacketLength || value > kMaxStartupPacketLength) {
    return Decode::kInvalid;
  }
  length = value;
  return Decode::kFrame;
}

Decode nextFrame(std::string_view in, const Limits& limits, FrameView& out,
                 size_t& consumed) noexcept {
  consumed = 0;
  FrameHeader header;
  const Decode d = decodeHeader(in, limits, header);
  if (d != Decode::kFrame) {
    return d;
  }
  if (in.size() < header.total()) {
    return Decode::kNeedMore;
  }
  out.tag = header.tag;
  out.body = in.substr(kHeaderSize, header.bodyLength());
  consumed = header.total();
  return Decode::kFrame;
}

Decode nextStartupPacket(std::string_view in, StartupPacketView& out, size_t& consumed) noexcept {
  consumed = 0;
  int32_t length = 0;
  const Decode d = decodeStartupHeader(in, length);
  if (d != Decode::kFrame) {
    return d;
  }
  const auto total = static_cast<size_t>(length);  // 8..10000, checked above
  if (in.size() < total) {
    return Decode::kNeedMore;
  }
  out.body = in.substr(4, total - 4);
  out.code = loadInt32(out.body.data());
  consumed = total;
  return Decode::kFrame;
}

}  // namespace pgpivot::proto
