// Typed, zero-copy views of the messages pgpivot must understand, and the parsers that
// fill them. Every parser takes a message body (as FrameView::body or
// StartupPacketView::body gives it), reads it with a Reader and accepts it only if every
// byte was consumed, so malformed input is a Result error (SQLSTATE 08P01), never UB.
// Views point into the caller's buffer and live only as long as it; copy on purpose what
// must outlive it. Building messages is messages.hpp's job.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "pgpivot/core/result.hpp"
#include "pgpivot/proto/constants.hpp"
#include "pgpivot/proto/frame.hpp"

namespace pgpivot::proto {

// What Describe and Close refer to.
enum class ObjectKind : char { kStatement = 'S', kPortal = 'P' };

// One column of a RowDescription. Also the input of writeRowDescription().
struct FieldDescription {
  std::string_view name;
  uint32_t table_oid = 0;
  int16_t column_attr = 0;
  uint32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = -1;
  int16_t format = kFormatText;
};

// A parameter, column or function result value: std::nullopt is SQL NULL (length -1).
using Value = std::optional<std::string_view>;

// --- Untyped start-up packets -----------------------------------------------------------

enum class StartupKind {
  kStartupMessage,  // protocol 3.x, parse with parseStartup()
  kSslRequest,      // answer 'S' or 'N', then the real start-up follows
  kGssEncRequest,   // pgpivot answers 'N'
  kCancelRequest,   // parse with parseCancelRequest()
  kUnsupported,     // protocol 2 or another unknown code, or a wrong size for the code
};

// Sorts a start-up packet by its code. SSLRequest and GSSENCRequest must be exactly the
// 8 bytes the protocol defines and CancelRequest exactly 16 (protocol 3.0 keys).
[[nodiscard]] StartupKind classifyStartup(const StartupPacketView& packet) noexcept;

struct StartupView {
  int32_t protocol = 0;
  std::vector<std::pair<std::string_view, std::string_view>> params;

  // The value of `name`, or std::nullopt if the client did not send it.
  [[nodiscard]] std::optional<std::string_view> find(std::string_view name) const noexcept;
  // The value of `name`, or "" if absent (PostgreSQL treats both the same for most keys).
  [[nodiscard]] std::string_view get(std::string_view name) const noexcept;
};

// Protocol major version 3 (any minor; negotiating the minor is the caller's business),
// then name/value pairs ended by one NUL that must be the last byte. A repeated name or a
// missing terminator is rejected. Whether "user" is present is for the caller to check.
[[nodiscard]] Result<StartupView> parseStartup(std::string_view body);

struct CancelRequestView {
  int32_t pid = 0;
  int32_t secret = 0;
};
[[nodiscard]] Result<CancelRequestView> parseCancelRequest(std::string_view body);

// --- Backend messages -------------------------------------------------------------------

// An 'R' message. `data` is whatever follows the code: the 4-byte salt for kAuthMd5, the
// mechanism list for kAuthSasl, the SASL payload for Continue/Final, GSS data for
// kAuthGssContinue. Codes that carry nothing must carry nothing; unknown codes are kept
// with their data so the caller can refuse them by name.
struct AuthRequestView {
  int32_t code = 0;
  std::string_view data;
};
[[nodiscard]] Result<AuthRequestView> parseAuthRequest(std::string_view body);

// The data of a kAuthSasl request: mechanism names ended by an empty string.
[[nodiscard]] Result<std::vector<std::string_view>> parseSaslMechanisms(std::string_view data);

// ErrorResponse and NoticeResponse share a layout: (code byte, string)* then a 0 byte.
// The common fields are pulled out; every field, in order, stays in `fields`.
struct ErrorFieldsView {
  std::string_view severity;               // 'S', possibly localized
  std::string_view severity_nonlocalized;  // 'V', always English (PostgreSQL 9.6+)
  std::string_view sqlstate;               // 'C'
  std::string_view message;                // 'M'
  std::string_view detail;                 // 'D'
  std::string_view hint;                   // 'H'
  std::vector<std::pair<char, std::string_view>> fields;

