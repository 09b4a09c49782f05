// Named prepared statements across pooled server connections (transaction and statement
// mode), the way PgBouncer 1.21 does it: a client's Parse("s1", query) is kept by name and
// prepared on whichever server the client gets under a name derived from the query
// ("pgpivot_<hash>"), once per server connection; Bind, Describe and Close are rewritten to
// that name. Not used in session mode, where a client keeps its server.
//
// Ordering: every rewritten message still produces exactly the response the client
// expects, in place. A Parse of a statement the server already has becomes a Parse of the
// unnamed statement (same ParseComplete, no name clash); a statement missing on the server
// gets a Parse injected before the Bind/Describe that needs it, whose ParseComplete the
// server side drops (ServerConn::expectParseComplete); a Close becomes a Close of a name
// that does not exist, which PostgreSQL answers with CloseComplete.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace pgpivot::session {

class ServerConn;

class PreparedStatements final {
 public:
  // Handles one whole Parse ('P'), Bind ('B'), Describe ('D') or Close ('C') from the
  // client: writes what the server must get instead. Returns false for a message it could
  // not parse (the caller then forwards nothing and reports a protocol violation).
  [[nodiscard]] bool relay(char tag, std::string_view body, ServerConn& server);

  std::size_t size() const { return statements_.size(); }

 private:
  struct Statement {
    std::string server_name;
    std::string parse_message;  // the whole Parse under server_name, to inject on demand
  };

  bool relayParse(std::string_view body, ServerConn& server);
  bool relayBind(std::string_view body, ServerConn& server);
  bool relayDescribeOrClose(char tag, std::string_view body, ServerConn& server);
  // Makes sure `statement` exists on `server`, injecting its Parse if not.
  void ensurePrepared(const Statement& statement, ServerConn& server);

  std::unordered_map<std::string, Statement> statements_;  // by the client's name
};

}  // namespace pgpivot::session
