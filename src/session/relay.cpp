#include "pgpivot/session/relay.hpp"

#include <algorithm>

namespace pgpivot::session {

namespace {

// After a pass: send what is parsed, make room, keep reading if we can take bytes.
void settle(net::Stream& source, net::Stream* target) {
  auto& buffer = source.buffer();
  if (!buffer.pendingSend().empty() && target != nullptr && !source.forwardInFlight()) {
    source.forwardTo(*target);
  }
  if (source.forwardInFlight() || source.closing()) {
    return;
  }
  if (buffer.pendingSend().empty()) {
    buffer.compact();
  }
  if (buffer.freeSpace() > 0) {
    source.startReading();
  }
}

}  // namespace

namespace {

// One pass over what is buffered. Sets `again` when the pass stopped to let what was
// parsed reach the peer first and the kernel took it at once: the next pass goes on
// with the messages that waited behind it (nothing else would wake the pump for them).
RelayStatus pumpPass(net::Stream& source, net::Stream* target, const proto::Limits& limits,
                     RelayCursor& cursor, RelayHandler& handler, bool& again) {
  if (source.forwardInFlight()) {
    return RelayStatus::kIdle;  // resumes when the forward completes
  }
  auto& buffer = source.buffer();
  while (buffer.parsed() < buffer.received()) {
    const std::string_view unparsed = buffer.unparsed();
    if (cursor.body_left > 0) {
      const std::size_t take = std::min<std::size_t>(cursor.body_left, unparsed.size());
      if (cursor.gather_tag == 0) {
        buffer.advanceParsed(take);
        cursor.body_left -= static_cast<uint32_t>(take);
        continue;
      }
      std::string* gathered = handler.gatherBuffer();
      if (gathered == nullptr) {
        return RelayStatus::kProtocolError;
      }
      gathered->append(unparsed.substr(0, take));
      buffer.skipParsed(take);
      cursor.body_left -= static_cast<uint32_t>(take);
      if (cursor.body_left > 0) {
        continue;
      }
      const char tag = cursor.gather_tag;
      cursor.gather_tag = 0;
      const std::string body = std::move(*gathered);  // freed once handled
      gathered->clear();
      if (!handler.onMessage(tag, body)) {
        return RelayStatus::kStopped;
      }
      continue;
    }
    proto::FrameHeader header;
    const proto::Decode decoded = proto::decodeHeader(unparsed, limits, header);
    if (decoded == proto::Decode::kInvalid) {
      return RelayStatus::kProtocolError;
    }
    if (decoded == proto::Decode::kNeedMore) {
      break;
    }
    Action action = handler.classify(header.tag);
    const std::size_t total = header.total();
    if (action == Action::kGather && total > buffer.capacity()) {
      // Too large to hold whole: copied out piece by piece (above), once what came
      // before it has reached the peer.
      std::string* gathered = handler.gatherBuffer();
      if (gathered == nullptr) {
        return RelayStatus::kProtocolError;
      }
      if (!buffer.pendingSend().empty()) {
        break;
      }
      gathered->clear();
      gathered->reserve(header.bodyLength());
      buffer.skipParsed(proto::kHeaderSize);
      cursor.body_left = static_cast<uint32_t>(header.bodyLength());
      cursor.gather_tag = header.tag;
      continue;
    }
    if (action == Action::kGather) {
      action = Action::kConsume;
    }
    if (action != Action::kForward && total > buffer.capacity()) {
      // Too large to hold whole. Inspection is an optimisation we can skip; a message
      // pgpivot must consume cannot be this large.
      if (action == Action::kConsume) {
        return RelayStatus::kProtocolError;
      }
      action = Action::kForward;
    }
    if (action == Action::kForward) {
      const std::size_t take = std::min(total, unparsed.size());
      buffer.advanceParsed(take);
      cursor.body_left = static_cast<uint32_t>(total - take);
      continue;
    }
    if (unparsed.size() < total) {
      // Wait for the rest. If it cannot fit behind what is pending, flush and compact
      // first (settle does both once the forward is done).
      break;
    }
    const std::string_view body = unparsed.substr(proto::kHeaderSize, header.bodyLength());
    if (action == Action::kConsume) {
      if (!buffer.pendingSend().empty()) {
        break;  // what came before must reach the peer first
      }
      buffer.skipParsed(total);
    } else {
      buffer.advanceParsed(total);
    }
    if (!handler.onMessage(header.tag, body)) {
      return RelayStatus::kStopped;
    }
  }
  const bool flushing = !buffer.pendingSend().empty() && buffer.parsed() < buffer.received();
  settle(source, target);
  again =
      flushing && buffer.pendingSend().empty() && !source.forwardInFlight() && !source.closing();
  return RelayStatus::kIdle;
}

}  // namespace

RelayStatus pump(net::Stream& source, net::Stream* target, const proto::Limits& limits,
                 RelayCursor& cursor, RelayHandler& handler) {
  // Everything this call sends to the target (rewritten messages, forwarded bytes) goes
  // out in as few writes as possible: one per pass in the common case.
  if (target != nullptr) {
    target->cork();
  }
  RelayStatus status = RelayStatus::kIdle;
  bool again = true;
  while (again) {
    again = false;
    status = pumpPass(source, target, limits, cursor, handler, again);
  }
  if (target != nullptr) {
    target->uncork();
  }
  return status;
}

}  // namespace pgpivot::session
