// A logged-in transaction-mode client moving to another worker between two transactions
// (app/client_moves.hpp says when): its socket and everything pgpivot knows about it, so
// the receiving worker carries on where the other left off. The client sees nothing.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "pgpivot/cluster/commit_risk.hpp"
#include "pgpivot/net/stream.hpp"
#include "pgpivot/pool/shared_limits.hpp"
#include "pgpivot/session/params.hpp"
#include "pgpivot/session/prepared_statements.hpp"
#include "pgpivot/session/session_pins.hpp"

namespace pgpivot::session {

// Made once and handed over by pointer (the mailbox's task holds it), never copied.
struct ClientHandoff {
  ClientHandoff() = default;
  ClientHandoff(const ClientHandoff&) = delete;
  ClientHandoff& operator=(const ClientHandoff&) = delete;
  // Not adopted (the receiver is stopping): the connection ends and its max_client_conn
  // slot is given back.
  ~ClientHandoff();

  int fd = -1;  // owned until adopted
  net::Stream::Kind kind = net::Stream::Kind::kTcp;
  uint64_t id = 0;  // kept: KILL_CLIENT and cancel requests name it
  std::string user;
  std::string database;
  TrackedParams wanted_params;
  std::unique_ptr<PreparedStatements> statements;
  std::unique_ptr<cluster::CommitRisk> commit_risk;
  SessionPins pins;
  int32_t cancel_pid = 0;
  int32_t cancel_secret = 0;
  int32_t max_prepared_statements = 0;
  int syncs_since_execute = 0;
  uint64_t connected_at = 0;  // every loop's clock is the same monotonic one
  uint64_t last_activity_at = 0;
  net::PeerAddress peer;
  // The process-wide max_client_conn count it holds a slot in, or null.
  pool::SharedLimits::Counter* client_slot = nullptr;
  // SCRAM keys from its login, which its pool logs in to PostgreSQL with when no password
  // is configured (a pool on the receiving worker may not have met this user yet).
  std::optional<std::array<std::array<uint8_t, 32>, 2>> scram_keys;
};

}  // namespace pgpivot::session
