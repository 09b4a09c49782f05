// A transaction-mode client moving from one worker to another between two transactions.
//
// Between transactions such a client holds no server, no half-read message and no pending
// answer: what it is to pgpivot is its socket, its login (user, database, parameters,
// cancel key) and its named prepared statements, all plain data. The socket leaves
// through a second descriptor as a server connection's does (server_handoff.cpp); bytes
// the client sends meanwhile wait in the kernel and are read by the new worker.
#include "pgpivot/session/client_handoff.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <utility>

#include "pgpivot/app/worker.hpp"
#include "pgpivot/log/log.hpp"
#include "pgpivot/pool/pool.hpp"
#include "pgpivot/session/client_session.hpp"

namespace pgpivot::session {

ClientHandoff::~ClientHandoff() {
  if (fd >= 0) {
    ::close(fd);  // the client sees its connection end, as at a shutdown
  }
  if (client_slot != nullptr) {
    pool::SharedLimits::release(*client_slot);
  }
}

bool ClientSession::movable() const {
  return state_ == ClientState::kIdle && welcomed_ && pool_ != nullptr && server_ == nullptr &&
         pool_->settings().mode != config::PoolMode::kSession && admin_ == nullptr &&
         auth_ == nullptr && pending_loss_ == nullptr &&
         lost_transaction_ == LostTransaction::kNone && cursor_.body_left == 0 &&
         cursor_.gather_tag == 0 && !copy_in_ && stream_.reading();
}

std::shared_ptr<ClientHandoff> ClientSession::handOff() {
  if (!movable()) {
    return nullptr;
  }
  const int fd = stream_.releaseSocket();  // the stream is closing from here on
  if (fd < 0) {
    return nullptr;
  }
  auto moving = std::make_shared<ClientHandoff>();
  ClientHandoff& handoff = *moving;
  handoff.fd = fd;
  handoff.kind = stream_.kind();
  handoff.id = id_;
  handoff.user = std::move(user_);
  handoff.database = std::move(database_);
  handoff.wanted_params = std::move(wanted_params_);
  handoff.statements = std::move(statements_);
  handoff.commit_risk = std::move(commit_risk_);
  handoff.pins = pins_;
  handoff.cancel_pid = cancel_pid_;
  handoff.cancel_secret = cancel_secret_;
  handoff.max_prepared_statements = max_prepared_statements_;
  handoff.syncs_since_execute = syncs_since_execute_;
  handoff.connected_at = connected_at_;
  handoff.last_activity_at = last_activity_at_;
  handoff.peer = peer_;
  if (holds_client_slot_) {
    handoff.client_slot = &worker_.sharedLimits().clients();
    holds_client_slot_ = false;
  }
  if (pool_->hasScramKeys()) {
    handoff.scram_keys = {pool_->scramClientKey(), pool_->scramServerKey()};
  }
  pool_->mutableStats().bytes_in += stream_.bytesIn();
  pool_->mutableStats().bytes_out += stream_.bytesOut();
  worker_.unregisterCancelKey(*this);
  PGPIVOT_LOG_DEBUG("C-{:08x} {}/{}@{} moving to another worker", id_, handoff.database,
                    handoff.user, peer_.toString());
  setState(ClientState::kClosing);
  return moving;
}

bool ClientSession::takeOver(ClientHandoff& handoff) {
  if (stream_.adopt(handoff.fd) != 0) {
    return false;
  }
  handoff.fd = -1;
  user_ = std::move(handoff.user);
  database_ = std::move(handoff.database);
  wanted_params_ = std::move(handoff.wanted_params);
  statements_ = std::move(handoff.statements);
  commit_risk_ = std::move(handoff.commit_risk);
  pins_ = handoff.pins;
  cancel_pid_ = handoff.cancel_pid;
  cancel_secret_ = handoff.cancel_secret;
  max_prepared_statements_ = handoff.max_prepared_statements;
  syncs_since_execute_ = handoff.syncs_since_execute;
  connected_at_ = handoff.connected_at;
  last_activity_at_ = handoff.last_activity_at;
  peer_ = handoff.peer;
  holds_client_slot_ = std::exchange(handoff.client_slot, nullptr) != nullptr;
  welcomed_ = true;
  worker_.registerCancelKey(*this);
  PGPIVOT_LOG_DEBUG("{} taken over from another worker", logPrefix());
  setState(ClientState::kIdle);
  pool_ = worker_.poolFor(database_, user_);
  if (pool_ == nullptr) {  // a reload removed its database while it moved
    closeWithError(sqlstate::kInvalidCatalogName,
                   fmt::format("pgpivot: no such database: {}", database_),
                   CloseReason::kLoginFailed);
    return true;
  }
  if (handoff.scram_keys && !pool_->hasScramKeys()) {
    pool_->rememberScramKeys((*handoff.scram_keys)[0], (*handoff.scram_keys)[1]);
  }
  stream_.startReading();  // under SUSPEND only noted, as for every other client
  return true;
}

}  // namespace pgpivot::session
