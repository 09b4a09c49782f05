// Why a connection ended: exactly one reason per connection (STYLE.md 3.4), used for the
// log line and the counters. What the client is told is decided where the error happens.
#pragma once

#include <string_view>

namespace pgpivot::session {

enum class CloseReason {
  kClientTerminate,          // the client sent Terminate
  kClientEof,                // the client closed its socket
  kClientProtocolViolation,  // the client sent bytes that are not the protocol
  kLoginFailed,              // bad user, database or password
  kLoginTimeout,             // client_login_timeout
  kTooManyClients,           // max_client_conn
  kQueryWaitTimeout,         // no server within query_wait_timeout
  kClientIdleTimeout,        // client_idle_timeout
  kQueryTimeout,             // query_timeout: a query ran too long
  kIdleTransactionTimeout,   // idle_transaction_timeout
  kServerUnavailable,        // no server could be connected for this client
  kServerEof,                // the server closed its socket
  kServerError,              // the server sent a FATAL or garbage
  kServerLoginFailed,        // the server refused pgpivot's login
  kServerIdleTimeout,        // server_idle_timeout
  kServerLifetime,           // server_lifetime
  kServerConnectTimeout,     // server_connect_timeout
  kServerUnusable,           // released in a state that cannot be reused
  kServerHandedOff,          // idle, moved to another worker whose clients wait for one
  kCancelRequest,            // a cancel connection, done
  kFailover,                 // the server is on a node that is no longer the primary
  kSessionStateLost,         // its server was lost with state that cannot move (temp tables...)
  kShutdown,                 // pgpivot is stopping
};

std::string_view toString(CloseReason reason);

}  // namespace pgpivot::session
