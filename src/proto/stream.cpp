// FrameScanner: a header/body state machine driven by chunk boundaries. Between chunks it
// holds at most 4 header bytes and a signed count of body bytes still owed, never the
// stream itself.
#include "pgpivot/proto/stream.hpp"

#include <cstring>

namespace pgpivot::proto {

Decode FrameScanner::scan(std::string_view chunk, size_t& offset, FrameHeader& header) noexcept {
  if (broken_) {
    return Decode::kInvalid;
  }
  // A different chunk before the last one was exhausted breaks the contract (stream.hpp);
  // checked in release too, since the arithmetic below would otherwise run off the chunk.
  PGPIVOT_CHECK(chunk_pos_ <= chunk.size());

  // 1. Skip body bytes owed by the current message. A body larger than the chunk simply
  //    eats the chunk; body_remaining_ is int64_t so a 1 GB body counts down exactly.
  if (body_remaining_ > 0) {
    const size_t avail = chunk.size() - chunk_pos_;
    const size_t skip = body_remaining_ < static_cast<int64_t>(avail)
                            ? static_cast<size_t>(body_remaining_)
                            : avail;
    chunk_pos_ += skip;
    body_remaining_ -= static_cast<int64_t>(skip);
  }
  if (chunk_pos_ == chunk.size()) {
    chunk_pos_ = 0;  // chunk accounted for; the next call starts a new one
    return Decode::kNeedMore;
  }

  // 2. At a header. Complete it from this chunk, or hold what there is.
  const size_t start = chunk_pos_;
  const size_t need = kHeaderSize - pending_size_;
  const size_t avail = chunk.size() - chunk_pos_;
  if (avail < need) {
    std::memcpy(pending_ + pending_size_, chunk.data() + chunk_pos_, avail);
    pending_size_ += avail;
    chunk_pos_ = 0;
    return Decode::kNeedMore;
  }
  char bytes[kHeaderSize];
  std::memcpy(bytes, pending_, pending_size_);
  std::memcpy(bytes + pending_size_, chunk.data() + chunk_pos_, need);
  carried_ = pending_size_;
  pending_size_ = 0;
  chunk_pos_ += need;

  if (decodeHeader(std::string_view(bytes, kHeaderSize), limits_, header) != Decode::kFrame) {
    broken_ = true;
    return Decode::kInvalid;
  }
  body_remaining_ = static_cast<int64_t>(header.bodyLength());
  offset = carried_ > 0 ? 0 : start;
  return Decode::kFrame;
}

void FrameScanner::reset() noexcept {
  pending_size_ = 0;
  carried_ = 0;
  chunk_pos_ = 0;
  body_remaining_ = 0;
  broken_ = false;
}

}  // namespace pgpivot::proto
