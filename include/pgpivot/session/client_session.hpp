// One client connected to pgpivot: its start-up packet, its authentication against the
// auth file, the wait for a server, and relaying its bytes to the server it is linked
// to. The pool decides which server; this class only follows its state.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include "pgpivot/admin/console.hpp"
#include "pgpivot/auth/auth_query.hpp"
#include "pgpivot/auth/scram.hpp"
#include "pgpivot/cluster/commit_risk.hpp"
#include "pgpivot/cluster/server_loss.hpp"
#include "pgpivot/net/stream.hpp"
#include "pgpivot/session/client_handoff.hpp"
#include "pgpivot/session/close_reason.hpp"
#include "pgpivot/session/params.hpp"
#include "pgpivot/session/prepared_statements.hpp"
#include "pgpivot/session/relay.hpp"
#include "pgpivot/session/session_pins.hpp"

namespace pgpivot::app {
class Worker;
}
namespace pgpivot::config {
struct Config;
}
namespace pgpivot::pool {
class Pool;
}

namespace pgpivot::session {

class ServerConn;

enum class ClientState : uint8_t {
  kStartup,           // reading the untyped first packet(s): SSLRequest, StartupMessage, cancel
  kAuthenticating,    // password exchange with pgpivot
  kWaitingForServer,  // queued in its pool; login not finished yet if not welcomed
  kActive,            // linked to a server, relaying in both directions
  kIdle,              // logged in, no server (transaction mode, or its server was lost)
  kAdmin,             // logged in to the admin console: Query in, console answer out
  kClosing,           // closing; owned by the worker until the handle is closed
};

std::string_view toString(ClientState state);

class ClientSession final : public net::StreamOwner, public RelayHandler {
 public:
  ClientSession(app::Worker& worker, uint64_t id, net::Stream::Kind kind);
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;
  ~ClientSession();

  [[nodiscard]] int accept(uv_stream_t* listener);
  // Takes over a connection another worker accepted (Listener::acceptDescriptor): the
  // descriptor is this session's from here on, whatever the result.
  [[nodiscard]] int adopt(int fd);
  // Accepted on the admin port: every login is a console login.
  void markAdminPort() { on_admin_port_ = true; }
  void start(bool over_client_limit);

  // Moving to another worker between two transactions (client_handoff.cpp). Whether the
  // client can go now: transaction or statement mode, logged in, no server, nothing half
  // read or owed.
  bool movable() const;
  // The hand-off, after which this session is closing without a word to the client;
  // null when it cannot go now.
  std::shared_ptr<ClientHandoff> handOff();
  // A fresh session (built with the hand-off's id and kind) takes the client over, idle.
  // False: the socket could not be adopted, and the hand-off still owns it.
  [[nodiscard]] bool takeOver(ClientHandoff& handoff);

  // Pool: this server is being prepared for us (SETs for our parameters); we may still
  // leave before it is ready, and must then give it back.
  void attachServer(ServerConn& server) { server_ = &server; }
  // The server is ready: its SETs for our parameters are done.
  void onServerLinked(ServerConn& server);
  // Pool: no server can be had; tell the client why and close.
  void failWaiting(std::string_view sqlstate, const std::string& message, CloseReason reason);
  // Our server died under us (or was taken away by a failover).
  void onServerLost(const std::string& why, bool failover = false);
  // Transaction/statement mode: the server finished our transaction and goes back to the
  // pool; we stay logged in without one until our next message.
  void onServerReleased();
  // The server reported a new value for a parameter (a SET); keep it for our next server.
  void noteServerParameter(std::string_view name, std::string_view value);
  // The server delivered a NotificationResponse: this session listens (session_pins.hpp).
  void onNotification() { pins_.noteNotification(); }
  const SessionPins& pins() const { return pins_; }
  // The server entered COPY FROM STDIN (CopyInResponse or CopyBothResponse).
  void onCopyInStarted();
  // Named prepared statements (transaction and statement mode): whether we have any, and
  // DEALLOCATE ALL or DISCARD ALL succeeded on our server.
  bool hasPreparedStatements() const { return statements_ != nullptr && !statements_->empty(); }
  void forgetPreparedStatements() {
    if (statements_ != nullptr) {
      statements_->forgetAll();
    }
  }
  void forgetPreparedStatement(std::string_view name) {
    if (statements_ != nullptr) {
      statements_->forget(name);
    }
  }
  // max_prepared_statements as it was when we connected: a reload applies to new clients
  // only, so statements this client holds keep being renamed (0: passed through).
  int maxPreparedStatements() const { return max_prepared_statements_; }
  // Whether everything we sent the server ended at a message boundary.
  bool atMessageBoundary() const { return cursor_.body_left == 0; }
  // Server side of the link: bytes for the client arrived / pump resumed.
  void pumpFromServer();

