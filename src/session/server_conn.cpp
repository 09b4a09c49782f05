#include "pgpivot/session/server_conn.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/auth/auth_file.hpp"
#include "pgpivot/auth/md5.hpp"
#include "pgpivot/auth/scram.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/net/tcp_options.hpp"
#include "pgpivot/pool/pool.hpp"
#include "pgpivot/proto/messages.hpp"
#include "pgpivot/proto/views.hpp"
#include "pgpivot/session/client_session.hpp"

namespace pgpivot::session {

namespace {

bool isUnixTarget(const pool::ServerTarget& target) {
  return target.host.empty() || target.host.front() == '/';
}

std::string unixSocketPath(const pool::ServerTarget& target) {
  const std::string dir = target.host.empty() ? "/var/run/postgresql" : target.host;
  return fmt::format("{}/.s.PGSQL.{}", dir, target.port);
}

// "message (SQLSTATE)" of an ErrorResponse to pgpivot's own query, for the log.
std::string errorText(std::string_view body) {
  const auto fields = proto::parseErrorFields(body);
  if (!fields) {
    return "malformed ErrorResponse";
  }
  if (fields->sqlstate.size() != 5) {
    return std::string(fields->message);
  }
  return fmt::format("{} ({})", fields->message, fields->sqlstate);
}

}  // namespace

std::string_view toString(ServerState state) {
  switch (state) {
    case ServerState::kResolving:
      return "resolving";
    case ServerState::kConnecting:
      return "connecting";
    case ServerState::kLogin:
      return "login";
    case ServerState::kIdle:
      return "idle";
    case ServerState::kSyncingParams:
      return "syncing-params";
    case ServerState::kActive:
      return "active";
    case ServerState::kResetting:
      return "resetting";
    case ServerState::kChecking:
      return "checking";
    case ServerState::kClosing:
      return "closing";
  }
  return "?";
}

ServerConn::ServerConn(app::Worker& worker, pool::Pool& pool, uint64_t id, pool::ServerSlot slot)
    : worker_(worker),
      pool_(pool),
      id_(id),
      generation_(pool.generation()),
      slot_(std::move(slot)),
      stream_(worker.loop(), *this, worker.buffers(),
              isUnixTarget(pool.target()) ? net::Stream::Kind::kPipe : net::Stream::Kind::kTcp) {
  created_at_ = last_used_at_ = state_since_ = worker_.now();
  log_prefix_ = fmt::format("S-{:08x} {}/{}@{}:{}", id_, pool.key().database, pool.target().user,
                            pool.target().host, pool.target().port);
  resolve_req_.data = this;
}

ServerConn::~ServerConn() = default;

std::string ServerConn::unixPath() const {
  return isUnixTarget(pool_.target()) ? unixSocketPath(pool_.target()) : std::string();
}

void ServerConn::setState(ServerState state) {
  state_ = state;
  state_since_ = worker_.now();
}

void ServerConn::open(const ParamMap& startup_params) {
  startup_params_ = startup_params;
  const auto& target = pool_.target();
  if (isUnixTarget(target)) {
    setState(ServerState::kConnecting);
    stream_.connectPipe(unixSocketPath(target));
    return;
  }
  sockaddr_storage addr{};
  if (uv_ip4_addr(target.host.c_str(), target.port, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
      uv_ip6_addr(target.host.c_str(), target.port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
    connectTo(reinterpret_cast<const sockaddr*>(&addr));
    return;
  }
  // A host name: resolve without blocking the loop.
  setState(ServerState::kResolving);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  resolving_ = true;
  const int rc = uv_getaddrinfo(
      worker_.loop(), &resolve_req_,
      [](uv_getaddrinfo_t* req, int status, addrinfo* result) noexcept {
        auto* self = static_cast<ServerConn*>(req->data);
        self->resolving_ = false;
        if (self->state_ == ServerState::kClosing) {
          uv_freeaddrinfo(result);
          self->stream_.close();  // deferred: see close()
          return;
        }
        if (status != 0 || result == nullptr) {
          uv_freeaddrinfo(result);
          self->loginFailed(sqlstate::kConnectionFailure,
                            fmt::format("pgpivot: could not resolve server host \"{}\": {}",
                                        self->pool_.target().host, uv_strerror(status)));
          return;
        }
        std::memcpy(&self->address_, result->ai_addr, result->ai_addrlen);
        uv_freeaddrinfo(result);
        self->connectTo(reinterpret_cast<const sockaddr*>(&self->address_));
      },
      target.host.c_str(), fmt::format("{}", target.port).c_str(), &hints);
  if (rc != 0) {
    resolving_ = false;
    loginFailed(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: could not resolve server host \"{}\": {}", target.host,
                            uv_strerror(rc)));
  }
}

void ServerConn::connectTo(const sockaddr* address) {
  const std::size_t len =
      address->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (reinterpret_cast<const void*>(address) != &address_) {
    std::memcpy(&address_, address, len);
  }
  setState(ServerState::kConnecting);
  const int rc = stream_.connect(reinterpret_cast<const sockaddr*>(&address_));
  if (rc != 0) {
    loginFailed(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: could not connect to server {}:{}: {}", pool_.target().host,
                            pool_.target().port, uv_strerror(rc)));
  }
}

void ServerConn::onStreamConnected(net::Stream&, int status) {
  if (status != 0) {
    loginFailed(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: could not connect to server {}:{}: {}", pool_.target().host,
                            pool_.target().port, uv_strerror(status)));
    return;
  }
  PGPIVOT_LOG_DEBUG("{} connected", log_prefix_);
  if (const std::string error =
          net::applyTcpOptions(stream_.uvStream(), net::tcpOptionsFrom(worker_.config()));
      !error.empty()) {
    PGPIVOT_LOG_WARN("{} cannot set TCP options: {}", log_prefix_, error);
  }
  sendStartup();
}

