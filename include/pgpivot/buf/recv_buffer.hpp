// A connection's receive buffer with PgBouncer's three cursors. Bytes are read into the
// free tail, parsed in place, and forwarded to the peer straight from here (no copy).
// Not responsible for sockets or for deciding what a message means.
//
//   0          sent        parsed        received              capacity
//   |-- done --|-- to send --|-- unparsed --|------- free -------|
//
// Invariant: 0 <= sent <= parsed <= received <= capacity. Compaction (moving the
// unsent tail to the front) happens only when no write from this buffer is in flight.
//
// The storage is a block borrowed from the worker's BlockPool while bytes are in the
// buffer: reading takes one (ensureStorage), and once every byte is sent or consumed
// the owner gives it back (releaseIfDrained). Views handed out by pendingSend/unparsed
// are valid until the next release.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

#include "pgpivot/buf/block_pool.hpp"
#include "pgpivot/core/assert.hpp"

namespace pgpivot::buf {

class RecvBuffer final {
 public:
  explicit RecvBuffer(BlockPool& pool) : pool_(pool), capacity_(pool.blockSize()) {}
  ~RecvBuffer() {
    if (data_ != nullptr) {
      pool_.release(data_);
    }
  }
  RecvBuffer(const RecvBuffer&) = delete;
  RecvBuffer& operator=(const RecvBuffer&) = delete;

  std::size_t capacity() const { return capacity_; }
  bool hasStorage() const { return data_ != nullptr; }
  // Borrows a block before a read.
  void ensureStorage() {
    if (data_ == nullptr) {
      data_ = pool_.acquire();
    }
  }
  // Gives the block back when nothing in it is waiting to be parsed or sent. The caller
  // guarantees no write from this buffer is in flight.
  void releaseIfDrained() {
    if (data_ != nullptr && sent_ == received_) {
      pool_.release(data_);
      data_ = nullptr;
      sent_ = parsed_ = received_ = 0;
    }
  }
  std::size_t sent() const { return sent_; }
  std::size_t parsed() const { return parsed_; }
  std::size_t received() const { return received_; }

  char* freeTail() {
    PGPIVOT_ASSERT(data_ != nullptr);
    return data_ + received_;
  }
  std::size_t freeSpace() const { return capacity_ - received_; }

  // Bytes parsed and waiting to go to the peer.
  std::string_view pendingSend() const {
    return data_ == nullptr ? std::string_view() : std::string_view(data_ + sent_, parsed_ - sent_);
  }
  // Bytes received and not yet parsed.
  std::string_view unparsed() const {
    return data_ == nullptr ? std::string_view()
                            : std::string_view(data_ + parsed_, received_ - parsed_);
  }

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
  // Marks the first `n` bytes pending send as sent (the kernel took only part of them).
  void markSent(std::size_t n) {
    PGPIVOT_ASSERT(sent_ + n <= parsed_);
    sent_ += n;
  }
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
      std::memmove(data_, data_ + sent_, keep);
    }
    parsed_ -= sent_;
    received_ -= sent_;
    sent_ = 0;
  }

  // Forgets everything (a server connection being reused after a dropped link).
  void clear() { sent_ = parsed_ = received_ = 0; }

 private:
  BlockPool& pool_;
  char* data_ = nullptr;
  std::size_t capacity_;
  std::size_t sent_ = 0;
  std::size_t parsed_ = 0;
  std::size_t received_ = 0;
};

}  // namespace pgpivot::buf
