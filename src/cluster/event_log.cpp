// Event -> JSON line with nlohmann::ordered_json (insertion order = the field order of
// §7.7). nlohmann escapes control characters and refuses nothing we give it; invalid
// UTF-8 in server messages is replaced rather than thrown on (error_handler::replace).
#include "pgpivot/cluster/event_log.hpp"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <variant>

namespace pgpivot::cluster {
namespace {

using Json = nlohmann::ordered_json;

Json toJson(const Evidence& evidence);

Json toJson(const Field::Value& value) {
  return std::visit(
      [](const auto& v) -> Json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return nullptr;
        } else if constexpr (std::is_same_v<T, Evidence>) {
          return toJson(v);
        } else if constexpr (std::is_same_v<T, std::vector<Evidence>>) {
          Json list = Json::array();
          for (const Evidence& e : v) {
            list.push_back(toJson(e));
          }
          return list;
        } else {
          return v;
        }
      },
      value);
}

Json toJson(const Evidence& evidence) {
  Json object = Json::object();
  for (const Field& f : evidence) {
    object[f.key] = toJson(f.value);
  }
  return object;
}

void putText(Json& j, const char* key, const std::string& value) {
  if (!value.empty()) {
    j[key] = value;
  }
}

}  // namespace

std::string formatUtcMillis(int64_t wall_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds{wall_ms}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

std::string EventLogFormatter::line(const Event& event, int64_t wall_ms) const {
  Json j = Json::object();
  j["ts"] = formatUtcMillis(wall_ms);
  j["mono_ms"] = event.mono_ms;
  j["proxy"] = proxy_;
  j["cluster"] = cluster_;
  j["epoch"] = event.epoch;
  j["failover_id"] = event.failover_id.empty() ? Json(nullptr) : Json(event.failover_id);
  j["event"] = event.event;
  putText(j, "from", event.from);
  putText(j, "to", event.to);
  putText(j, "node", event.node);
  putText(j, "role", event.role);
  putText(j, "reason", event.reason);
  if (!event.evidence.empty()) {
    j["evidence"] = toJson(event.evidence);
  }
  putText(j, "sql", event.sql);
  if (event.duration_ms) {
    j["duration_ms"] = *event.duration_ms;
  }
  putText(j, "result", event.result);
  putText(j, "error", event.error);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string EventLogFormatter::summary(const Event& event) const {
  std::string out = "cluster " + cluster_;
  if (!event.failover_id.empty()) {
    out += " " + event.failover_id;
  }
  out += ": ";
  if (!event.node.empty()) {
    out += event.node + " ";
  }
  if (!event.from.empty() || !event.to.empty()) {
    out += event.from + " -> " + event.to;
  } else {
    out += event.event;
  }
  if (!event.result.empty()) {
    out += " " + event.result;
  }
  if (event.duration_ms) {
    out += " in " + std::to_string(*event.duration_ms) + " ms";
  }
  if (!event.reason.empty()) {
    out += ": " + event.reason;
  }
  if (!event.error.empty()) {
    out += " (" + event.error + ")";
  }
  if (const auto* lost = findField(event.evidence, "possibly_lost")) {
    if (const auto* text = std::get_if<std::string>(lost)) {
      out += "; possibly lost: " + *text;
    }
  }
  return out;
}

}  // namespace pgpivot::cluster
