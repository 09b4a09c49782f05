// Where transaction-mode clients move, from the workers' CPU load (client_moves.hpp).
#include "pgpivot/app/client_moves.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <vector>

namespace pgpivot::app {
namespace {

constexpr double kLine = 0.8;

TEST_CASE("a worker above the line spills half the difference to the lightest one",
          "[app][placement]") {
  const std::array<double, 3> load{0.95, 0.30, 0.10};
  const ClientMovePlan plan = planClientMoves(0, load, kLine);
  CHECK(plan.to == 2);
  CHECK(plan.share == Approx((0.95 - 0.10) / (2 * 0.95)));
  // The others are below the line: they keep their clients.
  CHECK(planClientMoves(1, load, kLine).to == -1);
  CHECK(planClientMoves(2, load, kLine).to == -1);
}

TEST_CASE("nothing moves when no worker has room below half the line", "[app][placement]") {
  const std::array<double, 2> busy{0.95, 0.45};
  CHECK(planClientMoves(0, busy, kLine).to == -1);
  const std::array<double, 2> both_full{0.95, 0.85};
  CHECK(planClientMoves(0, both_full, kLine).to == -1);
  CHECK(planClientMoves(1, both_full, kLine).to == -1);
}

TEST_CASE("light loads stay where they are, however uneven", "[app][placement]") {
  const std::array<double, 4> load{0.70, 0.0, 0.0, 0.0};
  for (std::size_t me = 0; me < load.size(); ++me) {
    CHECK(planClientMoves(me, load, kLine).to == -1);
  }
}

TEST_CASE("after a spill nothing moves back", "[app][placement]") {
  for (const double line : {0.02, 0.5, 0.8, 1.0}) {
    for (double mine = line + 0.01; mine <= 1.0; mine += 0.05) {
      for (double theirs = 0.0; theirs < line / 2; theirs += line / 10) {
        CAPTURE(line, mine, theirs);
        const std::array<double, 2> before{mine, theirs};
        const ClientMovePlan plan = planClientMoves(0, before, line);
        REQUIRE(plan.to == 1);
        const double moved = mine * plan.share;
        const std::array<double, 2> after{mine - moved, theirs + moved};
        CHECK(after[0] == Approx(after[1]));
        CHECK(planClientMoves(1, after, line).to == -1);
        CHECK(planClientMoves(0, after, line).to == -1);
      }
    }
  }
}

TEST_CASE("worker_spill_load 0, a single worker or an index out of range move nothing",
          "[app][placement]") {
  const std::array<double, 2> load{1.0, 0.0};
  CHECK(planClientMoves(0, load, 0.0).to == -1);
  const std::array<double, 1> one{0.99};
  CHECK(planClientMoves(0, one, kLine).to == -1);
  CHECK(planClientMoves(3, one, kLine).to == -1);
  CHECK(planClientMoves(0, std::vector<double>{}, kLine).to == -1);
}

}  // namespace
}  // namespace pgpivot::app
