#include "pgpivot/config/config.hpp"

namespace pgpivot::config {

// The spellings are the config file's, so SHOW CONFIG output can be pasted back into it.
std::string_view toString(PoolMode mode) {
  switch (mode) {
    case PoolMode::kSession:
      return "session";
    case PoolMode::kTransaction:
      return "transaction";
    case PoolMode::kStatement:
      return "statement";
  }
  return "unknown";
}

std::string_view toString(AuthType type) {
  switch (type) {
    case AuthType::kTrust:
      return "trust";
    case AuthType::kAny:
      return "any";
    case AuthType::kPlain:
      return "plain";
    case AuthType::kMd5:
      return "md5";
    case AuthType::kScramSha256:
      return "scram-sha-256";
    case AuthType::kCert:
      return "cert";
    case AuthType::kHba:
      return "hba";
  }
  return "unknown";
}

std::string_view toString(FailoverMode mode) {
  switch (mode) {
    case FailoverMode::kFollow:
      return "follow";
    case FailoverMode::kPromote:
      return "promote";
    case FailoverMode::kManual:
      return "manual";
  }
  return "unknown";
}

}  // namespace pgpivot::config
