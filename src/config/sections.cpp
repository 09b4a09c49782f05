// [databases], [users] and [cluster.NAME] lines. Database and user lines are connection
// strings in PgBouncer syntax (connstring.hpp); their keys are tables below, like the
// [pgpivot] keys in keys.cpp, so the supported and ignored PgBouncer parameters are visible
// at a glance.
#include <algorithm>
#include <limits>

#include "connstring.hpp"
#include "parse_context.hpp"
#include "pgpivot/config/parser.hpp"
#include "values.hpp"

namespace pgpivot::config {
namespace {

constexpr int64_t kMaxCount = 1'000'000;

Result<std::optional<int>> count(std::string_view v) {
  auto n = parseInteger(v, 0, kMaxCount);
  if (!n) {
    return tl::unexpected(n.error());
  }
  return std::optional<int>(static_cast<int>(*n));
}

template <class Entry>
using Setter = Result<void> (*)(Entry&, std::string_view);

template <class Entry>
struct ParamSpec {
  std::string_view name;
  Setter<Entry> set;  // null: a PgBouncer parameter pgpivot does not implement yet
};

template <auto kMember, class Entry>
Result<void> setText(Entry& e, std::string_view v) {
  e.*kMember = std::string(v);
  return {};
}

template <auto kMember, class Entry>
Result<void> setCount(Entry& e, std::string_view v) {
  auto n = count(v);
  if (!n) {
    return tl::unexpected(n.error());
  }
  e.*kMember = *n;
  return {};
}

template <class Entry>
Result<void> setPoolModeOf(Entry& e, std::string_view v) {
  auto mode = parsePoolMode(v);
  if (!mode) {
    return tl::unexpected(mode.error());
  }
  e.pool_mode = *mode;
  return {};
}

Result<void> setHost(DatabaseEntry& e, std::string_view v) {
  // PgBouncer 1.17+ takes host lists and rotates through them. pgpivot's answer to several
  // servers is a [cluster.NAME] section that knows which one is the primary; refusing here
  // beats silently connecting to a string with commas in it.
  if (v.find(',') != std::string_view::npos) {
    return fail(sqlstate::kConfigFileError,
                "host lists are not supported; list the nodes in a [cluster.NAME] section and "
                "use cluster=NAME");
  }
  e.host = std::string(v);
  return {};
}

Result<void> setDbPort(DatabaseEntry& e, std::string_view v) {
  auto port = parsePort(v, false);
  if (!port) {
    return tl::unexpected(port.error());
  }
  e.port = *port;
  return {};
}

using D = DatabaseEntry;
const ParamSpec<D> kDatabaseParams[] = {
    {"application_name", setText<&D::application_name, D>},
    {"auth_dbname", nullptr},
    {"auth_user", setText<&D::auth_user, D>},
    {"client_encoding", setText<&D::client_encoding, D>},
    {"cluster", setText<&D::cluster, D>},
    {"connect_query", setText<&D::connect_query, D>},
    {"datestyle", setText<&D::datestyle, D>},
    {"dbname", setText<&D::dbname, D>},
    {"host", setHost},
    {"load_balance_hosts", nullptr},
    {"max_db_client_connections", nullptr},
    {"max_db_connections", setCount<&D::max_db_connections, D>},
    {"min_pool_size", setCount<&D::min_pool_size, D>},
    {"password", setText<&D::password, D>},
    {"pool_mode", setPoolModeOf<D>},
    {"pool_size", setCount<&D::pool_size, D>},
    {"port", setDbPort},
    {"reserve_pool", setCount<&D::reserve_pool_size, D>},  // PgBouncer's name
    {"reserve_pool_size", setCount<&D::reserve_pool_size, D>},
    {"timezone", setText<&D::timezone, D>},
    {"user", setText<&D::user, D>},
};

using U = UserEntry;
const ParamSpec<U> kUserParams[] = {
    {"max_user_client_connections", nullptr},
    {"max_user_connections", setCount<&U::max_user_connections, U>},
    {"pool_mode", setPoolModeOf<U>},
    {"pool_size", setCount<&U::pool_size, U>},
    {"reserve_pool_size", nullptr},
};

template <class Entry, std::size_t N>
std::vector<std::string_view> paramNames(const ParamSpec<Entry> (&table)[N]) {
  std::vector<std::string_view> names;
  for (const auto& p : table) {
    names.push_back(p.name);
  }
  return names;
}

// PgBouncer takes a database or user name as is, or in SQL identifier quotes for names with
// other characters: "my db" is `my db`, and "" inside the quotes is one '"'.
Result<std::string> entryName(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(sqlstate::kConfigFileError, "'" + std::string(text) + "' " + std::string(why));
  };
  if (text.empty() || text.front() != '"') {
    if (text.empty() ||
        std::any_of(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\t'; })) {
      return bad("needs double quotes");
    }
    return std::string(text);
  }
  std::string name;
  for (std::size_t i = 1; i < text.size(); ++i) {
    if (text[i] != '"') {
      name.push_back(text[i]);
    } else if (i + 1 < text.size() && text[i + 1] == '"') {
      name.push_back('"');
      ++i;
    } else if (i + 1 == text.size() && !name.empty()) {
      return name;
    } else {
      break;
    }
  }
  return bad("is not a properly quoted name");
}

// Applies every parameter of a [databases] or [users] line; `what` is "database appdb".
template <class Entry, std::size_t N>
void applyParams(ParseContext& ctx, Entry& entry, const std::vector<ConnParam>& params,
                 const ParamSpec<Entry> (&table)[N], const std::string& what,
                 const std::string& key) {
  std::vector<std::string_view> seen;
  for (const ConnParam& p : params) {
    const auto* spec = std::find_if(std::begin(table), std::end(table),
                                    [&](const ParamSpec<Entry>& s) { return s.name == p.key; });
    if (spec == std::end(table)) {
      std::string message = what + ": unknown parameter '" + p.key + "', ignored";
      if (const auto hint = closestMatch(p.key, paramNames(table)); !hint.empty()) {
        message += " (did you mean '" + std::string(hint) + "'?)";
      }
      ctx.warning(std::move(message));
      continue;
    }
    if (spec->set == nullptr) {
      ctx.warning(what + ": " + p.key + " is not supported yet, ignored");
      continue;
    }
    if (std::find(seen.begin(), seen.end(), spec->name) != seen.end()) {
      ctx.warning(what + ": " + p.key + " is given twice, the last value wins");
    }
    seen.push_back(spec->name);
    if (auto ok = spec->set(entry, p.value); !ok) {
      ctx.error(what + ": " + p.key + ": invalid value '" + p.value + "': " + ok.error().message);
      ctx.failed.insert(key + "." + p.key);
    }
  }
}

// The shared shape of a [databases] and a [users] line.
template <class Entry, std::size_t N>
void applyEntryLine(ParseContext& ctx, std::map<std::string, Entry>& entries, std::string_view kind,
                    std::string_view section, std::string_view name, std::string_view value,
                    const ParamSpec<Entry> (&table)[N]) {
  auto unquoted = entryName(name);
  if (!unquoted) {
    ctx.error("invalid " + std::string(kind) + " name " + unquoted.error().message);
    return;
  }
  const std::string what = std::string(kind) + " " + *unquoted;
  const std::string key = std::string(section) + "." + *unquoted;
  auto params = tokenizeConnString(value);
  if (!params) {
    ctx.error(what + ": syntax error: " + params.error().message);
    ctx.failed.insert(key);
    return;
  }
  ctx.noteSource(key, what);
  Entry entry;
  entry.name = *unquoted;
  entry.line = ctx.where.line;
  applyParams(ctx, entry, *params, table, what, key);
  entries[entry.name] = std::move(entry);
}

}  // namespace

void applyDatabaseLine(ParseContext& ctx, std::string_view name, std::string_view value) {
  applyEntryLine(ctx, ctx.config.databases, "database", "databases", name, value, kDatabaseParams);
}

void applyUserLine(ParseContext& ctx, std::string_view name, std::string_view value) {
  applyEntryLine(ctx, ctx.config.users, "user", "users", name, value, kUserParams);
}

// ---- [cluster.NAME] ------------------------------------------------------------------------

namespace {

using ClusterSetter = Result<void> (*)(ClusterEntry&, std::string_view);

struct ClusterKey {
  std::string_view name;
  ClusterSetter set;
};

Result<void> setNodes(ClusterEntry& c, std::string_view v) {
  auto nodes = parseNodeList(v);
  if (!nodes) {
    return tl::unexpected(nodes.error());
  }
  c.nodes = std::move(*nodes);
  return {};
}

Result<void> setFailoverMode(ClusterEntry& c, std::string_view v) {
  auto mode = parseFailoverMode(v);
  if (!mode) {
    return tl::unexpected(mode.error());
  }
  c.failover_mode = *mode;
  return {};
}

// heartbeat_table: "table" or "schema.table", plain lower-case identifiers (the name is
// written into SQL unquoted); "off" or empty turns the heartbeat write off.
Result<void> setHeartbeatTable(ClusterEntry& c, std::string_view v) {
  const std::string name = toLower(trim(v));
  if (name.empty() || name == "off") {
    c.heartbeat_table.clear();
    return {};
  }
  int dots = 0;
  bool start = true;
  for (const char ch : name) {
    if (ch == '.') {
      if (start || ++dots > 1) {
        return fail(sqlstate::kConfigFileError, "expected table or schema.table");
      }
      start = true;
      continue;
    }
    const bool letter = (ch >= 'a' && ch <= 'z') || ch == '_';
    const bool digit = ch >= '0' && ch <= '9';
    if (!letter && !(digit && !start)) {
      return fail(sqlstate::kConfigFileError,
                  "expected table or schema.table of letters, digits and _");
    }
    start = false;
  }
  if (start) {
    return fail(sqlstate::kConfigFileError, "expected table or schema.table");
  }
  c.heartbeat_table = name;
  return {};
}

Result<void> setHeartbeatCreate(ClusterEntry& c, std::string_view v) {
  auto on = parseBool(v);
  if (!on) {
    return tl::unexpected(on.error());
  }
  c.heartbeat_create = *on;
  return {};
}

const DetectionProfile* findProfile(std::string_view name) {
  if (name == "fast") {
    return &kProfileFast;
  }
  if (name == "default") {
    return &kProfileDefault;
  }
  if (name == "safe") {
    return &kProfileSafe;
  }
  return nullptr;
}

// Only the name here: applyClusterLine then copies the profile's thresholds into the ones
// the section did not set explicitly (applyProfile).
Result<void> setProfile(ClusterEntry& c, std::string_view v) {
  const std::string profile = toLower(trim(v));
  if (findProfile(profile) == nullptr) {
    return fail(sqlstate::kConfigFileError, "expected a profile: fast, default, safe");
  }
  c.profile = profile;
  return {};
}

// A duration; kAllowZero says whether 0 (usually "off") is meaningful for the key.
template <auto kMember, bool kAllowZero>
Result<void> setClusterDuration(ClusterEntry& c, std::string_view v) {
  auto d = parseDuration(v);
  if (!d) {
    return tl::unexpected(d.error());
  }
  if (!kAllowZero && d->count() == 0) {
    return fail(sqlstate::kConfigFileError, "must be greater than 0");
  }
  c.*kMember = *d;
  return {};
}

template <auto kMember, int64_t kLo, int64_t kHi>
Result<void> setClusterInt(ClusterEntry& c, std::string_view v) {
  auto n = parseInteger(v, kLo, kHi);
  if (!n) {
    return tl::unexpected(n.error());
  }
  c.*kMember = static_cast<int>(*n);
  return {};
}

Result<void> setMaxLag(ClusterEntry& c, std::string_view v) {
  auto n = parseSize(v, 0, std::numeric_limits<int64_t>::max());
  if (!n) {
    return tl::unexpected(n.error());
  }
  c.max_lag_on_failover = *n;
  return {};
}

Result<void> setLockPileupAction(ClusterEntry& c, std::string_view v) {
  const std::string word = toLower(trim(v));
  for (const auto action : {LockPileupAction::kAlert, LockPileupAction::kCancelBlocker,
                            LockPileupAction::kTerminateBlocker}) {
    if (word == toString(action)) {
      c.lock_pileup_action = action;
      return {};
    }
  }
  return fail(sqlstate::kConfigFileError, "expected alert, cancel_blocker or terminate_blocker");
}

template <auto kMember>
Result<void> setProbe(ClusterEntry& c, std::string_view v) {
  auto d = parseDuration(v);
  if (!d) {
    return tl::unexpected(d.error());
  }
  if (d->count() == 0) {
    return fail(sqlstate::kConfigFileError, "must be greater than 0");
  }
  c.*kMember = *d;
  return {};
}

constexpr int64_t kMaxFailoversPerHour = 100;

using C = ClusterEntry;
const ClusterKey kClusterKeys[] = {
    {"crash_recovery_grace", setClusterDuration<&C::crash_recovery_grace, true>},
    {"dead_after", setClusterDuration<&C::dead_after, false>},
    {"drain_timeout", setClusterDuration<&C::drain_timeout, false>},
    {"failover_cooldown", setClusterDuration<&C::failover_cooldown, true>},
    {"failover_log", setText<&C::failover_log, C>},
    {"failover_mode", setFailoverMode},
    {"failover_pause_timeout", setClusterDuration<&C::failover_pause_timeout, false>},
    {"fence_command", setText<&C::fence_command, C>},
    {"fence_timeout", setClusterDuration<&C::fence_timeout, false>},
    {"heartbeat_create", setHeartbeatCreate},
    {"heartbeat_table", setHeartbeatTable},
    {"lock_pileup_action", setLockPileupAction},
    {"lock_pileup_grace", setClusterDuration<&C::lock_pileup_grace, true>},
    {"lock_waiters_warn", setClusterInt<&C::lock_waiters_warn, 1, kMaxCount>},
    {"max_failovers_per_hour", setClusterInt<&C::max_failovers_per_hour, 1, kMaxFailoversPerHour>},
    {"max_lag_on_failover", setMaxLag},
    {"monitor_dbname", setText<&C::monitor_dbname, C>},
    {"monitor_password", setText<&C::monitor_password, C>},
    {"monitor_user", setText<&C::monitor_user, C>},
    {"nodes", setNodes},
    {"oldest_lock_wait_warn", setClusterDuration<&C::oldest_lock_wait_warn, false>},
    {"probe_interval", setProbe<&C::probe_interval>},
    {"probe_timeout", setProbe<&C::probe_timeout>},
    {"profile", setProfile},
    {"query_stall_timeout", setClusterDuration<&C::query_stall_timeout, false>},
    {"search_primary_timeout", setClusterDuration<&C::search_primary_timeout, false>},
    {"state_file", setText<&C::state_file, C>},
    {"unresponsive_after", setClusterDuration<&C::unresponsive_after, false>},
    {"write_stuck_after", setClusterDuration<&C::write_stuck_after, false>},
};

// The profile's thresholds go into every threshold the section has not set itself (a key
// counts as set once its line was read, even with a bad value: that error is reported and
// the profile must not hide it). Called after `profile = ...`, so the order of the lines
// does not matter: a threshold read later simply overwrites what the profile put there.
void applyProfile(ParseContext& ctx, ClusterEntry& cluster) {
  const DetectionProfile* profile = findProfile(cluster.profile);
  if (profile == nullptr) {
    return;
  }
  const auto unset = [&](std::string_view key) {
    return ctx.config.sources.count("cluster." + cluster.name + "." + std::string(key)) == 0;
  };
  if (unset("dead_after")) {
    cluster.dead_after = profile->dead_after;
  }
  if (unset("unresponsive_after")) {
    cluster.unresponsive_after = profile->unresponsive_after;
  }
  if (unset("write_stuck_after")) {
    cluster.write_stuck_after = profile->write_stuck_after;
  }
}

}  // namespace

std::vector<std::string_view> clusterKeys() {
  std::vector<std::string_view> names;
  for (const ClusterKey& k : kClusterKeys) {
    names.push_back(k.name);
  }
  return names;
}

void applyClusterLine(ParseContext& ctx, ClusterEntry& cluster, std::string_view key,
                      std::string_view value) {
  const std::string name = toLower(key);
  const auto* spec = std::find_if(std::begin(kClusterKeys), std::end(kClusterKeys),
                                  [&](const ClusterKey& k) { return k.name == name; });
  if (spec == std::end(kClusterKeys)) {
    std::string message =
        "unknown key '" + std::string(key) + "' in [cluster." + cluster.name + "], ignored";
    if (const auto hint = closestMatch(key, clusterKeys()); !hint.empty()) {
      message += " (did you mean '" + std::string(hint) + "'?)";
    }
    ctx.warning(std::move(message));
    return;
  }
  const std::string source = "cluster." + cluster.name + "." + name;
  ctx.noteSource(source, name);
  if (auto ok = spec->set(cluster, value); !ok) {
    ctx.error("cluster " + cluster.name + ": " + name + ": invalid value '" +
              std::string(trim(value)) + "': " + ok.error().message);
    ctx.failed.insert(source);
    return;
  }
  ctx.failed.erase(source);
  if (name == "profile") {
    applyProfile(ctx, cluster);
  }
}

}  // namespace pgpivot::config
