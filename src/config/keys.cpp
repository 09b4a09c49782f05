// The [pgpivot] section (read from [pgbouncer] too): one table row per key, so a reader sees
// in one place which PgBouncer keys pgpivot honours, which it accepts but ignores, and which
// keys are pgpivot's own. The README's migration notes are generated from this table.
#include <algorithm>
#include <limits>
#include <type_traits>

#include "parse_context.hpp"
#include "pgpivot/config/parser.hpp"
#include "values.hpp"

namespace pgpivot::config {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;
constexpr int64_t kMaxCount = 1'000'000;  // connections, pool slots: far above any real setup

// A setter may accept a value and still have something to say (a clamped value).
struct Outcome {
  std::string warning;
};
using Setter = Result<Outcome> (*)(Config&, std::string_view);
using Getter = std::string (*)(const Config&);
// For a key pgpivot ignores: a non-empty reason refuses the value instead, because ignoring
// it would run a setup less safe than the file asks for (TLS required, for example).
using Refusal = std::string (*)(std::string_view);

enum class Origin { kPgbouncer, kPgpivot };

struct KeySpec {
  std::string_view name;
  Origin origin;
  // Null: a PgBouncer key pgpivot does not implement yet: a warning, unless the value is
  // empty, and otherwise ignored.
  Setter set;
  Getter get;
  Refusal refuse = nullptr;
  std::string_view note = {};  // appended to the "not supported yet" warning
};

template <auto kMember, int64_t kLo, int64_t kHi>
Result<Outcome> setInt(Config& c, std::string_view v) {
  auto n = parseInteger(v, kLo, kHi);
  if (!n) {
    return tl::unexpected(n.error());
  }
  c.*kMember = static_cast<std::remove_reference_t<decltype(c.*kMember)>>(*n);
  return Outcome{};
}
template <auto kMember>
std::string getInt(const Config& c) {
  return std::to_string(c.*kMember);
}

template <auto kMember, int64_t kLo, int64_t kHi>
Result<Outcome> setSize(Config& c, std::string_view v) {
  auto n = parseSize(v, kLo, kHi);
  if (!n) {
    return tl::unexpected(n.error());
  }
  c.*kMember = static_cast<std::remove_reference_t<decltype(c.*kMember)>>(*n);
  return Outcome{};
}

template <auto kMember>
Result<Outcome> setDuration(Config& c, std::string_view v) {
  auto d = parseDuration(v);
  if (!d) {
    return tl::unexpected(d.error());
  }
  c.*kMember = *d;
  return Outcome{};
}
template <auto kMember>
std::string getDuration(const Config& c) {
  return formatDuration(c.*kMember);
}

template <auto kMember>
Result<Outcome> setBool(Config& c, std::string_view v) {
  auto b = parseBool(v);
  if (!b) {
    return tl::unexpected(b.error());
  }
  c.*kMember = *b;
  return Outcome{};
}
template <auto kMember>
std::string getBool(const Config& c) {
  return c.*kMember ? "1" : "0";
}

template <auto kMember>
Result<Outcome> setString(Config& c, std::string_view v) {
  c.*kMember = std::string(v);
  return Outcome{};
}
template <auto kMember>
std::string getString(const Config& c) {
  return c.*kMember;
}

template <auto kMember>
Result<Outcome> setList(Config& c, std::string_view v) {
  c.*kMember = parseList(v);
  return Outcome{};
}
template <auto kMember>
std::string getList(const Config& c) {
  std::string out;
  for (const auto& item : c.*kMember) {
    out += (out.empty() ? "" : ",") + item;
  }
  return out;
}

Result<Outcome> setListenAddr(Config& c, std::string_view v) {
  c.listen_addr = parseList(v);
  const bool star =
      std::find(c.listen_addr.begin(), c.listen_addr.end(), "*") != c.listen_addr.end();
  if (star && c.listen_addr.size() > 1) {
    return Outcome{"listen_addr: '*' already means every address; the other entries are redundant"};
  }
  return Outcome{};
}

Result<Outcome> setPoolMode(Config& c, std::string_view v) {
  auto mode = parsePoolMode(v);
  if (!mode) {
    return tl::unexpected(mode.error());
  }
  c.pool_mode = *mode;
  return Outcome{};
}

Result<Outcome> setAuthType(Config& c, std::string_view v) {
  auto type = parseAuthType(v);
  if (!type) {
    return tl::unexpected(type.error());
  }
  c.auth_type = *type;
  return Outcome{};
}

// PgBouncer's default is 2147483647; PostgreSQL itself never sends or accepts a message
// over 1 GB, so a larger limit is harmless and is capped rather than refused.
Result<Outcome> setMaxPacketSize(Config& c, std::string_view v) {
  auto n = parseSize(v, kKiB, std::numeric_limits<int64_t>::max());
  if (!n) {
    return tl::unexpected(n.error());
  }
  c.max_packet_size = std::min(*n, kGiB);
  if (*n > kGiB) {
    return Outcome{"max_packet_size " + std::to_string(*n) +
                   " is above 1 GiB, PostgreSQL's own message limit; using 1 GiB"};
  }
  return Outcome{};
}

// What PostgreSQL reports with ParameterStatus (GUC_REPORT), from the version that began
// to: a client's SET of any other parameter stays unseen by pgpivot.
struct ReportedParam {
  std::string_view name;
  int since;  // PostgreSQL major version
};
constexpr ReportedParam kReportedParams[] = {
    {"application_name", 9},
    {"client_encoding", 7},
    {"DateStyle", 7},
    {"default_transaction_read_only", 14},
    {"in_hot_standby", 14},
    {"integer_datetimes", 8},
    {"IntervalStyle", 8},
    {"is_superuser", 8},
    {"scram_iterations", 16},
    {"search_path", 18},
    {"server_encoding", 7},
    {"server_version", 7},
    {"session_authorization", 7},
    {"standard_conforming_strings", 8},
    {"TimeZone", 7},
};

// Names a client cannot carry to a server: they belong to the login itself, or PostgreSQL
// reports them but a session cannot change them (or, for session_authorization, must not
// through pgpivot: the server connection's role is the pool's).
std::string_view untrackableReason(std::string_view name) {
  for (const std::string_view login : {"user", "database", "replication", "options"}) {
    if (iequals(name, login)) {
      return "is part of the login, not a parameter pgpivot can carry";
    }
  }
  for (const std::string_view fixed : {"server_version", "server_encoding", "integer_datetimes",
                                       "in_hot_standby", "is_superuser", "session_authorization"}) {
    if (iequals(name, fixed)) {
      return "cannot be set by a client's session";
    }
  }
  return {};
}

// track_extra_parameters: the names are checked here and kept as written; the session
// code compares them in any case and, once a server reports one, spells it as the server
// does (session/params.hpp).
Result<Outcome> setTrackExtraParameters(Config& c, std::string_view v) {
  auto names = parseParameterNames(v);
  if (!names) {
    return tl::unexpected(names.error());
  }
  std::string warning;
  for (const std::string& name : *names) {
    if (const std::string_view reason = untrackableReason(name); !reason.empty()) {
      return fail(sqlstate::kConfigFileError, "'" + name + "' " + std::string(reason));
    }
    const auto* reported =
        std::find_if(std::begin(kReportedParams), std::end(kReportedParams),
                     [&](const ReportedParam& p) { return iequals(p.name, name); });
    std::string note;
    if (reported == std::end(kReportedParams) && name.find('.') == std::string::npos) {
      note = "PostgreSQL does not report " + name +
             " (it is not GUC_REPORT): pgpivot passes a client's login value on but cannot "
             "follow its SETs, nor keep them from other clients";
    } else if (reported != std::end(kReportedParams) && reported->since > 15) {
      note = "PostgreSQL reports " + std::string(reported->name) + " only from version " +
             std::to_string(reported->since) +
             "; against an older server pgpivot cannot follow a client's SETs of it";
    }
    if (!note.empty()) {
      warning += (warning.empty() ? "track_extra_parameters: " : "; ") + note;
    }
  }
  c.track_extra_parameters = std::move(*names);
  return Outcome{std::move(warning)};
}

std::string refuseClientTls(std::string_view v) {
  const std::string mode = toLower(trim(v));
  if (mode.empty() || mode == "disable" || mode == "allow" || mode == "prefer") {
    return {};
  }
  return "client_tls_sslmode = " + mode +
         " is not supported yet: pgpivot cannot accept TLS clients, and refuses to start rather "
         "than accept unencrypted ones";
}

std::string refuseServerTls(std::string_view v) {
  const std::string mode = toLower(trim(v));
  if (mode.empty() || mode == "disable" || mode == "allow" || mode == "prefer") {
    return {};
  }
  return "server_tls_sslmode = " + mode +
         " is not supported yet: pgpivot cannot use TLS to PostgreSQL, and refuses to start "
         "rather than connect without it";
}

std::string refusePqexec(std::string_view v) {
  auto on = parseBool(v);
  if (on && !*on) {
    return {};
  }
  return "disable_pqexec = " + std::string(trim(v)) +
         " is not supported yet: pgpivot would let multi-statement queries through";
}

constexpr Origin kPgb = Origin::kPgbouncer;
constexpr Origin kOwn = Origin::kPgpivot;

template <auto kMember, int64_t kLo, int64_t kHi>
KeySpec intKey(std::string_view name) {
  return {name, kPgb, setInt<kMember, kLo, kHi>, getInt<kMember>};
}
template <auto kMember>
KeySpec durationKey(std::string_view name) {
  return {name, kPgb, setDuration<kMember>, getDuration<kMember>};
}
template <auto kMember>
KeySpec boolKey(std::string_view name) {
  return {name, kPgb, setBool<kMember>, getBool<kMember>};
}
template <auto kMember>
KeySpec stringKey(std::string_view name) {
  return {name, kPgb, setString<kMember>, getString<kMember>};
}
template <auto kMember>
KeySpec listKey(std::string_view name) {
  return {name, kPgb, setList<kMember>, getList<kMember>};
}
KeySpec unsupported(std::string_view name) {
  return {name, kPgb, nullptr, nullptr};
}

// Alphabetical, as PgBouncer's own table (SHOW CONFIG lists keys in this order).
const KeySpec kKeys[] = {
    {"admin_listen_addr", kOwn, setString<&Config::admin_listen_addr>,
     getString<&Config::admin_listen_addr>},
    {"admin_port", kOwn, setInt<&Config::admin_port, 0, 65535>, getInt<&Config::admin_port>},
    listKey<&Config::admin_users>("admin_users"),
    unsupported("application_name_add_host"),
    stringKey<&Config::auth_dbname>("auth_dbname"),
    stringKey<&Config::auth_file>("auth_file"),
    unsupported("auth_hba_file"),
    unsupported("auth_ident_file"),
    unsupported("auth_ldap_options"),
    stringKey<&Config::auth_query>("auth_query"),
    {"auth_type", kPgb, setAuthType,
     [](const Config& c) { return std::string(toString(c.auth_type)); }},
    stringKey<&Config::auth_user>("auth_user"),
    unsupported("autodb_idle_timeout"),
    unsupported("cancel_wait_timeout"),
    durationKey<&Config::client_idle_timeout>("client_idle_timeout"),
    durationKey<&Config::client_login_timeout>("client_login_timeout"),
    unsupported("client_tls13_ciphers"),
    unsupported("client_tls_ca_file"),
    unsupported("client_tls_cert_file"),
    unsupported("client_tls_ciphers"),
    unsupported("client_tls_dheparams"),
    unsupported("client_tls_ecdhcurve"),
    unsupported("client_tls_key_file"),
    unsupported("client_tls_protocols"),
    {"client_tls_sslmode", kPgb, nullptr, nullptr, refuseClientTls},
    unsupported("conffile"),
    intKey<&Config::default_pool_size, 0, kMaxCount>("default_pool_size"),
    {"disable_pqexec", kPgb, nullptr, nullptr, refusePqexec},
    unsupported("dns_max_ttl"),
    unsupported("dns_nxdomain_ttl"),
    unsupported("dns_zone_check_period"),
    durationKey<&Config::idle_transaction_timeout>("idle_transaction_timeout"),
    listKey<&Config::ignore_startup_parameters>("ignore_startup_parameters"),
    unsupported("job_name"),
    {"listen_addr", kPgb, setListenAddr, getList<&Config::listen_addr>},
    intKey<&Config::listen_backlog, 1, kMaxCount>("listen_backlog"),
    intKey<&Config::listen_port, 0, 65535>("listen_port"),
    boolKey<&Config::log_connections>("log_connections"),
    boolKey<&Config::log_disconnections>("log_disconnections"),
    boolKey<&Config::log_pooler_errors>("log_pooler_errors"),
    unsupported("log_stats"),
    stringKey<&Config::logfile>("logfile"),
    intKey<&Config::max_client_conn, 1, kMaxCount>("max_client_conn"),
    unsupported("max_db_client_connections"),
    intKey<&Config::max_db_connections, 0, kMaxCount>("max_db_connections"),
    {"max_packet_size", kPgb, setMaxPacketSize, getInt<&Config::max_packet_size>},
    intKey<&Config::max_prepared_statements, 0, kMaxCount>("max_prepared_statements"),
    unsupported("max_user_client_connections"),
    intKey<&Config::max_user_connections, 0, kMaxCount>("max_user_connections"),
    {"metrics_port", kOwn, setInt<&Config::metrics_port, 0, 65535>, getInt<&Config::metrics_port>},
    intKey<&Config::min_pool_size, 0, kMaxCount>("min_pool_size"),
    unsupported("peer_id"),
    stringKey<&Config::pidfile>("pidfile"),
    {"pkt_buf", kPgb, setSize<&Config::pkt_buf, kKiB, 64 * kMiB>, getInt<&Config::pkt_buf>},
    {"pool_mode", kPgb, setPoolMode,
     [](const Config& c) { return std::string(toString(c.pool_mode)); }},
    durationKey<&Config::query_timeout>("query_timeout"),
    unsupported("query_wait_notify"),
    durationKey<&Config::query_wait_timeout>("query_wait_timeout"),
    intKey<&Config::reserve_pool_size, 0, kMaxCount>("reserve_pool_size"),
    durationKey<&Config::reserve_pool_timeout>("reserve_pool_timeout"),
    unsupported("resolv_conf"),
    unsupported("sbuf_loopcnt"),
    unsupported("scram_iterations"),
    durationKey<&Config::server_check_delay>("server_check_delay"),
    stringKey<&Config::server_check_query>("server_check_query"),
    durationKey<&Config::server_connect_timeout>("server_connect_timeout"),
    unsupported("server_fast_close"),
    durationKey<&Config::server_idle_timeout>("server_idle_timeout"),
    durationKey<&Config::server_lifetime>("server_lifetime"),
    durationKey<&Config::server_login_retry>("server_login_retry"),
    stringKey<&Config::server_reset_query>("server_reset_query"),
    boolKey<&Config::server_reset_query_always>("server_reset_query_always"),
    unsupported("server_round_robin"),
    unsupported("server_tls13_ciphers"),
    unsupported("server_tls_ca_file"),
    unsupported("server_tls_cert_file"),
    unsupported("server_tls_ciphers"),
    unsupported("server_tls_key_file"),
    unsupported("server_tls_protocols"),
    {"server_tls_sslmode", kPgb, nullptr, nullptr, refuseServerTls},
    unsupported("service_name"),
    {"so_reuseport", kPgb, nullptr, nullptr, nullptr,
     "pgpivot always listens with SO_REUSEPORT, one socket per worker"},
    durationKey<&Config::stats_period>("stats_period"),
    listKey<&Config::stats_users>("stats_users"),
    unsupported("suspend_timeout"),
    unsupported("syslog"),
    unsupported("syslog_facility"),
    unsupported("syslog_ident"),
    boolKey<&Config::tcp_defer_accept>("tcp_defer_accept"),
    boolKey<&Config::tcp_keepalive>("tcp_keepalive"),
    intKey<&Config::tcp_keepcnt, 0, kMaxCount>("tcp_keepcnt"),
    intKey<&Config::tcp_keepidle, 0, kMaxCount>("tcp_keepidle"),
    intKey<&Config::tcp_keepintvl, 0, kMaxCount>("tcp_keepintvl"),
    unsupported("tcp_socket_buffer"),
    intKey<&Config::tcp_user_timeout, 0, kMaxCount>("tcp_user_timeout"),
    {"track_extra_parameters", kPgb, setTrackExtraParameters,
     getList<&Config::track_extra_parameters>},
    unsupported("transaction_timeout"),
    stringKey<&Config::unix_socket_dir>("unix_socket_dir"),
    unsupported("unix_socket_group"),
    unsupported("unix_socket_mode"),
    {"user", kPgb, nullptr, nullptr, nullptr, "use pgpivot -u USER"},
    intKey<&Config::verbose, 0, 10>("verbose"),
    {"worker_spill_load", kOwn, setInt<&Config::worker_spill_load, 0, 100>,
     getInt<&Config::worker_spill_load>},
    {"workers", kOwn, setInt<&Config::workers, 0, 1024>, getInt<&Config::workers>},
};

const KeySpec* findKey(std::string_view lower_name) {
  const auto* it = std::find_if(std::begin(kKeys), std::end(kKeys),
                                [&](const KeySpec& k) { return k.name == lower_name; });
  return it == std::end(kKeys) ? nullptr : it;
}

template <class Pred>
std::vector<std::string_view> keyNames(Pred pred) {
  std::vector<std::string_view> names;
  for (const KeySpec& key : kKeys) {
    if (pred(key)) {
      names.push_back(key.name);
    }
  }
  return names;
}

std::vector<std::string_view> allKeyNames() {
  return keyNames([](const KeySpec&) { return true; });
}

}  // namespace

