// Completion: the one-shot callback every backend call completes, including the
// move-only captures the metrics provider needs (a MetricsReply inside a Completion).
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <string>

#include "pgpivot/admin/backend.hpp"

namespace pgpivot::admin {
namespace {

TEST_CASE("a completion delivers once, later calls do nothing", "[unit][admin]") {
  int calls = 0;
  int last = 0;
  Completion<int> done([&](Result<int> r) {
    ++calls;
    last = r.value_or(-1);
  });
  CHECK(done.pending());
  done(7);
  done(8);
  CHECK_FALSE(done.pending());
  CHECK(calls == 1);
  CHECK(last == 7);
}

TEST_CASE("a dropped completion answers XX000 exactly once", "[unit][admin]") {
  std::optional<Result<int>> got;
  int calls = 0;
  {
    Completion<int> done([&](Result<int> r) {
      ++calls;
      got = std::move(r);
    });
    Completion<int> moved = std::move(done);  // the moved-from one must stay silent
    CHECK_FALSE(done.pending());
  }
  CHECK(calls == 1);
  REQUIRE(got.has_value());
  REQUIRE_FALSE(got->has_value());
  CHECK(got->error().sqlstate == "XX000");
}

TEST_CASE("assigning over a pending completion drops the old one", "[unit][admin]") {
  int dropped = 0;
  int delivered = 0;
  Completion<int> a([&](Result<int> r) { dropped += r.has_value() ? 0 : 1; });
  Completion<int> b([&](Result<int> r) { delivered += r.has_value() ? 1 : 0; });
  a = std::move(b);
  CHECK(dropped == 1);
  a(1);
  CHECK(delivered == 1);
}

TEST_CASE("a completion may capture move-only state", "[unit][admin]") {
  auto owned = std::make_unique<std::string>("kept");
  std::string seen;
  Completion<void> done([p = std::move(owned), &seen](Result<void> r) {
    REQUIRE(r.has_value());
    seen = *p;
  });
  done(Result<void>{});
  CHECK(seen == "kept");
}

}  // namespace
}  // namespace pgpivot::admin
