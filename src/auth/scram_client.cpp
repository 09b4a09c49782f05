// SCRAM-SHA-256 client: pgpivot logging in to PostgreSQL. Mirrors libpq's
// fe-auth-scram.c, except that it can also start from (ClientKey, ServerKey) instead of a
// password, which is how a pooler that only knows the stored secret logs in on behalf
// of a client whose proof it has verified.
#include <optional>

#include "auth/crypto.hpp"
#include "auth/scram_message.hpp"
#include "pgpivot/auth/scram.hpp"
#include "pgpivot/core/assert.hpp"

namespace pgpivot::auth {

namespace {

// We never offer channel binding, so the gs2 header is always "n,," and its base64 form
// in client-final-message is "biws".
constexpr std::string_view kGs2Header = "n,,";
constexpr std::string_view kChannelBindingB64 = "biws";
// The server-error value ends up in our logs and error messages; keep it bounded.
constexpr std::size_t kMaxServerErrorLen = 64;

}  // namespace

ScramClient::ScramClient(std::string_view password) : password_(password) {}

ScramClient::ScramClient(const ScramKey& client_key, const ScramKey& server_key)
    : have_keys_(true), client_key_(client_key), server_key_(server_key) {}

ScramClient::~ScramClient() {
  internal::cleanse(password_.data(), password_.size());
  internal::cleanse(client_key_.data(), client_key_.size());
  internal::cleanse(server_key_.data(), server_key_.size());
}

tl::unexpected<Error> ScramClient::fail(std::string_view state, std::string message) {
  state_ = State::kFailed;
  return pgpivot::fail(state, std::move(message));
}

std::string ScramClient::clientFirstMessage() {
  PGPIVOT_CHECK(state_ == State::kInitial);
  if (nonce_.empty()) {
    nonce_ = internal::makeNonce();
  }
  client_first_bare_ = "n=" + internal::escapeSaslName(user_) + ",r=" + nonce_;
  state_ = State::kFirstSent;
  return std::string(kGs2Header) + client_first_bare_;
}

Result<std::string> ScramClient::handleServerFirst(std::string_view server_first) {
  if (state_ != State::kFirstSent) {
    return fail(sqlstate::kProtocolViolation, "unexpected SCRAM server-first-message");
  }
  std::string_view cursor = server_first;
  if (cursor.starts_with("m=")) {
    return fail(sqlstate::kProtocolViolation,
                "SCRAM server-first-message has an unsupported mandatory extension");
  }
  const auto nonce = internal::readAttr(cursor, 'r');
  if (!nonce) {
    return fail(sqlstate::kProtocolViolation, "SCRAM server-first-message lacks the nonce");
  }
  // The server must extend our nonce (RFC 5802 section 5.1); an echo of ours alone would
  // mean the server contributed no freshness.
  if (!nonce->starts_with(nonce_) || nonce->size() <= nonce_.size() ||
      !internal::isScramPrintable(*nonce)) {
    return fail(sqlstate::kProtocolViolation, "SCRAM server nonce does not extend ours");
  }
  std::optional<std::string_view> salt_b64;
  if (internal::skipComma(cursor)) {
    salt_b64 = internal::readAttr(cursor, 's');
  }
  if (!salt_b64) {
    return fail(sqlstate::kProtocolViolation, "SCRAM server-first-message lacks the salt");
  }
  auto salt = internal::base64Decode(*salt_b64);
  if (!salt || salt->empty()) {
    return fail(sqlstate::kProtocolViolation, "SCRAM salt is not valid base64");
  }
  std::optional<std::string_view> iter_text;
  if (internal::skipComma(cursor)) {
    iter_text = internal::readAttr(cursor, 'i');
  }
  if (!iter_text) {
    return fail(sqlstate::kProtocolViolation,
                "SCRAM server-first-message lacks the iteration count");
  }
  const auto iterations = internal::parsePositiveInt(*iter_text);
  if (!iterations || *iterations > kScramMaxIterations) {
    return fail(sqlstate::kProtocolViolation, "SCRAM iteration count is invalid or too large");
  }
  // RFC 5802 allows extensions after the iteration count; none are defined, skip them.
  while (!cursor.empty()) {
    if (!internal::skipComma(cursor) || !internal::readAnyAttr(cursor)) {
      return fail(sqlstate::kProtocolViolation, "garbage at the end of SCRAM server-first-message");
    }
  }

  if (!have_keys_) {
    ScramKey salted = internal::pbkdf2Sha256(password_, *salt, *iterations);
    client_key_ = internal::hmacSha256(salted, "Client Key");
    server_key_ = internal::hmacSha256(salted, "Server Key");
    internal::cleanse(salted.data(), salted.size());
  }

  std::string final_message = "c=" + std::string(kChannelBindingB64) + ",r=" + std::string(*nonce);
  std::string auth_message = client_first_bare_;
  auth_message.append(",").append(server_first).append(",").append(final_message);

  const ScramKey stored_key = internal::scramStoredKey(client_key_);
  const ScramKey client_signature = internal::scramSignature(stored_key, auth_message);
  const ScramKey proof = internal::scramXor(client_key_, client_signature);
  expected_server_signature_ = internal::scramSignature(server_key_, auth_message);

  final_message += ",p=";
  final_message += internal::base64Encode(proof);
  state_ = State::kFinalSent;
  return final_message;
}

Result<void> ScramClient::verifyServerFinal(std::string_view server_final) {
  if (state_ != State::kFinalSent) {
    return fail(sqlstate::kProtocolViolation, "unexpected SCRAM server-final-message");
  }
  std::string_view cursor = server_final;
  auto attr = internal::readAnyAttr(cursor);
  if (attr && attr->name == 'e') {
    return fail(sqlstate::kInvalidPassword,
                "server rejected SCRAM authentication: " +
                    std::string(attr->value.substr(0, kMaxServerErrorLen)));
  }
  if (!attr || attr->name != 'v') {
    return fail(sqlstate::kProtocolViolation,
                "SCRAM server-final-message lacks the server signature");
  }
  const auto signature = internal::base64Decode(attr->value);
  while (!cursor.empty()) {
    if (!internal::skipComma(cursor) || !internal::readAnyAttr(cursor)) {
      return fail(sqlstate::kProtocolViolation, "garbage at the end of SCRAM server-final-message");
    }
  }
  if (!signature || signature->size() != expected_server_signature_.size()) {
    return fail(sqlstate::kProtocolViolation, "SCRAM server signature is malformed");
  }
  // A wrong signature means the server does not know our secret: it is not the server we
  // meant to log in to, so the login must not proceed.
  if (!internal::constantTimeEqual(internal::asBytes(*signature), expected_server_signature_)) {
    return fail(sqlstate::kInvalidAuthorization, "SCRAM server signature does not match");
  }
  state_ = State::kDone;
  return {};
}

}  // namespace pgpivot::auth
