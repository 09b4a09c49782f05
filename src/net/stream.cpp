#include "pgpivot/net/stream.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace pgpivot::net {
namespace {

// A write of bytes pgpivot generated: owns them until libuv is done with them.
struct OwnedWrite {
  uv_write_t req{};
  std::string bytes;
};

// Write requests for forwards the kernel did not take at once, recycled per thread (one
// worker loop per thread). A stream holds one only while such a forward is queued, so
// an idle client carries no 192-byte uv_write_t; under backpressure the requests are
// reused instead of allocated per write.
class WriteRequestPool final {
 public:
  WriteRequestPool() = default;
  WriteRequestPool(const WriteRequestPool&) = delete;
  WriteRequestPool& operator=(const WriteRequestPool&) = delete;
  ~WriteRequestPool() {
    for (uv_write_t* req : free_) {
      delete req;
    }
  }

  uv_write_t* acquire() {
    ++in_use_;
    if (free_.empty()) {
      return new uv_write_t{};
    }
    uv_write_t* req = free_.back();
    free_.pop_back();
    return req;
  }

  void release(uv_write_t* req) {
    --in_use_;
    if (free_.size() < kMaxFree) {
      free_.push_back(req);
      return;
    }
    delete req;
  }

  std::size_t pooled() const { return free_.size(); }
  std::size_t inUse() const { return in_use_; }

 private:
#if defined(__SANITIZE_ADDRESS__)
  static constexpr std::size_t kMaxFree = 0;  // every release frees: misuse is reported
#else
  static constexpr std::size_t kMaxFree = 64;
#endif
  std::vector<uv_write_t*> free_;
  std::size_t in_use_ = 0;
};

WriteRequestPool& writeRequests() {
  thread_local WriteRequestPool pool;
  return pool;
}

// Bytes writeOwned produced for corked streams, per thread (one loop per thread). At most
// a couple of streams are corked at once (a relay pass and one nested in it). An entry
// outlives its use and keeps its buffer: a relay pass that rewrites a message (a Bind of a
// prepared statement, every transaction of `pgbench -M prepared`) allocates nothing.
struct Staged {
  const Stream* stream = nullptr;  // nullptr: free
  std::string bytes;
};

// Larger buffers are given back when their entry is freed.
constexpr std::size_t kKeptStagingCapacity = 16 * 1024;

std::vector<Staged>& staging() {
  thread_local std::vector<Staged> staged;
  return staged;
}

Staged* stagedFor(const Stream* stream) {
  for (Staged& entry : staging()) {
    if (entry.stream == stream) {
      return &entry;
    }
  }
  return nullptr;
}

void freeStaged(Staged& entry) {
  entry.stream = nullptr;
  if (entry.bytes.capacity() > kKeptStagingCapacity) {
    std::string().swap(entry.bytes);
  } else {
    entry.bytes.clear();
  }
}

}  // namespace

Stream::~Stream() {
  if (Staged* entry = cork_depth_ > 0 ? stagedFor(this) : nullptr) {
    freeStaged(*entry);
  }
}

void Stream::sendStaged() {
  Staged* entry = stagedFor(this);
  if (entry == nullptr) {
    return;
  }
  // sendOwned copies what it cannot write now before the entry is reused.
  sendOwned(entry->bytes);
  freeStaged(*entry);
}

void Stream::uncork() {
  if (cork_depth_ == 0) {
    return;  // closed inside the pass: close() sent what was staged
  }
  if (--cork_depth_ > 0) {
    return;
  }
  sendStaged();
}

std::size_t Stream::pooledWriteRequests() {
  return writeRequests().pooled();
}

std::size_t Stream::writeRequestsInUse() {
  return writeRequests().inUse();
}

Stream::Stream(uv_loop_t* loop, StreamOwner& owner, buf::BlockPool& buffers, Kind kind)
    : kind_(kind), owner_(owner), buffer_(buffers) {
  if (kind_ == Kind::kTcp) {
    uv_tcp_init(loop, &handle_.tcp);
  } else {
    uv_pipe_init(loop, &handle_.pipe, 0);
  }
  handle_.tcp.data = this;
}

