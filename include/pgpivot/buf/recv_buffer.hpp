// A connection's receive buffer with PgBouncer's three cursors. Bytes are read into the
// free tail, parsed in place, and forwarded to the peer straight from here (no copy).
// Not responsible for sockets or for deciding what a message means.
//
//   0          sent        parsed        received              capacity
//   |-- done --|-- to send --|-- unparsed --|------- free -------|
//
// Invariant: 0 <= sent <= parsed <= received <= capacity. Compaction (moving the
// unsent tail to the front) happens only when no write from this buffer is in flight.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

#include "pgpivot/core/assert.hpp"

namespace pgpivot::buf {

class RecvBuffer final {
 public:
  explicit RecvBuffer(std::size_t capacity)
      : data_(std::make_unique<char[]>(capacity)), capacity_(capacity) {}

  std::size_t capacity() const { return capacity_; }
  std::size_t sent() const { return sent_; }
  std::size_t parsed() const { return parsed_; }
  std::size_t received() const { return received_; }

  char* freeTail() { return data_.get() + received_; }
  std::size_t freeSpace() const { return capacity_ - received_; }

  // Bytes parsed and waiting to go to the peer.
  std::string_view pendingSend() const { return {data_.get() + sent_, parsed_ - sent_}; }
  // Bytes received and not yet parsed.
  std::string_view unparsed() const { return {data_.get() + parsed_, received_ - parsed_}; }

  void commitReceived(std::size_t n) {
    PGPIVOT_ASSERT(n <= freeSpace());
    received_ += n;
  }
  void advanceParsed(std::size_t n) {
    PGPIVOT_ASSERT(parsed_ + n <= received_);
    parsed_ += n;
  }
  // Marks every parsed byte as gone (sent, or consumed by pgpivot itself).
  void markParsedSent() { sent_ = parsed_; }
  // Drops parsed bytes that were consumed rather than forwarded. Only valid when nothing
  // is pending send before them.
  void skipParsed(std::size_t n) {
    PGPIVOT_ASSERT(sent_ == parsed_);
    advanceParsed(n);
    sent_ = parsed_;
  }

  // Moves the unsent tail to the front. The caller guarantees no write is in flight.
  void compact() {
    if (sent_ == 0) {
      return;
    }
    const std::size_t keep = received_ - sent_;
    if (keep > 0) {
      std::memmove(data_.get(), data_.get() + sent_, keep);
    }
    parsed_ -= sent_;
    received_ -= sent_;
    sent_ = 0;
  }

  // Forgets everything (a server connection being reused after a dropped link).
  void clear() { sent_ = parsed_ = received_ = 0; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t capacity_;
  std::size_t sent_ = 0;
  std::size_t parsed_ = 0;
  std::size_t received_ = 0;
};

}  // namespace pgpivot::buf
