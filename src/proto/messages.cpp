// Message builders. Each one is a begin()/fields/finish() sequence on a Writer; the
// layouts follow "Message Formats" in the PostgreSQL protocol documentation.
#include "pgpivot/proto/messages.hpp"

#include "pgpivot/proto/writer.hpp"

namespace pgpivot::proto {
namespace {

char tagOf(BackendTag tag) {
  return static_cast<char>(tag);
}
char tagOf(FrontendTag tag) {
  return static_cast<char>(tag);
}

// Messages with an empty body: ParseComplete, Sync and the like.
template <class Tag>
void writeEmpty(std::string& out, Tag tag) {
  Writer w(out);
  w.begin(tagOf(tag));
  w.finish();
}

void writeAuthRequest(std::string& out, int32_t code, std::string_view data) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kAuthentication)).int32(code).bytes(data);
  w.finish();
}

void writeSeverityFields(std::string& out, BackendTag tag, std::string_view sev,
                         std::string_view sqlstate, std::string_view message,
                         std::string_view detail) {
  Writer w(out);
  w.begin(tagOf(tag));
  w.byte(field::kSeverity).cstring(sev);
  // 'V' exists for clients that must not depend on the localized 'S'; pgpivot's own
  // messages are not localized, so both carry the same word.
  w.byte(field::kSeverityNonLocalized).cstring(sev);
  w.byte(field::kSqlState).cstring(sqlstate);
  w.byte(field::kMessage).cstring(message);
  if (!detail.empty()) {
    w.byte(field::kDetail).cstring(detail);
  }
  w.byte('\0');
  w.finish();
}

void writeCopyResponse(std::string& out, BackendTag tag, int8_t format,
                       const std::vector<int16_t>& column_formats) {
  Writer w(out);
  w.begin(tagOf(tag)).int8(format).count16(column_formats.size());
  for (const int16_t f : column_formats) {
    w.int16(f);
  }
  w.finish();
}

template <class Params>
void writeStartupParams(std::string& out, int32_t protocol, const Params& params) {
  Writer w(out);
  w.beginUntagged().int32(protocol);
  for (const auto& [name, value] : params) {
    w.cstring(name).cstring(value);
  }
  w.byte('\0');  // an empty name ends the list
  w.finish();
}

void writeUntaggedCode(std::string& out, int32_t code) {
  Writer w(out);
  w.beginUntagged().int32(code);
  w.finish();
}

void writeKindAndName(std::string& out, FrontendTag tag, ObjectKind kind, std::string_view name) {
  Writer w(out);
  w.begin(tagOf(tag)).byte(static_cast<char>(kind)).cstring(name);
  w.finish();
}

}  // namespace

// --- Backend ------------------------------------------------------------------------------

void writeErrorResponse(std::string& out, std::string_view severity, std::string_view sqlstate,
                        std::string_view message, std::string_view detail) {
  writeSeverityFields(out, BackendTag::kErrorResponse, severity, sqlstate, message, detail);
}

void writeNoticeResponse(std::string& out, std::string_view severity, std::string_view sqlstate,
                         std::string_view message, std::string_view detail) {
  writeSeverityFields(out, BackendTag::kNoticeResponse, severity, sqlstate, message, detail);
}

void writeErrorFields(std::string& out, BackendTag tag,
                      const std::vector<std::pair<char, std::string_view>>& fields) {
  PGPIVOT_ASSERT(tag == BackendTag::kErrorResponse || tag == BackendTag::kNoticeResponse);
  Writer w(out);
  w.begin(tagOf(tag));
  for (const auto& [code, value] : fields) {
    // A zero code would end the list early on the peer's side.
    PGPIVOT_CHECK(code != '\0');
    w.byte(code).cstring(value);
  }
  w.byte('\0');
  w.finish();
}

void writeAuthenticationOk(std::string& out) {
  writeAuthRequest(out, kAuthOk, {});
}

void writeAuthenticationCleartextPassword(std::string& out) {
  writeAuthRequest(out, kAuthCleartext, {});
}

void writeAuthenticationMd5Password(std::string& out, const std::array<char, 4>& salt) {
  writeAuthRequest(out, kAuthMd5, std::string_view(salt.data(), salt.size()));
}

