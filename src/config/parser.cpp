// The INI reader. libinih splits `key = value` lines and strips inline comments, but
// Debian's build reports neither line numbers (INI_HANDLER_LINENO=0) nor more than the first
// error, and cuts lines at 199 characters. So inih reads through our own line reader
// (ini_parse_stream), which:
//   - counts physical lines per file, so every diagnostic names file:line;
//   - tracks sections itself and catches every line inih would reject, reporting each one;
//   - strips leading blanks, so an indented line is never an inih "continuation line"
//     (PgBouncer ignores indentation, and so must we);
//   - refuses lines longer than inih's buffer instead of letting inih split them in two;
//   - handles PgBouncer's `%include FILE` (inih would call it a syntax error).
#include "pgpivot/config/parser.hpp"

#include <ini.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "parse_context.hpp"
#include "values.hpp"

namespace pgpivot::config {
namespace fs = std::filesystem;

std::string Diagnostic::toString() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
  }
  if (!out.empty()) {
    out += ": ";
  }
  out += level == Level::kError ? "error: " : "warning: ";
  return out + message;
}

bool LoadResult::ok() const {
  return std::none_of(diagnostics.begin(), diagnostics.end(),
                      [](const Diagnostic& d) { return d.isError(); });
}

std::string LoadResult::report() const {
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    out += d.toString() + "\n";
  }
  return out;
}

void ParseContext::noteSource(const std::string& key, std::string_view what) {
  auto [it, inserted] = config.sources.try_emplace(key, where);
  if (!inserted) {
    warning(std::string(what) + " is set again, the last value wins (first set at " +
            describe(it->second) + ")");
    it->second = where;
  }
}

std::string ParseContext::describe(const SourceLine& earlier) const {
  if (earlier.file == where.file) {
    return "line " + std::to_string(earlier.line);
  }
  return earlier.file + ":" + std::to_string(earlier.line);
}

namespace {

// PgBouncer's limit too (MAX_INCLUDE in libusual's cfparser).
constexpr std::size_t kMaxIncludeDepth = 10;

Result<std::string> readFile(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return fail(sqlstate::kConfigFileError, "is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(sqlstate::kConfigFileError, std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return fail(sqlstate::kConfigFileError, std::strerror(errno));
  }
  return text.str();
}

std::string identityOf(const fs::path& path) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  return ec ? path.lexically_normal().string() : canonical.string();
}

// inih's find_chars_or_comment(s, "=:"): the first '=' or ':', unless an inline comment
// (';' after a blank) comes first. Returns npos for "no separator".
std::size_t findSeparator(std::string_view body) {
  bool was_blank = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '=' || c == ':') {
      return i;
    }
    if (was_blank && c == ';') {
      return std::string_view::npos;
    }
    was_blank = c == ' ' || c == '\t';
  }
  return std::string_view::npos;
}

bool validClusterName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  });
}

enum class Section { kNone, kMain, kDatabases, kUsers, kPeers, kCluster, kIgnored };

struct Source {
  std::string file;      // as shown in diagnostics
  std::string identity;  // canonical path, to catch %include cycles
  std::string text;
  std::size_t pos = 0;
  int line = 0;
};

class FileParser {
 public:
  FileParser(Config& config, std::vector<Diagnostic>& diagnostics)
      : ctx_{config, diagnostics, {}, {}, "pgpivot"} {}

  void run(const std::string& file, std::string text) {
    stack_.push_back(Source{file, identityOf(file), std::move(text)});
    if (const int rc = ini_parse_stream(&FileParser::readLine, this, &FileParser::onPair, this);
        rc != 0) {
      // Every line inih would reject is caught before inih sees it; this is a backstop.
      ctx_.diagnostics.push_back(
          Diagnostic{Diagnostic::Level::kError, file, 0,
                     "inih rejected the file (code " + std::to_string(rc) + ")"});
    }
  }

  const std::set<std::string>& failed() const { return ctx_.failed; }

