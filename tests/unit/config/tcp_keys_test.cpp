// PgBouncer's TCP keys are read, with PgBouncer's units, instead of being ignored.
#include <catch2/catch.hpp>

#include "pgpivot/config/parser.hpp"

namespace pgpivot::config {
namespace {

TEST_CASE(
    "tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt, tcp_user_timeout, tcp_defer_accept "
    "are read",
    "[unit][config]") {
  const auto r = parseConfig(
      "[pgbouncer]\nauth_type = trust\ntcp_keepalive = 0\ntcp_keepidle = 30\n"
      "tcp_keepintvl = 5\ntcp_keepcnt = 3\ntcp_user_timeout = 12000\ntcp_defer_accept = 0\n",
      "t.ini");
  INFO(r.report());
  REQUIRE(r.ok());
  CHECK(r.report().find("not supported") == std::string::npos);
  CHECK_FALSE(r.config.tcp_keepalive);
  CHECK(r.config.tcp_keepidle == 30);
  CHECK(r.config.tcp_keepintvl == 5);
  CHECK(r.config.tcp_keepcnt == 3);
  CHECK(r.config.tcp_user_timeout == 12000);
  CHECK_FALSE(r.config.tcp_defer_accept);
}

TEST_CASE(
    "the TCP keys default to PgBouncer's: keepalive and defer_accept on, the rest the system's",
    "[unit][config]") {
  const Config c;
  CHECK(c.tcp_keepalive);
  CHECK(c.tcp_keepidle == 0);
  CHECK(c.tcp_keepintvl == 0);
  CHECK(c.tcp_keepcnt == 0);
  CHECK(c.tcp_user_timeout == 0);
  CHECK(c.tcp_defer_accept);
}

TEST_CASE("a bad TCP value is an error naming the key", "[unit][config]") {
  const auto r = parseConfig("[pgpivot]\nauth_type = trust\ntcp_keepidle = soon\n", "t.ini");
  CHECK_FALSE(r.ok());
  CHECK(r.report().find("tcp_keepidle") != std::string::npos);
  CHECK(r.report().find("t.ini:3") != std::string::npos);
}

}  // namespace
}  // namespace pgpivot::config
