// Bounds-checked cursor over one message body, in network byte order. Failure is sticky
// (PgBouncer's PktBuf.failed): after the first overrun every accessor returns zero or an
// empty view and ok() stays false, so a parser reads all fields and checks once at the end
// with consumedExactly(). Returned views point into the caller's buffer; nothing is copied.
// The Reader does not know message layouts (views.hpp does) and never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "pgpivot/proto/byte_order.hpp"

namespace pgpivot::proto {

class Reader final {
 public:
  explicit Reader(std::string_view body) noexcept : in_(body) {}

  [[nodiscard]] uint8_t byte() noexcept {
    const char* p = take(1);
    return p == nullptr ? 0 : static_cast<uint8_t>(*p);
  }

  [[nodiscard]] int16_t int16() noexcept {
    const char* p = take(2);
    return p == nullptr ? int16_t{0} : loadInt16(p);
  }

  [[nodiscard]] int32_t int32() noexcept {
    const char* p = take(4);
    return p == nullptr ? 0 : loadInt32(p);
  }

  // Same four bytes as int32(), for OIDs, which PostgreSQL declares unsigned.
  [[nodiscard]] uint32_t uint32() noexcept {
    const char* p = take(4);
    return p == nullptr ? 0 : loadUint32(p);
  }

  // A NUL-terminated string; the view excludes the NUL, the cursor moves past it.
  // Fails when no NUL is left in the body.
  [[nodiscard]] std::string_view cstring() noexcept {
    if (!ok_) {
      return {};
    }
    const size_t nul = in_.find('\0', pos_);
    if (nul == std::string_view::npos) {
      ok_ = false;
      return {};
    }
    const std::string_view s = in_.substr(pos_, nul - pos_);
    pos_ = nul + 1;
    return s;
  }

  // Exactly n bytes. Takes a signed 64-bit count so that a negative length read off the
  // wire is rejected here instead of turning into a huge unsigned size.
  [[nodiscard]] std::string_view bytes(int64_t n) noexcept {
    if (!ok_ || n < 0 || static_cast<uint64_t>(n) > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    const std::string_view s = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  // Everything left (possibly empty); never fails by itself.
  [[nodiscard]] std::string_view rest() noexcept {
    if (!ok_) {
      return {};
    }
    const std::string_view s = in_.substr(pos_);
    pos_ = in_.size();
    return s;
  }

  // Marks the body malformed for a reason only the caller can see (a bad enum byte, a
  // negative count); keeps the single check at the end.
  void fail() noexcept { ok_ = false; }

  [[nodiscard]] size_t remaining() const noexcept { return ok_ ? in_.size() - pos_ : 0; }
  [[nodiscard]] size_t position() const noexcept { return pos_; }
  [[nodiscard]] bool ok() const noexcept { return ok_; }
  [[nodiscard]] bool consumedExactly() const noexcept { return ok_ && pos_ == in_.size(); }

 private:
  // Pointer to n readable bytes and advance, or nullptr (and fail) on overrun.
  const char* take(size_t n) noexcept {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return nullptr;
    }
    const char* p = in_.data() + pos_;
    pos_ += n;
    return p;
  }

  std::string_view in_;
  size_t pos_ = 0;  // invariant: pos_ <= in_.size()
  bool ok_ = true;
};

}  // namespace pgpivot::proto
