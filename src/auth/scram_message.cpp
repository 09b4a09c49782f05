// SCRAM grammar helpers and key arithmetic; see scram_message.hpp.
#include "auth/scram_message.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "auth/crypto.hpp"

namespace pgpivot::auth::internal {

namespace {

constexpr std::size_t kRawNonceLen = 18;  // PostgreSQL's SCRAM_RAW_NONCE_LEN

bool isAsciiLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Splits "<value>[,rest]", leaving the separator in the cursor.
std::string_view takeValue(std::string_view& cursor) {
  const std::size_t end = std::min(cursor.find(','), cursor.size());
  std::string_view value = cursor.substr(0, end);
  cursor.remove_prefix(end);
  return value;
}

}  // namespace

std::optional<std::string_view> readAttr(std::string_view& cursor, char name) {
  if (cursor.size() < 2 || cursor[0] != name || cursor[1] != '=') {
    return std::nullopt;
  }
  cursor.remove_prefix(2);
  return takeValue(cursor);
}

std::optional<ScramAttr> readAnyAttr(std::string_view& cursor) {
  if (cursor.size() < 2 || !isAsciiLetter(cursor[0]) || cursor[1] != '=') {
    return std::nullopt;
  }
  const char name = cursor[0];
  cursor.remove_prefix(2);
  return ScramAttr{name, takeValue(cursor)};
}

bool skipComma(std::string_view& cursor) {
  if (cursor.empty() || cursor[0] != ',') {
    return false;
  }
  cursor.remove_prefix(1);
  return true;
}

bool isScramPrintable(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e || c == ',') {
      return false;
    }
  }
  return true;
}

std::optional<int> parsePositiveInt(std::string_view s) {
  if (s.empty() || s.size() > 10) {
    return std::nullopt;
  }
  int64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  if (value <= 0 || value > INT32_MAX) {
    return std::nullopt;
  }
  return static_cast<int>(value);
}

std::string escapeSaslName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '=') {
      out += "=3D";
    } else if (c == ',') {
      out += "=2C";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string makeNonce() {
  std::array<uint8_t, kRawNonceLen> raw{};
  randomBytes(raw);
  return base64Encode(raw);
}

ScramKey scramSignature(const ScramKey& key, std::string_view auth_message) {
  return hmacSha256(key, auth_message);
}

ScramKey scramXor(const ScramKey& a, const ScramKey& b) {
  ScramKey out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint8_t>(a[i] ^ b[i]);
  }
  return out;
}

ScramKey scramStoredKey(const ScramKey& client_key) {
  return sha256(client_key);
}

}  // namespace pgpivot::auth::internal
