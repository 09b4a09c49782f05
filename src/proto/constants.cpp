// Tag names for logs and diagnostics, spelled as in the protocol documentation.
#include "pgpivot/proto/constants.hpp"

namespace pgpivot::proto {

std::string_view toString(FrontendTag tag) noexcept {
  // No default: -Wswitch flags a tag added to the enum but not named here. A byte that is
  // not an enumerator falls out of the switch.
  switch (tag) {
    case FrontendTag::kQuery:
      return "Query";
    case FrontendTag::kParse:
      return "Parse";
    case FrontendTag::kBind:
      return "Bind";
    case FrontendTag::kDescribe:
      return "Describe";
    case FrontendTag::kExecute:
      return "Execute";
    case FrontendTag::kSync:
      return "Sync";
    case FrontendTag::kFlush:
      return "Flush";
    case FrontendTag::kClose:
      return "Close";
    case FrontendTag::kCopyData:
      return "CopyData";
    case FrontendTag::kCopyDone:
      return "CopyDone";
    case FrontendTag::kCopyFail:
      return "CopyFail";
    case FrontendTag::kFunctionCall:
      return "FunctionCall";
    case FrontendTag::kTerminate:
      return "Terminate";
    case FrontendTag::kPassword:
      // Also SASLInitialResponse, SASLResponse and GSSResponse; the byte cannot tell.
      return "PasswordMessage";
  }
  return "Unknown";
}

std::string_view toString(BackendTag tag) noexcept {
  switch (tag) {
    case BackendTag::kAuthentication:
      return "Authentication";
    case BackendTag::kBackendKeyData:
      return "BackendKeyData";
    case BackendTag::kBindComplete:
      return "BindComplete";
    case BackendTag::kCloseComplete:
      return "CloseComplete";
    case BackendTag::kCommandComplete:
      return "CommandComplete";
    case BackendTag::kCopyData:
      return "CopyData";
    case BackendTag::kCopyDone:
      return "CopyDone";
    case BackendTag::kCopyInResponse:
      return "CopyInResponse";
    case BackendTag::kCopyOutResponse:
      return "CopyOutResponse";
    case BackendTag::kCopyBothResponse:
      return "CopyBothResponse";
    case BackendTag::kDataRow:
      return "DataRow";
    case BackendTag::kEmptyQueryResponse:
      return "EmptyQueryResponse";
    case BackendTag::kErrorResponse:
      return "ErrorResponse";
    case BackendTag::kFunctionCallResponse:
      return "FunctionCallResponse";
    case BackendTag::kNegotiateProtocolVersion:
      return "NegotiateProtocolVersion";
    case BackendTag::kNoData:
      return "NoData";
    case BackendTag::kNoticeResponse:
      return "NoticeResponse";
    case BackendTag::kNotificationResponse:
      return "NotificationResponse";
    case BackendTag::kParameterDescription:
      return "ParameterDescription";
    case BackendTag::kParameterStatus:
      return "ParameterStatus";
    case BackendTag::kParseComplete:
      return "ParseComplete";
    case BackendTag::kPortalSuspended:
      return "PortalSuspended";
    case BackendTag::kReadyForQuery:
      return "ReadyForQuery";
    case BackendTag::kRowDescription:
      return "RowDescription";
  }
  return "Unknown";
}

bool isFrontendTag(char tag) noexcept {
  return toString(static_cast<FrontendTag>(tag)) != "Unknown";
}

bool isBackendTag(char tag) noexcept {
  return toString(static_cast<BackendTag>(tag)) != "Unknown";
}

std::string_view toString(TxStatus status) noexcept {
  switch (status) {
    case TxStatus::kIdle:
      return "idle";
    case TxStatus::kInTransaction:
      return "in transaction";
    case TxStatus::kFailed:
      return "in failed transaction";
  }
  return "unknown";
}

}  // namespace pgpivot::proto
