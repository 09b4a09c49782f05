// Wire-level constants of the PostgreSQL v3 protocol: message tags per direction, the
// special codes of untyped start-up packets, authentication request codes, error field
// codes and transaction status bytes. Names follow the PostgreSQL documentation,
// "Frontend/Backend Protocol" (chapter 55 in PostgreSQL 15). No parsing or framing here.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgpivot::proto {

// Tags of typed messages sent by a client. 'p' is shared by PasswordMessage,
// SASLInitialResponse, SASLResponse and GSSResponse: which one it is follows from the
// authentication request the server sent last, not from the byte.
enum class FrontendTag : char {
  kQuery = 'Q',
  kParse = 'P',
  kBind = 'B',
  kDescribe = 'D',
  kExecute = 'E',
  kSync = 'S',
  kFlush = 'H',
  kClose = 'C',
  kCopyData = 'd',
  kCopyDone = 'c',
  kCopyFail = 'f',
  kFunctionCall = 'F',
  kTerminate = 'X',
  kPassword = 'p',
};

// Tags of typed messages sent by a server. Note the overlap with FrontendTag ('D', 'C',
// 'E', 'S', 'H', 'd', 'c'): a tag only means something together with its direction.
enum class BackendTag : char {
  kAuthentication = 'R',
  kBackendKeyData = 'K',
  kBindComplete = '2',
  kCloseComplete = '3',
  kCommandComplete = 'C',
  kCopyData = 'd',
  kCopyDone = 'c',
  kCopyInResponse = 'G',
  kCopyOutResponse = 'H',
  kCopyBothResponse = 'W',
  kDataRow = 'D',
  kEmptyQueryResponse = 'I',
  kErrorResponse = 'E',
  kFunctionCallResponse = 'V',
  kNegotiateProtocolVersion = 'v',
  kNoData = 'n',
  kNoticeResponse = 'N',
  kNotificationResponse = 'A',
  kParameterDescription = 't',
  kParameterStatus = 'S',
  kParseComplete = '1',
  kPortalSuspended = 's',
  kReadyForQuery = 'Z',
  kRowDescription = 'T',
};

// The protocol documentation's name for each tag ("Query", "RowDescription", ...), or
// "Unknown" for a byte that is not a tag of that direction.
[[nodiscard]] std::string_view toString(FrontendTag tag) noexcept;
[[nodiscard]] std::string_view toString(BackendTag tag) noexcept;

// Whether a raw byte read from the wire is a known tag for that direction.
[[nodiscard]] bool isFrontendTag(char tag) noexcept;
[[nodiscard]] bool isBackendTag(char tag) noexcept;

// --- Untyped start-up packets ------------------------------------------------------------
// The first packet of a connection has no tag: Int32 length, then an Int32 code. The code
// is either a protocol version (major << 16 | minor) or one of the special request codes,
// which PostgreSQL chose to look like version 1234.5678 and so on.
inline constexpr int32_t kProtocolVersion3 = 196608;  // 3.0
inline constexpr int32_t kCancelRequestCode = 80877102;
inline constexpr int32_t kSslRequestCode = 80877103;
inline constexpr int32_t kGssEncRequestCode = 80877104;

// Upper bound on a start-up packet, length word included (PostgreSQL's
// MAX_STARTUP_PACKET_LENGTH, as Envoy applies it). Lower bound: length + code = 8 bytes.
inline constexpr int32_t kMaxStartupPacketLength = 10000;
inline constexpr int32_t kMinStartupPacketLength = 8;

[[nodiscard]] constexpr int32_t protocolMajor(int32_t version) noexcept {
  return version >> 16;
}
[[nodiscard]] constexpr int32_t protocolMinor(int32_t version) noexcept {
  return version & 0xffff;
}

// --- Authentication request codes (first Int32 of an 'R' message) -------------------------
inline constexpr int32_t kAuthOk = 0;
inline constexpr int32_t kAuthKerberosV5 = 2;
inline constexpr int32_t kAuthCleartext = 3;
inline constexpr int32_t kAuthMd5 = 5;
inline constexpr int32_t kAuthScmCredential = 6;
inline constexpr int32_t kAuthGss = 7;
inline constexpr int32_t kAuthGssContinue = 8;
inline constexpr int32_t kAuthSspi = 9;
inline constexpr int32_t kAuthSasl = 10;
inline constexpr int32_t kAuthSaslContinue = 11;
inline constexpr int32_t kAuthSaslFinal = 12;

// --- ReadyForQuery status byte ------------------------------------------------------------
enum class TxStatus : char {
  kIdle = 'I',           // not in a transaction block: a server may return to the pool
  kInTransaction = 'T',  // inside BEGIN ... COMMIT
  kFailed = 'E',         // inside a failed transaction block; only ROLLBACK gets out
};

[[nodiscard]] std::string_view toString(TxStatus status) noexcept;

// --- ErrorResponse / NoticeResponse field codes ("Error and Notice Message Fields") -------
namespace field {
inline constexpr char kSeverity = 'S';
inline constexpr char kSeverityNonLocalized = 'V';
inline constexpr char kSqlState = 'C';
inline constexpr char kMessage = 'M';
inline constexpr char kDetail = 'D';
inline constexpr char kHint = 'H';
inline constexpr char kPosition = 'P';
inline constexpr char kInternalPosition = 'p';
inline constexpr char kInternalQuery = 'q';
inline constexpr char kWhere = 'W';
inline constexpr char kSchemaName = 's';
inline constexpr char kTableName = 't';
inline constexpr char kColumnName = 'c';
inline constexpr char kDataTypeName = 'd';
inline constexpr char kConstraintName = 'n';
inline constexpr char kFile = 'F';
inline constexpr char kLine = 'L';
inline constexpr char kRoutine = 'R';
}  // namespace field

// Severity words; the 'V' field always carries the English form, so pgpivot sends these.
namespace severity {
inline constexpr std::string_view kError = "ERROR";
inline constexpr std::string_view kFatal = "FATAL";
inline constexpr std::string_view kPanic = "PANIC";
inline constexpr std::string_view kWarning = "WARNING";
inline constexpr std::string_view kNotice = "NOTICE";
inline constexpr std::string_view kDebug = "DEBUG";
inline constexpr std::string_view kInfo = "INFO";
inline constexpr std::string_view kLog = "LOG";
}  // namespace severity

// Format codes of Bind, CopyInResponse, RowDescription and friends.
inline constexpr int16_t kFormatText = 0;
inline constexpr int16_t kFormatBinary = 1;

}  // namespace pgpivot::proto
