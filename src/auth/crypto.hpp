// Private to the auth module: thin, allocation-light wrappers over OpenSSL 3 for the
// primitives SCRAM and MD5 authentication need (digests, HMAC, PBKDF2, base64, random
// bytes, constant-time compare). Not a general crypto API: nothing outside src/auth uses it.
// OpenSSL failures here mean a broken library or an exhausted entropy source, not bad
// input, so they abort (STYLE.md 3.4, "unrecoverable").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pgpivot::auth::internal {

inline constexpr std::size_t kSha256Len = 32;
using Sha256Digest = std::array<uint8_t, kSha256Len>;

[[nodiscard]] Sha256Digest sha256(std::span<const uint8_t> data);
[[nodiscard]] Sha256Digest hmacSha256(std::span<const uint8_t> key, std::string_view message);
// PBKDF2-HMAC-SHA-256 with a 32-byte output: SCRAM's Hi() (RFC 5802 section 2.2).
[[nodiscard]] Sha256Digest pbkdf2Sha256(std::string_view password, std::string_view salt,
                                        int iterations);
// Lower-case hex of the 16-byte MD5 digest, as PostgreSQL writes it.
[[nodiscard]] std::string md5Hex(std::string_view data);

[[nodiscard]] std::string base64Encode(std::span<const uint8_t> data);
[[nodiscard]] std::string base64Encode(std::string_view data);
// Strict RFC 4648 decoding: no whitespace, length a multiple of 4, '=' only as final
// padding. Returns nullopt for anything else, so a peer cannot smuggle bytes past us.
[[nodiscard]] std::optional<std::string> base64Decode(std::string_view text);

// Fills `out` from the CSPRNG; aborts if OpenSSL cannot provide randomness.
void randomBytes(std::span<uint8_t> out);

// Compares in time that depends only on the lengths, never on where bytes differ.
[[nodiscard]] bool constantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);
[[nodiscard]] bool constantTimeEqual(std::string_view a, std::string_view b);

// Wipes secrets before their memory is released (OPENSSL_cleanse cannot be optimised out).
void cleanse(void* data, std::size_t len);

inline std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace pgpivot::auth::internal
