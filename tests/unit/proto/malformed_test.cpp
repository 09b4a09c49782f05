// Malformed bodies are clean failures: every parser rejects every truncation and any
// trailing byte of a valid body, and the specific shapes PostgreSQL itself rejects.
#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <vector>

#include "pgpivot/proto/messages.hpp"
#include "support/wire_builder.hpp"

namespace pgpivot::proto {
namespace {

// The body of a single typed frame or the body of a single start-up packet.
std::string typedBody(const std::string& bytes) {
  const auto f = wire::onlyFrame(bytes);
  REQUIRE(f.has_value());
  return std::string(f->body);
}
std::string startupBody(const std::string& bytes) {
  const auto p = wire::onlyStartupPacket(bytes);
  REQUIRE(p.has_value());
  return std::string(p->body);
}

template <class Fn>
std::string built(Fn fn) {
  std::string out;
  fn(out);
  return out;
}

struct Case {
  const char* name;
  std::string body;
  std::function<bool(std::string_view)> parses;
};

template <class Parser>
std::function<bool(std::string_view)> ok(Parser parser) {
  return [parser](std::string_view b) { return parser(b).has_value(); };
}

std::vector<Case> validBodies() {
  const std::vector<Value> vals = {std::string_view("ab"), std::nullopt};
  return {
      {"StartupMessage", startupBody(wire::startup({{"user", "u"}, {"database", "d"}})),
       ok(parseStartup)},
      {"CancelRequest", startupBody(wire::cancelRequest(1, 2)), ok(parseCancelRequest)},
      {"AuthenticationOk", typedBody(wire::authOk()), ok(parseAuthRequest)},
      {"AuthenticationMD5Password", typedBody(built([](std::string& o) {
         writeAuthenticationMd5Password(o, {'a', 'b', 'c', 'd'});
       })),
       ok(parseAuthRequest)},
      {"AuthenticationSASL",
       typedBody(built([](std::string& o) { writeAuthenticationSasl(o, {"SCRAM-SHA-256"}); })),
       ok(parseAuthRequest)},
      {"ErrorResponse", typedBody(wire::errorResponse("08P01", "m")), ok(parseErrorFields)},
      {"ParameterStatus", typedBody(wire::parameterStatus("a", "b")), ok(parseParameterStatus)},
      {"BackendKeyData", typedBody(wire::backendKeyData(1, 2)), ok(parseBackendKeyData)},
      {"ReadyForQuery", typedBody(wire::readyForQuery()), ok(parseReadyForQuery)},
      {"NotificationResponse",
       typedBody(built([](std::string& o) { writeNotificationResponse(o, 1, "c", "p"); })),
       ok(parseNotification)},
      {"CommandComplete", typedBody(wire::commandComplete("SELECT 1")), ok(parseCommandComplete)},
      {"RowDescription", typedBody(built([](std::string& o) {
         writeRowDescription(o, {FieldDescription{.name = "a"}, FieldDescription{.name = "b"}});
       })),
       ok(parseRowDescription)},
      {"DataRow", typedBody(wire::dataRow(vals)), ok(parseDataRow)},
      {"ParameterDescription", typedBody(built([](std::string& o) {
         writeParameterDescription(o, {23, 25});
       })),
       ok(parseParameterDescription)},
      {"CopyInResponse", typedBody(built([](std::string& o) {
         writeCopyInResponse(o, 0, {0, 0});
       })),
       ok(parseCopyResponse)},
      {"NegotiateProtocolVersion",
       typedBody(built([](std::string& o) { writeNegotiateProtocolVersion(o, 0, {"_pq_.a"}); })),
       ok(parseNegotiateProtocolVersion)},
      {"FunctionCallResponse", typedBody(built([](std::string& o) {
         writeFunctionCallResponse(o, std::string_view("x"));
       })),
       ok(parseFunctionCallResponse)},
      {"Query", typedBody(wire::query("SELECT 1")), ok(parseQuery)},
      {"Parse", typedBody(wire::parse("s", "SELECT $1", {23})), ok(parseParse)},
      {"Bind", typedBody(wire::bind("p", "s", vals, {0}, {1})), ok(parseBind)},
      {"Describe", typedBody(wire::describe(ObjectKind::kPortal, "p")), ok(parseDescribe)},
      {"Close", typedBody(wire::close(ObjectKind::kStatement, "s")), ok(parseClose)},
      {"Execute", typedBody(wire::execute("p", 5)), ok(parseExecute)},
      {"CopyFail", typedBody(wire::copyFail("no")), ok(parseCopyFail)},
      {"PasswordMessage", typedBody(wire::password("pw")), ok(parsePasswordMessage)},
      {"SASLInitialResponse", typedBody(built([](std::string& o) {
         writeSaslInitialResponse(o, "M", std::string_view("d"));
       })),
       ok(parseSaslInitialResponse)},
      {"FunctionCall",
       typedBody(built([&vals](std::string& o) { writeFunctionCall(o, 1, {0}, vals, 0); })),
       ok(parseFunctionCall)},
  };
}

TEST_CASE("every parser rejects every truncation and any trailing byte", "[unit][proto]") {
  for (const Case& c : validBodies()) {
    CAPTURE(c.name);
    REQUIRE(c.parses(c.body));
    for (size_t cut = 0; cut < c.body.size(); ++cut) {
      CAPTURE(cut);
      CHECK_FALSE(c.parses(std::string_view(c.body).substr(0, cut)));
    }
    CHECK_FALSE(c.parses(c.body + '\x01'));
  }
}

TEST_CASE("a failed parse reports a protocol violation naming the message", "[unit][proto]") {
  const auto r = parseBind("garbage");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().sqlstate == sqlstate::kProtocolViolation);
  CHECK(r.error().message == "malformed Bind message");
}

TEST_CASE("StartupMessage layout errors are rejected", "[unit][proto]") {
  const std::string v3 = wire::be32(kProtocolVersion3);
  SECTION("a repeated parameter") {
    const auto r = parseStartup(v3 + wire::cstr("user") + wire::cstr("a") + wire::cstr("user") +
                                wire::cstr("b") + std::string(1, '\0'));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "duplicate parameter in StartupMessage");
  }
  SECTION("no terminator after the last pair") {
    CHECK_FALSE(parseStartup(v3 + wire::cstr("user") + wire::cstr("a")).has_value());
  }
  SECTION("bytes after the terminator") {
    CHECK_FALSE(parseStartup(v3 + std::string(1, '\0') + wire::cstr("user")).has_value());
  }
  SECTION("a name without a value") {
    CHECK_FALSE(parseStartup(v3 + wire::cstr("user")).has_value());
  }
  SECTION("protocol 2 is unsupported, not malformed") {
    const auto r = parseStartup(wire::be32(0x00020000) + std::string(1, '\0'));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().sqlstate == sqlstate::kFeatureNotSupported);
  }
  SECTION("a cancel request is not a startup message") {
    CHECK_FALSE(parseStartup(startupBody(wire::cancelRequest(1, 2))).has_value());
  }
}

