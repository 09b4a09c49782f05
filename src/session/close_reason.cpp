#include "pgpivot/session/close_reason.hpp"

namespace pgpivot::session {

std::string_view toString(CloseReason reason) {
  switch (reason) {
    case CloseReason::kClientTerminate:
      return "client terminated";
    case CloseReason::kClientEof:
      return "client closed the connection";
    case CloseReason::kClientProtocolViolation:
      return "client protocol violation";
    case CloseReason::kLoginFailed:
      return "login failed";
    case CloseReason::kLoginTimeout:
      return "client_login_timeout";
    case CloseReason::kTooManyClients:
      return "max_client_conn reached";
    case CloseReason::kQueryWaitTimeout:
      return "query_wait_timeout";
    case CloseReason::kClientIdleTimeout:
      return "client_idle_timeout";
    case CloseReason::kQueryTimeout:
      return "query_timeout";
    case CloseReason::kIdleTransactionTimeout:
      return "idle_transaction_timeout";
    case CloseReason::kServerUnavailable:
      return "server unavailable";
    case CloseReason::kServerEof:
      return "server closed the connection";
    case CloseReason::kServerError:
      return "server error";
    case CloseReason::kServerLoginFailed:
      return "server login failed";
    case CloseReason::kServerIdleTimeout:
      return "server_idle_timeout";
    case CloseReason::kServerLifetime:
      return "server_lifetime";
    case CloseReason::kServerConnectTimeout:
      return "server_connect_timeout";
    case CloseReason::kServerUnusable:
      return "server not reusable";
    case CloseReason::kServerHandedOff:
      return "handed to another worker";
    case CloseReason::kCancelRequest:
      return "cancel request";
    case CloseReason::kFailover:
      return "failover";
    case CloseReason::kSessionStateLost:
      return "session state lost with its server";
    case CloseReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

}  // namespace pgpivot::session
