// Which worker a transaction-mode client should move to, from how busy each worker's loop
// was over the last load window (src/app/client_placement.cpp moves them).
//
// New clients are spread evenly by count, and a client that keeps a server between
// transactions (session mode) stays where it landed. A transaction-mode client holds
// nothing of its worker between two transactions, so it can move then:
// - Pack: two workers that together keep less than kPackBelow of one core busy serve
//   their clients better as one. Each loop that sleeps must be woken, and on a machine
//   whose cores also run PostgreSQL and the application, every wakeup waits for a core
//   (bench/results/2026-11-29-stop14/README.md: one worker beat two by 18 % in TPS and
//   halved p99). The busier-numbered worker gives its clients to the lower-numbered one,
//   so load gathers on worker 0.
// - Spill: a worker busier than kSpillAbove gives part of its clients to the
//   lowest-numbered worker below kRoomBelow, so a load one thread cannot carry spreads.
// The thresholds leave a gap so that neither undoes the other: after a pack the busy
// worker carries less than kPackBelow (less than kSpillAbove); after a spill the two
// together still carry more than kSpillAbove (more than kPackBelow).
#pragma once

#include <cstddef>
#include <span>

namespace pgpivot::app {

// Fractions of one core: loop time not spent waiting for events, over the window.
inline constexpr double kPackBelow = 0.5;
inline constexpr double kSpillAbove = 0.8;
inline constexpr double kRoomBelow = 0.4;

struct ClientMovePlan {
  int to = -1;         // the worker to move clients to; -1: none move
  double share = 0.0;  // the part of this worker's movable clients to move (1: all)
};

// `busy[i]` is worker i's load over its last window; `me` is the deciding worker.
[[nodiscard]] ClientMovePlan planClientMoves(std::size_t me, std::span<const double> busy);

}  // namespace pgpivot::app