TEST_CASE("CancelRequest must carry the cancel code", "[unit][proto]") {
  CHECK_FALSE(parseCancelRequest(wire::be32(kProtocolVersion3) + wire::be32(1) + wire::be32(2))
                  .has_value());
}

TEST_CASE("authentication requests must carry exactly their data", "[unit][proto]") {
  CHECK_FALSE(parseAuthRequest(wire::be32(kAuthOk) + "x").has_value());
  CHECK_FALSE(parseAuthRequest(wire::be32(kAuthCleartext) + "x").has_value());
  CHECK_FALSE(parseAuthRequest(wire::be32(kAuthMd5) + "abc").has_value());
  CHECK_FALSE(parseAuthRequest(wire::be32(kAuthSasl) + "SCRAM-SHA-256").has_value());
  CHECK_FALSE(parseAuthRequest("").has_value());
  // An unknown code is structurally fine; refusing it is the caller's decision.
  const std::string body = wire::be32(99) + "zz";
  const auto unknown = parseAuthRequest(body);
  REQUIRE(unknown.has_value());
  CHECK(unknown->code == 99);
  CHECK(unknown->data == "zz");
}

TEST_CASE("lengths and counts read off the wire cannot be negative or overrun", "[unit][proto]") {
  SECTION("DataRow value length -2") {
    CHECK_FALSE(parseDataRow(wire::be16(1) + wire::be32(-2)).has_value());
  }
  SECTION("DataRow value longer than the body") {
    CHECK_FALSE(parseDataRow(wire::be16(1) + wire::be32(5) + "abc").has_value());
  }
  SECTION("DataRow value length INT32_MAX") {
    CHECK_FALSE(parseDataRow(wire::be16(1) + wire::be32(INT32_MAX) + "abc").has_value());
  }
  SECTION("negative column count") {
    CHECK_FALSE(parseDataRow(wire::be16(-1)).has_value());
    CHECK_FALSE(parseRowDescription(wire::be16(-1)).has_value());
    CHECK_FALSE(parseParameterDescription(wire::be16(-32768)).has_value());
  }
  SECTION("a huge count with a tiny body") {
    CHECK_FALSE(parseRowDescription(wire::be16(32767) + "x").has_value());
    CHECK_FALSE(parseBind(std::string(2, '\0') + wire::be16(32767)).has_value());
  }
  SECTION("NegotiateProtocolVersion with a negative option count") {
    CHECK_FALSE(parseNegotiateProtocolVersion(wire::be32(0) + wire::be32(-1)).has_value());
  }
  SECTION("SASLInitialResponse data length -2") {
    CHECK_FALSE(parseSaslInitialResponse(wire::cstr("M") + wire::be32(-2)).has_value());
  }
}

TEST_CASE("Bind must have zero, one or one-per-parameter format codes", "[unit][proto]") {
  const std::vector<Value> three = {std::string_view("1"), std::string_view("2"), std::nullopt};
  CHECK(parseBind(typedBody(wire::bind("", "", three, {}))).has_value());
  CHECK(parseBind(typedBody(wire::bind("", "", three, {1}))).has_value());
  CHECK(parseBind(typedBody(wire::bind("", "", three, {0, 1, 0}))).has_value());
  CHECK_FALSE(parseBind(typedBody(wire::bind("", "", three, {0, 1}))).has_value());
}

TEST_CASE("enumerated bytes outside their range are rejected", "[unit][proto]") {
  CHECK_FALSE(parseDescribe("X" + wire::cstr("p")).has_value());
  CHECK_FALSE(parseClose(std::string(1, '\0') + wire::cstr("p")).has_value());
  CHECK_FALSE(parseReadyForQuery("X").has_value());
  CHECK_FALSE(parseReadyForQuery("i").has_value());
  CHECK_FALSE(parseCopyResponse(std::string(1, '\2') + wire::be16(0)).has_value());
}

TEST_CASE("error fields need their terminating zero byte", "[unit][proto]") {
  CHECK_FALSE(parseErrorFields("").has_value());
  CHECK_FALSE(parseErrorFields("S" + wire::cstr("ERROR")).has_value());
  const auto empty = parseErrorFields(std::string(1, '\0'));
  REQUIRE(empty.has_value());
  CHECK(empty->fields.empty());
}

}  // namespace
}  // namespace pgpivot::proto
