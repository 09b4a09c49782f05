// Errors as values (STYLE.md 3.4): every fallible call on the data path returns
// Result<T>. An Error carries the SQLSTATE a client should see and a human message;
// it is not an exception and never crosses a thread.
#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace pgpivot {

// SQLSTATE codes pgpivot itself reports (PostgreSQL Appendix A).
namespace sqlstate {
inline constexpr std::string_view kProtocolViolation = "08P01";
inline constexpr std::string_view kConnectionFailure = "08006";
inline constexpr std::string_view kCannotConnectNow = "57P03";
inline constexpr std::string_view kAdminShutdown = "57P01";
inline constexpr std::string_view kInvalidPassword = "28P01";
inline constexpr std::string_view kInvalidAuthorization = "28000";
inline constexpr std::string_view kInvalidCatalogName = "3D000";
inline constexpr std::string_view kTooManyConnections = "53300";
inline constexpr std::string_view kFeatureNotSupported = "0A000";
inline constexpr std::string_view kQueryCanceled = "57014";
inline constexpr std::string_view kInternalError = "XX000";
inline constexpr std::string_view kConfigFileError = "F0000";
inline constexpr std::string_view kSerializationFailure = "40001";
inline constexpr std::string_view kStatementCompletionUnknown = "40003";
inline constexpr std::string_view kReadOnlyTransaction = "25006";
}  // namespace sqlstate

struct Error {
  std::string_view sqlstate{sqlstate::kInternalError};
  std::string message;
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string_view state, std::string message) {
  return tl::unexpected<Error>(Error{state, std::move(message)});
}

}  // namespace pgpivot
