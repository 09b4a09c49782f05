// The auth file (PgBouncer's userlist.txt format): which users may log in and with what
// password or stored secret. Parsing and lookup only; deciding which auth method to use
// for a secret, and reloading the file, belong to the session and config layers.
//
// Format: one user per line, `"username" "password-or-secret"`; a '"' inside a field is
// written twice; blank lines and lines starting with ';' or '#' are ignored, and so is
// anything after the second field (PgBouncer ignores trailing text too).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/core/result.hpp"

namespace pgpivot::auth {

struct AuthFileEntry {
  std::string user;
  std::string secret;  // plain password, "md5..." or "SCRAM-SHA-256$..."
  int line{0};         // 1-based line number in the file, for diagnostics
};

struct AuthFile {
  std::map<std::string, AuthFileEntry, std::less<>> users;

  // nullptr when the user is not listed.
  [[nodiscard]] const AuthFileEntry* find(std::string_view user) const;
};

// Parses the file's text. A malformed line fails the whole parse with
// "<filename>:<line>: <what>" in Error.message (sqlstate F0000), so a reload never applies
// half a file. Suspicious but usable lines (duplicate users, empty passwords) add
// "<filename>:<line>: ..." strings to `warnings`; for duplicates the later line wins.
[[nodiscard]] Result<AuthFile> parseAuthFile(std::string_view text, std::string_view filename,
                                             std::vector<std::string>& warnings);

// Reads and parses `path`; a read failure names the path and strerror(errno). Blocking
// file I/O: call at start-up or on the reload path, never on a worker loop.
[[nodiscard]] Result<AuthFile> loadAuthFile(const std::string& path,
                                            std::vector<std::string>& warnings);

enum class SecretKind {
  kPlain,  // a plain-text password
  kMd5,    // "md5" + 32 lower-case hex digits
  kScram,  // a well-formed "SCRAM-SHA-256$..." secret
};

[[nodiscard]] SecretKind secretKind(std::string_view secret);

}  // namespace pgpivot::auth