int Stream::accept(uv_stream_t* listener) {
  const int rc = uv_accept(listener, handle());
  if (rc == 0 && kind_ == Kind::kTcp) {
    uv_tcp_nodelay(&handle_.tcp, 1);
  }
  return rc;
}

// Connect and shutdown requests live on the heap only while they run: most streams are
// accepted clients that never connect, and every byte a stream carries is paid for by
// each idle client. libuv calls a request's callback (cancelled, if need be) before the
// handle's close callback, so the stream outlives its requests.
void Stream::onConnectDone(uv_connect_t* req, int status) {
  auto* self = static_cast<Stream*>(req->data);
  delete req;
  if (self->closing_) {
    return;
  }
  self->owner_.onStreamConnected(*self, status);
}

int Stream::connect(const sockaddr* address) {
  uv_tcp_nodelay(&handle_.tcp, 1);
  auto* req = new uv_connect_t{};
  req->data = this;
  const int rc = uv_tcp_connect(req, &handle_.tcp, address, onConnectDone);
  if (rc != 0) {
    delete req;
  }
  return rc;
}

void Stream::connectPipe(const std::string& path) {
  auto* req = new uv_connect_t{};
  req->data = this;
  uv_pipe_connect(req, &handle_.pipe, path.c_str(), onConnectDone);  // reports failures too
}

int Stream::releaseSocket() {
  uv_os_fd_t fd = -1;
  if (closing_ || forward_in_flight_ || cork_depth_ > 0 || unflushedBytes() > 0 ||
      buffer_.received() > buffer_.parsed()) {
    return UV_EBUSY;
  }
  if (const int rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&handle_), &fd); rc != 0) {
    return rc;
  }
  // A second descriptor keeps the connection open when this handle closes its own: the
  // kernel ends a socket only with its last descriptor, and libuv removes the closed
  // one from this loop's epoll set itself.
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return -errno;
  }
  close();
  return copy;
}

int Stream::adopt(int fd) {
  if (kind_ == Kind::kPipe) {
    return uv_pipe_open(&handle_.pipe, fd);
  }
  const int rc = uv_tcp_open(&handle_.tcp, fd);
  if (rc == 0) {
    uv_tcp_nodelay(&handle_.tcp, 1);  // a client's socket comes from acceptDescriptor without it
  }
  return rc;
}

namespace {
thread_local bool t_reads_suspended = false;  // this loop's SUSPEND
}  // namespace

void Stream::setReadsSuspended(bool suspended) {
  t_reads_suspended = suspended;
}

bool Stream::readsSuspended() {
  return t_reads_suspended;
}

void Stream::holdReading() {
  if (reading_) {
    stopReading();
    wants_reading_ = true;
  }
}

void Stream::resumeReading() {
  if (wants_reading_) {
    wants_reading_ = false;
    startReading();
  }
}

std::size_t Stream::unflushedBytes() const {
  if (handle_closed_ || handle_closing_) {
    return 0;
  }
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&handle_)) +
         (forward_in_flight_ ? 1 : 0);
}

void Stream::startReading() {
  if (reading_ || closing_) {
    return;
  }
  if (t_reads_suspended && !suspend_exempt_) {
    wants_reading_ = true;
    return;
  }
  wants_reading_ = false;
  const int rc = uv_read_start(
      handle(),
      [](uv_handle_t* h, size_t, uv_buf_t* out) noexcept {
        auto* self = static_cast<Stream*>(h->data);
        self->buffer_.ensureStorage();
        out->base = self->buffer_.freeTail();
        out->len = self->buffer_.freeSpace();
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) noexcept {
        auto* self = static_cast<Stream*>(s->data);
        if (nread > 0) {
          self->buffer_.commitReceived(static_cast<std::size_t>(nread));
          self->bytes_in_ += static_cast<uint64_t>(nread);
          // A full buffer means the owner must parse or forward before more fits.
          if (self->buffer_.freeSpace() == 0) {
            self->stopReading();
          }
          // While a forward is queued the owner hears of new bytes only once it is done
          // (onForwardDone): until then the parsed range belongs to the write.
          if (!self->forward_in_flight_) {
            self->owner_.onStreamData(*self);
          }
        } else if (nread < 0) {
          self->stopReading();
          self->owner_.onStreamEnd(*self, static_cast<int>(nread));
        }
        // The owner frees the stream only from onStreamClosed, never inside these calls.
        self->releaseBufferIfIdle();
      });
  reading_ = rc == 0;
  if (rc != 0) {
    owner_.onStreamEnd(*this, rc);
  }
}

