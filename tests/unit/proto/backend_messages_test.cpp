// Round trips (build -> frame -> parse) for every backend message pgpivot builds, plus
// golden bytes for a few so builder and parser cannot agree on a wrong layout.
#include <array>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "pgpivot/proto/messages.hpp"
#include "support/wire_builder.hpp"

namespace pgpivot::proto {
namespace {

std::string_view bodyOf(const std::string& bytes, BackendTag tag) {
  const auto f = wire::onlyFrame(bytes);
  REQUIRE(f.has_value());
  REQUIRE(f->tag == static_cast<char>(tag));
  return f->body;
}

TEST_CASE("ErrorResponse carries S, V, C, M and D only when detail is given", "[unit][proto]") {
  std::string out;
  SECTION("with detail") {
    writeErrorResponse(out, severity::kFatal, "08P01", "bad message", "byte 3");
    const auto v = parseErrorFields(bodyOf(out, BackendTag::kErrorResponse));
    REQUIRE(v.has_value());
    CHECK(v->severity == "FATAL");
    CHECK(v->severity_nonlocalized == "FATAL");
    CHECK(v->sqlstate == "08P01");
    CHECK(v->message == "bad message");
    CHECK(v->detail == "byte 3");
    CHECK(v->hint.empty());
    REQUIRE(v->fields.size() == 5);
    CHECK(v->fields[4].first == 'D');
    CHECK(v->find('C') == std::optional<std::string_view>("08P01"));
    CHECK_FALSE(v->find('H').has_value());
  }
  SECTION("without detail, golden bytes") {
    writeErrorResponse(out, "ERROR", "42P01", "no table");
    const std::string body =
        wire::concat(std::string("S"), wire::cstr("ERROR"), std::string("V"), wire::cstr("ERROR"),
                     std::string("C"), wire::cstr("42P01"), std::string("M"),
                     wire::cstr("no table"), std::string(1, '\0'));
    CHECK(out == wire::frame('E', body));
  }
}

TEST_CASE("NoticeResponse and rewritten error fields round-trip", "[unit][proto]") {
  std::string out;
  writeNoticeResponse(out, severity::kWarning, "01000", "careful");
  auto v = parseErrorFields(bodyOf(out, BackendTag::kNoticeResponse));
  REQUIRE(v.has_value());
  CHECK(v->severity == "WARNING");
  CHECK(v->message == "careful");
  CHECK(v->fields.size() == 4);

  out.clear();
  writeErrorFields(out, BackendTag::kErrorResponse,
                   {{'S', "ERROR"}, {'C', "23505"}, {'M', "dup"}, {'H', "hint"}, {'t', "tbl"}});
  v = parseErrorFields(bodyOf(out, BackendTag::kErrorResponse));
  REQUIRE(v.has_value());
  CHECK(v->hint == "hint");
  CHECK(v->find(field::kTableName) == std::optional<std::string_view>("tbl"));
  CHECK(v->fields.size() == 5);
}

TEST_CASE("authentication requests round-trip with their data", "[unit][proto]") {
  std::string out;
  SECTION("Ok is exactly R, length 8, code 0") {
    writeAuthenticationOk(out);
    CHECK(out == wire::frame('R', wire::be32(0)));
    const auto v = parseAuthRequest(bodyOf(out, BackendTag::kAuthentication));
    REQUIRE(v.has_value());
    CHECK(v->code == kAuthOk);
    CHECK(v->data.empty());
  }
  SECTION("cleartext") {
    writeAuthenticationCleartextPassword(out);
    const auto v = parseAuthRequest(bodyOf(out, BackendTag::kAuthentication));
    REQUIRE(v.has_value());
    CHECK(v->code == kAuthCleartext);
  }
  SECTION("md5 with a salt containing NUL and high bytes") {
    writeAuthenticationMd5Password(out, {'\x00', '\xff', 'a', '\x80'});
    const auto v = parseAuthRequest(bodyOf(out, BackendTag::kAuthentication));
    REQUIRE(v.has_value());
    CHECK(v->code == kAuthMd5);
    CHECK(v->data == std::string_view("\x00\xff"
                                      "a\x80",
                                      4));
  }
  SECTION("SASL lists its mechanisms") {
    writeAuthenticationSasl(out, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    const auto v = parseAuthRequest(bodyOf(out, BackendTag::kAuthentication));
    REQUIRE(v.has_value());
    CHECK(v->code == kAuthSasl);
    const auto mechanisms = parseSaslMechanisms(v->data);
    REQUIRE(mechanisms.has_value());
    CHECK(*mechanisms == std::vector<std::string_view>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  }
  SECTION("SASL continue and final carry opaque data") {
    const std::string data("r=abc,s=\0\1,i=4096", 17);
    writeAuthenticationSaslContinue(out, data);
    writeAuthenticationSaslFinal(out, "v=xyz");
    FrameView f;
    size_t consumed = 0;
    REQUIRE(nextFrame(out, Limits{}, f, consumed) == Decode::kFrame);
    auto v = parseAuthRequest(f.body);
    REQUIRE(v.has_value());
    CHECK(v->code == kAuthSaslContinue);
    CHECK(v->data == data);
    const std::string second = out.substr(consumed);  // views must not outlive the bytes
    v = parseAuthRequest(bodyOf(second, BackendTag::kAuthentication));
    REQUIRE(v.has_value());
    CHECK(v->code == kAuthSaslFinal);
    CHECK(v->data == "v=xyz");
  }
}

TEST_CASE("ParameterStatus, BackendKeyData and NotificationResponse round-trip", "[unit][proto]") {
  std::string out;
  writeParameterStatus(out, "client_encoding", "UTF8");
  const auto ps = parseParameterStatus(bodyOf(out, BackendTag::kParameterStatus));
  REQUIRE(ps.has_value());
  CHECK(ps->name == "client_encoding");
  CHECK(ps->value == "UTF8");

  out.clear();
  writeBackendKeyData(out, 12345, -7);
  const auto key = parseBackendKeyData(bodyOf(out, BackendTag::kBackendKeyData));
  REQUIRE(key.has_value());
  CHECK(key->pid == 12345);
  CHECK(key->secret == -7);

  out.clear();
  writeNotificationResponse(out, 99, "jobs", "");
  const auto n = parseNotification(bodyOf(out, BackendTag::kNotificationResponse));
  REQUIRE(n.has_value());
  CHECK(n->pid == 99);
  CHECK(n->channel == "jobs");
  CHECK(n->payload.empty());
}

TEST_CASE("ReadyForQuery round-trips every transaction status", "[unit][proto]") {
  const TxStatus status = GENERATE(TxStatus::kIdle, TxStatus::kInTransaction, TxStatus::kFailed);
  std::string out;
  writeReadyForQuery(out, status);
  CHECK(out == wire::frame('Z', std::string(1, static_cast<char>(status))));
  const auto v = parseReadyForQuery(bodyOf(out, BackendTag::kReadyForQuery));
  REQUIRE(v.has_value());
  CHECK(*v == status);
}

TEST_CASE("RowDescription, DataRow and CommandComplete round-trip", "[unit][proto]") {
  std::string out;
  const std::vector<FieldDescription> fields = {{.name = "id",
                                                 .table_oid = 16384,
                                                 .column_attr = 1,
                                                 .type_oid = 23,
                                                 .type_size = 4,
                                                 .type_modifier = -1,
                                                 .format = kFormatText},
                                                {.name = "blob",
                                                 .table_oid = 0xffffffffu,
                                                 .column_attr = -2,
                                                 .type_oid = 17,
                                                 .type_size = -1,
                                                 .type_modifier = 12,
                                                 .format = kFormatBinary}};
  writeRowDescription(out, fields);
  const auto rd = parseRowDescription(bodyOf(out, BackendTag::kRowDescription));
  REQUIRE(rd.has_value());
  REQUIRE(rd->size() == 2);
  for (size_t i = 0; i < fields.size(); ++i) {
    CAPTURE(i);
    CHECK((*rd)[i].name == fields[i].name);
    CHECK((*rd)[i].table_oid == fields[i].table_oid);
    CHECK((*rd)[i].column_attr == fields[i].column_attr);
    CHECK((*rd)[i].type_oid == fields[i].type_oid);
    CHECK((*rd)[i].type_size == fields[i].type_size);
    CHECK((*rd)[i].type_modifier == fields[i].type_modifier);
    CHECK((*rd)[i].format == fields[i].format);
  }

  out.clear();
  const std::vector<Value> row = {std::string_view("1"), std::nullopt, std::string_view(""),
                                  std::string_view("\0\1", 2)};
  writeDataRow(out, row);
  const auto dr = parseDataRow(bodyOf(out, BackendTag::kDataRow));
  REQUIRE(dr.has_value());
  CHECK(*dr == row);

  out.clear();
  writeCommandComplete(out, "INSERT 0 1");
  const auto tag = parseCommandComplete(bodyOf(out, BackendTag::kCommandComplete));
  REQUIRE(tag.has_value());
  CHECK(*tag == "INSERT 0 1");
}

TEST_CASE("empty-bodied backend messages carry only their tag", "[unit][proto]") {
  using Builder = void (*)(std::string&);
  const auto [build, tag] = GENERATE(table<Builder, BackendTag>({
      {writeEmptyQueryResponse, BackendTag::kEmptyQueryResponse},
      {writeParseComplete, BackendTag::kParseComplete},
      {writeBindComplete, BackendTag::kBindComplete},
      {writeCloseComplete, BackendTag::kCloseComplete},
      {writeNoData, BackendTag::kNoData},
      {writePortalSuspended, BackendTag::kPortalSuspended},
      {writeCopyDone, BackendTag::kCopyDone},
  }));
  CAPTURE(toString(tag));
  std::string out;
  build(out);
  CHECK(out == wire::header(static_cast<char>(tag), 4));
}

TEST_CASE("ParameterDescription and NegotiateProtocolVersion round-trip", "[unit][proto]") {
  std::string out;
  writeParameterDescription(out, {23, 25, 0xfffffff0u});
  const auto pd = parseParameterDescription(bodyOf(out, BackendTag::kParameterDescription));
  REQUIRE(pd.has_value());
  CHECK(*pd == std::vector<uint32_t>{23, 25, 0xfffffff0u});

  out.clear();
  writeNegotiateProtocolVersion(out, 0, {"_pq_.compression", "_pq_.other"});
  const auto npv =
      parseNegotiateProtocolVersion(bodyOf(out, BackendTag::kNegotiateProtocolVersion));
  REQUIRE(npv.has_value());
  CHECK(npv->newest_minor == 0);
  CHECK(npv->unrecognized_options ==
        std::vector<std::string_view>{"_pq_.compression", "_pq_.other"});
}

TEST_CASE("Copy responses round-trip for each direction", "[unit][proto]") {
  using Builder = void (*)(std::string&, int8_t, const std::vector<int16_t>&);
  const auto [build, tag] = GENERATE(table<Builder, BackendTag>({
      {writeCopyInResponse, BackendTag::kCopyInResponse},
      {writeCopyOutResponse, BackendTag::kCopyOutResponse},
      {writeCopyBothResponse, BackendTag::kCopyBothResponse},
  }));
  CAPTURE(toString(tag));
  std::string out;
  build(out, 1, {1, 1, 0});
  const auto v = parseCopyResponse(bodyOf(out, tag));
  REQUIRE(v.has_value());
  CHECK(v->format == 1);
  CHECK(v->column_formats == std::vector<int16_t>{1, 1, 0});
}

TEST_CASE("CopyData and FunctionCallResponse round-trip", "[unit][proto]") {
  std::string out;
  const std::string data("1\tfoo\n\0\xff", 8);
  writeCopyData(out, data);
  CHECK(bodyOf(out, BackendTag::kCopyData) == data);

  out.clear();
  writeFunctionCallResponse(out, std::string_view("42"));
  auto v = parseFunctionCallResponse(bodyOf(out, BackendTag::kFunctionCallResponse));
  REQUIRE(v.has_value());
  CHECK(*v == std::optional<std::string_view>("42"));

  out.clear();
  writeFunctionCallResponse(out, std::nullopt);
  CHECK(out == wire::frame('V', wire::be32(-1)));
  v = parseFunctionCallResponse(bodyOf(out, BackendTag::kFunctionCallResponse));
  REQUIRE(v.has_value());
  CHECK_FALSE(v->has_value());
}

TEST_CASE("tag names follow the protocol documentation", "[unit][proto]") {
  CHECK(toString(BackendTag::kRowDescription) == "RowDescription");
  CHECK(toString(BackendTag::kNegotiateProtocolVersion) == "NegotiateProtocolVersion");
  CHECK(toString(FrontendTag::kPassword) == "PasswordMessage");
  CHECK(toString(FrontendTag::kFunctionCall) == "FunctionCall");
  CHECK(toString(static_cast<BackendTag>('?')) == "Unknown");
  CHECK(isBackendTag('Z'));
  CHECK_FALSE(isBackendTag('Q'));
  CHECK(isFrontendTag('Q'));
  CHECK_FALSE(isFrontendTag('Z'));
  CHECK(toString(TxStatus::kFailed) == "in failed transaction");
  CHECK(protocolMajor(kProtocolVersion3) == 3);
  CHECK(protocolMinor(kProtocolVersion3) == 0);
  CHECK(protocolMajor(kSslRequestCode) == 1234);
  CHECK(protocolMinor(kSslRequestCode) == 5679);
}

}  // namespace
}  // namespace pgpivot::proto
