// Test helpers that produce raw protocol bytes as std::string, for feeding decoders and
// scripted peers. Two layers: raw pieces (be16/be32/cstr/frame/untyped) assembled by hand,
// independent of proto::Writer so golden-byte tests can check the builders against them;
// and one-liners over the proto builders (wire::query("SELECT 1"), wire::startup(...)) for
// tests that just need a valid message. Test code only; never linked into pgpivot.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgpivot/proto/byte_order.hpp"
#include "pgpivot/proto/constants.hpp"
#include "pgpivot/proto/frame.hpp"
#include "pgpivot/proto/messages.hpp"

namespace pgpivot::wire {

// --- Raw pieces ---------------------------------------------------------------------------

inline std::string be16(int16_t v) {
  std::string s(2, '\0');
  proto::storeInt16(s.data(), v);
  return s;
}

inline std::string be32(int32_t v) {
  std::string s(4, '\0');
  proto::storeInt32(s.data(), v);
  return s;
}

inline std::string cstr(std::string_view s) {
  std::string out(s);
  out.push_back('\0');
  return out;
}

// A typed frame whose length is computed here, by hand, on purpose.
inline std::string frame(char tag, std::string_view body) {
  std::string out(1, tag);
  out += be32(static_cast<int32_t>(body.size() + 4));
  out += body;
  return out;
}

// A header with any length at all, for malformed-length tests.
inline std::string header(char tag, int32_t length) {
  return std::string(1, tag) + be32(length);
}

// An untyped start-up packet around `body` (which starts with the code).
inline std::string untyped(std::string_view body) {
  return be32(static_cast<int32_t>(body.size() + 4)) + std::string(body);
}

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}

// The one typed frame `bytes` holds, or std::nullopt if it holds anything else (no frame,
// a partial frame, or more than one).
inline std::optional<proto::FrameView> onlyFrame(std::string_view bytes) {
  proto::FrameView f;
  size_t consumed = 0;
  if (proto::nextFrame(bytes, proto::Limits{}, f, consumed) != proto::Decode::kFrame ||
      consumed != bytes.size()) {
    return std::nullopt;
  }
  return f;
}

// Same for one untyped start-up packet.
inline std::optional<proto::StartupPacketView> onlyStartupPacket(std::string_view bytes) {
  proto::StartupPacketView p;
  size_t consumed = 0;
  if (proto::nextStartupPacket(bytes, p, consumed) != proto::Decode::kFrame ||
      consumed != bytes.size()) {
    return std::nullopt;
  }
  return p;
}

// --- Valid messages through the proto builders ---------------------------------------------

template <class Fn>
std::string build(Fn&& fn) {
  std::string out;
  fn(out);
  return out;
}

inline std::string startup(std::vector<std::pair<std::string, std::string>> params,
                           int32_t protocol = proto::kProtocolVersion3) {
  return build([&](std::string& o) { proto::writeStartupMessage(o, protocol, params); });
}
inline std::string sslRequest() {
  return build(proto::writeSslRequest);
}
inline std::string gssEncRequest() {
  return build(proto::writeGssEncRequest);
}
inline std::string cancelRequest(int32_t pid, int32_t secret) {
  return build([&](std::string& o) { proto::writeCancelRequest(o, pid, secret); });
}

inline std::string query(std::string_view sql) {
  return build([&](std::string& o) { proto::writeQuery(o, sql); });
}
inline std::string parse(std::string_view name, std::string_view sql,
                         std::vector<uint32_t> param_types = {}) {
  return build([&](std::string& o) { proto::writeParse(o, name, sql, param_types); });
}
inline std::string bind(std::string_view portal, std::string_view statement,
                        std::vector<proto::Value> params = {},
                        std::vector<int16_t> param_formats = {},
                        std::vector<int16_t> result_formats = {}) {
  return build([&](std::string& o) {
    proto::writeBind(o, portal, statement, param_formats, params, result_formats);
  });
}
inline std::string describe(proto::ObjectKind kind, std::string_view name) {
  return build([&](std::string& o) { proto::writeDescribe(o, kind, name); });
}
inline std::string execute(std::string_view portal = "", int32_t max_rows = 0) {
  return build([&](std::string& o) { proto::writeExecute(o, portal, max_rows); });
}
inline std::string close(proto::ObjectKind kind, std::string_view name) {
  return build([&](std::string& o) { proto::writeClose(o, kind, name); });
}
inline std::string sync() {
  return build(proto::writeSync);
}
inline std::string flush() {
  return build(proto::writeFlush);
}
inline std::string terminate() {
  return build(proto::writeTerminate);
}
inline std::string password(std::string_view pw) {
  return build([&](std::string& o) { proto::writePasswordMessage(o, pw); });
}
inline std::string copyData(std::string_view data) {
  return build([&](std::string& o) { proto::writeCopyData(o, data); });
}
inline std::string copyDone() {
  return build(proto::writeCopyDone);
}
inline std::string copyFail(std::string_view message) {
  return build([&](std::string& o) { proto::writeCopyFail(o, message); });
}

inline std::string authOk() {
  return build(proto::writeAuthenticationOk);
}
inline std::string parameterStatus(std::string_view name, std::string_view value) {
  return build([&](std::string& o) { proto::writeParameterStatus(o, name, value); });
}
inline std::string backendKeyData(int32_t pid, int32_t secret) {
  return build([&](std::string& o) { proto::writeBackendKeyData(o, pid, secret); });
}
inline std::string readyForQuery(proto::TxStatus status = proto::TxStatus::kIdle) {
  return build([&](std::string& o) { proto::writeReadyForQuery(o, status); });
}
inline std::string errorResponse(std::string_view sqlstate, std::string_view message,
                                 std::string_view severity = proto::severity::kError) {
  return build([&](std::string& o) { proto::writeErrorResponse(o, severity, sqlstate, message); });
}
inline std::string commandComplete(std::string_view tag) {
  return build([&](std::string& o) { proto::writeCommandComplete(o, tag); });
}
inline std::string dataRow(std::vector<proto::Value> columns) {
  return build([&](std::string& o) { proto::writeDataRow(o, columns); });
}
inline std::string parseComplete() {
  return build(proto::writeParseComplete);
}
inline std::string bindComplete() {
  return build(proto::writeBindComplete);
}

}  // namespace pgpivot::wire