void Stream::stopReading() {
  wants_reading_ = false;
  if (!reading_) {
    return;
  }
  uv_read_stop(handle());
  reading_ = false;
}

int Stream::tryWrite(std::string_view bytes) {
  uv_buf_t out =
      uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned int>(bytes.size()));
  // Fails with EAGAIN (nothing written) while a queued write is pending, which keeps
  // the order of everything sent on this stream.
  const int rc = uv_try_write(handle(), &out, 1);
  return rc == UV_EAGAIN ? 0 : rc;
}

int Stream::tryWrite(std::string_view first, std::string_view second) {
  uv_buf_t out[2] = {
      uv_buf_init(const_cast<char*>(first.data()), static_cast<unsigned int>(first.size())),
      uv_buf_init(const_cast<char*>(second.data()), static_cast<unsigned int>(second.size()))};
  const int rc = uv_try_write(handle(), out, 2);
  return rc == UV_EAGAIN ? 0 : rc;
}

void Stream::forwardTo(Stream& target) {
  PGPIVOT_ASSERT(!forward_in_flight_);
  std::string_view pending = buffer_.pendingSend();
  if (pending.empty()) {
    return;
  }
  if (target.closing_) {
    // The peer is gone: the bytes have nowhere to go. The owner decides what that means.
    buffer_.markParsedSent();
    return;
  }
  int written = 0;
  Staged* staged = target.cork_depth_ > 0 ? stagedFor(&target) : nullptr;
  if (staged == nullptr || staged->bytes.empty()) {
    written = target.tryWrite(pending);
  } else {
    // What pgpivot wrote to the target earlier in this pass goes first, in the same call.
    const std::string_view first = staged->bytes;
    written = target.tryWrite(first, pending);
    if (written >= 0) {
      const auto taken = static_cast<std::size_t>(written);
      if (taken < first.size()) {
        target.bytes_out_ += taken;
        target.sendOwned(first.substr(taken));  // queued; the forward queues behind it
        written = 0;
      } else {
        target.bytes_out_ += first.size();
        written = static_cast<int>(taken - first.size());
      }
    }
  }
  if (staged != nullptr) {
    freeStaged(*staged);
  }
  if (written < 0) {
    // The socket failed; the read side reports it as an end of stream.
    buffer_.markParsedSent();
    return;
  }
  const auto taken = static_cast<std::size_t>(written);
  target.bytes_out_ += taken;
  buffer_.markSent(taken);
  if (taken == pending.size()) {
    return;  // the common case: one write, nothing in flight, the buffer can compact
  }
  pending.remove_prefix(taken);
  uv_buf_t out =
      uv_buf_init(const_cast<char*>(pending.data()), static_cast<unsigned int>(pending.size()));
  uv_write_t* req = writeRequests().acquire();
  req->data = this;
  const int rc = uv_write(req, target.handle(), &out, 1, [](uv_write_t* done, int status) noexcept {
    auto* self = static_cast<Stream*>(done->data);
    writeRequests().release(done);
    self->onForwardDone(status);
  });
  if (rc != 0) {
    writeRequests().release(req);
    buffer_.markParsedSent();
    return;
  }
  target.bytes_out_ += pending.size();
  forward_in_flight_ = true;
  // Reading goes on into the free tail (the owner hears of it in onForwardDone); the
  // read callback stops it once the buffer is full, and the owner starts it again.
}

void Stream::onForwardDone(int /*status*/) {
  // A failed write shows up as an end-of-stream on the target; here we only free the
  // buffer range. Whatever the status, those bytes are done.
  forward_in_flight_ = false;
  buffer_.markParsedSent();
  if (closing_) {
    maybeFinishClose();
    return;
  }
  buffer_.compact();
  owner_.onStreamData(*this);
  releaseBufferIfIdle();
}

void Stream::releaseBufferIfIdle() {
  if (!forward_in_flight_) {
    buffer_.releaseIfDrained();
  }
}