void ServerConn::sendStartup() {
  const auto& target = pool_.target();
  std::vector<std::pair<std::string_view, std::string_view>> params;
  params.emplace_back("user", target.user);
  params.emplace_back("database", target.dbname);
  for (const auto& [name, value] : startup_params_) {
    params.emplace_back(name, value);
  }
  std::string out;
  proto::writeStartupMessage(out, proto::kProtocolVersion3, params);
  setState(ServerState::kLogin);
  stream_.writeOwned(out);
  stream_.startReading();
}

void ServerConn::loginFailed(std::string_view state, std::string message) {
  PGPIVOT_LOG_WARN("{} login failed: {}", log_prefix_, message);
  const Error error{state, std::move(message)};
  pool_.onServerLoginFailed(*this, error);
  close(CloseReason::kServerLoginFailed);
}

void ServerConn::onStreamData(net::Stream&) {
  if (state_ == ServerState::kClosing) {
    return;
  }
  net::Stream* target =
      client_ != nullptr && state_ == ServerState::kActive ? &client_->stream() : nullptr;
  // Corked past the pump: a reply pgpivot wrote itself in the pass (a ParseComplete of the
  // extended protocol) and the forwarded rest up to ReadyForQuery leave in one write when
  // the pass ends by handing the server back.
  if (target != nullptr) {
    target->cork();
  }
  const RelayStatus status = pump(stream_, target, worker_.limits(), cursor_, *this);
  if (status == RelayStatus::kStopped && release_pending_) {
    releaseAfterTransaction();
  }
  if (target != nullptr) {
    target->uncork();
  }
  if (status == RelayStatus::kStopped) {
    return;
  }
  if (status == RelayStatus::kProtocolError) {
    PGPIVOT_LOG_WARN("{} sent an invalid message", log_prefix_);
    if (client_ != nullptr) {
      ClientSession* client = client_;
      client_ = nullptr;
      client->onServerLost("pgpivot: server sent an invalid message");
    }
    close(CloseReason::kServerError);
  }
}

void ServerConn::pumpFromClient() {
  onStreamData(stream_);
}

