// The byte pump between a connection's receive buffer and its peer (STYLE.md 3.6). The
// header of each message decides: forward it (the body streams through, never copied),
// inspect it (look at the whole message, then forward it) or consume it (pgpivot answers
// it; it never reaches the peer). Not responsible for what a message means: the handler
// says that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pgpivot/net/stream.hpp"
#include "pgpivot/proto/frame.hpp"

namespace pgpivot::session {

enum class Action {
  kForward,  // send on as it arrives, possibly in pieces
  kInspect,  // wait for the whole message, show it to the handler, then send it on
  kConsume,  // wait for the whole message, show it to the handler, do not send it on
  kGather,   // as kConsume, but a message larger than the receive buffer is copied, as it
             // arrives, into the handler's gatherBuffer() instead of being refused
};

class RelayHandler {
 public:
  // Called once per message header.
  virtual Action classify(char tag) = 0;
  // The whole message, for kInspect and kConsume. The body views the receive buffer and is
  // valid until the handler returns. Return false when the handler changed the state of
  // the connection (closed it, unlinked it): the pump stops at once.
  virtual bool onMessage(char tag, std::string_view body) = 0;
  // Where a kGather message too large for the receive buffer collects (the body only);
  // null refuses it. Emptied before use; its bytes are moved out before onMessage.
  virtual std::string* gatherBuffer() { return nullptr; }

 protected:
  ~RelayHandler() = default;
};

// Where the pump stands inside the current message; one per direction.
// Every idle client holds one: 8 bytes (a message is at most 2^31 bytes long).
struct RelayCursor {
  uint32_t body_left = 0;  // bytes of a forwarded (or gathered) message still to come
  char gather_tag = 0;     // the message being gathered (kGather), or 0
};

enum class RelayStatus {
  kIdle,           // everything received was handled; waiting for more
  kStopped,        // the handler asked to stop
  kProtocolError,  // a header that cannot be valid, or a consumed message too large
};

// Processes what `source` has received. `target` may be null only if no message is
// classified kForward/kInspect. Keeps reading on `source` unless a forward is in flight.
[[nodiscard]] RelayStatus pump(net::Stream& source, net::Stream* target,
                               const proto::Limits& limits, RelayCursor& cursor,
                               RelayHandler& handler);

}  // namespace pgpivot::session
