#include "pgpivot/app/client_moves.hpp"

namespace pgpivot::app {

ClientMovePlan planClientMoves(std::size_t me, std::span<const double> load, double spill_above) {
  if (me >= load.size() || spill_above <= 0.0 || load[me] <= spill_above) {
    return {};
  }
  std::size_t lightest = me;
  for (std::size_t peer = 0; peer < load.size(); ++peer) {
    if (peer != me && (lightest == me || load[peer] < load[lightest])) {
      lightest = peer;
    }
  }
  if (lightest == me || load[lightest] >= spill_above / 2) {
    return {};
  }
  return {.to = static_cast<int>(lightest),
          .share = (load[me] - load[lightest]) / (2.0 * load[me])};
}

}  // namespace pgpivot::app
