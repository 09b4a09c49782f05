// FrameScanner: finds message boundaries in a typed byte stream that arrives in arbitrary
// chunks, without copying or buffering the stream. It is for relaying: the caller forwards
// each chunk as it is and sees every header (tag + length) exactly once, even when the
// 5 header bytes are split across chunks (it keeps up to 4 of them) and even when a body
// is far larger than any chunk (it counts the body down). It does not see bodies, handle
// the untyped start-up packet, or hold any connection state beyond the stream position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pgpivot/proto/frame.hpp"

namespace pgpivot::proto {

// Contract: call scan() with the same chunk until it returns kNeedMore; that chunk is then
// fully accounted for and the next call starts a new chunk. kInvalid is final: the stream
// cannot be framed any more and the connection must be closed.
//
// Example: the stream `Q len=13 "SELECT 1\0"` + `S len=4` arrives as chunks of 3 and 16
// bytes.
//
//   FrameScanner scanner;
//   size_t offset = 0;
//   FrameHeader h;
//   scanner.scan(chunk1, offset, h);  // kNeedMore: 3 header bytes held
//   scanner.scan(chunk2, offset, h);  // kFrame: h = {'Q', 13}, offset 0 (header began
//                                     // earlier; carriedHeaderBytes() == 3)
//   scanner.scan(chunk2, offset, h);  // kFrame: h = {'S', 4}, offset 11
//   scanner.scan(chunk2, offset, h);  // kNeedMore: chunk2 done, nothing pending
//
// Bytes [offset, offset + h.total() - carriedHeaderBytes()) of the stream, counted from
// the chunk start, belong to the message; the part past the chunk end is in later chunks.
class FrameScanner final {
 public:
  explicit FrameScanner(Limits limits = {}) noexcept : limits_(limits) {}

  // kFrame: a new header completed in `chunk`; `header` is set and `offset` is where in
  //         `chunk` it began, or 0 if it began in an earlier chunk.
  // kNeedMore: the rest of `chunk` is consumed (body bytes, or a partial header now held).
  // kInvalid: a header with a bad length (see decodeHeader); sticky.
  [[nodiscard]] Decode scan(std::string_view chunk, size_t& offset, FrameHeader& header) noexcept;

  // Header bytes of the last reported frame that came from earlier chunks (0..4).
  [[nodiscard]] size_t carriedHeaderBytes() const noexcept { return carried_; }
  // Header bytes held while waiting for the rest of a split header (0..4).
  [[nodiscard]] size_t pendingHeaderBytes() const noexcept { return pending_size_; }
  // Body bytes of the current message not yet seen.
  [[nodiscard]] int64_t bodyRemaining() const noexcept { return body_remaining_; }
  // True at a message boundary: no partial header held and no body bytes owed.
  [[nodiscard]] bool atBoundary() const noexcept {
    return pending_size_ == 0 && body_remaining_ == 0 && !broken_;
  }
  [[nodiscard]] bool broken() const noexcept { return broken_; }

  // Back to the start of a fresh stream (e.g. a server connection reused).
  void reset() noexcept;

 private:
  Limits limits_;
  char pending_[kHeaderSize - 1] = {};
  size_t pending_size_ = 0;
  size_t carried_ = 0;
  size_t chunk_pos_ = 0;  // progress within the chunk being scanned
  int64_t body_remaining_ = 0;
  bool broken_ = false;
};

}  // namespace pgpivot::proto
