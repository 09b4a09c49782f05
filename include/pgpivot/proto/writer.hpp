// Appends protocol messages to a std::string the caller owns. begin()/beginUntagged()
// reserve the length word and finish() back-patches it (PgBouncer's pktbuf_start_packet /
// finish_packet), so no message size is ever computed by hand. One Writer may emit many
// messages in sequence, but never two open at once. The Writer knows no message layouts;
// the typed builders in messages.hpp do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "pgpivot/core/assert.hpp"
#include "pgpivot/proto/byte_order.hpp"

namespace pgpivot::proto {

class Writer final {
 public:
  explicit Writer(std::string& out) noexcept : out_(out) {}
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() { PGPIVOT_ASSERT(!open_); }

  // Typed message: tag byte, then a length placeholder.
  Writer& begin(char tag) {
    PGPIVOT_ASSERT(!open_);
    out_.push_back(tag);
    return openLength();
  }

  // Start-up style packet (StartupMessage, SSLRequest, CancelRequest): length only.
  Writer& beginUntagged() {
    PGPIVOT_ASSERT(!open_);
    return openLength();
  }

  Writer& byte(char v) {
    out_.push_back(v);
    return *this;
  }
  Writer& int8(int8_t v) { return byte(static_cast<char>(v)); }
  Writer& int16(int16_t v) {
    char b[2];
    storeInt16(b, v);
    out_.append(b, sizeof b);
    return *this;
  }
  Writer& int32(int32_t v) {
    char b[4];
    storeInt32(b, v);
    out_.append(b, sizeof b);
    return *this;
  }
  Writer& uint32(uint32_t v) {
    char b[4];
    storeUint32(b, v);
    out_.append(b, sizeof b);
    return *this;
  }

  // A count written as Int16. Counts come from pgpivot's own data, so one that does not
  // fit is a bug, not bad input.
  Writer& count16(size_t n) {
    PGPIVOT_CHECK(n <= static_cast<size_t>(std::numeric_limits<int16_t>::max()));
    return int16(static_cast<int16_t>(n));
  }

  // Writes `s` and a NUL. A protocol string cannot contain NUL, so anything from the first
  // embedded NUL on is dropped rather than producing a frame the peer would misparse.
  Writer& cstring(std::string_view s) {
    const size_t nul = s.find('\0');
    if (nul != std::string_view::npos) {
      s = s.substr(0, nul);
    }
    out_.append(s);
    out_.push_back('\0');
    return *this;
  }

  Writer& bytes(std::string_view s) {
    out_.append(s);
    return *this;
  }

  // Int32 length then the bytes; std::nullopt is SQL NULL (length -1). Used by Bind,
  // DataRow, FunctionCall and FunctionCallResponse.
  Writer& value(std::optional<std::string_view> v) {
    if (!v) {
      return int32(-1);
    }
    PGPIVOT_CHECK(v->size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()));
    int32(static_cast<int32_t>(v->size()));
    return bytes(*v);
  }

  // Back-patches the length of the open message: everything from the length word on.
  void finish() {
    PGPIVOT_ASSERT(open_);
    const size_t length = out_.size() - length_at_;
    PGPIVOT_CHECK(length <= static_cast<size_t>(std::numeric_limits<int32_t>::max()));
    storeInt32(out_.data() + length_at_, static_cast<int32_t>(length));
    open_ = false;
  }

 private:
  Writer& openLength() {
    length_at_ = out_.size();
    out_.append(4, '\0');
    open_ = true;
    return *this;
  }

  std::string& out_;
  size_t length_at_ = 0;  // offset of the open message's length word in out_
  bool open_ = false;
};

}  // namespace pgpivot::proto
