// Private to the auth module: the SCRAM message grammar (RFC 5802 section 7) shared by
// the client and server state machines, and the key arithmetic both sides perform.
// Readers advance a string_view cursor and report malformed input as nullopt / false;
// callers turn that into an Error with the right SQLSTATE.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pgpivot/auth/scram.hpp"

namespace pgpivot::auth::internal {

struct ScramAttr {
  char name{0};
  std::string_view value;
};

// Reads "<name>=<value>"; the value runs to the next ',' or the end, and the cursor is
// left on that ',' (or empty). Separators are consumed explicitly with skipComma(), so a
// trailing ',' is an error instead of silently accepted (PostgreSQL's reader tolerates it
// in some places; nothing legitimate sends one).
[[nodiscard]] std::optional<std::string_view> readAttr(std::string_view& cursor, char name);
// Reads any attribute whose name is an ASCII letter (extensions, "p=", "e=").
[[nodiscard]] std::optional<ScramAttr> readAnyAttr(std::string_view& cursor);
// Consumes the ',' between two attributes.
[[nodiscard]] bool skipComma(std::string_view& cursor);

// RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','.
[[nodiscard]] bool isScramPrintable(std::string_view s);

// Strict positive decimal without sign or leading spaces; nullopt on overflow.
[[nodiscard]] std::optional<int> parsePositiveInt(std::string_view s);

// saslname escaping for the n= attribute: '=' → "=3D", ',' → "=2C".
[[nodiscard]] std::string escapeSaslName(std::string_view name);

// A fresh nonce: 18 random bytes, base64 (24 printable characters), as PostgreSQL uses.
[[nodiscard]] std::string makeNonce();

// HMAC(key, auth_message): ClientSignature with StoredKey, ServerSignature with ServerKey.
[[nodiscard]] ScramKey scramSignature(const ScramKey& key, std::string_view auth_message);
[[nodiscard]] ScramKey scramXor(const ScramKey& a, const ScramKey& b);
[[nodiscard]] ScramKey scramStoredKey(const ScramKey& client_key);

}  // namespace pgpivot::auth::internal
