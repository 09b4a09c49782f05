// Ownership of libpq objects for the places that use libpq (auth_query, the health
// monitor, --check): unique_ptrs that call PQfinish/PQclear, and libpq's messages without
// their trailing newlines. Never used on a worker loop.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>

namespace pgpivot::net {

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

inline std::string trimmedMessage(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace pgpivot::net
