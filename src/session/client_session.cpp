#include "pgpivot/session/client_session.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/auth/auth_file.hpp"
#include "pgpivot/auth/md5.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/pool/pool.hpp"
#include "pgpivot/proto/messages.hpp"
#include "pgpivot/proto/views.hpp"
#include "pgpivot/session/server_conn.hpp"

namespace pgpivot::session {

using config::AuthType;

std::string_view toString(ClientState state) {
  switch (state) {
    case ClientState::kStartup:
      return "startup";
    case ClientState::kAuthenticating:
      return "authenticating";
    case ClientState::kWaitingForServer:
      return "waiting";
    case ClientState::kActive:
      return "active";
    case ClientState::kIdle:
      return "idle";
    case ClientState::kAdmin:
      return "admin";
    case ClientState::kClosing:
      return "closing";
  }
  return "?";
}

ClientSession::ClientSession(app::Worker& worker, uint64_t id, net::Stream::Kind kind)
    : worker_(worker), id_(id), stream_(worker.loop(), *this, worker.buffers(), kind) {
  connected_at_ = last_activity_at_ = worker_.now();
  max_prepared_statements_ = worker_.config().max_prepared_statements;
}

ClientSession::~ClientSession() = default;

std::string ClientSession::logPrefix() const {
  if (user_.empty()) {
    return fmt::format("C-{:08x} {}", id_, peer_.toString());  // before the startup packet
  }
  return fmt::format("C-{:08x} {}/{}@{}", id_, database_, user_, peer_.toString());
}

int ClientSession::accept(uv_stream_t* listener) {
  return stream_.accept(listener);
}

int ClientSession::adopt(int fd) {
  const int rc = stream_.adopt(fd);
  if (rc != 0) {
    ::close(fd);
  }
  return rc;
}

void ClientSession::start(bool over_client_limit) {
  over_client_limit_ = over_client_limit;
  holds_client_slot_ = !over_client_limit;
  peer_ = stream_.peerAddress();
  if (worker_.config().log_connections) {
    PGPIVOT_LOG_INFO("{} connection accepted", logPrefix());
  }
  if (net::Stream::readsSuspended()) {
    // SUSPEND: the start-up packet is still read, so an admin can log in to the console
    // (to RESUME); handleStartupMessage holds everyone else there.
    stream_.setSuspendExempt(true);
  }
  stream_.startReading();
}

void ClientSession::setState(ClientState state) {
  state_ = state;
}

// --- start-up -----------------------------------------------------------------------------

void ClientSession::onStreamData(net::Stream&) {
  last_activity_at_ = worker_.now();
  switch (state_) {
    case ClientState::kStartup:
      readStartup();
      return;
    case ClientState::kAuthenticating:
      readAuthentication();
      return;
    case ClientState::kWaitingForServer:
      // Bytes wait in the buffer until a server is linked; stop reading once it is full.
      return;
    case ClientState::kIdle: {
      if (pending_loss_ != nullptr) {
        return;  // the answer about the lost server comes first (resolveServerLoss)
      }
      if (!dropOrphanedBody() ||
          (lost_transaction_ != LostTransaction::kNone && !answerLostTransaction())) {
        stream_.startReading();
        return;
      }
      const std::string_view unparsed = stream_.buffer().unparsed();
      if (unparsed.empty()) {
        stream_.startReading();
        return;
      }
      if (unparsed.front() == 'X' && cursor_.body_left == 0) {
        close(CloseReason::kClientTerminate);  // no server needed to say goodbye
        return;
      }
      requestServer();
      return;
    }
    case ClientState::kActive: {
      net::Stream* target = server_ != nullptr ? &server_->stream() : nullptr;
      if (target == nullptr) {
        return;
      }
      const RelayStatus status = pump(stream_, target, worker_.limits(), cursor_, *this);
      if (status == RelayStatus::kProtocolError) {
        closeWithError(sqlstate::kProtocolViolation, "pgpivot: invalid message from client",
                       CloseReason::kClientProtocolViolation);
      }
      return;
    }
    case ClientState::kAdmin:
      readAdmin();
      return;
    case ClientState::kClosing:
      return;
  }
}

void ClientSession::readStartup() {
  auto& buffer = stream_.buffer();
  while (state_ == ClientState::kStartup) {
    const std::string_view unparsed = buffer.unparsed();
    int32_t length = 0;
    const proto::Decode decoded = proto::decodeStartupHeader(unparsed, length);
    if (decoded == proto::Decode::kInvalid) {
      closeWithError(sqlstate::kProtocolViolation, "pgpivot: invalid startup packet length",
                     CloseReason::kClientProtocolViolation);
      return;
    }
    if (decoded == proto::Decode::kNeedMore || unparsed.size() < static_cast<std::size_t>(length)) {
      buffer.compact();
      stream_.startReading();
      return;  // client_login_timeout guards a client that never sends the rest
    }
    const std::string_view packet = unparsed.substr(4, static_cast<std::size_t>(length) - 4);
    buffer.skipParsed(static_cast<std::size_t>(length));
    if (packet.size() < 4) {
      closeWithError(sqlstate::kProtocolViolation, "pgpivot: invalid startup packet",
                     CloseReason::kClientProtocolViolation);
      return;
    }
    int32_t code = 0;
    std::memcpy(&code, packet.data(), 4);
    code = static_cast<int32_t>(ntohl(static_cast<uint32_t>(code)));
    if (!handleStartupPacket(code, packet)) {
      return;
    }
  }
}

bool ClientSession::handleStartupPacket(int32_t code, std::string_view body) {
  if (code == proto::kSslRequestCode || code == proto::kGssEncRequestCode) {
    // No TLS or GSS encryption yet: 'N' tells the client to go on in plain text.
    stream_.writeOwned(std::string(1, 'N'));
    return true;
  }
  if (code == proto::kCancelRequestCode) {
    auto cancel = proto::parseCancelRequest(body);
    // libpq's PQcancel returns when this connection closes, taking that to mean the
    // server has the request. So it stays open until PostgreSQL has read the forwarded
    // cancel; otherwise a late cancel could hit the client's next query.
    if (cancel && worker_.forwardCancel(cancel->pid, cancel->secret, id_)) {
      stream_.stopReading();
      return false;
    }
    close(CloseReason::kCancelRequest);
    return false;
  }
  if (proto::protocolMajor(code) != 3) {
    closeWithError(sqlstate::kFeatureNotSupported,
                   fmt::format("pgpivot: unsupported frontend protocol {}.{}: pgpivot supports "
                               "3.0",
                               proto::protocolMajor(code), proto::protocolMinor(code)),
                   CloseReason::kClientProtocolViolation);
    return false;
  }
  return handleStartupMessage(body);
}

bool ClientSession::handleStartupMessage(std::string_view body) {
  auto startup = proto::parseStartup(body);
  if (!startup) {
    closeWithError(sqlstate::kProtocolViolation, "pgpivot: invalid startup packet",
                   CloseReason::kClientProtocolViolation);
    return false;
  }
  const auto& config = worker_.config();
  for (const auto& [name, value] : startup->params) {
    if (name == "user") {
      user_ = value;
    } else if (name == "database") {
      database_ = value;
    } else if (wanted_params_.set(name, value, config.track_extra_parameters)) {
      continue;  // tracked: built in, or listed in track_extra_parameters
    } else if (name == "replication") {
      closeWithError(sqlstate::kFeatureNotSupported,
                     "pgpivot: replication connections are not supported",
                     CloseReason::kLoginFailed);
      return false;
    } else {
      bool ignored = false;
      for (const auto& ignore : config.ignore_startup_parameters) {
        ignored = ignored || ignore == name;
      }
      if (!ignored) {
        closeWithError(sqlstate::kProtocolViolation,
                       fmt::format("pgpivot: unsupported startup parameter: {}", name),
                       CloseReason::kLoginFailed);
        return false;
      }
    }
  }
  if (proto::protocolMinor(startup->protocol) > 0) {
    // We speak 3.0 only; say so instead of failing (PostgreSQL does the same).
    std::string out;
    proto::writeNegotiateProtocolVersion(out, 0, {});
    stream_.writeOwned(out);
  }
  if (user_.empty()) {
    closeWithError(sqlstate::kInvalidAuthorization,
                   "pgpivot: no PostgreSQL user name specified in startup packet",
                   CloseReason::kLoginFailed);
    return false;
  }
  if (database_.empty()) {
    database_ = user_;
  }
  if (over_client_limit_) {
    closeWithError(sqlstate::kTooManyConnections,
                   "pgpivot: no more connections allowed (max_client_conn)",
                   CloseReason::kTooManyClients);
    return false;
  }
  // The admin console: the virtual database "pgpivot" (alias "pgbouncer", as PgBouncer
  // users expect), or any database on the admin port.
  if (on_admin_port_ || database_ == "pgpivot" || database_ == "pgbouncer") {
    admin_ = std::make_unique<AdminState>(*this);
    beginAuthentication();
    return false;
  }
  if (net::Stream::readsSuspended() && !on_admin_port_) {
    stream_.setSuspendExempt(false);
    stream_.holdReading();  // SUSPEND: nothing more is read from it until RESUME
  }
  pool_ = worker_.poolFor(database_, user_);
  if (pool_ == nullptr) {
    closeWithError(sqlstate::kInvalidCatalogName,
                   fmt::format("pgpivot: no such database: {}", database_),
                   CloseReason::kLoginFailed);
    return false;
  }
  if (worker_.databaseDisabled(database_)) {
    closeWithError(sqlstate::kCannotConnectNow,
                   fmt::format("pgpivot: database \"{}\" is disabled (DISABLE)", database_),
                   CloseReason::kLoginFailed);
    return false;
  }
  beginAuthentication();
  return false;  // the start-up phase is over either way
}

// --- authentication -----------------------------------------------------------------------

void ClientSession::beginAuthentication() {
  const auto& config = worker_.config();
  setState(ClientState::kAuthenticating);
  if (config.auth_type == AuthType::kTrust || config.auth_type == AuthType::kAny) {
    authenticated();
    return;
  }
  const auth::AuthFileEntry* entry =
      worker_.authFile() != nullptr ? worker_.authFile()->find(user_) : nullptr;
  if (entry != nullptr) {
    challenge(entry->secret);
    return;
  }
  if (worker_.canLookUpUser(database_)) {
    // Not in the auth file: ask PostgreSQL (auth_query). The client waits in this state;
    // client_login_timeout still applies.
    auth_query_pending_ = true;
    auth_ = std::make_unique<AuthState>();
    worker_.lookUpUser(*this);
    return;
  }
  worker_.mutableStats().login_failures++;
  closeWithError(sqlstate::kInvalidPassword,
                 fmt::format("pgpivot: password authentication failed for user \"{}\"", user_),
                 CloseReason::kLoginFailed);
}

void ClientSession::onAuthQueryResult(auth::AuthQueryResult result) {
  if (state_ != ClientState::kAuthenticating || !auth_query_pending_) {
    return;
  }
  auth_query_pending_ = false;
  if (!result) {
    closeWithError(result.error().sqlstate, result.error().message, CloseReason::kLoginFailed);
    return;
  }
  if (!result->has_value()) {
    worker_.mutableStats().login_failures++;
    closeWithError(sqlstate::kInvalidPassword,
                   fmt::format("pgpivot: password authentication failed for user \"{}\"", user_),
                   CloseReason::kLoginFailed);
    return;
  }
  // The server login of this pool can use the same secret (md5 directly, SCRAM through
  // the keys this client's proof reveals).
  if (pool_ != nullptr) {
    pool_->learnServerPassword(**result);
  }
  challenge(**result);
  readAuthentication();
}

void ClientSession::challenge(const std::string& secret) {
  const auto& config = worker_.config();
  if (auth_ == nullptr) {
    auth_ = std::make_unique<AuthState>();
  }
  auth_->secret = secret;
  const auth::SecretKind kind = auth::secretKind(secret);
  std::string out;
  if (config.auth_type == AuthType::kPlain) {
    auth_->exchange = AuthCleartext{};
    proto::writeAuthenticationCleartextPassword(out);
  } else if (config.auth_type == AuthType::kMd5 && kind != auth::SecretKind::kScram) {
    AuthMd5 md5;
    RAND_bytes(reinterpret_cast<unsigned char*>(md5.salt.data()), 4);
    proto::writeAuthenticationMd5Password(out, md5.salt);
    auth_->exchange = md5;
  } else if (config.auth_type == AuthType::kMd5 || config.auth_type == AuthType::kScramSha256) {
    // md5 with a SCRAM secret falls back to SCRAM, as PostgreSQL and PgBouncer do.
    if (kind == auth::SecretKind::kMd5) {
      worker_.mutableStats().login_failures++;
      closeWithError(sqlstate::kInvalidPassword,
                     fmt::format("pgpivot: password authentication failed for user \"{}\": "
                                 "the auth file holds an md5 hash, SCRAM needs a plain "
                                 "password or a SCRAM secret",
                                 user_),
                     CloseReason::kLoginFailed);
      return;
    }
    auth::ScramSecret scram_secret;
    if (kind == auth::SecretKind::kScram) {
      auto parsed = auth::parseScramSecret(secret);
      if (!parsed) {
        closeWithError(sqlstate::kInvalidPassword,
                       fmt::format("pgpivot: invalid SCRAM secret for user \"{}\"", user_),
                       CloseReason::kLoginFailed);
        return;
      }
      scram_secret = *parsed;
    } else {
      scram_secret = auth::makeScramSecret(secret);
    }
    AuthScram scram;
    scram.server = std::make_unique<auth::ScramServer>(std::move(scram_secret));
    auth_->exchange = std::move(scram);
    proto::writeAuthenticationSasl(out, {auth::kScramSha256});
  } else {
    closeWithError(sqlstate::kFeatureNotSupported,
                   fmt::format("pgpivot: auth_type {} is not supported yet",
                               config::toString(config.auth_type)),
                   CloseReason::kLoginFailed);
    return;
  }
  stream_.writeOwned(out);
}

// Takes the next whole message off the buffer. false: none yet (reading resumes) or the
// bytes were invalid (the session is closed); `frame` views the buffer until it is compacted.
bool ClientSession::takeMessage(const proto::Limits& limits, proto::FrameView& frame) {
  auto& buffer = stream_.buffer();
  std::size_t consumed = 0;
  const proto::Decode decoded = proto::nextFrame(buffer.unparsed(), limits, frame, consumed);
  if (decoded == proto::Decode::kInvalid) {
    closeWithError(sqlstate::kProtocolViolation, "pgpivot: invalid message from client",
                   CloseReason::kClientProtocolViolation);
    return false;
  }
  if (decoded == proto::Decode::kNeedMore) {
    buffer.compact();
    stream_.startReading();
    return false;
  }
  buffer.skipParsed(consumed);
  return true;
}

void ClientSession::readAuthentication() {
  proto::Limits limits;
  limits.max_message_length = 10000;  // a password or SASL message is small
  while (state_ == ClientState::kAuthenticating && !auth_query_pending_) {
    proto::FrameView frame;
    if (!takeMessage(limits, frame)) {
      return;
    }
    if (frame.tag != 'p') {
      closeWithError(sqlstate::kProtocolViolation,
                     fmt::format("pgpivot: expected a password message, got '{}'", frame.tag),
                     CloseReason::kClientProtocolViolation);
      return;
    }
    if (!handlePasswordMessage(frame.body)) {
      return;
    }
  }
}

bool ClientSession::handlePasswordMessage(std::string_view body) {
  const auto wrongPassword = [this] {
    worker_.mutableStats().login_failures++;
    closeWithError(sqlstate::kInvalidPassword,
                   fmt::format("pgpivot: password authentication failed for user \"{}\"", user_),
                   CloseReason::kLoginFailed);
    return false;
  };
  if (auth_ == nullptr) {
    return wrongPassword();
  }
  const std::string& secret = auth_->secret;
  if (std::holds_alternative<AuthCleartext>(auth_->exchange)) {
    auto password = proto::parsePasswordMessage(body);
    if (!password) {
      return wrongPassword();
    }
    const auth::SecretKind kind = auth::secretKind(secret);
    bool ok = false;
    if (kind == auth::SecretKind::kPlain) {
      ok = *password == secret;
    } else if (kind == auth::SecretKind::kMd5) {
      ok = auth::md5PasswordHash(*password, user_) == secret;
    } else if (auto parsed = auth::parseScramSecret(secret)) {
      const auth::ScramSecret candidate =
          auth::makeScramSecret(*password, parsed->salt, parsed->iterations);
      ok = candidate.stored_key == parsed->stored_key;
    }
    if (!ok) {
      return wrongPassword();
    }
    authenticated();
    return false;
  }
  if (auto* md5 = std::get_if<AuthMd5>(&auth_->exchange)) {
    auto response = proto::parsePasswordMessage(body);
    auth::Md5Salt salt{};
    std::memcpy(salt.data(), md5->salt.data(), 4);
    if (!response || !auth::md5Verify(secret, user_, salt, *response)) {
      return wrongPassword();
    }
    authenticated();
    return false;
  }
  auto* scram = std::get_if<AuthScram>(&auth_->exchange);
  if (scram == nullptr) {
    return wrongPassword();
  }
  std::string out;
  if (!scram->first_done) {
    auto initial = proto::parseSaslInitialResponse(body);
    if (!initial || initial->mechanism != auth::kScramSha256 || !initial->data) {
      closeWithError(sqlstate::kProtocolViolation,
                     "pgpivot: invalid SASL initial response (only SCRAM-SHA-256 is offered)",
                     CloseReason::kClientProtocolViolation);
      return false;
    }
    auto server_first = scram->server->handleClientFirst(*initial->data);
    if (!server_first) {
      closeWithError(server_first.error().sqlstate,
                     fmt::format("pgpivot: {}", server_first.error().message),
                     CloseReason::kLoginFailed);
      return false;
    }
    scram->first_done = true;
    proto::writeAuthenticationSaslContinue(out, *server_first);
    stream_.writeOwned(out);
    return true;
  }
  auto server_final = scram->server->handleClientFinal(body);
  if (!server_final) {
    if (server_final.error().sqlstate == sqlstate::kInvalidPassword) {
      return wrongPassword();
    }
    closeWithError(server_final.error().sqlstate,
                   fmt::format("pgpivot: {}", server_final.error().message),
                   CloseReason::kLoginFailed);
    return false;
  }
  if (pool_ != nullptr) {
    pool_->rememberScramKeys(scram->server->clientKey(), scram->server->serverKey());
  }
  proto::writeAuthenticationSaslFinal(out, *server_final);
  stream_.writeOwned(out);
  authenticated();
  return false;
}

void ClientSession::authenticated() {
  auth_.reset();
  PGPIVOT_LOG_DEBUG("{} authenticated", logPrefix());
  if (admin_) {
    startAdmin();
    return;
  }
  // In transaction and statement mode a client needs a server only for its transactions;
  // once the pool knows what a server says at login, the client is welcomed at once.
  if (pool_->settings().mode != config::PoolMode::kSession && pool_->hasWelcome()) {
    sendWelcome(pool_->welcomeParams());
    setState(ClientState::kIdle);
    stream_.startReading();
    onStreamData(stream_);
    return;
  }
  requestServer();
}

// --- admin console ------------------------------------------------------------------------

void ClientSession::startAdmin() {
  const auto& config = worker_.config();
  const auto listed = [this](const std::vector<std::string>& users) {
    return std::find(users.begin(), users.end(), user_) != users.end();
  };
  admin_->caller.user = user_;
  admin_->caller.admin = listed(config.admin_users);
  if (!admin_->caller.admin && !listed(config.stats_users)) {
    worker_.mutableStats().login_failures++;
    closeWithError(sqlstate::kInvalidAuthorization,
                   fmt::format("pgpivot: user \"{}\" is not allowed to use the admin console "
                               "(admin_users, stats_users)",
                               user_),
                   CloseReason::kLoginFailed);
    return;
  }
  // What psql needs to know about the "server" it talks to.
  ParamMap params = {{"server_version", "15.0 (pgpivot " PGPIVOT_VERSION ")"},
                     {"server_encoding", "UTF8"},
                     {"client_encoding", "UTF8"},
                     {"DateStyle", "ISO, MDY"},
                     {"TimeZone", "UTC"},
                     {"IntervalStyle", "postgres"},
                     {"integer_datetimes", "on"},
                     {"standard_conforming_strings", "on"},
                     {"application_name", ""},
                     {"is_superuser", admin_->caller.admin ? "on" : "off"},
                     {"session_authorization", user_}};
  wanted_params_.clear();
  sendWelcome(params);
  setState(ClientState::kAdmin);
  readAdmin();
}

void ClientSession::readAdmin() {
  while (state_ == ClientState::kAdmin && !admin_->query_pending) {
    proto::FrameView frame;
    if (!takeMessage(worker_.limits(), frame)) {
      return;
    }
    if (frame.tag == 'X') {
      close(CloseReason::kClientTerminate);
      return;
    }
    if (frame.tag != 'Q') {
      closeWithError(sqlstate::kFeatureNotSupported,
                     "pgpivot: the admin console only takes simple queries",
                     CloseReason::kClientProtocolViolation);
      return;
    }
    auto sql = proto::parseQuery(frame.body);
    if (!sql) {
      closeWithError(sqlstate::kProtocolViolation, "pgpivot: malformed Query message",
                     CloseReason::kClientProtocolViolation);
      return;
    }
    std::optional<std::string> answer = worker_.console().execute(*sql, admin_->caller, *admin_);
    if (!answer) {
      admin_->query_pending = true;  // onAdminReply finishes it
      stream_.stopReading();
      return;
    }
    onAdminReply(std::move(*answer));
  }
}

void ClientSession::onAdminReply(std::string bytes) {
  admin_->query_pending = false;
  if (state_ == ClientState::kClosing) {
    return;
  }
  proto::writeReadyForQuery(bytes, proto::TxStatus::kIdle);
  stream_.writeOwned(bytes);
  readAdmin();
}

// --- waiting and linking ------------------------------------------------------------------

void ClientSession::requestServer() {
  setState(ClientState::kWaitingForServer);
  wait_started_at_ = worker_.now();
  pool_->requestServer(*this);
}

void ClientSession::onServerLinked(ServerConn& server) {
  server_ = &server;
  setState(ClientState::kActive);
  if (!welcomed_) {
    sendWelcome(server.params());
    // The pool had no welcome cached, so the login needed a server. In transaction and
    // statement mode it goes back now unless the client already sent something: holding
    // it until the first transaction ends would starve the pool for an idle client.
    if (pool_->settings().mode != config::PoolMode::kSession &&
        stream_.buffer().unparsed().empty() && cursor_.body_left == 0 &&
        server.outstanding() == 0) {
      server_ = nullptr;
      setState(ClientState::kIdle);
      pool_->releaseServer(server, true);
      stream_.startReading();
      return;
    }
  }
  onStreamData(stream_);  // relay whatever the client sent while it waited
  if (stream_.buffer().freeSpace() > 0) {
    // A full buffer (a message larger than it, being forwarded) resumes reading once the
    // forward is done; reading into no space would end the stream with ENOBUFS.
    stream_.startReading();
  }
}

void ClientSession::sendWelcome(const ParamMap& server_params) {
  // What the client did not ask for it gets at the server's default, and keeps on every
  // later server: a SET another client left behind must not leak into this session. The
  // track_extra_parameters of now are the ones this client follows until it leaves.
  for (const auto& [name, value] : server_params) {
    wanted_params_.setIfAbsent(name, value, worker_.config().track_extra_parameters);
  }
  wanted_params_.shrink();
  std::string out;
  proto::writeAuthenticationOk(out);
  for (const auto& [name, value] : server_params) {
    const auto wanted = wanted_params_.find(name);
    proto::writeParameterStatus(out, name, wanted ? *wanted : std::string_view(value));
  }
  const auto [pid, secret] = worker_.newCancelKey();
  cancel_pid_ = pid;
  cancel_secret_ = secret;
  worker_.registerCancelKey(*this);
  proto::writeBackendKeyData(out, cancel_pid_, cancel_secret_);
  proto::writeReadyForQuery(out, proto::TxStatus::kIdle);
  stream_.writeOwned(out);
  welcomed_ = true;
  if (worker_.config().log_connections) {
    PGPIVOT_LOG_INFO("{} login succeeded", logPrefix());
  }
}

void ClientSession::onServerReleased() {
  server_ = nullptr;
  if (state_ != ClientState::kActive) {
    return;
  }
  setState(ClientState::kIdle);
  onStreamData(stream_);  // a pipelined next transaction may already be here
  if (state_ == ClientState::kIdle) {
    worker_.noteClientBetweenTransactions(id_);  // it may move to another worker now
  }
}

void ClientSession::noteServerParameter(std::string_view name, std::string_view value) {
  wanted_params_.set(name, value);
  if (name == "standard_conforming_strings" && (statements_ != nullptr || value == "off")) {
    statements().setBackslashQuotes(value == "off");  // how the SQL it sends is split
  }
}

void ClientSession::failWaiting(std::string_view state, const std::string& message,
                                CloseReason reason) {
  closeWithError(state, message, reason);
}

void ClientSession::onServerLost(const std::string& why, bool failover) {
  ServerConn* server = server_;
  server_ = nullptr;
  if (state_ == ClientState::kClosing || server == nullptr) {
    return;
  }
  PGPIVOT_LOG_WARN("{} lost its server: {}", logPrefix(), why);
  if (state_ == ClientState::kWaitingForServer) {
    requestServer();  // it was still being prepared for us: ask for another
    return;
  }
  // The session stays; what the client is told depends on what it was doing, and on what
  // broke the connection. On a cluster's pool a broken connection may be the primary dying
  // or this one backend ending (pg_terminate_backend, its own crash): the answer waits for
  // the evidence (cluster/server_loss.hpp), so that "failover" is said only of one.
  const bool cluster = pool_ != nullptr && pool_->settings().cluster_managed;
  LostServer lost{.why = why,
                  .in_flight = server->outstanding() > 0,
                  // Inside a transaction block with nothing in flight that may commit it
                  // (no COMMIT, END or PREPARE TRANSACTION): it provably did not commit.
                  .not_committed = server->txStatus() == proto::TxStatus::kFailed ||
                                   (server->txStatus() == proto::TxStatus::kInTransaction &&
                                    !server->mayCommitInFlight()),
                  .in_transaction = server->txStatus() != proto::TxStatus::kIdle};
  const bool crash_restart = cluster && server->lostToCrashRestart();
  // What an open transaction block made is gone with it unless it may have committed.
  pins_.noteServerLost(server->txStatus(), !lost.in_flight, lost.not_committed);
  copy_in_ = false;
  syncs_since_execute_ = 0;
  if (cursor_.gather_tag != 0) {
    // A message half gathered: its rest is dropped as a half-forwarded one's is.
    cursor_.gather_tag = 0;
    std::string().swap(statements().gatherBuffer());
  }
  // Bytes of a message half-forwarded to the dead server must not reach the next one.
  auto& buffer = stream_.buffer();
  if (!stream_.forwardInFlight()) {
    buffer.markParsedSent();
  }
  setState(ClientState::kIdle);
  if (cluster && !failover && !crash_restart) {
    pending_loss_ = std::make_unique<PendingLoss>(
        PendingLoss{std::move(lost),
                    cluster::ServerLoss(false, false, poolSignals(), worker_.now(), lossTiming())});
    return;  // checkTimeouts asks again every janitor tick
  }
  if (tellServerLoss(lost, failover        ? cluster::LossCause::kFailover
                           : crash_restart ? cluster::LossCause::kCrashRestart
                                           : cluster::LossCause::kServerLost)) {
    stream_.startReading();
  }
}

bool ClientSession::lostTransactionUndecided() const {
  return pending_loss_ != nullptr && !(pins_.any() && tracksPins()) &&
         (pending_loss_->lost.in_flight || pending_loss_->lost.in_transaction);
}

cluster::PoolSignals ClientSession::poolSignals() const {
  return cluster::PoolSignals{
      .primary = pool_->target().host + ":" + std::to_string(pool_->target().port),
      .paused = pool_->paused(),
      .transactions = pool_->stats().transactions};
}

// How long the monitor takes to declare a dead primary (and post the pause) at most, and
// failover_pause_timeout: the bounds of the wait for a verdict.
cluster::LossTiming ClientSession::lossTiming() const {
  cluster::LossTiming timing;
  const auto& config = worker_.config();
  const auto db = config.databases.find(database_);
  if (db == config.databases.end()) {
    return timing;
  }
  const auto entry = config.clusters.find(db->second.cluster);
  if (entry == config.clusters.end()) {
    return timing;
  }
  const config::ClusterEntry& c = entry->second;
  timing.decide_within_ms =
      static_cast<uint64_t>(std::max(c.dead_after, c.unresponsive_after).count() +
                            c.probe_interval.count() + c.probe_timeout.count() + 1000);
  timing.pause_limit_ms = static_cast<uint64_t>(c.failover_pause_timeout.count());
  return timing;
}

void ClientSession::resolveServerLoss(uint64_t now_ms) {
  const cluster::LossCause cause = pending_loss_->loss.decide(poolSignals(), now_ms);
  if (cause == cluster::LossCause::kPending) {
    return;
  }
  const LostServer lost = std::move(pending_loss_->lost);
  pending_loss_.reset();
  PGPIVOT_LOG_INFO("{} lost server: {}", logPrefix(), cluster::toString(cause));
  if (tellServerLoss(lost, cause)) {
    onStreamData(stream_);  // what the client sent meanwhile, or read on
  }
}

bool ClientSession::tellServerLoss(const LostServer& lost, cluster::LossCause cause) {
  const bool failover = cause == cluster::LossCause::kFailover;
  const bool crash_restart = cause == cluster::LossCause::kCrashRestart;
  if (pins_.any() && tracksPins()) {
    // What it holds on the server cannot follow it to another one: moving it silently would
    // run its next statements without them. 08006 (connection_failure): what drivers and
    // pools read as "this connection is gone, reconnect" (session_pins.hpp).
    closeWithError(
        sqlstate::kConnectionFailure,
        crash_restart ? fmt::format("pgpivot: server crash-restart: this session held {} on the "
                                    "primary, which its restart discarded; reconnect",
                                    pins_.describe())
        : failover    ? fmt::format("pgpivot: failover: this session held {} on the old primary, "
                                       "which cannot be moved; reconnect",
                                    pins_.describe())
                      : fmt::format("pgpivot: server connection lost ({}): this session held {} "
                                       "on it, which ended with it; reconnect",
                                    lost.why, pins_.describe()),
        CloseReason::kSessionStateLost);
    return false;
  }
  if (lost.in_flight) {
    if (failover) {
      worker_.mutableStats().failover_errors++;
      worker_.mutableStats().failover_failed_transactions++;
    }
    // Otherwise, a COMMIT or an autocommit statement in flight, the outcome is unknown.
    const bool not_committed = lost.not_committed;
    std::string out;
    if (crash_restart) {
      // Not a failover error: the primary stays, and is not counted as having failed.
      proto::writeErrorResponse(
          out, proto::severity::kError,
          not_committed ? sqlstate::kSerializationFailure : sqlstate::kStatementCompletionUnknown,
          not_committed ? "pgpivot: server crash-restart: PostgreSQL on the primary restarted "
                          "after a backend crashed, during the transaction; it did not commit "
                          "and may be retried"
                        : "pgpivot: server crash-restart: PostgreSQL on the primary restarted "
                          "after a backend crashed while a statement was running; it may or "
                          "may not have committed");
    } else if (!failover) {
      proto::writeErrorResponse(out, proto::severity::kError, sqlstate::kConnectionFailure,
                                lost.why);
    } else if (not_committed) {
      proto::writeErrorResponse(out, proto::severity::kError, sqlstate::kSerializationFailure,
                                "pgpivot: failover: the primary was lost during the "
                                "transaction; it did not commit and may be retried");
    } else {
      proto::writeErrorResponse(out, proto::severity::kError, sqlstate::kStatementCompletionUnknown,
                                "pgpivot: failover: the primary was lost while a statement "
                                "was running; it may or may not have committed");
    }
    proto::writeReadyForQuery(out, proto::TxStatus::kIdle);
    stream_.writeOwned(out);
  } else if (lost.in_transaction) {
    // Idle inside a transaction: it provably did not commit. The client learns it at its
    // next statement, which must not silently run outside the transaction it expects.
    lost_transaction_ = crash_restart ? LostTransaction::kCrashRestart
                        : failover    ? LostTransaction::kFailover
                                      : LostTransaction::kServerLost;
    if (lost_transaction_ == LostTransaction::kFailover) {
      // Failed now (a DRILL's verdict counts it), told later (failover_errors counts it then).
      worker_.mutableStats().failover_failed_transactions++;
    }
  }
  return true;
}

bool ClientSession::dropOrphanedBody() {
  auto& buffer = stream_.buffer();
  const std::size_t drop =
      std::min<std::size_t>(cursor_.body_left, buffer.received() - buffer.parsed());
  if (drop > 0) {
    buffer.skipParsed(drop);
    cursor_.body_left -= static_cast<uint32_t>(drop);
  }
  return cursor_.body_left == 0;
}

bool ClientSession::answerLostTransaction() {
  // Consume the client's next statement (a Query, or extended messages up to Sync) and
  // answer it with the error, as PostgreSQL answers statements in a failed transaction.
  while (lost_transaction_ != LostTransaction::kNone) {
    proto::FrameView frame;
    if (!takeMessage(worker_.limits(), frame)) {
      return false;
    }
    if (frame.tag == 'X') {
      close(CloseReason::kClientTerminate);
      return false;
    }
    if (frame.tag != 'Q' && frame.tag != 'S' && frame.tag != 'F') {
      continue;  // part of an extended-protocol batch: skipped until its Sync
    }
    const LostTransaction lost = lost_transaction_;
    lost_transaction_ = LostTransaction::kNone;
    if (lost == LostTransaction::kFailover) {
      worker_.mutableStats().failover_errors++;
    }
    std::string out;
    switch (lost) {
      case LostTransaction::kFailover:
        proto::writeErrorResponse(out, proto::severity::kError, sqlstate::kSerializationFailure,
                                  "pgpivot: failover: the transaction was aborted because the "
                                  "primary changed; it did not commit and may be retried");
        break;
      case LostTransaction::kCrashRestart:
        proto::writeErrorResponse(out, proto::severity::kError, sqlstate::kSerializationFailure,
                                  "pgpivot: server crash-restart: the transaction was aborted "
                                  "because PostgreSQL on the primary restarted after a backend "
                                  "crashed; it did not commit and may be retried");
        break;
      case LostTransaction::kNone:
      case LostTransaction::kServerLost:
        proto::writeErrorResponse(out, proto::severity::kError, sqlstate::kConnectionFailure,
                                  "pgpivot: server connection lost: the transaction was rolled "
                                  "back");
        break;
    }
    proto::writeReadyForQuery(out, proto::TxStatus::kIdle);
    stream_.writeOwned(out);
  }
  return true;
}

// --- relaying (client -> server) ----------------------------------------------------------

namespace {

// Failover truth (cluster/commit_risk.hpp): tells `server` when a message the client sends
// may commit a transaction block. classify() sees each header while it starts the unparsed
// bytes; a body not all here yet counts as one that may commit.
void noteCommitRisk(char tag, std::string_view unparsed, std::unique_ptr<cluster::CommitRisk>& risk,
                    ServerConn* server) {
  proto::FrameHeader header;
  if (server == nullptr ||
      proto::decodeHeader(unparsed, proto::Limits{}, header) != proto::Decode::kFrame) {
    return;
  }
  const std::size_t total = header.total();
  const bool complete = unparsed.size() >= total;
  const std::size_t end = complete ? total : unparsed.size();
  const std::string_view body = unparsed.substr(proto::kHeaderSize, end - proto::kHeaderSize);
  bool may_commit = false;
  if (tag == 'Q') {
    may_commit = !complete || cluster::sqlMayCommit(body);
  } else {
    if (risk == nullptr) {
      risk = std::make_unique<cluster::CommitRisk>();  // only clients that prepare hold one
    }
    may_commit = risk->noteMessage(tag, body, complete);
  }
  if (may_commit) {
    server->noteMayCommit();
  }
}

}  // namespace

Action ClientSession::classify(char tag) {
  if ((tag == 'Q' || tag == 'P' || (tag == 'B' && pins_.watchesBlind())) && tracksPins() &&
      !notePins(tag)) {
    // Not all here yet: wait for the rest (nothing is counted before; classify sees this
    // header again once the whole message is in the buffer, and forwards it then).
    return Action::kInspect;
  }
  // Count what PostgreSQL answers with ReadyForQuery: Query, FunctionCall and Sync. During
  // COPY FROM STDIN the server ignores Sync and Flush (copyfromparse.c, "for the
  // convenience of client libraries"), so those are not counted; see onCopyInStarted.
  // Only a cluster's pool tells a COMMIT lost in flight from a transaction that provably
  // did not commit (onServerLost); other pools skip the scan.
  if ((tag == 'Q' || tag == 'P' || tag == 'B') && pool_ != nullptr &&
      pool_->settings().cluster_managed) {
    noteCommitRisk(tag, stream_.buffer().unparsed(), commit_risk_, server_);
  }
  switch (tag) {
    case 'X':
      return Action::kConsume;
    case 'Q':
      if (mayDeallocate()) {
        return Action::kConsume;  // counted in onMessage: classify may see it again
      }
      [[fallthrough]];
    case 'F':
      syncs_since_execute_ = 0;
      expectReadyForQuery();  // counted as a query when answered (ServerConn)
      return Action::kForward;
    case 'E':
      syncs_since_execute_ = 0;
      return Action::kForward;
    case 'S':
      if (!copy_in_) {
        ++syncs_since_execute_;
        expectReadyForQuery();
      }
      return Action::kForward;
    case 'c':
    case 'f':
      copy_in_ = false;
      return Action::kForward;
    case 'P':
    case 'B':
    case 'D':
    case 'C':
      // Named statements follow the client from server to server (prepared_statements.hpp)
      // in transaction and statement mode, and in session mode on a cluster's pool, where a
      // failover moves the session to the new primary. Otherwise, and with
      // max_prepared_statements = 0, they pass through.
      if (!rewritesStatements() || forwardsUnchanged(tag)) {
        return Action::kForward;
      }
      // Taken whole to be rewritten; one too large for the receive buffer is forwarded as
      // it is when it can be, otherwise gathered (a named Parse of a long query).
      return relayLargeStatementMessage(tag) ? Action::kForward : Action::kGather;
    default:
      return Action::kForward;
  }
}

std::string* ClientSession::gatherBuffer() {
  return &statements().gatherBuffer();
}

PreparedStatements& ClientSession::statements() {
  if (statements_ == nullptr) {
    statements_ = std::make_unique<PreparedStatements>();
  }
  return *statements_;
}

bool ClientSession::tracksPins() const {
  return pool_ != nullptr && pool_->settings().cluster_managed &&
         pool_->settings().mode == config::PoolMode::kSession;
}

bool ClientSession::notePins(char tag) {
  const auto& buffer = stream_.buffer();
  const std::string_view unparsed = buffer.unparsed();
  if (unparsed.size() < proto::kHeaderSize) {
    return true;
  }
  uint32_t length = 0;
  std::memcpy(&length, unparsed.data() + 1, 4);
  const std::size_t total = 1 + static_cast<std::size_t>(ntohl(length));
  if (unparsed.size() < total && total <= buffer.capacity()) {
    return false;
  }
  // Larger than the buffer: only its first part is looked at (a bulk INSERT, typically).
  std::string_view body =
      unparsed.substr(proto::kHeaderSize, std::min(total, unparsed.size()) - proto::kHeaderSize);
  // Where the server stands: the status of its last ReadyForQuery, final when every
  // request is answered (session_pins.hpp, transaction blocks).
  if (server_ != nullptr) {
    pins_.noteServer(server_->txStatus(), server_->outstanding() == 0);
  }
  const bool whole = unparsed.size() >= total;
  if (tag == 'B') {  // Bind: portal name, then statement name
    const std::size_t portal_end = body.find('\0');
    const std::size_t name_end =
        portal_end == std::string_view::npos ? portal_end : body.find('\0', portal_end + 1);
    if (name_end == std::string_view::npos || name_end > portal_end + 1) {
      pins_.noteBlind();  // a prepared statement runs: it may be a COMMIT, unseen
    }
    return true;
  }
  SessionPins::Source source = SessionPins::Source::kQuery;
  if (tag == 'P') {  // Parse: statement name, then the query
    const std::size_t name_end = body.find('\0');
    if (name_end == std::string_view::npos) {
      return true;
    }
    source = name_end == 0 ? SessionPins::Source::kUnnamedParse : SessionPins::Source::kNamedParse;
    body.remove_prefix(name_end + 1);
  }
  pins_.noteSql(body.substr(0, body.find('\0')), source,
                [this] { return wanted_params_.find("standard_conforming_strings") == "off"; });
  if (!whole) {
    pins_.noteBlind();  // a COMMIT or ROLLBACK in the rest is not seen
  }
  return true;
}

bool ClientSession::rewritesStatements() const {
  if (pool_ == nullptr || max_prepared_statements_ == 0) {
    return false;
  }
  // A session-mode client keeps its server, unless a failover moves it: on a cluster's
  // pool its statements are kept so they can be prepared again on the new primary.
  return pool_->settings().mode != config::PoolMode::kSession || pool_->settings().cluster_managed;
}

bool ClientSession::forwardsUnchanged(char tag) {
  // Most extended-protocol traffic (unnamed statements, portals) needs no rewrite: when
  // the whole message is here and says so, it leaves from the receive buffer, uncopied.
  // classify() sees each header while it starts the unparsed bytes (relay.hpp), which
  // the relay has already judged valid.
  if (server_ == nullptr) {
    return false;
  }
  proto::FrameView frame;
  std::size_t consumed = 0;
  if (proto::nextFrame(stream_.buffer().unparsed(), proto::Limits{}, frame, consumed) !=
      proto::Decode::kFrame) {
    return false;
  }
  return statements().forwardsUnchanged(tag, frame.body, *server_);
}

bool ClientSession::relayLargeStatementMessage(char tag) {
  // A message larger than the receive buffer cannot be taken whole to be rewritten (a Bind
  // with large parameters): what can be forwarded unchanged is (prepared_statements.hpp).
  // classify() sees each header while it starts the unparsed bytes (relay.hpp).
  const auto& buffer = stream_.buffer();
  const std::string_view unparsed = buffer.unparsed();
  if (server_ == nullptr || unparsed.size() < proto::kHeaderSize) {
    return false;
  }
  uint32_t length = 0;
  std::memcpy(&length, unparsed.data() + 1, 4);
  const std::size_t total = 1 + static_cast<std::size_t>(ntohl(length));
  if (total <= buffer.capacity()) {
    return false;
  }
  return statements().relayLarge(tag, unparsed.substr(proto::kHeaderSize), *server_,
                                 buffer.pendingSend().empty());
}

bool ClientSession::mayDeallocate() const {
  if (!hasPreparedStatements() || !rewritesStatements()) {
    return false;
  }
  // classify() sees each header while it starts the unparsed bytes (relay.hpp); the body
  // may not all be here yet. Only a Query that starts like a DEALLOCATE is taken whole.
  const auto& buffer = stream_.buffer();
  const std::string_view unparsed = buffer.unparsed();
  if (unparsed.size() < proto::kHeaderSize) {
    return false;
  }
  uint32_t length = 0;
  std::memcpy(&length, unparsed.data() + 1, 4);
  const std::size_t total = 1 + static_cast<std::size_t>(ntohl(length));
  if (total > buffer.capacity()) {
    return false;
  }
  if (unparsed.size() < total) {
    return true;  // not all here yet: look at the whole message
  }
  // A DEALLOCATE anywhere in it, alone or among other statements ("DEALLOCATE a; SELECT 1").
  const std::string_view sql = unparsed.substr(proto::kHeaderSize, total - proto::kHeaderSize);
  constexpr std::string_view kWord = "deallocate";
  for (std::size_t at = 0; at + kWord.size() <= sql.size(); ++at) {
    std::size_t i = 0;
    while (i < kWord.size()) {
      const char c = sql[at + i];
      if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kWord[i]) {
        break;
      }
      ++i;
    }
    if (i == kWord.size()) {
      return true;
    }
  }
  return false;
}

