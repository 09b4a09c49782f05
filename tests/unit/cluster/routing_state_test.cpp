// The persisted routing state and the event log's JSON lines.
#include "pgpivot/cluster/routing_state.hpp"

#include <catch2/catch.hpp>

#include "pgpivot/cluster/event_log.hpp"

namespace pgpivot::cluster {
namespace {

TEST_CASE("the routing state survives a round trip through its text", "[unit][cluster]") {
  RoutingState s;
  s.epoch = 8;
  s.min_timeline = 2;
  s.system_identifier = "7712796430007692596";
  s.expected_primary = "db-b:5432";
  s.fence("db-c:5432");
  s.fence("db-a:5432");
  s.fence("db-a:5432");
  CHECK(s.fenced == std::vector<std::string>{"db-a:5432", "db-c:5432"});
  const std::string text = serializeRoutingState(s);
  CHECK(text ==
        R"({"version":1,"epoch":8,"min_timeline":2,"system_identifier":"7712796430007692596",)"
        R"("expected_primary":"db-b:5432","fenced":["db-a:5432","db-c:5432"]})");
  const auto back = parseRoutingState(text);
  REQUIRE(back);
  CHECK(*back == s);
  CHECK(back->isFenced("db-c:5432"));
  s.unfence("db-c:5432");
  CHECK_FALSE(s.isFenced("db-c:5432"));
}

TEST_CASE("a node fenced by an operator stays held across a round trip until unfenced",
          "[unit][cluster]") {
  RoutingState s;
  s.epoch = 3;
  s.min_timeline = 1;
  s.hold("db-b:5432");
  CHECK(s.isFenced("db-b:5432"));
  CHECK(s.isHeld("db-b:5432"));
  const std::string text = serializeRoutingState(s);
  CHECK_THAT(text, Catch::Contains(R"("held":["db-b:5432"])"));
  const auto back = parseRoutingState(text);
  REQUIRE(back);
  CHECK(*back == s);
  CHECK(back->isHeld("db-b:5432"));
  s.unfence("db-b:5432");
  CHECK_FALSE(s.isFenced("db-b:5432"));
  CHECK_FALSE(s.isHeld("db-b:5432"));
  CHECK_FALSE(parseRoutingState(
      R"({"version":1,"epoch":1,"min_timeline":1,"system_identifier":"","expected_primary":"","fenced":[],"held":"x"})"));
}

TEST_CASE("a state file pgpivot does not fully understand is refused", "[unit][cluster]") {
  const char* bad = GENERATE(
      "", "[]", "not json", R"({"version":2,"epoch":1})",
      R"({"version":1,"epoch":-1,"min_timeline":1,"system_identifier":"","expected_primary":"","fenced":[]})",
      R"({"version":1,"epoch":1,"min_timeline":4294967296,"system_identifier":"","expected_primary":"","fenced":[]})",
      R"({"version":1,"epoch":1,"min_timeline":1,"system_identifier":7,"expected_primary":"","fenced":[]})",
      R"({"version":1,"epoch":1,"min_timeline":1,"system_identifier":"","expected_primary":"","fenced":[1]})",
      R"({"version":1,"epoch":1,"min_timeline":1,"system_identifier":"","expected_primary":""})");
  CAPTURE(bad);
  const auto parsed = parseRoutingState(bad);
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().message.starts_with("state file: "));
}

TEST_CASE("an event is one JSON object with the research's fields in order", "[unit][cluster]") {
  const EventLogFormatter log("pgpivot-1", "main");
  Event e;
  e.event = "state_change";
  e.mono_ms = 123456790;
  e.epoch = 7;
  e.from = "STEADY";
  e.to = "SUSPECT";
  e.reason = "L timeout";
  e.evidence = Evidence{{"L", "timeout"}, {"latency_ms", 1001}, {"ok", false}, {"none", nullptr}};
  CHECK(log.line(e, 1795775398065) ==
        R"({"ts":"2026-11-27T10:29:58.065Z","mono_ms":123456790,"proxy":"pgpivot-1",)"
        R"("cluster":"main","epoch":7,"failover_id":null,"event":"state_change",)"
        R"("from":"STEADY","to":"SUSPECT","reason":"L timeout",)"
        R"("evidence":{"L":"timeout","latency_ms":1001,"ok":false,"none":null}})");
  CHECK(log.summary(e) == "cluster main: STEADY -> SUSPECT: L timeout");
}

TEST_CASE("action events carry sql, duration, result and error", "[unit][cluster]") {
  const EventLogFormatter log("p", "main");
  Event e;
  e.event = "promote";
  e.failover_id = "f-7-1";
  e.epoch = 7;
  e.node = "db-b:5432";
  e.sql = "SELECT pg_promote(true, 60)";
  e.duration_ms = 290;
  e.result = "failed";
  e.error = "57014 \"canceling\"\n\x01";
  e.evidence = Evidence{{"candidates", std::vector<Evidence>{Evidence{{"node", "db-b"}}}},
                        {"nested", Evidence{{"x", -1}}}};
  const std::string line = log.line(e, 0);
  CHECK(line ==
        R"j({"ts":"1970-01-01T00:00:00.000Z","mono_ms":0,"proxy":"p","cluster":"main","epoch":7,)j"
        R"j("failover_id":"f-7-1","event":"promote","node":"db-b:5432",)j"
        R"j("evidence":{"candidates":[{"node":"db-b"}],"nested":{"x":-1}},)j"
        R"j("sql":"SELECT pg_promote(true, 60)","duration_ms":290,"result":"failed",)j"
        R"j("error":"57014 \"canceling\"\n\u0001"})j");
  CHECK(line.find('\n') == std::string::npos);
  CHECK(log.summary(e) ==
        "cluster main f-7-1: db-b:5432 promote failed in 290 ms (57014 "
        "\"canceling\"\n\x01)");
}

TEST_CASE("server text that is not UTF-8 does not break the log line", "[unit][cluster]") {
  const EventLogFormatter log("p", "main");
  Event e;
  e.event = "fence";
  e.error = "bad \xff\xfe bytes";
  CHECK(log.line(e, 0).find("bad \xEF\xBF\xBD\xEF\xBF\xBD bytes") != std::string::npos);
}

TEST_CASE("UTC timestamps are formatted with milliseconds", "[unit][cluster]") {
  CHECK(formatUtcMillis(0) == "1970-01-01T00:00:00.000Z");
  CHECK(formatUtcMillis(951782400999) == "2000-02-29T00:00:00.999Z");
  CHECK(formatUtcMillis(4102444799001) == "2099-12-31T23:59:59.001Z");
}

}  // namespace
}  // namespace pgpivot::cluster
