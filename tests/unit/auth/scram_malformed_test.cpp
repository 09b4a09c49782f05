// SCRAM robustness: every truncation point and the classic malformations of each of the
// four messages must end in a clean error with the right SQLSTATE, never a crash or a
// wrong accept. Run under ASan/UBSan to make "never a crash" meaningful.
#include <catch2/catch.hpp>

#include "auth/crypto.hpp"
#include "pgpivot/auth/scram.hpp"

using namespace pgpivot;
using namespace pgpivot::auth;

namespace {

constexpr std::string_view kClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kNonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
constexpr std::string_view kProof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

const ScramSecret& rfcSecret() {
  static const ScramSecret secret =
      makeScramSecret("pencil", internal::base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==").value(), 4096);
  return secret;
}

ScramServer rfcServer() {
  ScramServer server(rfcSecret());
  server.setNonceForTest(std::string(kServerNonce));
  return server;
}

// A server that has accepted the RFC client-first and waits for client-final.
void primeServer(ScramServer& server) {
  server.setNonceForTest(std::string(kServerNonce));
  REQUIRE(server.handleClientFirst(kClientFirst).has_value());
}

// A client that has sent the RFC client-first (keys mode: no PBKDF2 per attempt).
void primeClient(ScramClient& client) {
  client.setUserForTest("user");
  client.setNonceForTest(std::string(kClientNonce));
  REQUIRE(client.clientFirstMessage() == kClientFirst);
}

ScramClient keyClient() {
  const ScramKey salted = internal::pbkdf2Sha256(
      "pencil", internal::base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==").value(), 4096);
  return ScramClient(internal::hmacSha256(salted, "Client Key"),
                     internal::hmacSha256(salted, "Server Key"));
}

void expectError(const Result<std::string>& r, std::string_view state) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().sqlstate == state);
  CHECK_FALSE(r.error().message.empty());
}

}  // namespace

TEST_CASE("server rejects every truncation of client-first that lacks a nonce", "[unit][auth]") {
  // Prefixes ending inside the nonce are themselves well-formed (a shorter nonce).
  const std::size_t shortest_valid = kClientFirst.find("r=") + 3;
  for (std::size_t cut = 0; cut < kClientFirst.size(); ++cut) {
    CAPTURE(cut);
    ScramServer server(rfcSecret());
    auto r = server.handleClientFirst(kClientFirst.substr(0, cut));
    if (cut < shortest_valid) {
      expectError(r, sqlstate::kProtocolViolation);
    } else {
      CHECK(r.has_value());
    }
  }
}

TEST_CASE("server rejects every truncation of client-final with 08P01", "[unit][auth]") {
  for (std::size_t cut = 0; cut < kClientFinal.size(); ++cut) {
    CAPTURE(cut);
    ScramServer server(rfcSecret());
    primeServer(server);
    expectError(server.handleClientFinal(kClientFinal.substr(0, cut)),
                sqlstate::kProtocolViolation);
    CHECK_FALSE(server.authenticated());
  }
}

TEST_CASE("client rejects every truncation of server-first that lacks an iteration count",
          "[unit][auth]") {
  const std::size_t shortest_valid = kServerFirst.find(",i=") + 4;
  for (std::size_t cut = 0; cut < kServerFirst.size(); ++cut) {
    CAPTURE(cut);
    ScramClient client = keyClient();
    primeClient(client);
    auto r = client.handleServerFirst(kServerFirst.substr(0, cut));
    if (cut < shortest_valid) {
      expectError(r, sqlstate::kProtocolViolation);
    } else {
      CHECK(r.has_value());
    }
  }
}

TEST_CASE("client rejects every truncation of server-final", "[unit][auth]") {
  for (std::size_t cut = 0; cut < kServerFinal.size(); ++cut) {
    CAPTURE(cut);
    ScramClient client = keyClient();
    primeClient(client);
    REQUIRE(client.handleServerFirst(kServerFirst).value() == kClientFinal);
    auto r = client.verifyServerFinal(kServerFinal.substr(0, cut));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
  }
}

TEST_CASE("server rejects malformed client-first messages", "[unit][auth]") {
  struct Case {
    std::string message;
    std::string_view sqlstate;
  };
  const auto c = GENERATE(
      Case{"p=tls-server-end-point,,n=,r=abc", sqlstate::kProtocolViolation},
      Case{"x,,n=,r=abc", sqlstate::kProtocolViolation},
      Case{"n,n=,r=abc", sqlstate::kProtocolViolation},
      Case{"nn,,n=,r=abc", sqlstate::kProtocolViolation},
      Case{"n,a=admin,n=,r=abc", sqlstate::kFeatureNotSupported},
      Case{"n,,m=ext,n=,r=abc", sqlstate::kFeatureNotSupported},
      Case{"n,,r=abc,n=", sqlstate::kProtocolViolation},   // attributes out of order
      Case{"n,,n=,r=", sqlstate::kProtocolViolation},      // empty nonce
      Case{"n,,n=,r=ab c", sqlstate::kProtocolViolation},  // non-printable nonce
      Case{std::string("n,,n=,r=ab") + '\0' + "c", sqlstate::kProtocolViolation},
      Case{"n,,n=,r=abc,", sqlstate::kProtocolViolation},      // trailing separator
      Case{"n,,n=,r=abc,junk", sqlstate::kProtocolViolation},  // not an attribute
      Case{"n,,n=,r=abc,,x=1", sqlstate::kProtocolViolation},
      Case{"n,,n=,x=1,r=abc", sqlstate::kProtocolViolation},
      Case{"n,,n=", sqlstate::kProtocolViolation}, Case{"n,,", sqlstate::kProtocolViolation});
  CAPTURE(c.message);
  ScramServer server(rfcSecret());
  expectError(server.handleClientFirst(c.message), c.sqlstate);
}

