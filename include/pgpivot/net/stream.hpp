// One TCP (or unix-socket) connection on a worker loop: the embedded libuv handle, its
// receive buffer, zero-copy forwarding of that buffer to a peer stream, and two-phase
// close. It knows nothing about PostgreSQL; its owner (a client session or a server
// connection) is told about reads, end of stream and the end of the close.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "pgpivot/buf/recv_buffer.hpp"

namespace pgpivot::net {

class Stream;

// A peer's address in 20 bytes, formatted only when a log line or SHOW needs it (a
// formatted string would cost every idle client a heap block).
struct PeerAddress {
  enum class Family : uint8_t { kUnknown, kIpv4, kIpv6, kUnix };
  std::array<uint8_t, 16> bytes{};
  uint16_t port = 0;
  Family family = Family::kUnknown;

  std::string toString() const;  // "127.0.0.1:5432", "[::1]:5432", "unix" or "?"
};

// Implemented by ClientSession and ServerConn. All calls happen on the stream's loop.
class StreamOwner {
 public:
  // New bytes are in the buffer, or a forward from it finished and more may be parsed.
  virtual void onStreamData(Stream& stream) = 0;
  // The peer closed (status UV_EOF) or the socket failed (a libuv error code).
  virtual void onStreamEnd(Stream& stream, int status) = 0;
  // An outgoing connect finished (status 0 or a libuv error code).
  virtual void onStreamConnected(Stream& stream, int status) = 0;
  // The handle is closed and no forward references the buffer: the owner may be freed.
  virtual void onStreamClosed(Stream& stream) = 0;

 protected:
  ~StreamOwner() = default;
};

class Stream final {
 public:
  enum class Kind { kTcp, kPipe };

  // The receive buffer borrows its blocks from `buffers` (the worker's pool), which must
  // outlive the stream.
  Stream(uv_loop_t* loop, StreamOwner& owner, buf::BlockPool& buffers, Kind kind = Kind::kTcp);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Accepts a pending connection from a listening handle. Returns a libuv error code.
  [[nodiscard]] int accept(uv_stream_t* listener);
  // Starts a non-blocking connect; onStreamConnected reports the outcome.
  [[nodiscard]] int connect(const sockaddr* address);
  // The same over a unix socket (a Kind::kPipe stream).
  void connectPipe(const std::string& path);

  // Moving a connected socket to another loop (a server connection changing worker):
  // releaseSocket() returns a duplicate descriptor the caller now owns (or a negative
  // libuv error code) and closes this stream without a word to the peer, which sees
  // nothing; adopt() makes a fresh stream of that descriptor on this stream's loop.
  // Only for a stream with nothing buffered, written or in flight.
  [[nodiscard]] int releaseSocket();
  [[nodiscard]] int adopt(int fd);

  void startReading();
  void stopReading();
  bool reading() const { return reading_; }

  // SUSPEND (admin console). While reads are suspended on the calling loop's thread (one
  // loop per thread), startReading() on a stream that is not exempt only records the
  // wish; holdReading() stops a reading stream the same way, and resumeReading() starts
  // it again once reads are no longer suspended.
  static void setReadsSuspended(bool suspended);
  [[nodiscard]] static bool readsSuspended();
  void setSuspendExempt(bool exempt) { suspend_exempt_ = exempt; }
  void holdReading();
  void resumeReading();
  // Bytes libuv still has to write (plus one while a forward is in flight): 0 once flushed.
  [[nodiscard]] std::size_t unflushedBytes() const;

  // Sends this buffer's parsed-but-unsent bytes to `target` without copying them. Usually
  // the kernel takes them at once (one write, no request, nothing in flight). Otherwise
  // the rest is queued with a write request borrowed from this thread's pool: while it is
  // in flight the buffer is not compacted, but reading goes on into the free tail and
  // stops only once the buffer is full (backpressure). The owner is not told about those
  // bytes until the queued write completes; then onStreamData fires on it.
  void forwardTo(Stream& target);
  bool forwardInFlight() const { return forward_in_flight_; }

  // Sends bytes pgpivot generated itself (errors, login replies, SET queries, rewritten
  // messages): written at once when the kernel takes them, otherwise copied and kept until
  // libuv has written them. The caller's buffer can be reused as soon as this returns.
  void writeOwned(std::string_view bytes);

  // Batching for one relay pass (the relay corks its target): while corked, writeOwned
  // keeps its bytes in a per-thread staging area, and a forward to this stream sends them
  // together with its own bytes in one writev. The last uncork sends what is left. Order
  // is kept: staged bytes always go before what is forwarded after them.
  void cork() { ++cork_depth_; }
  void uncork();

  // Write requests kept for reuse by this thread's streams (forwards the kernel did not
  // take at once), and how many are out now. For tests and SHOW MEM-like figures.
  [[nodiscard]] static std::size_t pooledWriteRequests();
  [[nodiscard]] static std::size_t writeRequestsInUse();

  // Idempotent. Stops reading, closes the handle; onStreamClosed follows once the
  // handle is closed and no forward from this buffer is in flight.
  void close();
  bool closing() const { return closing_; }

  buf::RecvBuffer& buffer() { return buffer_; }
  const buf::RecvBuffer& buffer() const { return buffer_; }
  StreamOwner& owner() { return owner_; }
  Kind kind() const { return kind_; }
  PeerAddress peerAddress() const;
  // The libuv handle, for socket options its owner sets (net/tcp_options.hpp).
  uv_stream_t* uvStream() { return handle(); }
  std::string peerName() const { return peerAddress().toString(); }
  uint64_t bytesIn() const { return bytes_in_; }
  uint64_t bytesOut() const { return bytes_out_; }

 private:
  uv_stream_t* handle() { return reinterpret_cast<uv_stream_t*>(&handle_); }
  void maybeFinishClose();
  void closeHandle();
  void onForwardDone(int status);
  // Writes as much of `bytes` as the kernel takes now, without queueing: the count
  // written, 0 when it would block or a write is already queued, or a libuv error.
  [[nodiscard]] int tryWrite(std::string_view bytes);
  // The same for two pieces in one writev (staged bytes, then forwarded ones).
  [[nodiscard]] int tryWrite(std::string_view first, std::string_view second);
  // writeOwned without the cork: writes now, queues a copy of what the kernel does not take.
  void sendOwned(std::string_view bytes);
  // Sends what this stream has staged, if anything, and frees its staging entry.
  void sendStaged();
  static void onConnectDone(uv_connect_t* req, int status);
  // Returns the buffer's block to the pool when nothing waits in it (an idle connection
  // holds no buffer).
  void releaseBufferIfIdle();

  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } handle_{};
  Kind kind_;
  StreamOwner& owner_;
  buf::RecvBuffer buffer_;
  bool reading_ = false;
  bool wants_reading_ = false;   // held by SUSPEND: resumeReading() starts it again
  bool suspend_exempt_ = false;  // the admin console keeps reading through SUSPEND
  bool forward_in_flight_ = false;
  bool closing_ = false;
  bool handle_closing_ = false;
  bool handle_closed_ = false;
  bool close_reported_ = false;
  uint8_t cork_depth_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

}  // namespace pgpivot::net
