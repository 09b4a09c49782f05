#include "pgpivot/buf/block_pool.hpp"

#include "pgpivot/core/assert.hpp"

namespace pgpivot::buf {

BlockPool::BlockPool(std::size_t block_size, std::size_t max_free)
    : block_size_(block_size), max_free_(max_free) {
  PGPIVOT_ASSERT(block_size_ > 0);
  free_.reserve(max_free_);
}

BlockPool::~BlockPool() {
  for (char* block : free_) {
    delete[] block;
  }
}

char* BlockPool::acquire() {
  ++in_use_;
  if (!free_.empty()) {
    char* block = free_.back();  // the most recently used block: likely still in cache
    free_.pop_back();
    return block;
  }
  return new char[block_size_];
}

void BlockPool::release(char* block) {
  PGPIVOT_ASSERT(block != nullptr && in_use_ > 0);
  --in_use_;
  if (free_.size() < max_free_) {
    free_.push_back(block);
    return;
  }
  delete[] block;
}

}  // namespace pgpivot::buf
