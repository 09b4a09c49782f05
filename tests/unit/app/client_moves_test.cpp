// Where transaction-mode clients move, from the workers' loop load (client_moves.hpp).
#include "pgpivot/app/client_moves.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <vector>

namespace pgpivot::app {
namespace {

TEST_CASE("two lightly loaded workers pack into the lower-numbered one", "[app][placement]") {
  const std::array<double, 2> busy{0.20, 0.15};
  const ClientMovePlan plan = planClientMoves(1, busy);
  CHECK(plan.to == 0);
  CHECK(plan.share == 1.0);
  // Worker 0 never packs upwards: load gathers on it.
  CHECK(planClientMoves(0, busy).to == -1);
}

TEST_CASE("a pack goes to the lowest-numbered worker that has room", "[app][placement]") {
  const std::array<double, 4> busy{0.45, 0.05, 0.10, 0.20};
  CHECK(planClientMoves(3, busy).to == 1);
  CHECK(planClientMoves(2, busy).to == 1);
  CHECK(planClientMoves(1, busy).to == -1);  // 0.45 + 0.05 is not below the pack line
}

TEST_CASE("workers that together need more than half a core stay apart", "[app][placement]") {
  const std::array<double, 2> busy{0.30, 0.25};
  CHECK(planClientMoves(1, busy).to == -1);
  CHECK(planClientMoves(0, busy).to == -1);
}

TEST_CASE("a worker near a full core spills to the first one with room", "[app][placement]") {
  const std::array<double, 3> busy{0.95, 0.60, 0.10};
  const ClientMovePlan plan = planClientMoves(0, busy);
  CHECK(plan.to == 2);
  CHECK(plan.share == Approx((0.95 - 0.10) / (2 * 0.95)));
  // Nobody with room: nothing moves.
  const std::array<double, 2> full{0.95, 0.85};
  CHECK(planClientMoves(0, full).to == -1);
  CHECK(planClientMoves(1, full).to == -1);
}

TEST_CASE("pack and spill do not undo each other", "[app][placement]") {
  // After a pack the receiving worker carries the sum, below the spill line; after a spill
  // of half the difference the two carry what the one did, above the pack line.
  for (double first = 0.0; first < kPackBelow; first += 0.05) {
    for (double second = 0.0; first + second < kPackBelow; second += 0.05) {
      const std::array<double, 2> packed{first + second, 0.0};
      CHECK(planClientMoves(0, packed).to == -1);
    }
  }
  for (double load = kSpillAbove + 0.01; load <= 1.0; load += 0.05) {
    const std::array<double, 2> busy{load, 0.0};
    const ClientMovePlan plan = planClientMoves(0, busy);
    REQUIRE(plan.to == 1);
    const std::array<double, 2> spilled{load * (1 - plan.share), load * plan.share};
    CHECK(planClientMoves(1, spilled).to == -1);
    CHECK(planClientMoves(0, spilled).to == -1);
  }
}

TEST_CASE("a single worker or an index out of range moves nothing", "[app][placement]") {
  const std::array<double, 1> one{0.99};
  CHECK(planClientMoves(0, one).to == -1);
  CHECK(planClientMoves(3, one).to == -1);
  CHECK(planClientMoves(0, std::vector<double>{}).to == -1);
}

}  // namespace
}  // namespace pgpivot::app
