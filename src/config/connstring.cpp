#include "connstring.hpp"

namespace pgpivot::config {
namespace {

bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

void skipBlanks(std::string_view text, std::size_t& pos) {
  while (pos < text.size() && isBlank(text[pos])) {
    ++pos;
  }
}

tl::unexpected<Error> syntax(std::string reason) {
  return fail(sqlstate::kConfigFileError, std::move(reason));
}

// After the opening quote; leaves `pos` after the closing one.
Result<std::string> readQuoted(std::string_view text, std::size_t& pos, const std::string& key) {
  std::string value;
  while (true) {
    if (pos >= text.size()) {
      return syntax("unterminated quoted value for " + key);
    }
    if (text[pos] == '\'') {
      if (pos + 1 < text.size() && text[pos + 1] == '\'') {
        value.push_back('\'');
        pos += 2;
        continue;
      }
      ++pos;
      break;
    }
    value.push_back(text[pos++]);
  }
  if (pos < text.size() && !isBlank(text[pos])) {
    return syntax("expected a blank after the quoted value of " + key);
  }
  return value;
}

}  // namespace

Result<std::vector<ConnParam>> tokenizeConnString(std::string_view text) {
  std::vector<ConnParam> params;
  std::size_t pos = 0;
  while (true) {
    skipBlanks(text, pos);
    if (pos >= text.size()) {
      return params;
    }
    const std::size_t key_start = pos;
    while (pos < text.size() && text[pos] != '=' && !isBlank(text[pos])) {
      ++pos;
    }
    std::string key(text.substr(key_start, pos - key_start));
    skipBlanks(text, pos);
    if (key.empty()) {
      return syntax("missing parameter name before '='");
    }
    if (pos >= text.size() || text[pos] != '=') {
      return syntax("expected '=' after " + key);
    }
    ++pos;
    skipBlanks(text, pos);
    std::string value;
    if (pos < text.size() && text[pos] == '\'') {
      ++pos;
      auto quoted = readQuoted(text, pos, key);
      if (!quoted) {
        return tl::unexpected(quoted.error());
      }
      value = std::move(*quoted);
    } else {
      const std::size_t value_start = pos;
      while (pos < text.size() && !isBlank(text[pos])) {
        ++pos;
      }
      value = std::string(text.substr(value_start, pos - value_start));
    }
    if (value.empty()) {
      return syntax("empty value for " + key);
    }
    params.push_back(ConnParam{std::move(key), std::move(value)});
  }
}

}  // namespace pgpivot::config
