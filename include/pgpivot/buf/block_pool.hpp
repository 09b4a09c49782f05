// Receive-buffer blocks of one size, recycled per worker. A connection holds a block only
// while bytes sit in its buffer: an idle client costs no buffer at all (PgBouncer's
// iobuf idea), and a busy worker reuses warm blocks instead of calling malloc per read.
// One pool per worker loop; not thread-safe by design (nothing crosses loops).
#pragma once

#include <cstddef>
#include <vector>

namespace pgpivot::buf {

class BlockPool final {
 public:
  // Keeps at most `max_free` released blocks for reuse; beyond that they go back to the
  // allocator, so a burst of connections does not pin its peak memory forever.
  explicit BlockPool(std::size_t block_size, std::size_t max_free = kDefaultMaxFree);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  std::size_t blockSize() const { return block_size_; }
  // Uninitialized storage of blockSize() bytes (a receive buffer never reads bytes it
  // did not receive, so zeroing them would only cost page faults).
  [[nodiscard]] char* acquire();
  void release(char* block);

  std::size_t inUse() const { return in_use_; }
  std::size_t freeBlocks() const { return free_.size(); }

#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer every release frees, so a view that outlives its bytes is a
  // reported use-after-free instead of silently reading a recycled block.
  static constexpr std::size_t kDefaultMaxFree = 0;
#else
  static constexpr std::size_t kDefaultMaxFree = 256;
#endif

 private:
  std::size_t block_size_;
  std::size_t max_free_;
  std::size_t in_use_ = 0;
  std::vector<char*> free_;
};

}  // namespace pgpivot::buf