void ClientSession::expectReadyForQuery() {
  if (server_ != nullptr) {
    pins_.noteRequest(server_->txStatus(), server_->outstanding() == 0);
    server_->expectReadyForQuery();
  }
}

void ClientSession::onCopyInStarted() {
  copy_in_ = true;
  // The Syncs sent after the Execute that started the COPY will be ignored.
  if (server_ != nullptr) {
    server_->forgetExpectedReadyForQuery(syncs_since_execute_);
  }
  syncs_since_execute_ = 0;
}

bool ClientSession::onMessage(char tag, std::string_view body) {
  if (tag == 'X') {
    close(CloseReason::kClientTerminate);
    return false;
  }
  if (tag == 'Q') {
    syncs_since_execute_ = 0;
    expectReadyForQuery();
  }
  if (server_ != nullptr && !statements().relay(tag, body, *server_)) {
    closeWithError(sqlstate::kProtocolViolation,
                   fmt::format("pgpivot: malformed '{}' message from client", tag),
                   CloseReason::kClientProtocolViolation);
    return false;
  }
  return true;
}

void ClientSession::pumpFromServer() {
  if (server_ != nullptr) {
    server_->pumpFromClient();
  }
}

// --- timeouts and closing -----------------------------------------------------------------

void ClientSession::checkTimeouts(uint64_t now_ms) {
  if (pending_loss_ != nullptr && state_ == ClientState::kIdle) {
    resolveServerLoss(now_ms);
    return;
  }
  const auto& config = worker_.config();
  const auto elapsed = [now_ms](uint64_t since) { return now_ms > since ? now_ms - since : 0; };
  switch (state_) {
    case ClientState::kStartup:
    case ClientState::kAuthenticating:
      if (config.client_login_timeout.count() > 0 &&
          elapsed(connected_at_) >= static_cast<uint64_t>(config.client_login_timeout.count())) {
        closeWithError(sqlstate::kProtocolViolation, "pgpivot: client_login_timeout",
                       CloseReason::kLoginTimeout);
      }
      return;
    case ClientState::kWaitingForServer:
      // During a failover the pool's failover_pause_timeout applies instead.
      if (config.query_wait_timeout.count() > 0 && (pool_ == nullptr || !pool_->paused()) &&
          elapsed(wait_started_at_) >= static_cast<uint64_t>(config.query_wait_timeout.count())) {
        failWaiting(sqlstate::kProtocolViolation, "pgpivot: query_wait_timeout",
                    CloseReason::kQueryWaitTimeout);
      }
      return;
    case ClientState::kActive:
    case ClientState::kIdle:
      if (server_ != nullptr && checkServerTimeouts(config, now_ms)) {
        return;
      }
      if (config.client_idle_timeout.count() > 0 &&
          (server_ == nullptr || server_->outstanding() == 0) &&
          elapsed(last_activity_at_) >= static_cast<uint64_t>(config.client_idle_timeout.count())) {
        closeWithError(sqlstate::kProtocolViolation, "pgpivot: client_idle_timeout",
                       CloseReason::kClientIdleTimeout);
      }
      return;
    case ClientState::kAdmin:
    case ClientState::kClosing:
      return;
  }
}

