// SCRAM-SHA-256: the RFC 7677 test vector on both sides, compatibility with secrets
// PostgreSQL 15 stores, client↔server round trips, and login with proof-derived keys.
#include "pgpivot/auth/scram.hpp"

#include <catch2/catch.hpp>

#include "auth/crypto.hpp"

using namespace pgpivot;
using namespace pgpivot::auth;

namespace {

// RFC 7677 section 3.
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// Stored by PostgreSQL 15 for `CREATE ROLE pgpivot_scram PASSWORD 'pencil'`.
constexpr std::string_view kPgSecret =
    "SCRAM-SHA-256$4096:GDb0YvxnGiyZGkxx39PJaw==$7bIMIyiiK3ewJtwnB5gxu7YjXEAUypMDl7I7zEtmNSA=:"
    "sOT3buAhiiVluJE15d1eFI8zDAXYJNe65yn1Mhrdvio=";

std::string rfcSalt() {
  return internal::base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==").value();
}

// Runs a whole exchange; returns the first error, or success when both sides accepted.
Result<void> exchange(ScramClient& client, ScramServer& server) {
  auto server_first = server.handleClientFirst(client.clientFirstMessage());
  if (!server_first) {
    return tl::unexpected(server_first.error());
  }
  auto client_final = client.handleServerFirst(*server_first);
  if (!client_final) {
    return tl::unexpected(client_final.error());
  }
  auto server_final = server.handleClientFinal(*client_final);
  if (!server_final) {
    return tl::unexpected(server_final.error());
  }
  return client.verifyServerFinal(*server_final);
}

}  // namespace

TEST_CASE("ScramClient reproduces the RFC 7677 test vector byte for byte", "[unit][auth]") {
  ScramClient client("pencil");
  client.setUserForTest("user");
  client.setNonceForTest(std::string(kRfcClientNonce));
  CHECK(client.clientFirstMessage() == kRfcClientFirst);
  auto client_final = client.handleServerFirst(kRfcServerFirst);
  REQUIRE(client_final.has_value());
  CHECK(*client_final == kRfcClientFinal);
  auto verified = client.verifyServerFinal(kRfcServerFinal);
  INFO((verified ? std::string() : verified.error().message));
  CHECK(verified.has_value());
}

TEST_CASE("ScramServer reproduces the RFC 7677 test vector byte for byte", "[unit][auth]") {
  ScramServer server(makeScramSecret("pencil", rfcSalt(), 4096));
  server.setNonceForTest(std::string(kRfcServerNonce));
  auto server_first = server.handleClientFirst(kRfcClientFirst);
  REQUIRE(server_first.has_value());
  CHECK(*server_first == kRfcServerFirst);
  auto server_final = server.handleClientFinal(kRfcClientFinal);
  REQUIRE(server_final.has_value());
  CHECK(*server_final == kRfcServerFinal);
  REQUIRE(server.authenticated());
  // ClientKey must hash to StoredKey, or it would be useless for logging in upstream.
  CHECK(internal::sha256(server.clientKey()) ==
        makeScramSecret("pencil", rfcSalt(), 4096).stored_key);
}

TEST_CASE("makeScramSecret derives exactly the secret PostgreSQL 15 stored", "[unit][auth]") {
  auto parsed = parseScramSecret(kPgSecret);
  REQUIRE(parsed.has_value());
  CHECK(parsed->iterations == 4096);
  CHECK(parsed->salt.size() == 16);
  const ScramSecret derived = makeScramSecret("pencil", parsed->salt, parsed->iterations);
  CHECK(derived.stored_key == parsed->stored_key);
  CHECK(derived.server_key == parsed->server_key);
  CHECK(formatScramSecret(derived) == kPgSecret);
  CHECK(isScramSecret(kPgSecret));
}

TEST_CASE("makeScramSecret with a random salt uses PostgreSQL's defaults", "[unit][auth]") {
  const ScramSecret a = makeScramSecret("pw");
  const ScramSecret b = makeScramSecret("pw");
  CHECK(a.iterations == 4096);
  CHECK(a.salt.size() == 16);
  CHECK(a.salt != b.salt);
  CHECK(a.stored_key != b.stored_key);
  auto reparsed = parseScramSecret(formatScramSecret(a));
  REQUIRE(reparsed.has_value());
  CHECK(reparsed->salt == a.salt);
  CHECK(reparsed->stored_key == a.stored_key);
  CHECK(reparsed->server_key == a.server_key);
}