  [[nodiscard]] std::optional<std::string_view> find(char code) const noexcept;
};
[[nodiscard]] Result<ErrorFieldsView> parseErrorFields(std::string_view body);

struct ParameterStatusView {
  std::string_view name;
  std::string_view value;
};
[[nodiscard]] Result<ParameterStatusView> parseParameterStatus(std::string_view body);

struct BackendKeyDataView {
  int32_t pid = 0;
  int32_t secret = 0;
};
[[nodiscard]] Result<BackendKeyDataView> parseBackendKeyData(std::string_view body);

// Rejects any status byte other than 'I', 'T', 'E'.
[[nodiscard]] Result<TxStatus> parseReadyForQuery(std::string_view body);

struct NotificationView {
  int32_t pid = 0;
  std::string_view channel;
  std::string_view payload;
};
[[nodiscard]] Result<NotificationView> parseNotification(std::string_view body);

// The command tag, e.g. "INSERT 0 1" or "SELECT 3".
[[nodiscard]] Result<std::string_view> parseCommandComplete(std::string_view body);

[[nodiscard]] Result<std::vector<FieldDescription>> parseRowDescription(std::string_view body);
[[nodiscard]] Result<std::vector<Value>> parseDataRow(std::string_view body);
[[nodiscard]] Result<std::vector<uint32_t>> parseParameterDescription(std::string_view body);

// CopyInResponse, CopyOutResponse and CopyBothResponse share a layout.
struct CopyResponseView {
  int8_t format = 0;  // overall: 0 text, 1 binary
  std::vector<int16_t> column_formats;
};
[[nodiscard]] Result<CopyResponseView> parseCopyResponse(std::string_view body);

struct NegotiateProtocolVersionView {
  int32_t newest_minor = 0;
  std::vector<std::string_view> unrecognized_options;
};
[[nodiscard]] Result<NegotiateProtocolVersionView> parseNegotiateProtocolVersion(
    std::string_view body);

[[nodiscard]] Result<Value> parseFunctionCallResponse(std::string_view body);

// --- Frontend messages ------------------------------------------------------------------

[[nodiscard]] Result<std::string_view> parseQuery(std::string_view body);

struct ParseView {
  std::string_view name;  // "" is the unnamed statement
  std::string_view query;
  std::vector<uint32_t> param_types;  // 0 = let the server infer
};
[[nodiscard]] Result<ParseView> parseParse(std::string_view body);

// Parameter format codes must number 0, 1 or exactly as many as the parameters, as
// PostgreSQL requires; result format codes are checked by the server later.
struct BindView {
  std::string_view portal;
  std::string_view statement;
  std::vector<int16_t> param_formats;
  std::vector<Value> params;
  std::vector<int16_t> result_formats;
};
[[nodiscard]] Result<BindView> parseBind(std::string_view body);

// Describe and Close share a layout; the kind byte must be 'S' or 'P'.
struct DescribeView {
  ObjectKind kind = ObjectKind::kStatement;
  std::string_view name;
};
using CloseView = DescribeView;
[[nodiscard]] Result<DescribeView> parseDescribe(std::string_view body);
[[nodiscard]] Result<CloseView> parseClose(std::string_view body);

struct ExecuteView {
  std::string_view portal;
  int32_t max_rows = 0;  // 0 = no limit
};
[[nodiscard]] Result<ExecuteView> parseExecute(std::string_view body);

[[nodiscard]] Result<std::string_view> parseCopyFail(std::string_view body);

// A 'p' message answering AuthenticationCleartextPassword or AuthenticationMD5Password.
[[nodiscard]] Result<std::string_view> parsePasswordMessage(std::string_view body);

// A 'p' message answering AuthenticationSASL. `data` is std::nullopt when the client sent
// length -1 (no initial response). SASLResponse needs no parser: its body is the data.
struct SaslInitialResponseView {
  std::string_view mechanism;
  std::optional<std::string_view> data;
};
[[nodiscard]] Result<SaslInitialResponseView> parseSaslInitialResponse(std::string_view body);

struct FunctionCallView {
  uint32_t function_oid = 0;
  std::vector<int16_t> arg_formats;
  std::vector<Value> args;
  int16_t result_format = kFormatText;
};
[[nodiscard]] Result<FunctionCallView> parseFunctionCall(std::string_view body);

}  // namespace pgpivot::proto