// PgBouncer's query_timeout and idle_transaction_timeout: the client and its server both
// end (the server is mid-query or mid-transaction, so it cannot serve anyone else; closing
// it makes PostgreSQL roll the transaction back and free its locks).
bool ClientSession::checkServerTimeouts(const config::Config& config, uint64_t now_ms) {
  if (config.query_timeout.count() > 0 && server_->outstanding() > 0 &&
      server_->queryStartedNs() != 0) {
    const uint64_t running_ms = (uv_hrtime() - server_->queryStartedNs()) / 1'000'000;
    if (running_ms >= static_cast<uint64_t>(config.query_timeout.count())) {
      // PostgreSQL would notice the closed socket only when it next writes: cancel the
      // query too, so it does not run on for nobody.
      if (server_->backendPid() != 0) {
        worker_.cancelOnServer(*server_);
      }
      closeWithError(sqlstate::kProtocolViolation,
                     fmt::format("pgpivot: query_timeout: the query ran {} ms", running_ms),
                     CloseReason::kQueryTimeout);
      return true;
    }
  }
  if (config.idle_transaction_timeout.count() > 0 && server_->outstanding() == 0 &&
      server_->txStatus() != proto::TxStatus::kIdle && now_ms > server_->lastUsedAt() &&
      now_ms - server_->lastUsedAt() >=
          static_cast<uint64_t>(config.idle_transaction_timeout.count())) {
    closeWithError(sqlstate::kProtocolViolation,
                   fmt::format("pgpivot: idle_transaction_timeout: idle in transaction for {} ms",
                               now_ms - server_->lastUsedAt()),
                   CloseReason::kIdleTransactionTimeout);
    return true;
  }
  return false;
}