Action ServerConn::classify(char tag) {
  if (state_ != ServerState::kActive || own_replies_pending_ > 0) {
    return Action::kConsume;  // pgpivot's own conversation with the server
  }
  switch (tag) {
    case 'Z':
    case 'S':
    case 'G':
    case 'W':
      return Action::kInspect;
    case 'E':
      return Action::kConsume;  // a FATAL is the server's last word, not the client's news
    case 'N':
      // A notice: rare, and the way PostgreSQL 14+ says goodbye before a crash-restart
      // (WARNING 57P02, then the end of the stream).
      return Action::kInspect;
    case 'A':
      // NotificationResponse: proof that the client's session LISTENs (session_pins.hpp).
      if (client_ != nullptr) {
        client_->onNotification();
      }
      return Action::kForward;
    case '1':
    case '3': {
      // Only when pgpivot injected a Parse or Close may a ParseComplete or CloseComplete
      // not be the client's. One that is goes on as it arrives, accounted for here
      // (classify sees a forwarded header once).
      if (!statements_.expectsReplies()) {
        return Action::kForward;
      }
      const bool clients =
          tag == '1' ? statements_.parseCompleteIsClients() : statements_.closeCompleteIsClients();
      if (!clients || client_ == nullptr) {
        return Action::kConsume;
      }
      (void)(tag == '1' ? statements_.onParseComplete() : statements_.onCloseComplete());
      return Action::kForward;
    }
    case 'C':
      // A CommandComplete to rewrite (the stand-in for a client's DEALLOCATE), or one that
      // says the server's statements are gone (DEALLOCATE ALL, DISCARD ALL).
      consuming_command_complete_ = statements_.expectsCommandTag();
      if (consuming_command_complete_) {
        return Action::kConsume;
      }
      return !statements_.empty() || (client_ != nullptr && client_->hasPreparedStatements())
                 ? Action::kInspect
                 : Action::kForward;
    default:
      return Action::kForward;
  }
}

bool ServerConn::onParseComplete() {
  if (statements_.onParseComplete() && client_ != nullptr) {
    std::string out;
    proto::writeParseComplete(out);
    client_->stream().writeOwned(out);
  }
  return true;
}

bool ServerConn::onCloseComplete() {
  if (statements_.onCloseComplete() && client_ != nullptr) {
    std::string out;
    proto::writeCloseComplete(out);
    client_->stream().writeOwned(out);
  }
  return true;
}

bool ServerConn::onCommandComplete(std::string_view body) {
  const auto tag = proto::parseCommandComplete(body);
  std::optional<ServerStatements::Rewrite> rewrite;
  if (tag) {
    if ((*tag == "DEALLOCATE ALL" || *tag == "DISCARD ALL") && client_ != nullptr) {
      client_->forgetPreparedStatements();
    }
    rewrite = statements_.onCommandComplete(*tag);
    if (rewrite && client_ != nullptr) {
      client_->forgetPreparedStatement(rewrite->client_name);
    }
  }
  if (consuming_command_complete_ && client_ != nullptr) {
    std::string out;
    if (rewrite) {
      proto::writeCommandComplete(out, rewrite->tag);
    } else {
      proto::writeFrame(out, 'C', body);
    }
    client_->stream().writeOwned(out);
  }
  return true;
}

bool ServerConn::onActiveError(std::string_view body) {
  auto fields = proto::parseErrorFields(body);
  const std::string_view severity =
      fields ? (fields->severity_nonlocalized.empty() ? fields->severity
                                                      : fields->severity_nonlocalized)
             : std::string_view{};
  if (fields && (fields->sqlstate.starts_with("57P0") || fields->sqlstate.starts_with("08"))) {
    pool_.mutableStats().server_errors++;  // shutdown, crash, recovery: failover evidence
  }
  if (fields && (severity == proto::severity::kFatal || severity == proto::severity::kPanic)) {
    // The server is about to close. The client keeps its session, so it must not read
    // "terminating connection"; onServerLost tells it what happened, once.
    last_words_ = fmt::format("{} ({})", fields->message, fields->sqlstate);
    crash_restart_ = fields->sqlstate == "57P02";
    return true;
  }
  if (client_ != nullptr) {
    // Errors are rare: rebuilding the frame is cheaper than special-casing the pump.
    std::string frame;
    if (const auto name = statements_.duplicateParseName();
        name && fields && fields->sqlstate == "42P05") {
      // The refusal of a client's Parse under a name in use: name the client's statement.
      proto::writeErrorResponse(frame, proto::severity::kError, fields->sqlstate,
                                fmt::format("prepared statement \"{}\" already exists", *name));
      client_->stream().writeOwned(frame);
      return true;
    }
    proto::writeFrame(frame, 'E', body);
    client_->stream().writeOwned(frame);
  }
  return true;
}

