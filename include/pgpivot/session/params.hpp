// The session parameters pgpivot carries from a client to whichever server connection it
// gets: the ones PostgreSQL reports with ParameterStatus (so pgpivot always knows a
// server's current value) and that a client may set at start-up. PgBouncer tracks the
// same set. Not responsible for sending anything: the session code builds the SETs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgpivot::session {

// Parameter names compare case-insensitively in PostgreSQL; we keep the canonical
// spelling that ParameterStatus uses.
std::optional<std::string_view> canonicalTrackedParam(std::string_view name);

// name (canonical) -> value.
using ParamMap = std::map<std::string, std::string, std::less<>>;

// The SET statements that make a server whose reported parameters are `server` match what
// the client asked for in `wanted`. Empty when they already match. Values are quoted as
// literals, so a client cannot smuggle SQL through a startup parameter.
std::string buildSetQuery(const ParamMap& wanted, const ParamMap& server);

// SQL string literal with quotes doubled (standard_conforming_strings-safe via E'' not
// needed: we never emit backslashes specially).
std::string quoteLiteral(std::string_view value);

}  // namespace pgpivot::session