void ClientSession::closeWithError(std::string_view state, const std::string& message,
                                   CloseReason reason) {
  if (state_ == ClientState::kClosing) {
    return;
  }
  if (worker_.config().log_pooler_errors) {
    PGPIVOT_LOG_WARN("{} {}", logPrefix(), message);
  }
  std::string out;
  proto::writeErrorResponse(out, proto::severity::kFatal, state, message);
  stream_.writeOwned(out);
  close(reason);
}

void ClientSession::close(CloseReason reason) {
  if (state_ == ClientState::kClosing) {
    return;
  }
  const ClientState was = state_;
  setState(ClientState::kClosing);
  if (pool_ != nullptr) {
    pool_->mutableStats().bytes_in += stream_.bytesIn();
    pool_->mutableStats().bytes_out += stream_.bytesOut();
  }
  if (holds_client_slot_) {
    pool::SharedLimits::release(worker_.sharedLimits().clients());  // our max_client_conn slot
  }
  if (worker_.config().log_disconnections && welcomed_) {
    PGPIVOT_LOG_INFO("{} closing: {}", logPrefix(), toString(reason));
  } else {
    PGPIVOT_LOG_DEBUG("{} closing: {}", logPrefix(), toString(reason));
  }
  if (was == ClientState::kWaitingForServer && pool_ != nullptr && server_ == nullptr) {
    pool_->forgetWaiter(*this);
  }
  if (server_ != nullptr) {
    ServerConn* server = server_;
    server_ = nullptr;
    // Reusable only at a message boundary in both directions and outside a transaction.
    const bool reusable = server->atCleanBoundary() && cursor_.body_left == 0 &&
                          server->state() == ServerState::kActive;
    pool_->releaseServer(*server, reusable);
  }
  if (welcomed_) {
    worker_.unregisterCancelKey(*this);
  }
  if (admin_ != nullptr && admin_->query_pending) {
    worker_.console().cancel(*admin_);
    admin_->query_pending = false;
  }
  // Flush our last words (an ErrorResponse) before the handle closes.
  stream_.close();
}

void ClientSession::onStreamEnd(net::Stream&, int status) {
  if (status != UV_EOF) {
    PGPIVOT_LOG_DEBUG("{} read error: {}", logPrefix(), uv_strerror(status));
  }
  close(CloseReason::kClientEof);
}

void ClientSession::onStreamConnected(net::Stream&, int) {}

void ClientSession::onStreamClosed(net::Stream&) {
  worker_.retireClient(*this);
}

}  // namespace pgpivot::session