 private:
  static char* readLine(char* out, int size, void* self) {
    auto& parser = *static_cast<FileParser*>(self);
    if (size <= 0) {
      return nullptr;
    }
    const std::optional<std::string_view> line = parser.nextLine(static_cast<std::size_t>(size));
    if (!line) {
      return nullptr;
    }
    const std::size_t n = std::min(line->size(), static_cast<std::size_t>(size) - 1);
    if (n > 0) {
      std::memcpy(out, line->data(), n);  // an empty view may have a null data()
    }
    out[n] = '\0';
    return out;
  }

  // inih calls this right after readLine returned the line, so ctx_.where is still right.
  static int onPair(void* self, const char* /*section: tracked by us*/, const char* name,
                    const char* value) {
    static_cast<FileParser*>(self)->dispatch(name, value != nullptr ? value : "");
    return 1;  // problems are diagnostics, never inih errors
  }

  std::optional<std::string_view> nextLine(std::size_t buffer_size);
  std::string_view classify(std::size_t buffer_size);
  bool enterSection(std::string_view body);
  void enterCluster(std::string_view name);
  void directive(std::string_view body);
  void include(std::string_view target);
  void markFailed(std::string_view body);
  void dispatch(std::string_view name, std::string_view value);

  ParseContext ctx_;
  std::vector<Source> stack_;  // the file being read and the files that %include'd it
  Section section_ = Section::kNone;
  std::string cluster_;  // the NAME of the current [cluster.NAME]
  std::string line_;     // the current line; what inih receives is a copy of part of it
};

std::optional<std::string_view> FileParser::nextLine(std::size_t buffer_size) {
  while (!stack_.empty()) {
    Source& src = stack_.back();
    if (src.pos >= src.text.size()) {
      stack_.pop_back();  // back to the file that included this one, in the same section
      continue;
    }
    const std::size_t eol = std::min(src.text.find('\n', src.pos), src.text.size());
    line_.assign(src.text, src.pos, eol - src.pos);
    src.pos = eol + 1;
    ++src.line;
    ctx_.where = SourceLine{src.file, src.line};
    if (!line_.empty() && line_.back() == '\r') {
      line_.pop_back();
    }
    if (src.line == 1 && line_.starts_with("\xEF\xBB\xBF")) {
      line_.erase(0, 3);  // UTF-8 byte order mark
    }
    return classify(buffer_size);  // may push an %include: `src` is dangling after this
  }
  return std::nullopt;
}

// What inih gets for the current line: the line without its indentation, or nothing when
// the line was handled (or rejected) here.
std::string_view FileParser::classify(std::size_t buffer_size) {
  std::string_view body = line_;
  while (!body.empty() && (body.front() == ' ' || body.front() == '\t')) {
    body.remove_prefix(1);
  }
  if (body.empty() || body.front() == ';' || body.front() == '#') {
    return {};  // comments may be any length: inih never sees them
  }
  if (line_.find('\0') != std::string::npos) {
    ctx_.error("line contains a NUL byte");
    return {};
  }
  if (line_.size() > buffer_size - 1) {
    ctx_.error("line too long (at most " + std::to_string(buffer_size - 1) + " characters)");
    markFailed(body);
    return {};
  }
  if (body.front() == '%') {
    directive(body);
    return {};
  }
  if (body.front() == '[') {
    return enterSection(body) ? body : std::string_view();
  }
  const std::size_t sep = findSeparator(body);
  if (sep == std::string_view::npos || body[sep] != '=') {
    ctx_.error("syntax error: expected 'key = value'");
    return {};
  }
  if (trim(body.substr(0, sep)).empty()) {
    ctx_.error("syntax error: missing key before '='");
    return {};
  }
  return body;
}

