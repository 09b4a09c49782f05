#include "pgpivot/session/prepared_statements.hpp"

#include <fmt/format.h>

#include <cstring>
#include <functional>

#include "pgpivot/proto/messages.hpp"
#include "pgpivot/proto/views.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::session {

namespace {

// A frame around `body` under `tag`.
std::string frame(char tag, std::string_view body) {
  std::string out;
  proto::writeFrame(out, tag, body);
  return out;
}

// The server-side name of a statement: the same query and parameter types give the same
// name on every connection, so one preparation serves every client of that server.
std::string serverName(std::string_view query, const std::vector<uint32_t>& types) {
  std::string key(query);
  for (const uint32_t type : types) {
    key += fmt::format(",{}", type);
  }
  return fmt::format("pgpivot_{:016x}_{}", std::hash<std::string>{}(key), key.size());
}

// Where the NUL-terminated string starting at `from` ends, or npos.
std::size_t cstringEnd(std::string_view body, std::size_t from) {
  return from < body.size() ? body.find('\0', from) : std::string_view::npos;
}

}  // namespace

bool PreparedStatements::relay(char tag, std::string_view body, ServerConn& server) {
  switch (tag) {
    case 'P':
      return relayParse(body, server);
    case 'B':
      return relayBind(body, server);
    case 'D':
    case 'C':
      return relayDescribeOrClose(tag, body, server);
    default:
      server.stream().writeOwned(frame(tag, body));
      return true;
  }
}

bool PreparedStatements::relayParse(std::string_view body, ServerConn& server) {
  auto parse = proto::parseParse(body);
  if (!parse) {
    return false;
  }
  if (parse->name.empty()) {
    server.expectParseComplete(false, {});
    server.stream().writeOwned(frame('P', body));
    return true;
  }
  Statement statement;
  statement.server_name = serverName(parse->query, parse->param_types);
  proto::writeParse(statement.parse_message, statement.server_name, parse->query,
                    parse->param_types);
  std::string out;
  if (server.hasPrepared(statement.server_name)) {
    // Already there: parse it as the unnamed statement instead, so the client still gets
    // its ParseComplete (and its errors) at this very place.
    proto::writeParse(out, "", parse->query, parse->param_types);
    server.expectParseComplete(false, {});
  } else {
    out = statement.parse_message;
    server.expectParseComplete(false, statement.server_name);
  }
  statements_[std::string(parse->name)] = std::move(statement);
  server.stream().writeOwned(std::move(out));
  return true;
}

void PreparedStatements::ensurePrepared(const Statement& statement, ServerConn& server) {
  if (server.hasPrepared(statement.server_name)) {
    return;
  }
  server.expectParseComplete(true, statement.server_name);  // ours: not the client's news
  server.stream().writeOwned(statement.parse_message);
}

bool PreparedStatements::relayBind(std::string_view body, ServerConn& server) {
  // Bind: portal\0 statement\0 rest. Only the statement name changes.
  const std::size_t portal_end = cstringEnd(body, 0);
  const std::size_t name_end = cstringEnd(body, portal_end + 1);
  if (portal_end == std::string_view::npos || name_end == std::string_view::npos) {
    return false;
  }
  const std::string name(body.substr(portal_end + 1, name_end - portal_end - 1));
  const auto it = name.empty() ? statements_.end() : statements_.find(name);
  if (it == statements_.end()) {
    server.stream().writeOwned(frame('B', body));  // unnamed, or unknown: PostgreSQL says so
    return true;
  }
  ensurePrepared(it->second, server);
  std::string rewritten;
  rewritten.reserve(body.size() + it->second.server_name.size());
  rewritten.append(body.substr(0, portal_end + 1));
  rewritten.append(it->second.server_name);
  rewritten.push_back('\0');
  rewritten.append(body.substr(name_end + 1));
  server.stream().writeOwned(frame('B', rewritten));
  return true;
}

bool PreparedStatements::relayDescribeOrClose(char tag, std::string_view body, ServerConn& server) {
  // Describe/Close: kind ('S' statement, 'P' portal) then name\0.
  const std::size_t name_end = cstringEnd(body, 1);
  if (body.empty() || name_end == std::string_view::npos || name_end + 1 != body.size()) {
    return false;
  }
  const std::string name(body.substr(1, name_end - 1));
  const auto it = body[0] == 'S' && !name.empty() ? statements_.find(name) : statements_.end();
  if (it == statements_.end()) {
    server.stream().writeOwned(frame(tag, body));
    return true;
  }
  std::string rewritten(1, 'S');
  if (tag == 'D') {
    ensurePrepared(it->second, server);
    rewritten += it->second.server_name;
  } else {
    // The server keeps its copy for other clients; the client's name is gone. Closing a
    // name that does not exist is not an error: the client gets its CloseComplete.
    statements_.erase(it);
    rewritten += "pgpivot_closed";
  }
  rewritten.push_back('\0');
  server.stream().writeOwned(frame(tag, rewritten));
  return true;
}

}  // namespace pgpivot::session
