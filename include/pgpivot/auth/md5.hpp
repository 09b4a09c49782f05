// PostgreSQL's MD5 password authentication (protocol "AuthenticationMD5Password"):
// the stored "md5<hex>" form, the salted response a client sends, and its verification.
// Pure functions on strings; no sockets, no protocol framing. MD5 is kept only because
// PostgreSQL still offers it; SCRAM (scram.hpp) is the method to prefer.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgpivot::auth {

using Md5Salt = std::array<uint8_t, 4>;

// Lower-case hex MD5 of `data` (32 characters).
[[nodiscard]] std::string md5Hex(std::string_view data);

// True for PostgreSQL's stored MD5 form: "md5" followed by exactly 32 lower-case hex
// digits (the same test as PostgreSQL's get_password_type()).
[[nodiscard]] bool isMd5Secret(std::string_view secret);

// The value PostgreSQL stores in pg_authid.rolpassword: "md5" + md5(password + user).
[[nodiscard]] std::string md5PasswordHash(std::string_view password, std::string_view user);

// The PasswordMessage body a client sends for the given 4-byte salt:
// "md5" + md5(hex(md5(password + user)) + salt). `secret` may be the plain password or an
// already-hashed "md5..." value (as in an auth file); like PostgreSQL, a plain password
// that happens to look exactly like an MD5 secret is treated as one.
[[nodiscard]] std::string md5Response(std::string_view secret, std::string_view user, Md5Salt salt);

// Checks a client's response in constant time (for equal lengths).
[[nodiscard]] bool md5Verify(std::string_view secret, std::string_view user, Md5Salt salt,
                             std::string_view client_response);

}  // namespace pgpivot::auth