// A rejected line still says which key it meant to set; record it as failed so validate()
// does not also complain that the key is missing.
void FileParser::markFailed(std::string_view body) {
  if (body.front() == '[') {
    section_ = Section::kIgnored;  // unknown section: skip its keys, the error was reported
    return;
  }
  const std::string key(trim(body.substr(0, std::min(body.find('='), body.size()))));
  switch (section_) {
    case Section::kMain:
      ctx_.failed.insert(toLower(key));
      break;
    case Section::kDatabases:
      ctx_.failed.insert("databases." + key);
      break;
    case Section::kUsers:
      ctx_.failed.insert("users." + key);
      break;
    case Section::kCluster:
      ctx_.failed.insert("cluster." + cluster_ + "." + toLower(key));
      break;
    case Section::kNone:
    case Section::kPeers:
    case Section::kIgnored:
      break;
  }
}

bool FileParser::enterSection(std::string_view body) {
  const std::size_t close = body.find(']');
  if (close == std::string_view::npos) {
    ctx_.error("malformed section header: missing ']'");
    section_ = Section::kIgnored;
    return false;
  }
  if (const auto rest = trim(body.substr(close + 1));
      !rest.empty() && rest.front() != ';' && rest.front() != '#') {
    ctx_.error("unexpected text after the section header");
    section_ = Section::kIgnored;
    return false;
  }
  const std::string_view name = trim(body.substr(1, close - 1));
  const std::string lower = toLower(name);
  if (lower == "pgpivot" || lower == "pgbouncer") {
    section_ = Section::kMain;
    ctx_.section_label = lower;
  } else if (lower == "databases") {
    section_ = Section::kDatabases;
  } else if (lower == "users") {
    section_ = Section::kUsers;
  } else if (lower == "peers") {
    ctx_.warning("section [peers] is not supported yet, its entries are ignored");
    section_ = Section::kPeers;
  } else if (lower.starts_with("cluster.")) {
    enterCluster(name.substr(8));
  } else if (name.empty()) {
    ctx_.error("empty section name");
    section_ = Section::kIgnored;
  } else {
    ctx_.warning("unknown section [" + std::string(name) + "], its keys are ignored");
    section_ = Section::kIgnored;
  }
  return true;
}

void FileParser::enterCluster(std::string_view name) {
  if (!validClusterName(name)) {
    ctx_.error("invalid cluster name '" + std::string(name) +
               "' (use letters, digits, '_' and '-')");
    section_ = Section::kIgnored;
    return;
  }
  section_ = Section::kCluster;
  cluster_ = std::string(name);
  auto [it, created] = ctx_.config.clusters.try_emplace(cluster_);
  if (created) {
    it->second.name = cluster_;
    it->second.line = ctx_.where.line;
    ctx_.config.sources["cluster." + cluster_] = ctx_.where;
  }
}

void FileParser::directive(std::string_view body) {
  const std::string_view word = body.substr(0, std::min(body.find_first_of(" \t"), body.size()));
  if (word != "%include") {
    ctx_.error("unknown directive '" + std::string(word) + "' (only %include is supported)");
    return;
  }
  const std::string_view target = trim(body.substr(word.size()));
  if (target.empty()) {
    ctx_.error("%include needs a file name");
    return;
  }
  include(target);
}

// PgBouncer's %include: the file is read in place, continuing the current section, and the
// section it ends in carries on after the %include line. A relative name is taken from the
// including file's directory (PgBouncer: the working directory; see loadConfig).
void FileParser::include(std::string_view target) {
  fs::path path(target);
  if (path.is_relative()) {
    path = fs::path(stack_.back().file).parent_path() / path;
  }
  const std::string shown = path.lexically_normal().string();
  if (stack_.size() > kMaxIncludeDepth) {
    ctx_.error("%include " + shown + ": nested more than " + std::to_string(kMaxIncludeDepth) +
               " levels deep");
    return;
  }
  const std::string identity = identityOf(path);
  if (std::any_of(stack_.begin(), stack_.end(),
                  [&](const Source& s) { return s.identity == identity; })) {
    ctx_.error("%include " + shown + ": that file is already being read (an include cycle)");
    return;
  }
  auto text = readFile(shown);
  if (!text) {
    ctx_.error("%include " + shown + ": cannot read: " + text.error().message);
    return;
  }
  stack_.push_back(Source{shown, identity, std::move(*text)});
}

