// The `key=value key='quoted value' ...` strings of [databases] and [users], tokenized by
// PgBouncer's rules (loader.c, cstr_get_pair) so its files mean the same here:
//   - blanks separate pairs, and may surround '=';
//   - a value is a run of non-blanks, or a single-quoted string in which '' is one quote;
//   - backslashes are ordinary characters (unlike libpq, PgBouncer has no \' escape, and
//     passwords and connect_query values with backslashes must keep working);
//   - empty values (key= or key='') are an error.
// Only tokenizing lives here; what the keys mean is in sections.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pgpivot/core/result.hpp"

namespace pgpivot::config {

struct ConnParam {
  std::string key;
  std::string value;
};

[[nodiscard]] Result<std::vector<ConnParam>> tokenizeConnString(std::string_view text);

}  // namespace pgpivot::config
