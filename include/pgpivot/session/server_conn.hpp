// One connection from pgpivot to a PostgreSQL server: its login (startup, md5 or SCRAM,
// ParameterStatus, BackendKeyData), the queries pgpivot runs on it between clients (SET
// for a client's parameters, server_reset_query, server_check_query), and relaying the
// server's bytes to the linked client. The pool decides who uses it; this class only does
// what its state says.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "pgpivot/config/config.hpp"
#include "pgpivot/net/stream.hpp"
#include "pgpivot/pool/shared_limits.hpp"
#include "pgpivot/proto/constants.hpp"
#include "pgpivot/session/close_reason.hpp"
#include "pgpivot/session/params.hpp"
#include "pgpivot/session/prepared_statements.hpp"
#include "pgpivot/session/relay.hpp"

namespace pgpivot::app {
class Worker;
}
namespace pgpivot::auth {
class ScramClient;
}
namespace pgpivot::pool {
class Pool;
}

namespace pgpivot::session {

class ClientSession;

enum class ServerState {
  kResolving,      // looking up the host name; in the pool's opening list
  kConnecting,     // TCP connect in flight; in the pool's opening list
  kLogin,          // startup sent, authenticating, collecting ParameterStatus
  kIdle,           // ready, in the pool's idle list
  kSyncingParams,  // running SETs for the client it is about to serve; linked
  kActive,         // linked to a client, relaying; in the pool's active list
  kResetting,      // running server_reset_query; in the pool's cleaning list
  kChecking,       // running server_check_query; in the pool's cleaning list
  kClosing,        // closing; in no list
};

std::string_view toString(ServerState state);

// An idle server connection on its way to another worker (ServerConn::handOff): the
// socket and everything the connection knows about its backend, so the receiving worker
// neither forks a new backend nor re-prepares statements. The slot moves with it: the
// process-wide limits still count it. Dropped unused, it ends the backend politely.
struct ServerHandoff {
  ServerHandoff() = default;
  ServerHandoff(ServerHandoff&& other) noexcept;
  ServerHandoff& operator=(ServerHandoff&&) = delete;
  ServerHandoff(const ServerHandoff&) = delete;
  ~ServerHandoff();

  int fd = -1;  // owned until adopted
  uint64_t id = 0;
  pool::ServerSlot slot;
  std::string host;  // the target it is logged in to, checked by the receiver
  uint16_t port = 0;
  std::string dbname;
  std::string user;
  ParamMap startup_params;
  ParamMap params;
  int32_t backend_pid = 0;
  int32_t backend_secret = 0;
  sockaddr_storage address{};
  uint64_t created_at = 0;
  uint64_t last_used_at = 0;
  ServerStatements statements;
};

class ServerConn final : public net::StreamOwner, public RelayHandler {
 public:
  ServerConn(app::Worker& worker, pool::Pool& pool, uint64_t id, pool::ServerSlot slot);
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;
  ~ServerConn();

  // Connects and logs in. `startup_params` are the tracked parameters to send in the
  // StartupMessage (those of the client the connection is opened for).
  void open(const ParamMap& startup_params);
  // An idle connection at a clean boundary leaves for another worker: the hand-off, after
  // which this object is closing (nothing is said to the server) and the caller (its pool)
  // takes it off the idle list. Nullopt: it cannot go.
  std::optional<ServerHandoff> handOff();
  // A fresh object (built with the hand-off's slot) takes the connection over, idle.
  // False: the socket could not be adopted; the hand-off still owns it.
  [[nodiscard]] bool adopt(ServerHandoff& handoff);

  // Pool: gives this server to `client`. Runs the SETs the client's parameters need,
  // then tells the client it is linked.
  void link(ClientSession& client);
  // Pool: the client is gone; run the reset query (or close if that is not possible).
  void beginReset();
  // Pool: verify an idle connection before use (server_check_query).
  void beginCheck();
  // Pool: back in the idle list without a reset (transaction and statement mode).
  void becomeIdle() { setState(ServerState::kIdle); }

  // Client side of the link: bytes arrived for us / the client left.
  void pumpFromClient();
  ClientSession* client() const { return client_; }
  void unlinkClient() { client_ = nullptr; }
  // The client sent a message that PostgreSQL answers with ReadyForQuery.
  void expectReadyForQuery() {
    if (outstanding_++ == 0) {
      noteQueryStart();
    }
    statements_.noteBatchSent();
    ++requests_sent_;
    if (open_request_may_commit_) {
      open_request_may_commit_ = false;
      last_committing_request_ = requests_sent_;
    }
  }
  void forgetExpectedReadyForQuery(int count) {
    outstanding_ = std::max(0, outstanding_ - count);
    statements_.forgetBatches(count);
    requests_sent_ -= std::min<uint64_t>(requests_sent_, static_cast<uint64_t>(count));
    if (last_committing_request_ > requests_sent_) {
      open_request_may_commit_ = true;  // its request is the one still open
      last_committing_request_ = requests_sent_;
    }
  }
  // Failover truth (cluster/commit_risk.hpp): the client sent a message that may commit a
  // transaction block. It counts until the server has answered the request it belongs to.
  void noteMayCommit() { open_request_may_commit_ = true; }
  bool mayCommitInFlight() const {
    return open_request_may_commit_ || last_committing_request_ > requests_answered_;
  }

