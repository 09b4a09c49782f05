// Parser for the auth file (PgBouncer userlist.txt format); see auth_file.hpp.
#include "pgpivot/auth/auth_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "pgpivot/auth/md5.hpp"
#include "pgpivot/auth/scram.hpp"

namespace pgpivot::auth {

namespace {

// PgBouncer's MAX_USERNAME / MAX_PASSWORD; longer values would be truncated or rejected
// by PgBouncer and PostgreSQL limits names to NAMEDATALEN-1 bytes anyway.
constexpr std::size_t kMaxUserLen = 128;
constexpr std::size_t kMaxSecretLen = 2048;

bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

void skipBlanks(std::string_view& s) {
  while (!s.empty() && isBlank(s.front())) {
    s.remove_prefix(1);
  }
}

// Reads a "..." field with "" standing for one '"'. On success the cursor is left just
// after the closing quote. Returns nullopt when the line ends before the closing quote.
std::optional<std::string> readQuoted(std::string_view& cursor) {
  std::string out;
  std::size_t i = 1;  // past the opening quote
  while (i < cursor.size()) {
    const char c = cursor[i];
    if (c == '"') {
      if (i + 1 < cursor.size() && cursor[i + 1] == '"') {
        out.push_back('"');
        i += 2;
        continue;
      }
      cursor.remove_prefix(i + 1);
      return out;
    }
    out.push_back(c);
    ++i;
  }
  return std::nullopt;
}

std::string where(std::string_view filename, int line) {
  return std::string(filename) + ":" + std::to_string(line) + ": ";
}

tl::unexpected<Error> badLine(std::string_view filename, int line, std::string_view what) {
  return pgpivot::fail(sqlstate::kConfigFileError, where(filename, line) + std::string(what));
}

}  // namespace

const AuthFileEntry* AuthFile::find(std::string_view user) const {
  const auto it = users.find(user);
  return it == users.end() ? nullptr : &it->second;
}

Result<AuthFile> parseAuthFile(std::string_view text, std::string_view filename,
                               std::vector<std::string>& warnings) {
  // A UTF-8 byte order mark, as some editors write, is not part of the first line.
  if (text.starts_with("\xEF\xBB\xBF")) {
    text.remove_prefix(3);
  }
  AuthFile file;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);

    skipBlanks(line);
    if (line.empty() || line.front() == ';' || line.front() == '#') {
      continue;
    }
    if (line.front() != '"') {
      return badLine(filename, line_no, "expected a double-quoted user name");
    }
    auto user = readQuoted(line);
    if (!user) {
      return badLine(filename, line_no, "unterminated quoted user name");
    }
    if (user->empty()) {
      return badLine(filename, line_no, "empty user name");
    }
    if (user->size() > kMaxUserLen) {
      return badLine(filename, line_no, "user name longer than 128 bytes");
    }
    skipBlanks(line);
    if (line.empty() || line.front() != '"') {
      return badLine(filename, line_no, "expected a double-quoted password after the user name");
    }
    auto secret = readQuoted(line);
    if (!secret) {
      return badLine(filename, line_no, "unterminated quoted password");
    }
    if (secret->size() > kMaxSecretLen) {
      return badLine(filename, line_no, "password longer than 2048 bytes");
    }
    // Whatever follows the second field is ignored, as PgBouncer does.

    if (secret->empty()) {
      warnings.push_back(where(filename, line_no) + "user \"" + *user +
                         "\" has an empty password and can never log in");
    } else if (secret->starts_with("SCRAM-SHA-256$") && !isScramSecret(*secret)) {
      // Almost certainly a damaged secret; it will be treated as a plain password.
      warnings.push_back(where(filename, line_no) + "user \"" + *user +
                         "\" has a malformed SCRAM secret; it will be used as a plain password");
    }
    if (const AuthFileEntry* previous = file.find(*user); previous != nullptr) {
      warnings.push_back(where(filename, line_no) + "duplicate entry for user \"" + *user +
                         "\" (first at line " + std::to_string(previous->line) +
                         "); this line wins");
    }
    AuthFileEntry entry{*user, std::move(*secret), line_no};
    file.users.insert_or_assign(std::move(*user), std::move(entry));
  }
  return file;
}

Result<AuthFile> loadAuthFile(const std::string& path, std::vector<std::string>& warnings) {
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return pgpivot::fail(sqlstate::kConfigFileError,
                         "cannot open auth file " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[8192];
  while (true) {
    const std::size_t n = std::fread(buf, 1, sizeof(buf), f.get());
    text.append(buf, n);
    if (n < sizeof(buf)) {
      break;
    }
  }
  if (std::ferror(f.get())) {
    return pgpivot::fail(sqlstate::kConfigFileError,
                         "cannot read auth file " + path + ": " + std::strerror(errno));
  }
  return parseAuthFile(text, path, warnings);
}

SecretKind secretKind(std::string_view secret) {
  if (isMd5Secret(secret)) {
    return SecretKind::kMd5;
  }
  if (isScramSecret(secret)) {
    return SecretKind::kScram;
  }
  return SecretKind::kPlain;
}

}  // namespace pgpivot::auth