bool ServerConn::onMessage(char tag, std::string_view body) {
  if (own_replies_pending_ > 0 && state_ != ServerState::kClosing) {
    return onOwnReply(tag, body);  // whatever came after was sent after it
  }
  switch (state_) {
    case ServerState::kLogin:
      return onLoginMessage(tag, body);
    case ServerState::kSyncingParams:
    case ServerState::kResetting:
    case ServerState::kChecking:
      return onInternalQueryMessage(tag, body);
    case ServerState::kActive:
      if (tag == 'Z') {
        return onReadyForQuery(body);
      }
      if (tag == 'E') {
        return onActiveError(body);
      }
      if (tag == 'N') {
        // quickdie() of PostgreSQL 14+: "terminating connection because of crash of
        // another server process" as a WARNING (the client sees it as sent).
        if (auto fields = proto::parseErrorFields(body); fields && fields->sqlstate == "57P02") {
          crash_restart_ = true;
          last_words_ = fmt::format("{} ({})", fields->message, fields->sqlstate);
        }
        return true;
      }
      if (tag == '1') {
        return onParseComplete();
      }
      if (tag == '3') {
        return onCloseComplete();
      }
      if (tag == 'C') {
        return onCommandComplete(body);
      }
      if ((tag == 'G' || tag == 'W') && client_ != nullptr) {
        client_->onCopyInStarted();
      }
      if (tag == 'S') {
        noteParameterStatus(body);
        if (auto param = proto::parseParameterStatus(body); param && client_ != nullptr) {
          client_->noteServerParameter(param->name, param->value);
        }
      }
      return true;
    case ServerState::kIdle:
      // Between clients the server has nothing to say but a notice or its last words
      // before it goes away (a FATAL ErrorResponse). The end of stream closes it.
      if (tag == 'S') {
        noteParameterStatus(body);
      }
      return true;
    case ServerState::kResolving:
    case ServerState::kConnecting:
    case ServerState::kClosing:
      return false;
  }
  return false;
}

bool ServerConn::onReadyForQuery(std::string_view body) {
  if (auto status = proto::parseReadyForQuery(body)) {
    tx_status_ = *status;
  }
  // Parses and Closes of this batch still unanswered were skipped after an error.
  statements_.onReadyForQuery();
  if (!statements_.failedClientParses().empty()) {
    for (const std::string& name : statements_.failedClientParses()) {
      if (client_ != nullptr) {
        client_->forgetPreparedStatement(name);
      }
    }
    statements_.clearFailedClientParses();
  }
  if (outstanding_ > 0) {
    --outstanding_;
    ++requests_answered_;
    pool_.mutableStats().queries++;  // a client's request answered (PgBouncer counts here too)
    noteQueryEnd();
  }
  last_used_at_ = worker_.now();
  if (tx_status_ == proto::TxStatus::kIdle) {
    pool_.mutableStats().transactions++;
  }
  const config::PoolMode mode = pool_.settings().mode;
  if (mode == config::PoolMode::kSession || outstanding_ > 0 || client_ == nullptr ||
      !client_->atMessageBoundary()) {
    return true;
  }
  if (tx_status_ == proto::TxStatus::kIdle) {
    release_pending_ = true;  // onStreamData hands us back once these bytes are on their way
    return false;
  }
  if (mode == config::PoolMode::kStatement) {
    ClientSession* client = client_;
    client->closeWithError(sqlstate::kProtocolViolation,
                           "pgpivot: transaction blocks not allowed in statement pooling mode",
                           CloseReason::kClientProtocolViolation);
    return false;
  }
  return true;
}

// --- query and transaction time (SHOW STATS query_time, xact_time) -------------------------
// As PgBouncer measures them: a query runs from the client's request reaching this server
// until the ReadyForQuery that answers it; a transaction from its first query until
// ReadyForQuery 'I' (idle in transaction included). With pipelined requests the query
// clock runs from the first unanswered request to the last answer, so the sums keep
// query_time <= xact_time. The clock is uv_hrtime (CLOCK_MONOTONIC through the vDSO, no
// system call), read once when a request starts an exchange and once per ReadyForQuery.

void ServerConn::noteQueryStart() {
  const uint64_t now = uv_hrtime();
  query_started_ns_ = now;
  if (xact_started_ns_ == 0) {
    xact_started_ns_ = now;
  }
}

void ServerConn::noteQueryEnd() {
  if (query_started_ns_ == 0) {
    return;
  }
  const uint64_t now = uv_hrtime();
  pool::PoolStats& stats = pool_.mutableStats();
  if (outstanding_ == 0) {
    stats.query_time_ns += now - query_started_ns_;
    query_started_ns_ = 0;
  }
  if (tx_status_ == proto::TxStatus::kIdle && xact_started_ns_ != 0) {
    stats.xact_time_ns += now - xact_started_ns_;
    // Requests already sent belong to the next transaction, which starts now.
    xact_started_ns_ = outstanding_ > 0 ? now : 0;
  }
}

