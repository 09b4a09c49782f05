// MD5 password authentication, computed exactly as PostgreSQL's pg_md5_encrypt() and
// libpq's pg_password_sendauth() do.
#include "pgpivot/auth/md5.hpp"

#include "auth/crypto.hpp"

namespace pgpivot::auth {

namespace {

constexpr std::string_view kMd5Prefix = "md5";
constexpr std::size_t kMd5HexLen = 32;

// The 32 hex digits of md5(password + user), whether we were given the password or the
// stored form.
std::string innerHex(std::string_view secret, std::string_view user) {
  if (isMd5Secret(secret)) {
    return std::string(secret.substr(kMd5Prefix.size()));
  }
  std::string buf;
  buf.reserve(secret.size() + user.size());
  buf.append(secret).append(user);
  std::string hex = internal::md5Hex(buf);
  internal::cleanse(buf.data(), buf.size());
  return hex;
}

}  // namespace

std::string md5Hex(std::string_view data) {
  return internal::md5Hex(data);
}

bool isMd5Secret(std::string_view secret) {
  if (secret.size() != kMd5Prefix.size() + kMd5HexLen || !secret.starts_with(kMd5Prefix)) {
    return false;
  }
  for (char c : secret.substr(kMd5Prefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

std::string md5PasswordHash(std::string_view password, std::string_view user) {
  std::string buf;
  buf.reserve(password.size() + user.size());
  buf.append(password).append(user);
  std::string out = std::string(kMd5Prefix) + internal::md5Hex(buf);
  internal::cleanse(buf.data(), buf.size());
  return out;
}

std::string md5Response(std::string_view secret, std::string_view user, Md5Salt salt) {
  std::string buf = innerHex(secret, user);
  // The salt is raw bytes appended after the 32 hex characters (PostgreSQL's
  // pg_md5_encrypt(crypt_pwd2 + strlen("md5"), salt, 4, ...)).
  buf.append(reinterpret_cast<const char*>(salt.data()), salt.size());
  std::string out = std::string(kMd5Prefix) + internal::md5Hex(buf);
  internal::cleanse(buf.data(), buf.size());
  return out;
}

bool md5Verify(std::string_view secret, std::string_view user, Md5Salt salt,
               std::string_view client_response) {
  const std::string expected = md5Response(secret, user, salt);
  return internal::constantTimeEqual(expected, client_response);
}

}  // namespace pgpivot::auth
