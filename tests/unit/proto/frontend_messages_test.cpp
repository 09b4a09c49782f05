// Round trips (build -> frame -> parse) for every frontend message pgpivot builds, the
// untyped start-up packets, and golden bytes where the layout is easy to get wrong.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "pgpivot/proto/messages.hpp"
#include "support/wire_builder.hpp"

namespace pgpivot::proto {
namespace {

std::string_view bodyOf(const std::string& bytes, FrontendTag tag) {
  const auto f = wire::onlyFrame(bytes);
  REQUIRE(f.has_value());
  REQUIRE(f->tag == static_cast<char>(tag));
  return f->body;
}

StartupPacketView packetOf(const std::string& bytes) {
  const auto p = wire::onlyStartupPacket(bytes);
  REQUIRE(p.has_value());
  return *p;
}

TEST_CASE("StartupMessage round-trips its parameters in order", "[unit][proto]") {
  std::string out;
  SECTION("from owned strings, golden bytes") {
    writeStartupMessage(out, kProtocolVersion3, {{"user", "alice"}, {"database", "shop"}});
    CHECK(out == wire::untyped(wire::concat(wire::be32(196608), wire::cstr("user"),
                                            wire::cstr("alice"), wire::cstr("database"),
                                            wire::cstr("shop"), std::string(1, '\0'))));
  }
  SECTION("from views") {
    const std::vector<std::pair<std::string_view, std::string_view>> params = {
        {"user", "alice"}, {"database", "shop"}};
    writeStartupMessage(out, kProtocolVersion3, params);
  }
  const StartupPacketView p = packetOf(out);
  CHECK(classifyStartup(p) == StartupKind::kStartupMessage);
  const auto v = parseStartup(p.body);
  REQUIRE(v.has_value());
  CHECK(v->protocol == kProtocolVersion3);
  REQUIRE(v->params.size() == 2);
  CHECK(v->params[0].first == "user");
  CHECK(v->get("database") == "shop");
  CHECK(v->get("options").empty());
  CHECK_FALSE(v->find("options").has_value());
}

TEST_CASE("StartupMessage with no parameters and with empty values parses", "[unit][proto]") {
  std::string out;
  writeStartupMessage(out, kProtocolVersion3, std::vector<std::pair<std::string, std::string>>{});
  auto v = parseStartup(packetOf(out).body);
  REQUIRE(v.has_value());
  CHECK(v->params.empty());

  out.clear();
  writeStartupMessage(out, kProtocolVersion3 | 2, {{"user", "u"}, {"options", ""}});
  v = parseStartup(packetOf(out).body);
  REQUIRE(v.has_value());
  CHECK(protocolMinor(v->protocol) == 2);
  CHECK(v->find("options") == std::optional<std::string_view>(""));
}

TEST_CASE("special start-up requests are classified and parsed", "[unit][proto]") {
  std::string out;
  writeSslRequest(out);
  CHECK(out == wire::concat(wire::be32(8), wire::be32(80877103)));
  CHECK(classifyStartup(packetOf(out)) == StartupKind::kSslRequest);

  out.clear();
  writeGssEncRequest(out);
  CHECK(classifyStartup(packetOf(out)) == StartupKind::kGssEncRequest);

  out.clear();
  writeCancelRequest(out, 4242, -99);
  CHECK(out.size() == 16);
  const StartupPacketView p = packetOf(out);
  CHECK(classifyStartup(p) == StartupKind::kCancelRequest);
  const auto v = parseCancelRequest(p.body);
  REQUIRE(v.has_value());
  CHECK(v->pid == 4242);
  CHECK(v->secret == -99);
}

TEST_CASE("classifyStartup refuses other protocols and wrong sizes", "[unit][proto]") {
  const auto [code, body_size] = GENERATE(table<int32_t, size_t>({
      {0x00020000, 8},           // protocol 2.0
      {0x00040000, 8},           // protocol 4.0
      {kSslRequestCode, 8},      // SSLRequest with trailing bytes
      {kGssEncRequestCode, 5},   // GSSENCRequest with a trailing byte
      {kCancelRequestCode, 8},   // CancelRequest without a secret
      {kCancelRequestCode, 44},  // protocol 3.2 long cancel key: not supported
      {80877105, 4},             // an unknown special code
  }));
  CAPTURE(code, body_size);
  const std::string body = wire::be32(code) + std::string(body_size - 4, 'x');
  CHECK(classifyStartup(StartupPacketView{code, body}) == StartupKind::kUnsupported);
}

TEST_CASE("authentication responses round-trip", "[unit][proto]") {
  std::string out;
  SECTION("password") {
    writePasswordMessage(out, "md5abcdef");
    CHECK(out == wire::frame('p', wire::cstr("md5abcdef")));
    const auto v = parsePasswordMessage(bodyOf(out, FrontendTag::kPassword));
    REQUIRE(v.has_value());
    CHECK(*v == "md5abcdef");
  }
  SECTION("SASL initial response with data") {
    writeSaslInitialResponse(out, "SCRAM-SHA-256", std::string_view("n,,n=,r=abc"));
    const auto v = parseSaslInitialResponse(bodyOf(out, FrontendTag::kPassword));
    REQUIRE(v.has_value());
    CHECK(v->mechanism == "SCRAM-SHA-256");
    CHECK(v->data == std::optional<std::string_view>("n,,n=,r=abc"));
  }
  SECTION("SASL initial response without data is length -1") {
    writeSaslInitialResponse(out, "M", std::nullopt);
    CHECK(out == wire::frame('p', wire::cstr("M") + wire::be32(-1)));
    const auto v = parseSaslInitialResponse(bodyOf(out, FrontendTag::kPassword));
    REQUIRE(v.has_value());
    CHECK_FALSE(v->data.has_value());
  }
  SECTION("SASL initial response with empty data is not the same as none") {
    writeSaslInitialResponse(out, "M", std::string_view());
    const auto v = parseSaslInitialResponse(bodyOf(out, FrontendTag::kPassword));
    REQUIRE(v.has_value());
    CHECK(v->data == std::optional<std::string_view>(""));
  }
  SECTION("SASL response is the raw data") {
    writeSaslResponse(out, std::string_view("c=biws,r=x,p=\0", 14));
    CHECK(bodyOf(out, FrontendTag::kPassword) == std::string_view("c=biws,r=x,p=\0", 14));
  }
}

TEST_CASE("Query round-trips and matches its golden bytes", "[unit][proto]") {
  std::string out;
  writeQuery(out, "SELECT 1");
  CHECK(out == std::string("Q\0\0\0\x0dSELECT 1\0", 14));
  const auto v = parseQuery(bodyOf(out, FrontendTag::kQuery));
  REQUIRE(v.has_value());
  CHECK(*v == "SELECT 1");
}

TEST_CASE("empty-bodied frontend messages carry only their tag", "[unit][proto]") {
  using Builder = void (*)(std::string&);
  const auto [build, tag] = GENERATE(table<Builder, FrontendTag>({
      {writeTerminate, FrontendTag::kTerminate},
      {writeSync, FrontendTag::kSync},
      {writeFlush, FrontendTag::kFlush},
      {writeCopyDone, FrontendTag::kCopyDone},
  }));
  CAPTURE(toString(tag));
  std::string out;
  build(out);
  CHECK(out == wire::header(static_cast<char>(tag), 4));
}

TEST_CASE("extended-protocol messages round-trip", "[unit][proto]") {
  std::string out;
  SECTION("Parse") {
    writeParse(out, "s1", "SELECT $1, $2", {23, 0});
    const auto v = parseParse(bodyOf(out, FrontendTag::kParse));
    REQUIRE(v.has_value());
    CHECK(v->name == "s1");
    CHECK(v->query == "SELECT $1, $2");
    CHECK(v->param_types == std::vector<uint32_t>{23, 0});
  }
  SECTION("Bind with NULL, empty and binary values") {
    const std::vector<Value> params = {std::string_view("42"), std::nullopt, std::string_view(""),
                                       std::string_view("\0\0\0\1", 4)};
    writeBind(out, "p1", "s1", {0, 0, 0, 1}, params, {1});
    const auto v = parseBind(bodyOf(out, FrontendTag::kBind));
    REQUIRE(v.has_value());
    CHECK(v->portal == "p1");
    CHECK(v->statement == "s1");
    CHECK(v->param_formats == std::vector<int16_t>{0, 0, 0, 1});
    CHECK(v->params == params);
    CHECK(v->result_formats == std::vector<int16_t>{1});
  }
  SECTION("Bind to unnamed portal and statement with nothing at all, golden bytes") {
    writeBind(out, "", "", {}, {}, {});
    CHECK(out ==
          wire::frame('B', std::string(2, '\0') + wire::be16(0) + wire::be16(0) + wire::be16(0)));
    const auto v = parseBind(bodyOf(out, FrontendTag::kBind));
    REQUIRE(v.has_value());
    CHECK(v->params.empty());
  }
  SECTION("Describe and Close") {
    const ObjectKind kind = GENERATE(ObjectKind::kStatement, ObjectKind::kPortal);
    writeDescribe(out, kind, "x");
    auto v = parseDescribe(bodyOf(out, FrontendTag::kDescribe));
    REQUIRE(v.has_value());
    CHECK(v->kind == kind);
    CHECK(v->name == "x");
    out.clear();
    writeClose(out, kind, "");
    v = parseClose(bodyOf(out, FrontendTag::kClose));
    REQUIRE(v.has_value());
    CHECK(v->kind == kind);
    CHECK(v->name.empty());
  }
  SECTION("Execute") {
    writeExecute(out, "p1", 100);
    const auto v = parseExecute(bodyOf(out, FrontendTag::kExecute));
    REQUIRE(v.has_value());
    CHECK(v->portal == "p1");
    CHECK(v->max_rows == 100);
  }
}

TEST_CASE("FunctionCall, CopyData and CopyFail round-trip", "[unit][proto]") {
  std::string out;
  writeFunctionCall(out, 1598, {1}, {std::string_view("\0\0\0\7", 4), std::nullopt}, kFormatBinary);
  const auto fc = parseFunctionCall(bodyOf(out, FrontendTag::kFunctionCall));
  REQUIRE(fc.has_value());
  CHECK(fc->function_oid == 1598);
  CHECK(fc->arg_formats == std::vector<int16_t>{1});
  REQUIRE(fc->args.size() == 2);
  CHECK(fc->args[0] == std::optional<std::string_view>(std::string_view("\0\0\0\7", 4)));
  CHECK_FALSE(fc->args[1].has_value());
  CHECK(fc->result_format == kFormatBinary);

  out.clear();
  writeCopyData(out, "row\n");
  CHECK(bodyOf(out, FrontendTag::kCopyData) == "row\n");

  out.clear();
  writeCopyFail(out, "client gave up");
  const auto cf = parseCopyFail(bodyOf(out, FrontendTag::kCopyFail));
  REQUIRE(cf.has_value());
  CHECK(*cf == "client gave up");
}

TEST_CASE("every tag enumerator has a documented name", "[unit][proto]") {
  for (const char c : std::string_view("QPBDESHCdcfFXp")) {
    CAPTURE(c);
    CHECK(isFrontendTag(c));
    CHECK(toString(static_cast<FrontendTag>(c)) != "Unknown");
  }
  for (const char c : std::string_view("RK23CdcGHWDIEVvnNAtS1sZT")) {
    CAPTURE(c);
    CHECK(isBackendTag(c));
  }
}

}  // namespace
}  // namespace pgpivot::proto