void applyMainLine(ParseContext& ctx, std::string_view key, std::string_view value) {
  const std::string name = toLower(key);
  const KeySpec* spec = findKey(name);
  if (spec == nullptr) {
    std::string message =
        "unknown key '" + std::string(key) + "' in [" + ctx.section_label + "], ignored";
    if (const std::string_view hint = closestMatch(key, allKeyNames()); !hint.empty()) {
      message += " (did you mean '" + std::string(hint) + "'?)";
    }
    ctx.warning(std::move(message));
    return;
  }
  if (spec->set == nullptr) {
    if (spec->refuse != nullptr) {
      if (std::string reason = spec->refuse(value); !reason.empty()) {
        ctx.error(std::move(reason));
        return;
      }
    }
    if (trim(value).empty()) {
      return;  // `client_tls_key_file =` asks for nothing, so ignoring it loses nothing
    }
    std::string message = name + " is not supported yet, ignored";
    if (!spec->note.empty()) {
      message += " (" + std::string(spec->note) + ")";
    }
    ctx.warning(std::move(message));
    return;
  }
  ctx.noteSource(name, name);
  auto outcome = spec->set(ctx.config, value);
  if (!outcome) {
    ctx.error(name + ": invalid value '" + std::string(trim(value)) +
              "': " + outcome.error().message);
    ctx.failed.insert(name);
    return;
  }
  ctx.failed.erase(name);  // a later good line repairs an earlier bad one
  if (!outcome->warning.empty()) {
    ctx.warning(std::move(outcome->warning));
  }
}