void writeAuthenticationSasl(std::string& out, const std::vector<std::string_view>& mechanisms) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kAuthentication)).int32(kAuthSasl);
  for (const std::string_view m : mechanisms) {
    w.cstring(m);
  }
  w.byte('\0');
  w.finish();
}

void writeAuthenticationSaslContinue(std::string& out, std::string_view data) {
  writeAuthRequest(out, kAuthSaslContinue, data);
}

void writeAuthenticationSaslFinal(std::string& out, std::string_view data) {
  writeAuthRequest(out, kAuthSaslFinal, data);
}

void writeParameterStatus(std::string& out, std::string_view name, std::string_view value) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kParameterStatus)).cstring(name).cstring(value);
  w.finish();
}

void writeBackendKeyData(std::string& out, int32_t pid, int32_t secret) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kBackendKeyData)).int32(pid).int32(secret);
  w.finish();
}

void writeReadyForQuery(std::string& out, TxStatus status) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kReadyForQuery)).byte(static_cast<char>(status));
  w.finish();
}

void writeNegotiateProtocolVersion(std::string& out, int32_t newest_minor,
                                   const std::vector<std::string_view>& unrecognized_options) {
  PGPIVOT_CHECK(unrecognized_options.size() <= static_cast<size_t>(INT32_MAX));
  Writer w(out);
  w.begin(tagOf(BackendTag::kNegotiateProtocolVersion))
      .int32(newest_minor)
      .int32(static_cast<int32_t>(unrecognized_options.size()));
  for (const std::string_view o : unrecognized_options) {
    w.cstring(o);
  }
  w.finish();
}

void writeRowDescription(std::string& out, const std::vector<FieldDescription>& fields) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kRowDescription)).count16(fields.size());
  for (const FieldDescription& f : fields) {
    w.cstring(f.name)
        .uint32(f.table_oid)
        .int16(f.column_attr)
        .uint32(f.type_oid)
        .int16(f.type_size)
        .int32(f.type_modifier)
        .int16(f.format);
  }
  w.finish();
}

void writeDataRow(std::string& out, const std::vector<Value>& columns) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kDataRow)).count16(columns.size());
  for (const Value& c : columns) {
    w.value(c);
  }
  w.finish();
}

void writeCommandComplete(std::string& out, std::string_view tag) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kCommandComplete)).cstring(tag);
  w.finish();
}

void writeEmptyQueryResponse(std::string& out) {
  writeEmpty(out, BackendTag::kEmptyQueryResponse);
}
void writeFrame(std::string& out, char tag, std::string_view body) {
  Writer(out).begin(tag).bytes(body).finish();
}

void writeParseComplete(std::string& out) {
  writeEmpty(out, BackendTag::kParseComplete);
}
void writeBindComplete(std::string& out) {
  writeEmpty(out, BackendTag::kBindComplete);
}
void writeCloseComplete(std::string& out) {
  writeEmpty(out, BackendTag::kCloseComplete);
}
void writeNoData(std::string& out) {
  writeEmpty(out, BackendTag::kNoData);
}
void writePortalSuspended(std::string& out) {
  writeEmpty(out, BackendTag::kPortalSuspended);
}

void writeParameterDescription(std::string& out, const std::vector<uint32_t>& type_oids) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kParameterDescription)).count16(type_oids.size());
  for (const uint32_t oid : type_oids) {
    w.uint32(oid);
  }
  w.finish();
}

void writeCopyInResponse(std::string& out, int8_t format,
                         const std::vector<int16_t>& column_formats) {
  writeCopyResponse(out, BackendTag::kCopyInResponse, format, column_formats);
}
void writeCopyOutResponse(std::string& out, int8_t format,
                          const std::vector<int16_t>& column_formats) {
  writeCopyResponse(out, BackendTag::kCopyOutResponse, format, column_formats);
}
void writeCopyBothResponse(std::string& out, int8_t format,
                           const std::vector<int16_t>& column_formats) {
  writeCopyResponse(out, BackendTag::kCopyBothResponse, format, column_formats);
}

void writeNotificationResponse(std::string& out, int32_t pid, std::string_view channel,
                               std::string_view payload) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kNotificationResponse)).int32(pid).cstring(channel).cstring(payload);
  w.finish();
}