void ServerConn::releaseAfterTransaction() {
  release_pending_ = false;
  ClientSession* client = client_;
  if (client == nullptr) {
    return;
  }
  if (!stream_.buffer().pendingSend().empty()) {
    stream_.forwardTo(client->stream());  // the ReadyForQuery and what came before it
  }
  pool_.releaseServer(*this, true);
  client->onServerReleased();
}

void ServerConn::noteParameterStatus(std::string_view body) {
  if (auto param = proto::parseParameterStatus(body)) {
    params_[std::string(param->name)] = std::string(param->value);
  }
}

bool ServerConn::onLoginMessage(char tag, std::string_view body) {
  switch (tag) {
    case 'R':
      return onAuthRequest(body);
    case 'S':
      noteParameterStatus(body);
      return true;
    case 'K':
      if (auto key = proto::parseBackendKeyData(body)) {
        backend_pid_ = key->pid;
        backend_secret_ = key->secret;
      }
      return true;
    case 'N':
    case 'v':
      return true;
    case 'E': {
      auto fields = proto::parseErrorFields(body);
      if (!fields) {
        loginFailed(sqlstate::kProtocolViolation, "pgpivot: server sent a malformed error");
        return false;
      }
      loginFailed(fields->sqlstate.empty() ? sqlstate::kConnectionFailure : fields->sqlstate,
                  fmt::format("pgpivot: server login failed: {}", fields->message));
      return false;
    }
    case 'Z': {
      scram_.reset();
      const std::string& connect_query = pool_.target().connect_query;
      if (!connect_query.empty()) {
        runInternalQuery(ServerState::kChecking, connect_query);
        return true;
      }
      PGPIVOT_LOG_DEBUG("{} login complete", log_prefix_);
      setState(ServerState::kIdle);
      pool_.onServerReady(*this);
      return false;
    }
    default:
      loginFailed(sqlstate::kProtocolViolation,
                  fmt::format("pgpivot: unexpected message '{}' from server during login", tag));
      return false;
  }
}

bool ServerConn::onAuthRequest(std::string_view body) {
  auto request = proto::parseAuthRequest(body);
  if (!request) {
    loginFailed(sqlstate::kProtocolViolation, "pgpivot: malformed authentication request");
    return false;
  }
  const auto& target = pool_.target();
  const auth::SecretKind kind = auth::secretKind(target.password);
  std::string out;
  switch (request->code) {
    case proto::kAuthOk:
      return true;
    case proto::kAuthCleartext:
      if (target.password.empty() || kind != auth::SecretKind::kPlain) {
        loginFailed(sqlstate::kInvalidPassword,
                    fmt::format("pgpivot: server asks for a plain password for user \"{}\" and "
                                "none is configured",
                                target.user));
        return false;
      }
      proto::writePasswordMessage(out, target.password);
      break;
    case proto::kAuthMd5: {
      if (target.password.empty() || kind == auth::SecretKind::kScram ||
          request->data.size() != 4) {
        loginFailed(sqlstate::kInvalidPassword,
                    fmt::format("pgpivot: server asks for an md5 password for user \"{}\" and "
                                "no plain or md5 password is configured",
                                target.user));
        return false;
      }
      auth::Md5Salt salt{};
      std::memcpy(salt.data(), request->data.data(), 4);
      proto::writePasswordMessage(out, auth::md5Response(target.password, target.user, salt));
      break;
    }
    case proto::kAuthSasl: {
      auto mechanisms = proto::parseSaslMechanisms(request->data);
      bool offered = false;
      if (mechanisms) {
        for (const auto mechanism : *mechanisms) {
          offered = offered || mechanism == auth::kScramSha256;
        }
      }
      if (!offered) {
        loginFailed(sqlstate::kFeatureNotSupported,
                    "pgpivot: server offers no SASL mechanism pgpivot supports");
        return false;
      }
      if (kind == auth::SecretKind::kPlain && !target.password.empty()) {
        scram_ = std::make_unique<auth::ScramClient>(target.password);
      } else if (pool_.hasScramKeys()) {
        scram_ =
            std::make_unique<auth::ScramClient>(pool_.scramClientKey(), pool_.scramServerKey());
      } else {
        loginFailed(sqlstate::kInvalidPassword,
                    fmt::format("pgpivot: server asks for SCRAM authentication for user \"{}\" "
                                "and no plain password (or SCRAM keys from a client login) is "
                                "available",
                                target.user));
        return false;
      }
      proto::writeSaslInitialResponse(out, auth::kScramSha256, scram_->clientFirstMessage());
      break;
    }
    case proto::kAuthSaslContinue: {
      if (!scram_) {
        loginFailed(sqlstate::kProtocolViolation, "pgpivot: unexpected SASL continue");
        return false;
      }
      auto reply = scram_->handleServerFirst(request->data);
      if (!reply) {
        loginFailed(reply.error().sqlstate,
                    fmt::format("pgpivot: SCRAM with server failed: {}", reply.error().message));
        return false;
      }
      proto::writeSaslResponse(out, *reply);
      break;
    }
    case proto::kAuthSaslFinal: {
      if (!scram_) {
        loginFailed(sqlstate::kProtocolViolation, "pgpivot: unexpected SASL final");
        return false;
      }
      auto verified = scram_->verifyServerFinal(request->data);
      if (!verified) {
        loginFailed(sqlstate::kInvalidPassword,
                    fmt::format("pgpivot: server's SCRAM signature is wrong: {}",
                                verified.error().message));
        return false;
      }
      return true;
    }
    default:
      loginFailed(sqlstate::kFeatureNotSupported,
                  fmt::format("pgpivot: server asks for authentication method {} which pgpivot "
                              "does not support",
                              request->code));
      return false;
  }
  stream_.writeOwned(out);
  return true;
}

