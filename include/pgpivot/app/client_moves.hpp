// Which worker a transaction-mode client should move to, from how much of a core each
// worker used over the last load window (src/app/client_placement.cpp moves them).
//
// New clients are spread evenly by count, but clients do not weigh alike: a few busy ones
// can land on one worker and saturate its thread while another idles. A client that keeps
// a server between transactions (session mode) stays where it landed; a transaction-mode
// client holds nothing of its worker between two transactions, so it can move then.
//
// A worker whose thread used more than `spill_above` of one core hands part of its clients
// to the least loaded worker, if that one used less than half of it: half the difference,
// which evens the two out if clients weigh alike. Afterwards both carry more than half the
// line, so neither has room for the other's clients and nothing moves back.
//
// Load is the thread's CPU time, not the time its loop spent outside epoll_wait: on a
// machine whose cores are shared with PostgreSQL and the application, a thread preempted
// in the middle of a callback looks busy without needing more CPU, and moving its clients
// to another thread would not help it.
#pragma once

#include <cstddef>
#include <span>

namespace pgpivot::app {

struct ClientMovePlan {
  int to = -1;         // the worker to move clients to; -1: none move
  double share = 0.0;  // the part of this worker's settled clients to move
};

// `load[i]`: worker i's CPU over its last window, in cores; `me`: the deciding worker;
// `spill_above`: worker_spill_load as a fraction of a core (0: never move).
[[nodiscard]] ClientMovePlan planClientMoves(std::size_t me, std::span<const double> load,
                                             double spill_above);

}  // namespace pgpivot::app
