// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: stored secrets, the client
// side (pgpivot logging in to PostgreSQL) and the server side (pgpivot authenticating a
// client). Pure message-in/message-out state machines: framing the SASL bodies into
// AuthenticationSASL* / SASLInitialResponse / SASLResponse messages is the session's job.
// Not supported: channel binding (SCRAM-SHA-256-PLUS) and authorization identities.
//
// SASLprep: PostgreSQL normalises passwords with SASLprep (RFC 4013) and, when that fails,
// uses the raw bytes. pgpivot applies no normalisation: ASCII passwords are used as they
// are (SASLprep leaves printable ASCII unchanged), and non-ASCII passwords are used as raw
// UTF-8. That matches PostgreSQL for every password already in NFKC form without
// prohibited characters; other non-ASCII passwords must be stored in normalised form.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "pgpivot/core/result.hpp"

namespace pgpivot::auth {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
// PostgreSQL's defaults (scram_iterations, SCRAM_DEFAULT_SALT_LEN).
inline constexpr int kScramDefaultIterations = 4096;
inline constexpr std::size_t kScramDefaultSaltLen = 16;
// Upper bound on the iteration count a server may ask of us. PBKDF2 runs on the caller's
// thread, so an unbounded count would let a misconfigured server stall a worker.
inline constexpr int kScramMaxIterations = 10'000'000;

using ScramKey = std::array<uint8_t, 32>;

// PostgreSQL's stored form: "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>".
struct ScramSecret {
  int iterations{0};
  std::string salt;  // raw bytes
  ScramKey stored_key{};
  ScramKey server_key{};
};

// Errors carry 28000 and name what is wrong; the secret itself is never echoed.
[[nodiscard]] Result<ScramSecret> parseScramSecret(std::string_view text);
[[nodiscard]] std::string formatScramSecret(const ScramSecret& secret);
[[nodiscard]] bool isScramSecret(std::string_view text);
// Derives the secret PostgreSQL would store for `password` with this salt and count.
[[nodiscard]] ScramSecret makeScramSecret(std::string_view password, std::string_view salt,
                                          int iterations);
// Same with a fresh random 16-byte salt and 4096 iterations: what the server side uses
// when the auth file holds a plain password.
[[nodiscard]] ScramSecret makeScramSecret(std::string_view password);

// Client side. Usage: clientFirstMessage() → SASLInitialResponse; handleServerFirst(body
// of AuthenticationSASLContinue) → SASLResponse; verifyServerFinal(body of
// AuthenticationSASLFinal). Any error leaves the object failed; it is single-use.
class ScramClient final {
 public:
  // Logs in with a plain password (PBKDF2 runs in handleServerFirst).
  explicit ScramClient(std::string_view password);
  // Logs in with keys instead of a password, as PgBouncer does when it only knows the
  // secret: ClientKey is recovered from the client's proof (ScramServer::clientKey()),
  // ServerKey comes from the secret. The server's salt and iteration count are then
  // checked for syntax only, since no PBKDF2 is needed.
  ScramClient(const ScramKey& client_key, const ScramKey& server_key);
  ~ScramClient();
  ScramClient(const ScramClient&) = delete;
  ScramClient& operator=(const ScramClient&) = delete;
  ScramClient(ScramClient&&) = default;
  ScramClient& operator=(ScramClient&&) = default;

  // "n,,n=,r=<nonce>": no channel binding, empty user name like libpq (PostgreSQL takes
  // the user from the startup packet). Generates an 18-byte random nonce unless one was
  // injected. Must be called exactly once, first.
  [[nodiscard]] std::string clientFirstMessage();
  // Validates server-first-message and returns client-final-message.
  [[nodiscard]] Result<std::string> handleServerFirst(std::string_view server_first);
  // Checks the server's signature ("v=") or reports its error ("e=").
  [[nodiscard]] Result<void> verifyServerFinal(std::string_view server_final);

  // RFC 7677's test vector fixes the nonce and uses user name "user".
  void setNonceForTest(std::string nonce) { nonce_ = std::move(nonce); }
  void setUserForTest(std::string user) { user_ = std::move(user); }

 private:
  enum class State { kInitial, kFirstSent, kFinalSent, kDone, kFailed };

  // Marks the exchange failed (it cannot be resumed) and returns the error.
  tl::unexpected<Error> fail(std::string_view state, std::string message);

  State state_{State::kInitial};
  bool have_keys_{false};
  std::string password_;
  ScramKey client_key_{};
  ScramKey server_key_{};
  std::string user_;
  std::string nonce_;
  std::string client_first_bare_;
  ScramKey expected_server_signature_{};
};

// Server side. Usage: handleClientFirst(SASLInitialResponse data) → server-first for
// AuthenticationSASLContinue; handleClientFinal(SASLResponse) → server-final for
// AuthenticationSASLFinal, after which clientKey()/serverKey() are available.
// Errors: 08P01 for malformed messages, 0A000 for unsupported features (channel binding,
// authzid, mandatory extensions), 28P01 for a wrong proof.
class ScramServer final {
 public:
  explicit ScramServer(ScramSecret secret);
  ~ScramServer();
  ScramServer(const ScramServer&) = delete;
  ScramServer& operator=(const ScramServer&) = delete;
  ScramServer(ScramServer&&) = default;
  ScramServer& operator=(ScramServer&&) = default;

  [[nodiscard]] Result<std::string> handleClientFirst(std::string_view client_first);
  [[nodiscard]] Result<std::string> handleClientFinal(std::string_view client_final);

  [[nodiscard]] bool authenticated() const { return state_ == State::kDone; }
  // The client's ClientKey (ClientProof XOR ClientSignature); only after authentication.
  [[nodiscard]] const ScramKey& clientKey() const;
  [[nodiscard]] const ScramKey& serverKey() const;

  // Injects the server's part of the nonce (RFC 7677 test vector).
  void setNonceForTest(std::string nonce) { server_nonce_ = std::move(nonce); }

 private:
  enum class State { kWaitingClientFirst, kWaitingClientFinal, kDone, kFailed };

  // Marks the exchange failed (it cannot be resumed) and returns the error.
  tl::unexpected<Error> fail(std::string_view state, std::string message);

  State state_{State::kWaitingClientFirst};
  ScramSecret secret_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  std::string server_nonce_;
  ScramKey client_key_{};
};

}  // namespace pgpivot::auth