void ServerConn::link(ClientSession& client) {
  client_ = &client;
  last_used_at_ = worker_.now();
  outstanding_ = 0;
  requests_sent_ = requests_answered_ = last_committing_request_ = 0;
  open_request_may_commit_ = false;
  query_started_ns_ = xact_started_ns_ = 0;  // a previous client's unfinished exchange
  statements_.resetBatches();
  // The client's own limit (a reload applies to new clients); one that passes statements
  // through leaves the limit of those that rename theirs.
  if (client.maxPreparedStatements() > 0) {
    statements_.setCapacity(static_cast<std::size_t>(client.maxPreparedStatements()));
  }
  const std::string sql = buildSetQuery(client.wantedParams(), params_);
  if (sql.empty()) {
    setState(ServerState::kActive);
    client.onServerLinked(*this);
    return;
  }
  if (!setQueryCannotFail(client.wantedParams(), params_)) {
    runInternalQuery(ServerState::kSyncingParams, sql);
    return;
  }
  // Nothing the server could refuse (an application_name after DISCARD ALL reset it, the
  // usual case of a session-mode login): the SET leaves ahead of the client's request,
  // in the same write when that is already here, and its answer is read before the
  // client's (onOwnReply) instead of costing the login a round trip.
  std::string out;
  proto::writeQuery(out, sql);
  ++own_replies_pending_;
  // What the server will say once the SET runs (its ParameterStatus corrects a value it
  // cleaned up), so that the next link compares against that and not the old value.
  if (const auto name = client.wantedParams().find("application_name")) {
    params_.insert_or_assign("application_name", std::string(*name));
  }
  setState(ServerState::kActive);
  stream_.cork();
  stream_.writeOwned(out);
  client.onServerLinked(*this);
  stream_.uncork();
}

bool ServerConn::onOwnReply(char tag, std::string_view body) {
  switch (tag) {
    case 'S':
      noteParameterStatus(body);
      return true;
    case 'E':
      own_reply_error_ = errorText(body);
      return true;
    case 'Z':
      --own_replies_pending_;
      if (!own_reply_error_.empty()) {
        // Not expected of an application_name; the client's session is not what it asked
        // for, so it ends with the server's words rather than run on.
        PGPIVOT_LOG_WARN("{} refused pgpivot's SET: {}", log_prefix_, own_reply_error_);
        own_reply_error_.clear();
        close(CloseReason::kServerUnusable);
        return false;
      }
      return true;
    default:
      return true;  // its CommandComplete, a notice
  }
}

void ServerConn::beginReset() {
  const std::string& sql = worker_.config().server_reset_query;
  runInternalQuery(ServerState::kResetting, sql);
}

void ServerConn::beginCheck() {
  runInternalQuery(ServerState::kChecking, worker_.config().server_check_query);
}