TEST_CASE("server accepts extensions after the client nonce, as PostgreSQL does", "[unit][auth]") {
  ScramServer server = rfcServer();
  CHECK(server.handleClientFirst("n,,n=,r=abc,x=ext,y=").has_value());
}

TEST_CASE("server rejects malformed client-final messages", "[unit][auth]") {
  const std::string nonce(kNonce);
  const std::string proof(kProof);
  const std::string message = GENERATE_COPY(
      "r=" + nonce + ",c=biws," + proof,                              // attributes out of order
      "c=biws," + proof + ",r=" + nonce,                              // proof not last
      "c=biws,r=" + nonce,                                            // no proof
      "c=biws,r=" + nonce + ",",                                      // trailing separator
      "c=biws,r=" + nonce + "," + proof + ",",                        // garbage after proof
      "c=biws,r=" + nonce + "," + proof + ",x=1",                     // attribute after proof
      "c=eSws,r=" + nonce + "," + proof,                              // cbind differs from first
      "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" + nonce + "," + proof,  // p=... binding data
      "c=bi*s,r=" + nonce + "," + proof,                              // bad base64
      "c=biws,r=" + nonce + "X," + proof,                             // nonce extended
      "c=biws,r=" + std::string(kClientNonce) + "," + proof,          // server part dropped
      "c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ==",  // 31 bytes
      "c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=AAAA",
      "c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And VQ=",
      "c=biws,r=" + nonce + ",1=x," + proof,  // attribute name not a letter
      std::string("c=biws,r=") + nonce + std::string("\0,", 2) + proof);
  CAPTURE(message);
  ScramServer server(rfcSecret());
  primeServer(server);
  expectError(server.handleClientFinal(message), sqlstate::kProtocolViolation);
}

TEST_CASE("server includes client-final extensions in the signed message", "[unit][auth]") {
  // RFC 5802 allows extensions before the proof; they are part of
  // client-final-message-without-proof, so inserting one invalidates the proof (28P01)
  // rather than being rejected as malformed.
  ScramServer server(rfcSecret());
  primeServer(server);
  const std::string tampered =
      "c=biws,r=" + std::string(kNonce) + ",x=extension," + std::string(kProof);
  expectError(server.handleClientFinal(tampered), sqlstate::kInvalidPassword);
}

TEST_CASE("client rejects malformed server-first messages", "[unit][auth]") {
  const std::string message = GENERATE(
      std::string("m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
      std::string("s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOxyz,i=4096"),
      std::string("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),  // no server part
      std::string("r=XXprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
      std::string("r=rOprNGfwEbeRWgbNEkqOx z,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,garbage"),
      std::string("r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ=="));
  CAPTURE(message);
  ScramClient client = keyClient();
  primeClient(client);
  expectError(client.handleServerFirst(message), sqlstate::kProtocolViolation);
  // A failed exchange cannot be resumed with a good message.
  CHECK_FALSE(client.handleServerFirst(kServerFirst).has_value());
}

TEST_CASE("client accepts the largest allowed iteration count syntactically", "[unit][auth]") {
  // Keys mode skips PBKDF2, so the bound itself can be tested cheaply.
  ScramClient client = keyClient();
  primeClient(client);
  CHECK(client
            .handleServerFirst("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000000,"
                               "x=extension")
            .has_value());
}

TEST_CASE("client rejects malformed server-final messages", "[unit][auth]") {
  const std::string message =
      GENERATE(std::string("x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
               std::string("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,"),
               std::string("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,junk"),
               std::string("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4"),
               std::string("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA"),
               std::string(" v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  CAPTURE(message);
  ScramClient client = keyClient();
  primeClient(client);
  REQUIRE(client.handleServerFirst(kServerFirst).has_value());
  auto r = client.verifyServerFinal(message);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
}

TEST_CASE("client accepts extensions after the server signature", "[unit][auth]") {
  ScramClient client = keyClient();
  primeClient(client);
  REQUIRE(client.handleServerFirst(kServerFirst).has_value());
  CHECK(client.verifyServerFinal(std::string(kServerFinal) + ",x=ext").has_value());
}

TEST_CASE("base64 decoding is strict", "[unit][auth]") {
  CHECK(internal::base64Decode("").value().empty());
  CHECK(internal::base64Decode("Zm9v").value() == "foo");
  CHECK(internal::base64Decode("Zm8=").value() == "fo");
  CHECK(internal::base64Decode("Zg==").value() == "f");
  CHECK_FALSE(internal::base64Decode("Zg=").has_value());
  CHECK_FALSE(internal::base64Decode("Zg").has_value());
  CHECK_FALSE(internal::base64Decode("Z===").has_value());
  CHECK_FALSE(internal::base64Decode("====").has_value());
  CHECK_FALSE(internal::base64Decode("Zm=v").has_value());
  CHECK_FALSE(internal::base64Decode(" Zm9v").has_value());
  CHECK_FALSE(internal::base64Decode("Zm9v\n").has_value());
  CHECK_FALSE(internal::base64Decode("Zm-_").has_value());
  CHECK(internal::base64Encode(std::string_view("foo")) == "Zm9v");
  CHECK(internal::base64Encode(std::string_view("")).empty());
}