void Stream::writeOwned(std::string_view bytes) {
  if (closing_ || bytes.empty()) {
    return;
  }
  if (cork_depth_ > 0) {
    Staged* entry = stagedFor(this);
    if (entry == nullptr) {
      entry = stagedFor(nullptr);  // a free one, buffer and all
    }
    if (entry == nullptr) {
      entry = &staging().emplace_back();
    }
    entry->stream = this;
    entry->bytes.append(bytes);
    return;
  }
  sendOwned(bytes);
}

void Stream::sendOwned(std::string_view bytes) {
  if (closing_ || bytes.empty()) {
    return;
  }
  const int written = tryWrite(bytes);
  if (written < 0) {
    return;  // the socket failed; the read side reports it
  }
  const auto taken = static_cast<std::size_t>(written);
  bytes_out_ += taken;
  if (taken == bytes.size()) {
    return;
  }
  auto* write = new OwnedWrite{};
  write->bytes.assign(bytes.substr(taken));
  write->req.data = write;
  uv_buf_t out = uv_buf_init(write->bytes.data(), static_cast<unsigned int>(write->bytes.size()));
  bytes_out_ += write->bytes.size();
  const int rc = uv_write(&write->req, handle(), &out, 1, [](uv_write_t* req, int) noexcept {
    delete static_cast<OwnedWrite*>(req->data);
  });
  if (rc != 0) {
    delete write;
  }
}

void Stream::close() {
  if (closing_) {
    return;
  }
  if (cork_depth_ > 0) {
    // Closing inside a corked pass: what was staged (an ErrorResponse) still goes out.
    cork_depth_ = 0;
    sendStaged();
  }
  closing_ = true;
  stopReading();
  if (uv_stream_get_write_queue_size(handle()) == 0) {
    // Everything written is in the kernel already (writes go out at once unless the
    // socket is full), and close() still delivers it: no shutdown call, no extra loop
    // iteration per closed connection.
    closeHandle();
    return;
  }
  // Shut down first so queued writes (an ErrorResponse, a Terminate) reach the kernel;
  // uv_close alone would cancel them.
  auto* req = new uv_shutdown_t{};
  req->data = this;
  const int rc = uv_shutdown(req, handle(), [](uv_shutdown_t* done, int) noexcept {
    auto* self = static_cast<Stream*>(done->data);
    delete done;
    self->closeHandle();
  });
  if (rc != 0) {
    delete req;
    closeHandle();
  }
}

void Stream::closeHandle() {
  if (handle_closing_) {
    return;
  }
  handle_closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), [](uv_handle_t* h) noexcept {
    auto* self = static_cast<Stream*>(h->data);
    self->handle_closed_ = true;
    self->maybeFinishClose();
  });
}

void Stream::maybeFinishClose() {
  if (handle_closed_ && !forward_in_flight_ && !close_reported_) {
    close_reported_ = true;
    owner_.onStreamClosed(*this);
  }
}

PeerAddress Stream::peerAddress() const {
  PeerAddress peer;
  if (kind_ == Kind::kPipe) {
    peer.family = PeerAddress::Family::kUnix;
    return peer;
  }
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getpeername(&handle_.tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return peer;
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    std::memcpy(peer.bytes.data(), &a6->sin6_addr, 16);
    peer.port = ntohs(a6->sin6_port);
    peer.family = PeerAddress::Family::kIpv6;
  } else if (addr.ss_family == AF_INET) {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(&addr);
    std::memcpy(peer.bytes.data(), &a4->sin_addr, 4);
    peer.port = ntohs(a4->sin_port);
    peer.family = PeerAddress::Family::kIpv4;
  }
  return peer;
}

std::string PeerAddress::toString() const {
  char host[INET6_ADDRSTRLEN] = {0};
  switch (family) {
    case Family::kUnix:
      return "unix";
    case Family::kIpv4:
      inet_ntop(AF_INET, bytes.data(), host, sizeof(host));
      return fmt::format("{}:{}", host, port);
    case Family::kIpv6:
      inet_ntop(AF_INET6, bytes.data(), host, sizeof(host));
      return fmt::format("[{}]:{}", host, port);
    case Family::kUnknown:
      break;
  }
  return "?";
}

}  // namespace pgpivot::net