TEST_CASE("parseScramSecret rejects malformed secrets with 28000", "[unit][auth]") {
  const std::string keys =
      "$7bIMIyiiK3ewJtwnB5gxu7YjXEAUypMDl7I7zEtmNSA=:sOT3buAhiiVluJE15d1eFI8zDAXYJNe65yn1Mhrdvio=";
  const std::string bad =
      GENERATE_COPY(std::string(""), std::string("md57c2b0036225b2bb23a93d2fcec38fcff"),
                    std::string("SCRAM-SHA-256$"),
                    std::string("SCRAM-SHA-1$4096:GDb0YvxnGiyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$0:GDb0YvxnGiyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$-1:GDb0YvxnGiyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$x:GDb0YvxnGiyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$99999999999:GDb0YvxnGiyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$4096:") + keys,
                    std::string("SCRAM-SHA-256$4096:GDb0Yvxn*iyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$4096GDb0YvxnGiyZGkxx39PJaw==") + keys,
                    std::string("SCRAM-SHA-256$4096:GDb0YvxnGiyZGkxx39PJaw==$"
                                "7bIMIyiiK3ewJtwnB5gxu7YjXEAUypMDl7I7zEtmNSA="),
                    std::string("SCRAM-SHA-256$4096:GDb0YvxnGiyZGkxx39PJaw==$7bIMIyii:"
                                "sOT3buAhiiVluJE15d1eFI8zDAXYJNe65yn1Mhrdvio="),
                    std::string("SCRAM-SHA-256$4096:GDb0YvxnGiyZGkxx39PJaw==$"
                                "7bIMIyiiK3ewJtwnB5gxu7YjXEAUypMDl7I7zEtmNSA=:sOT3"));
  CAPTURE(bad);
  auto parsed = parseScramSecret(bad);
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().sqlstate == sqlstate::kInvalidAuthorization);
  CHECK_FALSE(isScramSecret(bad));
}

TEST_CASE("client and server agree when the server holds a plain password", "[unit][auth]") {
  ScramClient client("correct horse battery staple");
  ScramServer server(makeScramSecret("correct horse battery staple"));
  auto result = exchange(client, server);
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result.has_value());
  REQUIRE(server.authenticated());
}

TEST_CASE("client and server agree when the server holds PostgreSQL's stored secret",
          "[unit][auth]") {
  ScramClient client("pencil");
  ScramServer server(parseScramSecret(kPgSecret).value());
  REQUIRE(exchange(client, server).has_value());
  CHECK(internal::sha256(server.clientKey()) == parseScramSecret(kPgSecret)->stored_key);
  CHECK(server.serverKey() == parseScramSecret(kPgSecret)->server_key);
}

TEST_CASE("non-ASCII passwords are used as raw UTF-8 on both sides", "[unit][auth]") {
  const std::string password = "p\xC3\xA4ssw\xC3\xB6rd";  // "pässwörd"
  ScramClient client(password);
  ScramServer server(makeScramSecret(password));
  REQUIRE(exchange(client, server).has_value());
}

TEST_CASE("a wrong password is rejected with 28P01", "[unit][auth]") {
  ScramClient client("pencil2");
  ScramServer server(parseScramSecret(kPgSecret).value());
  auto server_first = server.handleClientFirst(client.clientFirstMessage());
  REQUIRE(server_first.has_value());
  auto client_final = client.handleServerFirst(*server_first);
  REQUIRE(client_final.has_value());
  auto server_final = server.handleClientFinal(*client_final);
  REQUIRE_FALSE(server_final.has_value());
  CHECK(server_final.error().sqlstate == sqlstate::kInvalidPassword);
  CHECK_FALSE(server.authenticated());
  // The exchange is over: a retry on the same object is a protocol error.
  CHECK_FALSE(server.handleClientFinal(*client_final).has_value());
}

TEST_CASE("a ClientKey recovered from a client's proof logs in as that client", "[unit][auth]") {
  // What PgBouncer does with auth_file secrets: the client authenticates to the pooler,
  // and the pooler reuses ClientKey (from the proof) and ServerKey to log in upstream.
  const ScramSecret secret = parseScramSecret(kPgSecret).value();
  ScramClient app_client("pencil");
  ScramServer pooler_front(secret);
  REQUIRE(exchange(app_client, pooler_front).has_value());

  ScramClient pooler_client(pooler_front.clientKey(), pooler_front.serverKey());
  ScramServer postgres(secret);  // stands in for PostgreSQL holding the same secret
  auto result = exchange(pooler_client, postgres);
  INFO((result ? std::string() : result.error().message));
  CHECK(result.has_value());
  CHECK(postgres.authenticated());
}

