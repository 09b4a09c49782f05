// OpenSSL 3 wrappers for the auth module; see crypto.hpp for why failures abort.
#include "auth/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>

#include "pgpivot/core/assert.hpp"

namespace pgpivot::auth::internal {

namespace {

// OpenSSL's one-shot APIs take int lengths; every caller here passes messages far below
// INT_MAX (the protocol layer caps message sizes), so exceeding it is a bug, not input.
int checkedInt(std::size_t n) {
  PGPIVOT_CHECK(n <= static_cast<std::size_t>(INT_MAX));
  return static_cast<int>(n);
}

// Non-null even for empty input: some OpenSSL entry points treat a null pointer as
// "use strlen" or reject it, which an empty std::string_view may hand them.
const unsigned char* nonNull(const void* p) {
  static const unsigned char kEmpty[1] = {0};
  return p != nullptr ? static_cast<const unsigned char*>(p) : kEmpty;
}

bool isBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

Sha256Digest sha256(std::span<const uint8_t> data) {
  Sha256Digest out{};
  unsigned int len = 0;
  PGPIVOT_CHECK(
      EVP_Digest(nonNull(data.data()), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1);
  PGPIVOT_CHECK(len == out.size());
  return out;
}

Sha256Digest hmacSha256(std::span<const uint8_t> key, std::string_view message) {
  Sha256Digest out{};
  unsigned int len = 0;
  PGPIVOT_CHECK(HMAC(EVP_sha256(), nonNull(key.data()), checkedInt(key.size()),
                     nonNull(message.data()), message.size(), out.data(), &len) != nullptr);
  PGPIVOT_CHECK(len == out.size());
  return out;
}

Sha256Digest pbkdf2Sha256(std::string_view password, std::string_view salt, int iterations) {
  PGPIVOT_CHECK(iterations > 0);
  Sha256Digest out{};
  PGPIVOT_CHECK(PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(nonNull(password.data())),
                                  checkedInt(password.size()), nonNull(salt.data()),
                                  checkedInt(salt.size()), iterations, EVP_sha256(),
                                  static_cast<int>(out.size()), out.data()) == 1);
  return out;
}

std::string md5Hex(std::string_view data) {
  std::array<unsigned char, 16> digest{};
  unsigned int len = 0;
  PGPIVOT_CHECK(
      EVP_Digest(nonNull(data.data()), data.size(), digest.data(), &len, EVP_md5(), nullptr) == 1);
  PGPIVOT_CHECK(len == digest.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0f]);
  }
  return out;
}

std::string base64Encode(std::span<const uint8_t> data) {
  const int in_len = checkedInt(data.size());
  // 4 output bytes per 3 input bytes, rounded up, plus the NUL EVP_EncodeBlock writes.
  std::string out(((data.size() + 2) / 3) * 4 + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), nonNull(data.data()), in_len);
  PGPIVOT_CHECK(n >= 0);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64Encode(std::string_view data) {
  return base64Encode(asBytes(data));
}

std::optional<std::string> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock tolerates surrounding whitespace and does not report padding, so
  // validate the alphabet and the padding shape ourselves first.
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') {
    padding = (text.size() >= 2 && text[text.size() - 2] == '=') ? 2 : 1;
  }
  for (std::size_t i = 0; i < text.size() - padding; ++i) {
    if (!isBase64Char(text[i])) {
      return std::nullopt;
    }
  }
  if (text.empty()) {
    return std::string();
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(text.data()), checkedInt(text.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size()) {
    return std::nullopt;
  }
  out.resize(out.size() - padding);
  return out;
}

void randomBytes(std::span<uint8_t> out) {
  PGPIVOT_CHECK(RAND_bytes(out.data(), checkedInt(out.size())) == 1);
}

bool constantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  return constantTimeEqual(asBytes(a), asBytes(b));
}

void cleanse(void* data, std::size_t len) {
  if (data != nullptr && len > 0) {
    OPENSSL_cleanse(data, len);
  }
}

}  // namespace pgpivot::auth::internal