void writeFunctionCallResponse(std::string& out, Value result) {
  Writer w(out);
  w.begin(tagOf(BackendTag::kFunctionCallResponse)).value(result);
  w.finish();
}

// --- Frontend -----------------------------------------------------------------------------

void writeStartupMessage(std::string& out, int32_t protocol,
                         const std::vector<std::pair<std::string, std::string>>& params) {
  writeStartupParams(out, protocol, params);
}

void writeStartupMessage(std::string& out, int32_t protocol,
                         std::span<const std::pair<std::string_view, std::string_view>> params) {
  writeStartupParams(out, protocol, params);
}

void writeSslRequest(std::string& out) {
  writeUntaggedCode(out, kSslRequestCode);
}
void writeGssEncRequest(std::string& out) {
  writeUntaggedCode(out, kGssEncRequestCode);
}

void writeCancelRequest(std::string& out, int32_t pid, int32_t secret) {
  Writer w(out);
  w.beginUntagged().int32(kCancelRequestCode).int32(pid).int32(secret);
  w.finish();
}

void writePasswordMessage(std::string& out, std::string_view password) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kPassword)).cstring(password);
  w.finish();
}

void writeSaslInitialResponse(std::string& out, std::string_view mechanism,
                              std::optional<std::string_view> data) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kPassword)).cstring(mechanism).value(data);
  w.finish();
}

void writeSaslResponse(std::string& out, std::string_view data) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kPassword)).bytes(data);
  w.finish();
}

void writeQuery(std::string& out, std::string_view sql) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kQuery)).cstring(sql);
  w.finish();
}

void writeTerminate(std::string& out) {
  writeEmpty(out, FrontendTag::kTerminate);
}
void writeSync(std::string& out) {
  writeEmpty(out, FrontendTag::kSync);
}
void writeFlush(std::string& out) {
  writeEmpty(out, FrontendTag::kFlush);
}

void writeParse(std::string& out, std::string_view name, std::string_view query,
                const std::vector<uint32_t>& param_types) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kParse)).cstring(name).cstring(query).count16(param_types.size());
  for (const uint32_t oid : param_types) {
    w.uint32(oid);
  }
  w.finish();
}

void writeBind(std::string& out, std::string_view portal, std::string_view statement,
               const std::vector<int16_t>& param_formats, const std::vector<Value>& params,
               const std::vector<int16_t>& result_formats) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kBind)).cstring(portal).cstring(statement);
  w.count16(param_formats.size());
  for (const int16_t f : param_formats) {
    w.int16(f);
  }
  w.count16(params.size());
  for (const Value& p : params) {
    w.value(p);
  }
  w.count16(result_formats.size());
  for (const int16_t f : result_formats) {
    w.int16(f);
  }
  w.finish();
}

void writeDescribe(std::string& out, ObjectKind kind, std::string_view name) {
  writeKindAndName(out, FrontendTag::kDescribe, kind, name);
}

void writeExecute(std::string& out, std::string_view portal, int32_t max_rows) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kExecute)).cstring(portal).int32(max_rows);
  w.finish();
}

void writeClose(std::string& out, ObjectKind kind, std::string_view name) {
  writeKindAndName(out, FrontendTag::kClose, kind, name);
}

void writeFunctionCall(std::string& out, uint32_t function_oid,
                       const std::vector<int16_t>& arg_formats, const std::vector<Value>& args,
                       int16_t result_format) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kFunctionCall)).uint32(function_oid).count16(arg_formats.size());
  for (const int16_t f : arg_formats) {
    w.int16(f);
  }
  w.count16(args.size());
  for (const Value& a : args) {
    w.value(a);
  }
  w.int16(result_format);
  w.finish();
}

void writeCopyFail(std::string& out, std::string_view message) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kCopyFail)).cstring(message);
  w.finish();
}

// --- Either direction ---------------------------------------------------------------------

void writeCopyData(std::string& out, std::string_view data) {
  Writer w(out);
  w.begin(tagOf(FrontendTag::kCopyData)).bytes(data);
  w.finish();
}

void writeCopyDone(std::string& out) {
  writeEmpty(out, FrontendTag::kCopyDone);
}

}  // namespace pgpivot::proto
