// SCRAM-SHA-256 server: pgpivot authenticating a client against a stored secret.
// Parsing follows PostgreSQL's auth-scram.c (read_client_first_message /
// read_client_final_message) so that clients see the same accept/reject behaviour as
// with a direct connection, minus channel binding, which pgpivot does not offer yet.
#include <cstring>
#include <optional>

#include "auth/crypto.hpp"
#include "auth/scram_message.hpp"
#include "pgpivot/auth/scram.hpp"
#include "pgpivot/core/assert.hpp"

namespace pgpivot::auth {

namespace {

constexpr std::size_t kProofLen = 32;

}  // namespace

ScramServer::ScramServer(ScramSecret secret) : secret_(std::move(secret)) {}

ScramServer::~ScramServer() {
  internal::cleanse(secret_.stored_key.data(), secret_.stored_key.size());
  internal::cleanse(secret_.server_key.data(), secret_.server_key.size());
  internal::cleanse(client_key_.data(), client_key_.size());
}

tl::unexpected<Error> ScramServer::fail(std::string_view state, std::string message) {
  state_ = State::kFailed;
  return pgpivot::fail(state, std::move(message));
}

const ScramKey& ScramServer::clientKey() const {
  PGPIVOT_CHECK(state_ == State::kDone);
  return client_key_;
}

const ScramKey& ScramServer::serverKey() const {
  PGPIVOT_CHECK(state_ == State::kDone);
  return secret_.server_key;
}

Result<std::string> ScramServer::handleClientFirst(std::string_view client_first) {
  if (state_ != State::kWaitingClientFirst) {
    return fail(sqlstate::kProtocolViolation, "unexpected SCRAM client-first-message");
  }
  std::string_view cursor = client_first;
  // gs2-cbind-flag. 'y' means "I support channel binding but think you do not": correct,
  // since we only advertise SCRAM-SHA-256, so it is accepted like 'n' (RFC 5802 6).
  if (cursor.starts_with("p=")) {
    return fail(sqlstate::kProtocolViolation,
                "client requested SCRAM channel binding, but SCRAM-SHA-256-PLUS was not "
                "offered");
  }
  if (!(cursor.starts_with("n,") || cursor.starts_with("y,"))) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-first-message: bad channel-binding flag");
  }
  cursor.remove_prefix(2);
  // authzid: PostgreSQL rejects it, and so do we; the user comes from the startup packet.
  if (cursor.starts_with("a=")) {
    return fail(sqlstate::kFeatureNotSupported, "SCRAM authorization identity is not supported");
  }
  if (!cursor.starts_with(",")) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-first-message: bad gs2 header");
  }
  cursor.remove_prefix(1);
  gs2_header_ = std::string(client_first.substr(0, client_first.size() - cursor.size()));
  client_first_bare_ = std::string(cursor);

  if (cursor.starts_with("m=")) {
    return fail(sqlstate::kFeatureNotSupported,
                "SCRAM client-first-message has an unsupported mandatory extension");
  }
  // The user name is ignored, as PostgreSQL does; only its presence is required.
  if (!internal::readAttr(cursor, 'n')) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-first-message: missing user name");
  }
  std::optional<std::string_view> client_nonce;
  if (internal::skipComma(cursor)) {
    client_nonce = internal::readAttr(cursor, 'r');
  }
  if (!client_nonce || client_nonce->empty() || !internal::isScramPrintable(*client_nonce)) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-first-message: missing or invalid nonce");
  }
  while (!cursor.empty()) {
    if (!internal::skipComma(cursor) || !internal::readAnyAttr(cursor)) {
      return fail(sqlstate::kProtocolViolation,
                  "malformed SCRAM client-first-message: garbage after the nonce");
    }
  }

  if (server_nonce_.empty()) {
    server_nonce_ = internal::makeNonce();
  }
  nonce_ = std::string(*client_nonce) + server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + internal::base64Encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  state_ = State::kWaitingClientFinal;
  return server_first_;
}

Result<std::string> ScramServer::handleClientFinal(std::string_view client_final) {
  if (state_ != State::kWaitingClientFinal) {
    return fail(sqlstate::kProtocolViolation, "unexpected SCRAM client-final-message");
  }
  std::string_view cursor = client_final;
  const auto cbind = internal::readAttr(cursor, 'c');
  if (!cbind) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-final-message: missing channel binding");
  }
  // Without channel binding the c= value must be exactly the gs2 header the client sent
  // first ("biws" for "n,,", "eSws" for "y,,"), so a downgrade is detected.
  const auto cbind_raw = internal::base64Decode(*cbind);
  if (!cbind_raw || *cbind_raw != gs2_header_) {
    return fail(sqlstate::kProtocolViolation,
                "SCRAM channel-binding data does not match client-first-message");
  }
  std::optional<std::string_view> nonce;
  if (internal::skipComma(cursor)) {
    nonce = internal::readAttr(cursor, 'r');
  }
  if (!nonce || *nonce != nonce_) {
    return fail(sqlstate::kProtocolViolation, "SCRAM nonce does not match");
  }
  // Skip extensions up to the proof, which must come last.
  std::optional<internal::ScramAttr> attr;
  std::size_t proof_pos = 0;
  do {
    proof_pos = client_final.size() - cursor.size();
    attr.reset();
    if (internal::skipComma(cursor)) {
      attr = internal::readAnyAttr(cursor);
    }
    if (!attr) {
      return fail(sqlstate::kProtocolViolation,
                  "malformed SCRAM client-final-message: missing proof");
    }
  } while (attr->name != 'p');
  const auto proof = internal::base64Decode(attr->value);
  if (!proof || proof->size() != kProofLen) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-final-message: invalid proof");
  }
  if (!cursor.empty()) {
    return fail(sqlstate::kProtocolViolation,
                "malformed SCRAM client-final-message: garbage after the proof");
  }

  // proof_pos points at the ',' before "p=": client-final-message-without-proof ends there.
  std::string auth_message = client_first_bare_;
  auth_message.append(",")
      .append(server_first_)
      .append(",")
      .append(client_final.substr(0, proof_pos));

  // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof is right iff
  // H(ClientKey) == StoredKey (RFC 5802 section 3).
  const ScramKey client_signature = internal::scramSignature(secret_.stored_key, auth_message);
  ScramKey proof_key{};
  std::memcpy(proof_key.data(), proof->data(), proof_key.size());
  const ScramKey client_key = internal::scramXor(proof_key, client_signature);
  if (!internal::constantTimeEqual(internal::scramStoredKey(client_key), secret_.stored_key)) {
    return fail(sqlstate::kInvalidPassword, "SCRAM authentication failed: wrong password");
  }
  client_key_ = client_key;
  state_ = State::kDone;
  return "v=" + internal::base64Encode(internal::scramSignature(secret_.server_key, auth_message));
}

}  // namespace pgpivot::auth
