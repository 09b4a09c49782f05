#include "pgpivot/app/client_moves.hpp"

namespace pgpivot::app {

ClientMovePlan planClientMoves(std::size_t me, std::span<const double> busy) {
  if (me >= busy.size()) {
    return {};
  }
  const double mine = busy[me];
  // Pack into the lowest-numbered worker that has room for all of it.
  for (std::size_t peer = 0; peer < me; ++peer) {
    if (mine + busy[peer] < kPackBelow) {
      return {.to = static_cast<int>(peer), .share = 1.0};
    }
  }
  if (mine <= kSpillAbove) {
    return {};
  }
  for (std::size_t peer = 0; peer < busy.size(); ++peer) {
    if (peer != me && busy[peer] < kRoomBelow) {
      // Half the difference evens the two out, if clients weigh alike.
      return {.to = static_cast<int>(peer), .share = (mine - busy[peer]) / (2.0 * mine)};
    }
  }
  return {};
}

}  // namespace pgpivot::app
