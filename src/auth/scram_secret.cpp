// PostgreSQL's stored SCRAM-SHA-256 secret: parsing, formatting and derivation from a
// password (the same steps as PostgreSQL's scram_build_secret()).
#include <array>
#include <cstring>

#include "auth/crypto.hpp"
#include "auth/scram_message.hpp"
#include "pgpivot/auth/scram.hpp"

namespace pgpivot::auth {

namespace {

constexpr std::string_view kSecretPrefix = "SCRAM-SHA-256$";

tl::unexpected<Error> badSecret(std::string_view what) {
  return pgpivot::fail(sqlstate::kInvalidAuthorization,
                       "invalid SCRAM secret: " + std::string(what));
}

// Splits `text` at the first `sep`; false when there is none.
bool splitAt(std::string_view text, char sep, std::string_view& left, std::string_view& right) {
  const std::size_t pos = text.find(sep);
  if (pos == std::string_view::npos) {
    return false;
  }
  left = text.substr(0, pos);
  right = text.substr(pos + 1);
  return true;
}

bool decodeKey(std::string_view b64, ScramKey& out) {
  auto raw = internal::base64Decode(b64);
  if (!raw || raw->size() != out.size()) {
    return false;
  }
  std::memcpy(out.data(), raw->data(), out.size());
  internal::cleanse(raw->data(), raw->size());
  return true;
}

}  // namespace

Result<ScramSecret> parseScramSecret(std::string_view text) {
  if (!text.starts_with(kSecretPrefix)) {
    return badSecret("does not start with SCRAM-SHA-256$");
  }
  text.remove_prefix(kSecretPrefix.size());
  std::string_view params, keys, iter_text, salt_b64, stored_b64, server_b64;
  if (!splitAt(text, '$', params, keys) || !splitAt(params, ':', iter_text, salt_b64) ||
      !splitAt(keys, ':', stored_b64, server_b64)) {
    return badSecret("expected <iterations>:<salt>$<StoredKey>:<ServerKey>");
  }
  ScramSecret secret;
  const auto iterations = internal::parsePositiveInt(iter_text);
  if (!iterations) {
    return badSecret("iteration count is not a positive integer");
  }
  secret.iterations = *iterations;
  auto salt = internal::base64Decode(salt_b64);
  if (!salt || salt->empty()) {
    return badSecret("salt is not valid base64");
  }
  secret.salt = std::move(*salt);
  if (!decodeKey(stored_b64, secret.stored_key)) {
    return badSecret("StoredKey is not 32 bytes of base64");
  }
  if (!decodeKey(server_b64, secret.server_key)) {
    return badSecret("ServerKey is not 32 bytes of base64");
  }
  return secret;
}

std::string formatScramSecret(const ScramSecret& secret) {
  std::string out(kSecretPrefix);
  out += std::to_string(secret.iterations);
  out += ':';
  out += internal::base64Encode(secret.salt);
  out += '$';
  out += internal::base64Encode(secret.stored_key);
  out += ':';
  out += internal::base64Encode(secret.server_key);
  return out;
}

bool isScramSecret(std::string_view text) {
  return parseScramSecret(text).has_value();
}

ScramSecret makeScramSecret(std::string_view password, std::string_view salt, int iterations) {
  ScramKey salted = internal::pbkdf2Sha256(password, salt, iterations);
  ScramKey client_key = internal::hmacSha256(salted, "Client Key");
  ScramSecret secret;
  secret.iterations = iterations;
  secret.salt = std::string(salt);
  secret.stored_key = internal::scramStoredKey(client_key);
  secret.server_key = internal::hmacSha256(salted, "Server Key");
  internal::cleanse(salted.data(), salted.size());
  internal::cleanse(client_key.data(), client_key.size());
  return secret;
}

ScramSecret makeScramSecret(std::string_view password) {
  std::array<uint8_t, kScramDefaultSaltLen> salt{};
  internal::randomBytes(salt);
  return makeScramSecret(password,
                         std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()),
                         kScramDefaultIterations);
}

}  // namespace pgpivot::auth
