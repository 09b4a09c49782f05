// Parsers for the typed views. Each reads every field with a sticky-failure Reader and
// checks once at the end that the body was consumed exactly, so no parser needs bounds
// checks of its own (STYLE.md 3.6). Counts are Int16 on the wire; a negative count is
// malformed, and vectors reserve no more than the remaining bytes could possibly hold, so
// a 20-byte message cannot make pgpivot allocate megabytes.
#include "pgpivot/proto/views.hpp"

#include <algorithm>
#include <string>

#include "pgpivot/proto/reader.hpp"

namespace pgpivot::proto {
namespace {

tl::unexpected<Error> malformed(std::string_view what) {
  std::string message = "malformed ";
  message.append(what);
  message.append(" message");
  return fail(sqlstate::kProtocolViolation, std::move(message));
}

size_t readCount16(Reader& r) {
  const int16_t n = r.int16();
  if (n < 0) {
    r.fail();
    return 0;
  }
  return static_cast<size_t>(n);
}

// How many items to reserve: the declared count, capped by what the bytes left could hold.
size_t reserveFor(size_t count, const Reader& r, size_t min_item_size) {
  return std::min(count, r.remaining() / min_item_size);
}

Value readValue(Reader& r) {
  const int32_t length = r.int32();
  if (length == -1) {
    return std::nullopt;
  }
  return r.bytes(length);  // any other negative length fails here
}

std::vector<int16_t> readInt16List(Reader& r) {
  const size_t n = readCount16(r);
  std::vector<int16_t> out;
  out.reserve(reserveFor(n, r, 2));
  for (size_t i = 0; i < n && r.ok(); ++i) {
    out.push_back(r.int16());
  }
  return out;
}

std::vector<Value> readValueList(Reader& r) {
  const size_t n = readCount16(r);
  std::vector<Value> out;
  out.reserve(reserveFor(n, r, 4));
  for (size_t i = 0; i < n && r.ok(); ++i) {
    out.push_back(readValue(r));
  }
  return out;
}

std::vector<uint32_t> readOidList(Reader& r) {
  const size_t n = readCount16(r);
  std::vector<uint32_t> out;
  out.reserve(reserveFor(n, r, 4));
  for (size_t i = 0; i < n && r.ok(); ++i) {
    out.push_back(r.uint32());
  }
  return out;
}

// A body that is exactly one NUL-terminated string.
Result<std::string_view> parseSingleString(std::string_view body, std::string_view what) {
  Reader r(body);
  const std::string_view s = r.cstring();
  if (!r.consumedExactly()) {
    return malformed(what);
  }
  return s;
}

Result<DescribeView> parseKindAndName(std::string_view body, std::string_view what) {
  Reader r(body);
  DescribeView v;
  const uint8_t kind = r.byte();
  if (kind != 'S' && kind != 'P') {
    r.fail();
  }
  v.kind = static_cast<ObjectKind>(kind);
  v.name = r.cstring();
  if (!r.consumedExactly()) {
    return malformed(what);
  }
  return v;
}

}  // namespace

// --- Start-up -----------------------------------------------------------------------------

StartupKind classifyStartup(const StartupPacketView& packet) noexcept {
  const size_t size = packet.body.size();
  switch (packet.code) {
    case kSslRequestCode:
      return size == 4 ? StartupKind::kSslRequest : StartupKind::kUnsupported;
    case kGssEncRequestCode:
      return size == 4 ? StartupKind::kGssEncRequest : StartupKind::kUnsupported;
    case kCancelRequestCode:
      return size == 12 ? StartupKind::kCancelRequest : StartupKind::kUnsupported;
    default:
      return protocolMajor(packet.code) == 3 ? StartupKind::kStartupMessage
                                             : StartupKind::kUnsupported;
  }
}

std::optional<std::string_view> StartupView::find(std::string_view name) const noexcept {
  for (const auto& [key, value] : params) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

std::string_view StartupView::get(std::string_view name) const noexcept {
  return find(name).value_or(std::string_view{});
}

Result<StartupView> parseStartup(std::string_view body) {
  Reader r(body);
  StartupView v;
  v.protocol = r.int32();
  if (!r.ok()) {
    return malformed("StartupMessage");
  }
  if (protocolMajor(v.protocol) != 3) {
    return fail(sqlstate::kFeatureNotSupported, "unsupported frontend protocol");
  }
  // PostgreSQL's layout check: pairs until an empty name, and that NUL is the last byte.
  for (;;) {
    const std::string_view name = r.cstring();
    if (!r.ok() || name.empty()) {
      break;
    }
    const std::string_view value = r.cstring();
    if (!r.ok()) {
      break;
    }
    v.params.emplace_back(name, value);
  }
  if (!r.consumedExactly()) {
    return malformed("StartupMessage");
  }
  // Sorting a copy keeps the duplicate check O(n log n) for a 10 kB packet of tiny pairs.
  std::vector<std::string_view> names;
  names.reserve(v.params.size());
  for (const auto& param : v.params) {
    names.push_back(param.first);
  }
  std::sort(names.begin(), names.end());
  if (std::adjacent_find(names.begin(), names.end()) != names.end()) {
    return fail(sqlstate::kProtocolViolation, "duplicate parameter in StartupMessage");
  }
  return v;
}

Result<CancelRequestView> parseCancelRequest(std::string_view body) {
  Reader r(body);
  if (r.int32() != kCancelRequestCode) {
    r.fail();
  }
  CancelRequestView v;
  v.pid = r.int32();
  v.secret = r.int32();
  if (!r.consumedExactly()) {
    return malformed("CancelRequest");
  }
  return v;
}

// --- Backend ------------------------------------------------------------------------------

Result<AuthRequestView> parseAuthRequest(std::string_view body) {
  Reader r(body);
  AuthRequestView v;
  v.code = r.int32();
  v.data = r.rest();
  if (!r.ok()) {
    return malformed("Authentication");
  }
  bool valid = true;
  switch (v.code) {
    case kAuthOk:
    case kAuthKerberosV5:
    case kAuthCleartext:
    case kAuthScmCredential:
    case kAuthGss:
    case kAuthSspi:
      valid = v.data.empty();
      break;
    case kAuthMd5:
      valid = v.data.size() == 4;
      break;
    case kAuthSasl:
      valid = parseSaslMechanisms(v.data).has_value();
      break;
    default:
      break;  // GSS/SASL continuations carry opaque data; unknown codes are the caller's
  }
  if (!valid) {
    return malformed("Authentication");
  }
  return v;
}

Result<std::vector<std::string_view>> parseSaslMechanisms(std::string_view data) {
  Reader r(data);
  std::vector<std::string_view> mechanisms;
  for (;;) {
    const std::string_view m = r.cstring();
    if (!r.ok() || m.empty()) {
      break;
    }
    mechanisms.push_back(m);
  }
  if (!r.consumedExactly()) {
    return malformed("AuthenticationSASL");
  }
  return mechanisms;
}

std::optional<std::string_view> ErrorFieldsView::find(char code) const noexcept {
  for (const auto& [c, value] : fields) {
    if (c == code) {
      return value;
    }
  }
  return std::nullopt;
}

Result<ErrorFieldsView> parseErrorFields(std::string_view body) {
  Reader r(body);
  ErrorFieldsView v;
  for (;;) {
    const auto code = static_cast<char>(r.byte());
    if (!r.ok() || code == '\0') {
      break;
    }
    const std::string_view value = r.cstring();
    v.fields.emplace_back(code, value);
    switch (code) {
      case field::kSeverity:
        v.severity = value;
        break;
      case field::kSeverityNonLocalized:
        v.severity_nonlocalized = value;
        break;
      case field::kSqlState:
        v.sqlstate = value;
        break;
      case field::kMessage:
        v.message = value;
        break;
      case field::kDetail:
        v.detail = value;
        break;
      case field::kHint:
        v.hint = value;
        break;
      default:
        break;  // kept in `fields` only
    }
  }
  if (!r.consumedExactly()) {
    return malformed("ErrorResponse");
  }
  return v;
}

Result<ParameterStatusView> parseParameterStatus(std::string_view body) {
  Reader r(body);
  ParameterStatusView v;
  v.name = r.cstring();
  v.value = r.cstring();
  if (!r.consumedExactly()) {
    return malformed("ParameterStatus");
  }
  return v;
}

Result<BackendKeyDataView> parseBackendKeyData(std::string_view body) {
  Reader r(body);
  BackendKeyDataView v;
  v.pid = r.int32();
  v.secret = r.int32();
  if (!r.consumedExactly()) {
    return malformed("BackendKeyData");
  }
  return v;
}

Result<TxStatus> parseReadyForQuery(std::string_view body) {
  Reader r(body);
  const auto status = static_cast<char>(r.byte());
  if (!r.consumedExactly() || (status != 'I' && status != 'T' && status != 'E')) {
    return malformed("ReadyForQuery");
  }
  return static_cast<TxStatus>(status);
}

Result<NotificationView> parseNotification(std::string_view body) {
  Reader r(body);
  NotificationView v;
  v.pid = r.int32();
  v.channel = r.cstring();
  v.payload = r.cstring();
  if (!r.consumedExactly()) {
    return malformed("NotificationResponse");
  }
  return v;
}

Result<std::string_view> parseCommandComplete(std::string_view body) {
  return parseSingleString(body, "CommandComplete");
}

Result<std::vector<FieldDescription>> parseRowDescription(std::string_view body) {
  Reader r(body);
  const size_t n = readCount16(r);
  std::vector<FieldDescription> fields;
  fields.reserve(reserveFor(n, r, 19));  // NUL + 4 + 2 + 4 + 2 + 4 + 2
  for (size_t i = 0; i < n && r.ok(); ++i) {
    FieldDescription& f = fields.emplace_back();
    f.name = r.cstring();
    f.table_oid = r.uint32();
    f.column_attr = r.int16();
    f.type_oid = r.uint32();
    f.type_size = r.int16();
    f.type_modifier = r.int32();
    f.format = r.int16();
  }
  if (!r.consumedExactly()) {
    return malformed("RowDescription");
  }
  return fields;
}

Result<std::vector<Value>> parseDataRow(std::string_view body) {
  Reader r(body);
  std::vector<Value> columns = readValueList(r);
  if (!r.consumedExactly()) {
    return malformed("DataRow");
  }
  return columns;
}

Result<std::vector<uint32_t>> parseParameterDescription(std::string_view body) {
  Reader r(body);
  std::vector<uint32_t> oids = readOidList(r);
  if (!r.consumedExactly()) {
    return malformed("ParameterDescription");
  }
  return oids;
}

Result<CopyResponseView> parseCopyResponse(std::string_view body) {
  Reader r(body);
  CopyResponseView v;
  const uint8_t format = r.byte();
  if (format > 1) {
    r.fail();
  }
  v.format = static_cast<int8_t>(format);
  v.column_formats = readInt16List(r);
  if (!r.consumedExactly()) {
    return malformed("CopyResponse");
  }
  return v;
}

Result<NegotiateProtocolVersionView> parseNegotiateProtocolVersion(std::string_view body) {
  Reader r(body);
  NegotiateProtocolVersionView v;
  v.newest_minor = r.int32();
  const int32_t n = r.int32();
  if (n < 0) {
    r.fail();
  }
  v.unrecognized_options.reserve(reserveFor(static_cast<size_t>(std::max(n, 0)), r, 1));
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    v.unrecognized_options.push_back(r.cstring());
  }
  if (!r.consumedExactly()) {
    return malformed("NegotiateProtocolVersion");
  }
  return v;
}

Result<Value> parseFunctionCallResponse(std::string_view body) {
  Reader r(body);
  const Value v = readValue(r);
  if (!r.consumedExactly()) {
    return malformed("FunctionCallResponse");
  }
  return v;
}

// --- Frontend -----------------------------------------------------------------------------

Result<std::string_view> parseQuery(std::string_view body) {
  return parseSingleString(body, "Query");
}

Result<ParseView> parseParse(std::string_view body) {
  Reader r(body);
  ParseView v;
  v.name = r.cstring();
  v.query = r.cstring();
  v.param_types = readOidList(r);
  if (!r.consumedExactly()) {
    return malformed("Parse");
  }
  return v;
}

Result<BindView> parseBind(std::string_view body) {
  Reader r(body);
  BindView v;
  v.portal = r.cstring();
  v.statement = r.cstring();
  v.param_formats = readInt16List(r);
  v.params = readValueList(r);
  v.result_formats = readInt16List(r);
  // PostgreSQL (exec_bind_message): one format code applies to all parameters, otherwise
  // there must be one per parameter.
  const size_t nformats = v.param_formats.size();
  if (nformats > 1 && nformats != v.params.size()) {
    r.fail();
  }
  if (!r.consumedExactly()) {
    return malformed("Bind");
  }
  return v;
}

Result<DescribeView> parseDescribe(std::string_view body) {
  return parseKindAndName(body, "Describe");
}

Result<CloseView> parseClose(std::string_view body) {
  return parseKindAndName(body, "Close");
}

Result<ExecuteView> parseExecute(std::string_view body) {
  Reader r(body);
  ExecuteView v;
  v.portal = r.cstring();
  v.max_rows = r.int32();
  if (!r.consumedExactly()) {
    return malformed("Execute");
  }
  return v;
}

Result<std::string_view> parseCopyFail(std::string_view body) {
  return parseSingleString(body, "CopyFail");
}

Result<std::string_view> parsePasswordMessage(std::string_view body) {
  return parseSingleString(body, "PasswordMessage");
}

Result<SaslInitialResponseView> parseSaslInitialResponse(std::string_view body) {
  Reader r(body);
  SaslInitialResponseView v;
  v.mechanism = r.cstring();
  v.data = readValue(r);
  if (!r.consumedExactly()) {
    return malformed("SASLInitialResponse");
  }
  return v;
}

Result<FunctionCallView> parseFunctionCall(std::string_view body) {
  Reader r(body);
  FunctionCallView v;
  v.function_oid = r.uint32();
  v.arg_formats = readInt16List(r);
  v.args = readValueList(r);
  v.result_format = r.int16();
  if (!r.consumedExactly()) {
    return malformed("FunctionCall");
  }
  return v;
}

}  // namespace pgpivot::proto
