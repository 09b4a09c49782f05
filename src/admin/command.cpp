#include "command.hpp"

#include <array>
#include <charconv>
#include <cstddef>
#include <optional>
#include <utility>

namespace pgpivot::admin {
namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (upper(a[i]) != upper(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

tl::unexpected<Error> syntaxError(std::string message) {
  return fail(code::kSyntaxError, "pgpivot: " + std::move(message));
}

struct Token {
  enum class Kind { kWord, kIdent, kString, kEquals, kSemicolon };
  Kind kind = Kind::kWord;
  std::string text;  // unquoted for kIdent and kString
  std::size_t begin = 0;
  std::size_t end = 0;  // offsets into the query
};

// Splits `q` into tokens. The cursor only moves forward and every loop checks the end, so
// no input can run it past the string.
class Lexer {
 public:
  explicit Lexer(std::string_view q) : q_(q) {}

  Result<std::vector<Token>> run() {
    std::vector<Token> tokens;
    while (true) {
      if (auto skipped = skipSpaceAndComments(); !skipped) {
        return tl::unexpected(skipped.error());
      }
      if (pos_ >= q_.size()) {
        return tokens;
      }
      const std::size_t begin = pos_;
      const char c = q_[pos_];
      Token token;
      if (c == ';' || c == '=') {
        ++pos_;
        token.kind = c == ';' ? Token::Kind::kSemicolon : Token::Kind::kEquals;
        token.text = std::string(1, c);
      } else if (c == '\'' || c == '"') {
        auto text = quoted(c);
        if (!text) {
          return tl::unexpected(text.error());
        }
        token.kind = c == '\'' ? Token::Kind::kString : Token::Kind::kIdent;
        token.text = std::move(*text);
      } else {
        while (pos_ < q_.size() && !isSpace(q_[pos_]) && q_[pos_] != ';' && q_[pos_] != '=' &&
               q_[pos_] != '\'' && q_[pos_] != '"') {
          ++pos_;
        }
        token.text = std::string(q_.substr(begin, pos_ - begin));
      }
      token.begin = begin;
      token.end = pos_;
      tokens.push_back(std::move(token));
    }
  }

 private:
  Result<void> skipSpaceAndComments() {
    while (pos_ < q_.size()) {
      if (isSpace(q_[pos_])) {
        ++pos_;
      } else if (q_.substr(pos_, 2) == "--") {
        // To the end of the line, which \r ends too (scan.l's non_newline).
        while (pos_ < q_.size() && q_[pos_] != '\n' && q_[pos_] != '\r') {
          ++pos_;
        }
      } else if (q_.substr(pos_, 2) == "/*") {
        // Nested, as in PostgreSQL.
        int depth = 0;
        do {
          if (q_.substr(pos_, 2) == "/*") {
            ++depth;
            pos_ += 2;
          } else if (q_.substr(pos_, 2) == "*/") {
            --depth;
            pos_ += 2;
          } else {
            ++pos_;
          }
        } while (depth > 0 && pos_ < q_.size());
        if (depth > 0) {
          return syntaxError("unterminated /* comment");
        }
      } else {
        break;
      }
    }
    return {};
  }

  // A quoted string starting at pos_; a doubled quote stands for one quote.
  Result<std::string> quoted(char quote) {
    std::string text;
    ++pos_;
    while (pos_ < q_.size()) {
      if (q_[pos_] == quote) {
        if (pos_ + 1 < q_.size() && q_[pos_ + 1] == quote) {
          text.push_back(quote);
          pos_ += 2;
          continue;
        }
        ++pos_;
        return text;
      }
      text.push_back(q_[pos_++]);
    }
    return syntaxError(quote == '\'' ? "unterminated quoted string"
                                     : "unterminated quoted identifier");
  }

  std::string_view q_;
  std::size_t pos_ = 0;
};

struct ShowName {
  std::string_view name;
  ShowKind kind;
};
constexpr std::array kShowNames{
    ShowName{"HELP", ShowKind::kHelp},
    ShowName{"POOLS", ShowKind::kPools},
    ShowName{"CLIENTS", ShowKind::kClients},
    ShowName{"SERVERS", ShowKind::kServers},
    ShowName{"STATS", ShowKind::kStats},
    ShowName{"STATS_TOTALS", ShowKind::kStatsTotals},
    ShowName{"STATS_AVERAGES", ShowKind::kStatsAverages},
    ShowName{"TOTALS", ShowKind::kTotals},
    ShowName{"DATABASES", ShowKind::kDatabases},
    ShowName{"USERS", ShowKind::kUsers},
    ShowName{"CONFIG", ShowKind::kConfig},
    ShowName{"LISTS", ShowKind::kLists},
    ShowName{"MEM", ShowKind::kMem},
    ShowName{"VERSION", ShowKind::kVersion},
    ShowName{"SOCKETS", ShowKind::kSockets},
    ShowName{"ACTIVE_SOCKETS", ShowKind::kActiveSockets},
    ShowName{"DNS_HOSTS", ShowKind::kDnsHosts},
    ShowName{"DNS_ZONES", ShowKind::kDnsZones},
    ShowName{"CLUSTERS", ShowKind::kClusters},
    ShowName{"NODES", ShowKind::kNodes},
    ShowName{"FAILOVERS", ShowKind::kFailovers},
};

// How many names a command takes.
enum class Arity { kNone, kOptional, kRequired };

struct CommandSpec {
  std::string_view name;
  CommandKind kind;
  Arity arity;
  std::string_view what;         // what the name is, for messages
  Arity to_node = Arity::kNone;  // "TO node" after the name
};
constexpr std::array kCommands{
    CommandSpec{"PAUSE", CommandKind::kPause, Arity::kOptional, "database"},
    CommandSpec{"RESUME", CommandKind::kResume, Arity::kOptional, "database"},
    CommandSpec{"DISABLE", CommandKind::kDisable, Arity::kRequired, "database"},
    CommandSpec{"ENABLE", CommandKind::kEnable, Arity::kRequired, "database"},
    CommandSpec{"RECONNECT", CommandKind::kReconnect, Arity::kOptional, "database"},
    CommandSpec{"KILL", CommandKind::kKill, Arity::kRequired, "database"},
    CommandSpec{"KILL_CLIENT", CommandKind::kKillClient, Arity::kRequired, "client id"},
    CommandSpec{"SUSPEND", CommandKind::kSuspend, Arity::kNone, ""},
    CommandSpec{"WAIT_CLOSE", CommandKind::kWaitClose, Arity::kOptional, "database"},
    CommandSpec{"RELOAD", CommandKind::kReload, Arity::kNone, ""},
    CommandSpec{"SET", CommandKind::kSet, Arity::kRequired, "key = value"},
    CommandSpec{"SHUTDOWN", CommandKind::kShutdown, Arity::kNone, ""},
    CommandSpec{"SWITCHOVER", CommandKind::kSwitchover, Arity::kRequired, "cluster",
                Arity::kOptional},
    CommandSpec{"FAILOVER", CommandKind::kFailover, Arity::kRequired, "cluster", Arity::kOptional},
    CommandSpec{"FENCE", CommandKind::kFence, Arity::kRequired, "node (host:port)"},
    CommandSpec{"UNFENCE", CommandKind::kUnfence, Arity::kRequired, "node (host:port)"},
    CommandSpec{"DRILL", CommandKind::kDrill, Arity::kRequired, "cluster"},
    CommandSpec{"SET_PRIMARY", CommandKind::kSetPrimary, Arity::kRequired, "cluster",
                Arity::kRequired},
    CommandSpec{"RESUME_CLUSTER", CommandKind::kResumeCluster, Arity::kRequired, "cluster"},
};

bool isName(const Token& t) {
  return t.kind == Token::Kind::kWord || t.kind == Token::Kind::kIdent;
}

// Client ids are shown in decimal (id) and in hex (ptr); take either.
std::optional<uint64_t> parseClientId(std::string_view text) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  uint64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id, base);
  if (ec != std::errc{} || end != text.data() + text.size() || id == 0) {
    return std::nullopt;
  }
  return id;
}

class StatementParser {
 public:
  StatementParser(std::string_view query, const std::vector<Token>& tokens, std::size_t first,
                  std::size_t last)
      : query_(query), tokens_(tokens), first_(first), last_(last) {
    text_ = trim(query.substr(tokens[first].begin, tokens[last - 1].end - tokens[first].begin));
  }

