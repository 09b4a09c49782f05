// MD5 password authentication against values produced by PostgreSQL 15 itself
// (pg_authid.rolpassword) and by an independent MD5 implementation.
#include "pgpivot/auth/md5.hpp"

#include <catch2/catch.hpp>

using namespace pgpivot::auth;

TEST_CASE("md5Hex matches the standard MD5 test vectors", "[unit][auth]") {
  CHECK(md5Hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5Hex("foobar") == "3858f62230ac3c915f300c664312c63f");
  CHECK(md5Hex("The quick brown fox jumps over the lazy dog") ==
        "9e107d9d372bb6826bd81d3542a419d6");
}

TEST_CASE("md5PasswordHash produces what PostgreSQL stores in pg_authid", "[unit][auth]") {
  // SET password_encryption = 'md5'; CREATE ROLE pgpivot_md5 PASSWORD 'secret';
  CHECK(md5PasswordHash("secret", "pgpivot_md5") == "md57c2b0036225b2bb23a93d2fcec38fcff");
  // password is hashed with the user name appended: md5("foo" + "bar") = md5("foobar").
  CHECK(md5PasswordHash("foo", "bar") == "md5" + md5Hex("foobar"));
}

TEST_CASE("isMd5Secret accepts only md5 plus 32 lower-case hex digits", "[unit][auth]") {
  CHECK(isMd5Secret("md57c2b0036225b2bb23a93d2fcec38fcff"));
  CHECK_FALSE(isMd5Secret("md57C2B0036225B2BB23A93D2FCEC38FCFF"));
  CHECK_FALSE(isMd5Secret("md57c2b0036225b2bb23a93d2fcec38fcf"));
  CHECK_FALSE(isMd5Secret("md57c2b0036225b2bb23a93d2fcec38fcffa"));
  CHECK_FALSE(isMd5Secret("md57c2b0036225b2bb23a93d2fcec38fcfg"));
  CHECK_FALSE(isMd5Secret("xyz7c2b0036225b2bb23a93d2fcec38fcff"));
  CHECK_FALSE(isMd5Secret(""));
}

TEST_CASE("md5Response salts the stored hash the way libpq does", "[unit][auth]") {
  const Md5Salt salt{0x01, 0x02, 0x03, 0x04};
  const std::string expected = "md5672679e964d5d0579ad490605bf2b89a";
  SECTION("from the plain password") {
    CHECK(md5Response("secret", "pgpivot_md5", salt) == expected);
  }
  SECTION("from the stored md5 secret, whatever the user name") {
    CHECK(md5Response("md57c2b0036225b2bb23a93d2fcec38fcff", "pgpivot_md5", salt) == expected);
    CHECK(md5Response("md57c2b0036225b2bb23a93d2fcec38fcff", "ignored", salt) == expected);
  }
  SECTION("with high salt bytes, which must not be sign-extended") {
    CHECK(md5Response("foo", "bar", Md5Salt{0xde, 0xad, 0xbe, 0xef}) ==
          "md52b78b77e45561717c37da3bf5624c95b");
  }
}

TEST_CASE("md5Verify accepts the right response and rejects others", "[unit][auth]") {
  const Md5Salt salt{0x9a, 0x00, 0x7f, 0xff};
  const std::string good = md5Response("secret", "alice", salt);
  CHECK(md5Verify("secret", "alice", salt, good));
  CHECK(md5Verify(md5PasswordHash("secret", "alice"), "alice", salt, good));
  CHECK_FALSE(md5Verify("secreT", "alice", salt, good));
  CHECK_FALSE(md5Verify("secret", "bob", salt, good));
  CHECK_FALSE(md5Verify("secret", "alice", Md5Salt{0x9a, 0x00, 0x7f, 0xfe}, good));
  CHECK_FALSE(md5Verify("secret", "alice", salt, good.substr(0, good.size() - 1)));
  CHECK_FALSE(md5Verify("secret", "alice", salt, good + "0"));
  CHECK_FALSE(md5Verify("secret", "alice", salt, ""));
}