std::vector<std::string_view> supportedPgbouncerKeys() {
  return keyNames([](const KeySpec& k) { return k.origin == kPgb && k.set != nullptr; });
}

std::vector<std::string_view> unsupportedPgbouncerKeys() {
  return keyNames([](const KeySpec& k) { return k.set == nullptr; });
}

std::vector<std::string_view> pgpivotKeys() {
  return keyNames([](const KeySpec& k) { return k.origin == kOwn; });
}

std::vector<Setting> currentSettings(const Config& config) {
  std::vector<Setting> settings;
  for (const KeySpec& key : kKeys) {
    if (key.get != nullptr) {
      settings.push_back(Setting{key.name, key.get(config)});
    }
  }
  return settings;
}

Result<std::string> setSetting(Config& config, std::string_view key, std::string_view value) {
  const std::string name = toLower(trim(key));
  const KeySpec* spec = findKey(name);
  if (spec == nullptr) {
    std::string message = "unknown configuration key '" + std::string(trim(key)) + "'";
    if (const std::string_view hint = closestMatch(key, allKeyNames()); !hint.empty()) {
      message += " (did you mean '" + std::string(hint) + "'?)";
    }
    return fail("22023", std::move(message));
  }
  if (spec->set == nullptr) {
    return fail("22023", name + " is not supported by pgpivot");
  }
  auto outcome = spec->set(config, value);
  if (!outcome) {
    return fail("22023", name + ": invalid value '" + std::string(trim(value)) +
                             "': " + outcome.error().message);
  }
  return outcome->warning;
}

}  // namespace pgpivot::config
