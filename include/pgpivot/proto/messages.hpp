// Builders for every message pgpivot generates itself, as either side of a connection.
// Each writeX() appends one complete message to `out` through a Writer, so lengths are
// back-patched, never computed by hand. They cannot fail on input: strings are cut at an
// embedded NUL (writer.hpp) and a list too long for its Int16 count is a pgpivot bug
// (PGPIVOT_CHECK). Relayed traffic is forwarded as raw bytes and never rebuilt here.
// Parsing is in views.hpp, included here so that one include gives both directions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgpivot/proto/constants.hpp"
#include "pgpivot/proto/views.hpp"

namespace pgpivot::proto {

// --- Backend messages (pgpivot speaking to clients) --------------------------------------

// Fields S and V (both `severity`), C, M, and D only when `detail` is non-empty.
void writeErrorResponse(std::string& out, std::string_view severity, std::string_view sqlstate,
                        std::string_view message, std::string_view detail = {});
void writeNoticeResponse(std::string& out, std::string_view severity, std::string_view sqlstate,
                         std::string_view message, std::string_view detail = {});
// Arbitrary fields in the given order, for rewriting a server's error; `tag` is
// BackendTag::kErrorResponse or kNoticeResponse.
void writeErrorFields(std::string& out, BackendTag tag,
                      const std::vector<std::pair<char, std::string_view>>& fields);

void writeAuthenticationOk(std::string& out);
void writeAuthenticationCleartextPassword(std::string& out);
void writeAuthenticationMd5Password(std::string& out, const std::array<char, 4>& salt);
void writeAuthenticationSasl(std::string& out, const std::vector<std::string_view>& mechanisms);
void writeAuthenticationSaslContinue(std::string& out, std::string_view data);
void writeAuthenticationSaslFinal(std::string& out, std::string_view data);

void writeParameterStatus(std::string& out, std::string_view name, std::string_view value);
void writeBackendKeyData(std::string& out, int32_t pid, int32_t secret);
void writeReadyForQuery(std::string& out, TxStatus status);
void writeNegotiateProtocolVersion(std::string& out, int32_t newest_minor,
                                   const std::vector<std::string_view>& unrecognized_options);

void writeRowDescription(std::string& out, const std::vector<FieldDescription>& fields);
void writeDataRow(std::string& out, const std::vector<Value>& columns);
void writeCommandComplete(std::string& out, std::string_view tag);
void writeEmptyQueryResponse(std::string& out);
// Any message re-framed around a body pgpivot already holds (an error it passes on, a
// message it rewrote).
void writeFrame(std::string& out, char tag, std::string_view body);
void writeParseComplete(std::string& out);
void writeBindComplete(std::string& out);
void writeCloseComplete(std::string& out);
void writeNoData(std::string& out);
void writePortalSuspended(std::string& out);
void writeParameterDescription(std::string& out, const std::vector<uint32_t>& type_oids);
void writeCopyInResponse(std::string& out, int8_t format,
                         const std::vector<int16_t>& column_formats);
void writeCopyOutResponse(std::string& out, int8_t format,
                          const std::vector<int16_t>& column_formats);
void writeCopyBothResponse(std::string& out, int8_t format,
                           const std::vector<int16_t>& column_formats);
void writeNotificationResponse(std::string& out, int32_t pid, std::string_view channel,
                               std::string_view payload);
void writeFunctionCallResponse(std::string& out, Value result);

// --- Frontend messages (pgpivot speaking to servers) -------------------------------------

// Untyped: protocol version, then name/value pairs, then the terminating NUL.
void writeStartupMessage(std::string& out, int32_t protocol,
                         const std::vector<std::pair<std::string, std::string>>& params);
// For relaying a client's parameters (StartupView::params) without copying them; a span so
// that a braced list picks the overload above unambiguously.
void writeStartupMessage(std::string& out, int32_t protocol,
                         std::span<const std::pair<std::string_view, std::string_view>> params);
void writeSslRequest(std::string& out);
void writeGssEncRequest(std::string& out);
void writeCancelRequest(std::string& out, int32_t pid, int32_t secret);

void writePasswordMessage(std::string& out, std::string_view password);
// `data` std::nullopt is sent as length -1 ("no initial response").
void writeSaslInitialResponse(std::string& out, std::string_view mechanism,
                              std::optional<std::string_view> data);
void writeSaslResponse(std::string& out, std::string_view data);

void writeQuery(std::string& out, std::string_view sql);
void writeTerminate(std::string& out);
void writeSync(std::string& out);
void writeFlush(std::string& out);
void writeParse(std::string& out, std::string_view name, std::string_view query,
                const std::vector<uint32_t>& param_types);
void writeBind(std::string& out, std::string_view portal, std::string_view statement,
               const std::vector<int16_t>& param_formats, const std::vector<Value>& params,
               const std::vector<int16_t>& result_formats);
void writeDescribe(std::string& out, ObjectKind kind, std::string_view name);
void writeExecute(std::string& out, std::string_view portal, int32_t max_rows);
void writeClose(std::string& out, ObjectKind kind, std::string_view name);
void writeFunctionCall(std::string& out, uint32_t function_oid,
                       const std::vector<int16_t>& arg_formats, const std::vector<Value>& args,
                       int16_t result_format);
void writeCopyFail(std::string& out, std::string_view message);

// --- Either direction -------------------------------------------------------------------

// CopyData and CopyDone carry the same tag both ways.
void writeCopyData(std::string& out, std::string_view data);
void writeCopyDone(std::string& out);

}  // namespace pgpivot::proto