  // Sends an ErrorResponse (FATAL) and closes.
  void closeWithError(std::string_view sqlstate, const std::string& message, CloseReason reason);
  void close(CloseReason reason);

  // The auth_query lookup this session asked for has an answer.
  void onAuthQueryResult(auth::AuthQueryResult result);

  // Janitor: timeouts, given the loop time.
  void checkTimeouts(uint64_t now_ms);
  // Its server was lost with a statement or a transaction on it, and whether that was a
  // failover is not decided yet (cluster/server_loss.hpp; the janitor decides): if it
  // was, that transaction failed. A DRILL's verdict counts it before the janitor has.
  bool lostTransactionUndecided() const;

  ClientState state() const { return state_; }
  uint64_t id() const { return id_; }
  const std::string& user() const { return user_; }
  const std::string& database() const { return database_; }
  const TrackedParams& wantedParams() const { return wanted_params_; }
  int32_t cancelPid() const { return cancel_pid_; }
  int32_t cancelSecret() const { return cancel_secret_; }
  ServerConn* server() const { return server_; }
  pool::Pool* pool() const { return pool_; }
  uint64_t waitStartedAt() const { return wait_started_at_; }
  uint64_t connectedAt() const { return connected_at_; }
  net::Stream& stream() { return stream_; }
  // "C-<id> db/user@host:port", built when a log line needs it.
  std::string logPrefix() const;
  void unlinkServer() { server_ = nullptr; }

  // RelayHandler (client -> server direction)
  Action classify(char tag) override;
  bool onMessage(char tag, std::string_view body) override;
  std::string* gatherBuffer() override;

  // StreamOwner
  void onStreamData(net::Stream& stream) override;
  void onStreamEnd(net::Stream& stream, int status) override;
  void onStreamConnected(net::Stream& stream, int status) override;
  void onStreamClosed(net::Stream& stream) override;

 private:
  // query_timeout and idle_transaction_timeout of the server it holds; true: closed.
  bool checkServerTimeouts(const config::Config& config, uint64_t now_ms);
  void setState(ClientState state);
  // Whether this session tracks server state that cannot move (session_pins.hpp): session
  // mode on a pool that can fail over.
  bool tracksPins() const;
  // A Query or Parse at the head of the unparsed bytes, for the pins; false when its body
  // is not all here yet and fits the buffer (the relay then waits for the rest).
  bool notePins(char tag);
  // Whether pgpivot renames the client's prepared statements (prepared_statements.hpp).
  bool rewritesStatements() const;
  // Whether the Query whose header starts the unparsed bytes may hold a DEALLOCATE of one
  // of our statements, alone or among other statements (and is small enough to take whole).
  bool mayDeallocate() const;
  // A whole Parse, Bind, Describe or Close at the head of the unparsed bytes that the
  // server may get as it is (its reply noted): forwarded, not taken to be rewritten.
  bool forwardsUnchanged(char tag);
  // A Parse, Bind, Describe or Close too large to take whole: whether it can be forwarded
  // (after what it needs is injected); otherwise it is refused as before.
  bool relayLargeStatementMessage(char tag);
  void readStartup();
  bool handleStartupPacket(int32_t code, std::string_view body);
  bool handleStartupMessage(std::string_view body);
  void beginAuthentication();
  void challenge(const std::string& secret);
  void readAuthentication();
  [[nodiscard]] bool takeMessage(const proto::Limits& limits, proto::FrameView& frame);
  bool handlePasswordMessage(std::string_view body);
  void authenticated();
  void startAdmin();
  void readAdmin();
  // The console's answer to the query we sent it (AdminState, the console's ReplySink).
  void onAdminReply(std::string bytes);
  void requestServer();
  void sendWelcome(const ParamMap& server_params);
  void expectReadyForQuery();
  bool dropOrphanedBody();
  bool answerLostTransaction();
  // A lost server connection (onServerLost): what the client was doing, and whether
  // anything broke it that says failover (cluster/server_loss.hpp). tellServerLoss returns
  // false when it closed the session.
  struct LostServer {
    std::string why;
    bool in_flight = false;      // a reply was owed
    bool not_committed = false;  // inside a block, nothing in flight that may commit it
    bool in_transaction = false;
  };
  struct PendingLoss {
    LostServer lost;
    cluster::ServerLoss loss;
  };
  bool tellServerLoss(const LostServer& lost, cluster::LossCause cause);
  void resolveServerLoss(uint64_t now_ms);
  cluster::PoolSignals poolSignals() const;
  cluster::LossTiming lossTiming() const;

