// One configuration problem tied to file:line. The parser, validate() and reload collect
// them into a list so one run reports every problem at once (STYLE.md 3.4). This is the
// start-up and reload error type; the data path uses pgpivot::Error instead.
#pragma once

#include <string>

namespace pgpivot::config {

struct Diagnostic {
  enum class Level { kWarning, kError };

  Level level = Level::kError;
  std::string file;
  int line = 0;  // 0: about the file as a whole (unreadable, or a rule on a default value)
  std::string message;

  // "file:line: error: message"; "file: warning: message" when line is 0.
  [[nodiscard]] std::string toString() const;
  [[nodiscard]] bool isError() const { return level == Level::kError; }
};

}  // namespace pgpivot::config