  Result<Statement> parse() {
    const Token& verb = tokens_[first_];
    if (verb.kind != Token::Kind::kWord) {
      return invalid();
    }
    if (iequals(verb.text, "SHOW")) {
      return parseShow();
    }
    for (const CommandSpec& spec : kCommands) {
      if (iequals(verb.text, spec.name)) {
        return parseCommand(spec);
      }
    }
    return invalid();
  }

 private:
  tl::unexpected<Error> invalid() const {
    return syntaxError("invalid command '" + std::string(text_) + "', use SHOW HELP");
  }

  std::size_t count() const { return last_ - first_; }
  const Token& at(std::size_t i) const { return tokens_[first_ + i]; }

  Result<Statement> parseShow() const {
    if (count() != 2 || at(1).kind != Token::Kind::kWord) {
      return invalid();
    }
    for (const ShowName& show : kShowNames) {
      if (iequals(at(1).text, show.name)) {
        return Statement{show.kind, std::string(text_)};
      }
    }
    return invalid();
  }

  Result<Statement> parseCommand(const CommandSpec& spec) const {
    Command command;
    command.kind = spec.kind;
    if (spec.kind == CommandKind::kSet) {
      return parseSet(std::move(command));
    }
    std::size_t next = 1;
    if (spec.arity != Arity::kNone && next < count() && isName(at(next))) {
      command.target = at(next).text;
      ++next;
    } else if (spec.arity == Arity::kRequired) {
      return syntaxError(std::string(spec.name) + " needs a " + std::string(spec.what) + ": '" +
                         std::string(text_) + "'");
    }
    const bool has_to = spec.to_node != Arity::kNone && next < count() &&
                        at(next).kind == Token::Kind::kWord && iequals(at(next).text, "TO");
    if (has_to || (spec.to_node == Arity::kRequired && next == count())) {
      if (!has_to || next + 1 >= count() || !isName(at(next + 1))) {
        return syntaxError(std::string(spec.name) + " ... TO needs a node (host:port): '" +
                           std::string(text_) + "'");
      }
      command.to_node = at(next + 1).text;
      next += 2;
    }
    if (next < count()) {
      return syntaxError("unexpected '" + at(next).text + "' in '" + std::string(text_) +
                         "', use SHOW HELP");
    }
    if (spec.kind == CommandKind::kKillClient) {
      const auto id = parseClientId(command.target);
      if (!id) {
        return syntaxError("KILL_CLIENT needs a client id (the id column of SHOW CLIENTS), not '" +
                           command.target + "'");
      }
      command.client_id = *id;
      command.target.clear();
    }
    return Statement{std::move(command), std::string(text_)};
  }