  // Authentication in progress: the secret from the auth file (plain, md5 or SCRAM), which
  // exchange, and its data. Allocated for the login only: an idle client holds none of it.
  struct AuthCleartext {};
  struct AuthMd5 {
    std::array<char, 4> salt{};
  };
  struct AuthScram {
    std::unique_ptr<auth::ScramServer> server;
    bool first_done = false;
  };
  struct AuthState {
    std::string secret;
    std::variant<std::monostate, AuthCleartext, AuthMd5, AuthScram> exchange;
  };
  // An admin console session: what the console knows about us, and where its late answers
  // go. Allocated at login for console sessions only.
  struct AdminState final : admin::ReplySink {
    explicit AdminState(ClientSession& owner) : session(owner) {}
    void onAdminReply(std::string bytes) override { session.onAdminReply(std::move(bytes)); }
    ClientSession& session;
    admin::Caller caller;
    bool query_pending = false;
  };
  // The statement bookkeeping, allocated with the first message it handles.
  PreparedStatements& statements();

  // Ordered for packing: every idle client holds one of these (bench/idle_clients.py).
  app::Worker& worker_;
  uint64_t id_;
  net::Stream stream_;
  std::string user_;
  std::string database_;
  TrackedParams wanted_params_;
  std::unique_ptr<AuthState> auth_;                 // during authentication only
  std::unique_ptr<PreparedStatements> statements_;  // transaction/statement mode, on first use
  std::unique_ptr<AdminState> admin_;               // console sessions only
  // Which named statements may commit (failover truth), from the client's first Parse.
  std::unique_ptr<cluster::CommitRisk> commit_risk_;
  // A lost server whose cause is not known yet: the client waits for the verdict.
  std::unique_ptr<PendingLoss> pending_loss_;
  pool::Pool* pool_ = nullptr;
  ServerConn* server_ = nullptr;
  RelayCursor cursor_;
  uint64_t connected_at_ = 0;
  uint64_t wait_started_at_ = 0;
  uint64_t last_activity_at_ = 0;
  int32_t cancel_pid_ = 0;
  int32_t cancel_secret_ = 0;
  int syncs_since_execute_ = 0;
  int32_t max_prepared_statements_ = 0;
  net::PeerAddress peer_;  // taken at accept: a reset connection has no peer name left
  ClientState state_ = ClientState::kStartup;
  // A transaction that was open on a server we lost; the next statement gets the error.
  enum class LostTransaction : uint8_t { kNone, kServerLost, kFailover, kCrashRestart };
  LostTransaction lost_transaction_ = LostTransaction::kNone;
  SessionPins pins_;  // temp tables, advisory locks, LISTEN, WITH HOLD cursors held
  bool welcomed_ : 1 = false;
  bool copy_in_ : 1 = false;
  bool over_client_limit_ : 1 = false;
  bool holds_client_slot_ : 1 = false;  // a max_client_conn slot, from start() on
  bool auth_query_pending_ : 1 = false;
  bool on_admin_port_ : 1 = false;
};

}  // namespace pgpivot::session