  // Prepared statements (transaction mode, prepared_statements.hpp): which server-side
  // statements exist on this connection, and the replies to come that pgpivot drops or
  // rewrites.
  ServerStatements& statements() { return statements_; }
  int outstanding() const { return outstanding_; }
  proto::TxStatus txStatus() const { return tx_status_; }
  // Whether the server ended this connection with 57P02 (a crash of another backend):
  // a crash-restart of PostgreSQL, not a failover.
  bool lostToCrashRestart() const { return crash_restart_; }
  // Whether the connection sits at a protocol boundary where another client could use it.
  bool atCleanBoundary() const;

  void close(CloseReason reason);

  ServerState state() const { return state_; }
  uint64_t id() const { return id_; }
  const ParamMap& params() const { return params_; }
  int32_t backendPid() const { return backend_pid_; }
  int32_t backendSecret() const { return backend_secret_; }
  const sockaddr_storage& address() const { return address_; }
  uint64_t createdAt() const { return created_at_; }
  uint64_t lastUsedAt() const { return last_used_at_; }
  // uv_hrtime of the oldest request still unanswered; 0 when none is.
  uint64_t queryStartedNs() const { return query_started_ns_; }
  uint64_t stateSince() const { return state_since_; }
  net::Stream& stream() { return stream_; }
  const std::string& logPrefix() const { return log_prefix_; }
  pool::Pool& pool() const { return pool_; }
  uint64_t generation() const { return generation_; }
  // The server's unix socket path, or empty for TCP.
  std::string unixPath() const;

  // RelayHandler
  Action classify(char tag) override;
  bool onMessage(char tag, std::string_view body) override;

  // StreamOwner
  void onStreamData(net::Stream& stream) override;
  void onStreamEnd(net::Stream& stream, int status) override;
  void onStreamConnected(net::Stream& stream, int status) override;
  void onStreamClosed(net::Stream& stream) override;

 private:
  void setState(ServerState state);
  void connectTo(const sockaddr* address);
  void sendStartup();
  bool onLoginMessage(char tag, std::string_view body);
  bool onAuthRequest(std::string_view body);
  bool onInternalQueryMessage(char tag, std::string_view body);
  bool onOwnReply(char tag, std::string_view body);
  void runInternalQuery(ServerState state, const std::string& sql);
  void finishInternalQuery();
  void loginFailed(std::string_view sqlstate, std::string message);
  void noteParameterStatus(std::string_view body);
  bool onReadyForQuery(std::string_view body);
  bool onActiveError(std::string_view body);
  bool onParseComplete();
  bool onCloseComplete();
  bool onCommandComplete(std::string_view body);
  void releaseAfterTransaction();
  // Query and transaction timing (SHOW STATS query_time/xact_time): see server_conn.cpp.
  void noteQueryStart();
  void noteQueryEnd();

  app::Worker& worker_;
  pool::Pool& pool_;
  uint64_t id_;
  uint64_t generation_;
  pool::ServerSlot slot_;  // this connection's share of the process-wide limits
  net::Stream stream_;
  ServerState state_ = ServerState::kResolving;
  ClientSession* client_ = nullptr;
  RelayCursor cursor_;
  ParamMap startup_params_;
  ParamMap params_;
  int32_t backend_pid_ = 0;
  int32_t backend_secret_ = 0;
  proto::TxStatus tx_status_ = proto::TxStatus::kIdle;
  int outstanding_ = 0;
  // Requests (ReadyForQuery expected) sent and answered on this link, and the last one
  // that may commit; one being composed (Parse/Bind before its Sync) may commit too.
  uint64_t requests_sent_ = 0;
  uint64_t requests_answered_ = 0;
  uint64_t last_committing_request_ = 0;
  bool open_request_may_commit_ = false;
  uint64_t query_started_ns_ = 0;  // uv_hrtime of the oldest unanswered request; 0: none
  uint64_t xact_started_ns_ = 0;   // uv_hrtime the client's transaction began; 0: none
  bool error_in_internal_query_ = false;
  bool release_pending_ = false;
  // ReadyForQuery answers to SETs link() sent without waiting, still to come: everything
  // the server sends up to the last of them is pgpivot's (onOwnReply), in any state.
  uint32_t own_replies_pending_ = 0;
  std::string own_reply_error_;
  // Its last words were 57P02: PostgreSQL is restarting after a backend crashed (the
  // same server comes back after crash recovery; no failover).
  bool crash_restart_ = false;
  std::string internal_error_;
  std::string last_words_;  // a FATAL the server sent before closing
  ServerStatements statements_;
  bool consuming_command_complete_ = false;  // classify's decision for the current 'C'
  std::unique_ptr<auth::ScramClient> scram_;
  sockaddr_storage address_{};
  uint64_t created_at_ = 0;
  uint64_t last_used_at_ = 0;
  uint64_t state_since_ = 0;
  std::string log_prefix_;
  uv_getaddrinfo_t resolve_req_{};
  bool resolving_ = false;
};

}  // namespace pgpivot::session