void FileParser::dispatch(std::string_view name, std::string_view value) {
  switch (section_) {
    case Section::kNone:
      ctx_.error("'" + std::string(name) +
                 "' is outside any section (settings go under [pgpivot])");
      break;
    case Section::kMain:
      applyMainLine(ctx_, name, value);
      break;
    case Section::kDatabases:
      applyDatabaseLine(ctx_, name, value);
      break;
    case Section::kUsers:
      applyUserLine(ctx_, name, value);
      break;
    case Section::kCluster:
      applyClusterLine(ctx_, ctx_.config.clusters.at(cluster_), name, value);
      break;
    case Section::kPeers:
    case Section::kIgnored:
      break;
  }
}

// ---- loadConfig's extra steps: paths and the auth file --------------------------------------

void resolvePath(std::string& value, const Config& config, const std::string& key,
                 const fs::path& fallback_dir) {
  if (value.empty() || fs::path(value).is_absolute()) {
    return;
  }
  const auto source = config.sources.find(key);
  const fs::path dir =
      source != config.sources.end() ? fs::path(source->second.file).parent_path() : fallback_dir;
  value = fs::absolute(dir / value).lexically_normal().string();
}

void resolvePaths(Config& config, const fs::path& dir) {
  resolvePath(config.auth_file, config, "auth_file", dir);
  resolvePath(config.logfile, config, "logfile", dir);
  resolvePath(config.pidfile, config, "pidfile", dir);
  for (auto& [name, cluster] : config.clusters) {
    resolvePath(cluster.failover_log, config, "cluster." + name + ".failover_log", dir);
    resolvePath(cluster.state_file, config, "cluster." + name + ".state_file", dir);
  }
}

// PgBouncer only logs a missing auth_file and then refuses every login; a config check
// should say so before anything starts.
void checkAuthFile(LoadResult& result) {
  const Config& config = result.config;
  if (config.auth_file.empty()) {
    return;
  }
  if (auto text = readFile(config.auth_file); !text) {
    const auto source = config.sources.find("auth_file");
    const bool needed =
        config.auth_type == AuthType::kPlain || config.auth_type == AuthType::kMd5 ||
        config.auth_type == AuthType::kScramSha256 || config.auth_type == AuthType::kTrust;
    result.diagnostics.push_back(
        Diagnostic{needed ? Diagnostic::Level::kError : Diagnostic::Level::kWarning,
                   source != config.sources.end() ? source->second.file : config.path,
                   source != config.sources.end() ? source->second.line : 0,
                   "auth_file " + config.auth_file + ": cannot read: " + text.error().message});
  }
}

}  // namespace

LoadResult parseConfig(std::string_view text, std::string_view filename) {
  LoadResult result;
  result.config.path = std::string(filename);
  FileParser parser(result.config, result.diagnostics);
  parser.run(std::string(filename), std::string(text));
  for (Diagnostic& d : validateParsed(result.config, parser.failed())) {
    result.diagnostics.push_back(std::move(d));
  }
  return result;
}

LoadResult loadConfig(const std::string& path) {
  auto text = readFile(path);
  if (!text) {
    LoadResult result;
    result.config.path = path;
    result.diagnostics.push_back(Diagnostic{Diagnostic::Level::kError, path, 0,
                                            "cannot read config file: " + text.error().message});
    return result;
  }
  LoadResult result = parseConfig(*text, path);
  resolvePaths(result.config, fs::path(path).parent_path());
  checkAuthFile(result);
  result.config.path = fs::absolute(path).lexically_normal().string();
  return result;
}

}  // namespace pgpivot::config
