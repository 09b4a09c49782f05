#include "pgpivot/buf/recv_buffer.hpp"

#include <catch2/catch.hpp>
#include <cstring>

#include "pgpivot/buf/block_pool.hpp"

using pgpivot::buf::BlockPool;
using pgpivot::buf::RecvBuffer;

namespace {

void receive(RecvBuffer& buffer, const char* bytes) {
  buffer.ensureStorage();
  const std::size_t n = std::strlen(bytes);
  std::memcpy(buffer.freeTail(), bytes, n);
  buffer.commitReceived(n);
}

}  // namespace

TEST_CASE("a block pool reuses released blocks and keeps at most max_free of them", "[buf]") {
  BlockPool pool(64, 2);
  char* a = pool.acquire();
  char* b = pool.acquire();
  char* c = pool.acquire();
  CHECK(pool.inUse() == 3);
  pool.release(a);
  pool.release(b);
  pool.release(c);  // beyond max_free: freed, not kept
  CHECK(pool.inUse() == 0);
  CHECK(pool.freeBlocks() == 2);
  char* again = pool.acquire();
  CHECK(again == b);  // the most recently released block comes back first
  CHECK(pool.freeBlocks() == 1);
  pool.release(again);
}

TEST_CASE("a receive buffer holds a block only while bytes wait in it", "[buf]") {
  BlockPool pool(32, 4);
  {
    RecvBuffer buffer(pool);
    CHECK_FALSE(buffer.hasStorage());
    CHECK(buffer.capacity() == 32);
    CHECK(buffer.unparsed().empty());
    CHECK(buffer.pendingSend().empty());

    receive(buffer, "hello world");
    CHECK(pool.inUse() == 1);
    buffer.advanceParsed(5);
    CHECK(buffer.pendingSend() == "hello");
    CHECK(buffer.unparsed() == " world");

    // Bytes still wait: the block stays.
    buffer.markParsedSent();
    buffer.releaseIfDrained();
    CHECK(buffer.hasStorage());
    buffer.compact();
    CHECK(buffer.unparsed() == " world");

    buffer.skipParsed(6);
    buffer.releaseIfDrained();
    CHECK_FALSE(buffer.hasStorage());
    CHECK(pool.inUse() == 0);
    CHECK(buffer.received() == 0);
    CHECK(buffer.freeSpace() == 32);

    // A later read borrows again and sees only its own bytes.
    receive(buffer, "next");
    CHECK(buffer.unparsed() == "next");
    CHECK(pool.inUse() == 1);
  }
  // Destroying a buffer that still holds bytes gives the block back.
  CHECK(pool.inUse() == 0);
}
