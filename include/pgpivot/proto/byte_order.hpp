// Network byte order (big-endian) loads and stores for the integer widths the protocol
// uses. Byte-wise shifts on unsigned values keep this free of alignment assumptions and of
// signed-shift pitfalls. Callers guarantee the bytes exist; nothing here checks bounds.
#pragma once

#include <cstdint>

namespace pgpivot::proto {

[[nodiscard]] constexpr uint16_t loadUint16(const char* p) noexcept {
  return static_cast<uint16_t>((static_cast<uint32_t>(static_cast<uint8_t>(p[0])) << 8) |
                               static_cast<uint32_t>(static_cast<uint8_t>(p[1])));
}

[[nodiscard]] constexpr uint32_t loadUint32(const char* p) noexcept {
  return (static_cast<uint32_t>(static_cast<uint8_t>(p[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3]));
}

// C++20 defines unsigned-to-signed conversion as modular, so these are exact.
[[nodiscard]] constexpr int16_t loadInt16(const char* p) noexcept {
  return static_cast<int16_t>(loadUint16(p));
}
[[nodiscard]] constexpr int32_t loadInt32(const char* p) noexcept {
  return static_cast<int32_t>(loadUint32(p));
}

constexpr void storeUint32(char* p, uint32_t v) noexcept {
  p[0] = static_cast<char>((v >> 24) & 0xff);
  p[1] = static_cast<char>((v >> 16) & 0xff);
  p[2] = static_cast<char>((v >> 8) & 0xff);
  p[3] = static_cast<char>(v & 0xff);
}
constexpr void storeInt32(char* p, int32_t v) noexcept {
  storeUint32(p, static_cast<uint32_t>(v));
}
constexpr void storeInt16(char* p, int16_t v) noexcept {
  const auto u = static_cast<uint16_t>(v);
  p[0] = static_cast<char>((u >> 8) & 0xff);
  p[1] = static_cast<char>(u & 0xff);
}

}  // namespace pgpivot::proto