void ServerConn::runInternalQuery(ServerState state, const std::string& sql) {
  setState(state);
  error_in_internal_query_ = false;
  internal_error_.clear();
  std::string out;
  proto::writeQuery(out, sql);
  stream_.writeOwned(out);
  stream_.startReading();
}

bool ServerConn::onInternalQueryMessage(char tag, std::string_view body) {
  switch (tag) {
    case 'S':
      noteParameterStatus(body);
      return true;
    case 'E':
      error_in_internal_query_ = true;
      internal_error_ = errorText(body);
      return true;
    case 'C':
      if (auto command = proto::parseCommandComplete(body)) {
        statements_.onInternalCommandComplete(*command);  // a reset query may discard them
      }
      return true;
    case 'Z':
      if (auto status = proto::parseReadyForQuery(body)) {
        tx_status_ = *status;
      }
      finishInternalQuery();
      return false;
    default:
      return true;  // RowDescription, DataRow, CommandComplete, notices
  }
}

void ServerConn::finishInternalQuery() {
  const ServerState was = state_;
  if (was == ServerState::kSyncingParams) {
    ClientSession* client = client_;
    if (error_in_internal_query_) {
      // The client asked for a parameter value the server refuses (a bad time zone, say):
      // PostgreSQL would have refused the start-up packet the same way.
      client_ = nullptr;
      client->unlinkServer();
      setState(ServerState::kActive);  // releaseServer expects a linked, active server
      pool_.releaseServer(*this, tx_status_ == proto::TxStatus::kIdle);
      client->failWaiting(sqlstate::kProtocolViolation,
                          fmt::format("pgpivot: invalid startup parameter: {}", internal_error_),
                          CloseReason::kLoginFailed);
      return;
    }
    setState(ServerState::kActive);
    client->onServerLinked(*this);
    return;
  }
  if (error_in_internal_query_ || tx_status_ != proto::TxStatus::kIdle) {
    PGPIVOT_LOG_WARN("{} {} failed: {}", log_prefix_, toString(was), internal_error_);
    close(CloseReason::kServerUnusable);
    return;
  }
  setState(ServerState::kIdle);
  last_used_at_ = worker_.now();
  pool_.onServerReady(*this);
}

bool ServerConn::atCleanBoundary() const {
  return outstanding_ == 0 && tx_status_ == proto::TxStatus::kIdle && cursor_.body_left == 0 &&
         stream_.buffer().received() == stream_.buffer().parsed();
}

void ServerConn::onStreamEnd(net::Stream&, int status) {
  PGPIVOT_LOG_DEBUG("{} closed by server: {}", log_prefix_,
                    status == UV_EOF ? "end of stream" : uv_strerror(status));
  if (state_ == ServerState::kConnecting || state_ == ServerState::kLogin) {
    loginFailed(sqlstate::kConnectionFailure,
                fmt::format("pgpivot: server {}:{} closed the connection during login",
                            pool_.target().host, pool_.target().port));
    return;
  }
  if (client_ != nullptr) {
    ClientSession* client = client_;
    client_ = nullptr;
    client->onServerLost(last_words_.empty() ? std::string("pgpivot: server connection lost")
                                             : "pgpivot: server connection lost: " + last_words_);
  }
  close(CloseReason::kServerEof);
}

void ServerConn::close(CloseReason reason) {
  if (state_ == ServerState::kClosing) {
    return;
  }
  PGPIVOT_LOG_DEBUG("{} closing: {}", log_prefix_, toString(reason));
  setState(ServerState::kClosing);
  if (client_ != nullptr) {
    ClientSession* client = client_;
    client_ = nullptr;
    client->onServerLost(reason == CloseReason::kFailover
                             ? "pgpivot: failover: the server connection was moved"
                             : "pgpivot: server connection closed",
                         reason == CloseReason::kFailover);
  }
  slot_.release();  // the limits count open connections: this one no longer is
  pool_.onServerClosed(*this);
  if (resolving_) {
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_req_));
    return;  // the resolve callback closes the stream once the request is done
  }
  if (backend_pid_ != 0 || stream_.bytesIn() > 0) {
    std::string out;
    proto::writeTerminate(out);
    stream_.writeOwned(out);
  }
  stream_.close();
}

void ServerConn::onStreamClosed(net::Stream&) {
  worker_.retireServer(*this);
}

}  // namespace pgpivot::session