  // SET key = value | SET key TO value; the value is the rest of the statement.
  Result<Statement> parseSet(Command command) const {
    const bool has_separator = count() >= 3 && isName(at(1)) &&
                               (at(2).kind == Token::Kind::kEquals ||
                                (at(2).kind == Token::Kind::kWord && iequals(at(2).text, "TO")));
    if (!has_separator || count() < 4) {
      return syntaxError("SET needs key = value: '" + std::string(text_) + "'");
    }
    command.key = at(1).text;
    if (count() == 4 && at(3).kind == Token::Kind::kString) {
      command.value = at(3).text;
    } else {
      const std::size_t begin = at(3).begin;
      command.value = std::string(trim(query_.substr(begin, at(count() - 1).end - begin)));
    }
    return Statement{std::move(command), std::string(text_)};
  }

  std::string_view query_;
  const std::vector<Token>& tokens_;
  std::size_t first_;
  std::size_t last_;
  std::string_view text_;
};

}  // namespace

Result<std::vector<Statement>> parseQuery(std::string_view query) {
  auto tokens = Lexer(query).run();
  if (!tokens) {
    return tl::unexpected(tokens.error());
  }
  std::vector<Statement> statements;
  std::size_t first = 0;
  for (std::size_t i = 0; i <= tokens->size(); ++i) {
    if (i < tokens->size() && (*tokens)[i].kind != Token::Kind::kSemicolon) {
      continue;
    }
    if (i > first) {
      auto statement = StatementParser(query, *tokens, first, i).parse();
      if (!statement) {
        return tl::unexpected(statement.error());
      }
      statements.push_back(std::move(*statement));
    }
    first = i + 1;
  }
  return statements;
}

std::string_view commandName(CommandKind kind) {
  for (const CommandSpec& spec : kCommands) {
    if (spec.kind == kind) {
      return spec.name;
    }
  }
  return "";
}

std::string_view commandTag(const Statement& statement) {
  if (const auto* command = std::get_if<Command>(&statement.what)) {
    return commandName(command->kind);
  }
  return "SHOW";
}

}  // namespace pgpivot::admin