TEST_CASE("a key-based client with the wrong keys is rejected", "[unit][auth]") {
  const ScramSecret secret = parseScramSecret(kPgSecret).value();
  ScramKey wrong_client_key{};
  wrong_client_key.fill(0x42);
  ScramClient client(wrong_client_key, secret.server_key);
  ScramServer server(secret);
  auto result = exchange(client, server);
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().sqlstate == sqlstate::kInvalidPassword);
}

TEST_CASE("the client rejects a server that does not know the secret", "[unit][auth]") {
  ScramClient client("pencil");
  client.setNonceForTest(std::string(kRfcClientNonce));
  (void)client.clientFirstMessage();
  REQUIRE(client.handleServerFirst(kRfcServerFirst).has_value());
  SECTION("a wrong signature fails with 28000") {
    auto r = client.verifyServerFinal("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().sqlstate == sqlstate::kInvalidAuthorization);
  }
  SECTION("a server-error attribute fails with 28P01 and names the error") {
    auto r = client.verifyServerFinal("e=invalid-proof");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().sqlstate == sqlstate::kInvalidPassword);
    CHECK(r.error().message.find("invalid-proof") != std::string::npos);
  }
}

TEST_CASE("the client sends no user name and escapes one when set", "[unit][auth]") {
  SECTION("default, like libpq") {
    ScramClient client("pw");
    const std::string first = client.clientFirstMessage();
    CHECK(first.starts_with("n,,n=,r="));
    CHECK(first.size() == std::string("n,,n=,r=").size() + 24);  // 18 random bytes, base64
  }
  SECTION("saslname escaping") {
    ScramClient client("pw");
    client.setUserForTest("a=b,c");
    client.setNonceForTest("abc");
    CHECK(client.clientFirstMessage() == "n,,n=a=3Db=2Cc,r=abc");
  }
  SECTION("two clients never share a nonce") {
    ScramClient a("pw");
    ScramClient b("pw");
    CHECK(a.clientFirstMessage() != b.clientFirstMessage());
  }
}

TEST_CASE("the server accepts a client that says y (supports binding, none offered)",
          "[unit][auth]") {
  const ScramSecret secret = makeScramSecret("pencil", rfcSalt(), 4096);
  ScramServer server(secret);
  server.setNonceForTest(std::string(kRfcServerNonce));
  auto server_first = server.handleClientFirst("y,,n=,r=rOprNGfwEbeRWgbNEkqO");
  REQUIRE(server_first.has_value());
  SECTION("and then requires c= to carry y,, (eSws)") {
    // Build a correct proof for c=eSws by hand with the same math a client uses.
    const std::string without_proof =
        "c=eSws,r=" + server_first->substr(2, server_first->find(',') - 2);
    const std::string auth_message =
        "n=,r=rOprNGfwEbeRWgbNEkqO," + *server_first + "," + without_proof;
    const ScramKey salted = internal::pbkdf2Sha256("pencil", rfcSalt(), 4096);
    const ScramKey client_key = internal::hmacSha256(salted, "Client Key");
    const ScramKey signature = internal::hmacSha256(secret.stored_key, auth_message);
    ScramKey proof{};
    for (std::size_t i = 0; i < proof.size(); ++i) {
      proof[i] = static_cast<uint8_t>(client_key[i] ^ signature[i]);
    }
    auto server_final =
        server.handleClientFinal(without_proof + ",p=" + internal::base64Encode(proof));
    INFO((server_final ? std::string() : server_final.error().message));
    CHECK(server_final.has_value());
  }
  SECTION("and rejects c=biws as a downgrade") {
    auto server_final = server.handleClientFinal(
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    REQUIRE_FALSE(server_final.has_value());
    CHECK(server_final.error().sqlstate == sqlstate::kProtocolViolation);
  }
}

TEST_CASE("calls out of order are errors, not crashes", "[unit][auth]") {
  SECTION("client: server-final before server-first") {
    ScramClient client("pw");
    (void)client.clientFirstMessage();
    CHECK_FALSE(client.verifyServerFinal(kRfcServerFinal).has_value());
    CHECK_FALSE(client.handleServerFirst(kRfcServerFirst).has_value());
  }
  SECTION("client: server-first before client-first") {
    ScramClient client("pw");
    CHECK_FALSE(client.handleServerFirst(kRfcServerFirst).has_value());
  }
  SECTION("server: client-final first, then client-first twice") {
    ScramServer server(makeScramSecret("pw"));
    CHECK_FALSE(server.handleClientFinal(kRfcClientFinal).has_value());
    ScramServer fresh(makeScramSecret("pw"));
    REQUIRE(fresh.handleClientFirst(kRfcClientFirst).has_value());
    auto again = fresh.handleClientFirst(kRfcClientFirst);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().sqlstate == sqlstate::kProtocolViolation);
  }
}
