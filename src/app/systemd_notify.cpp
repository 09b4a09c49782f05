#include "pgpivot/app/systemd_notify.hpp"

#ifdef PGPIVOT_WITH_SYSTEMD
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#endif

namespace pgpivot::app {

#ifdef PGPIVOT_WITH_SYSTEMD

namespace {

// sd_notify() itself returns 0 without doing anything when NOTIFY_SOCKET is unset. A
// failure to reach the service manager is not worth stopping for: systemd then times the
// start-up out and says so in the journal.
void send(const char* state) {
  (void)sd_notify(0, state);
}

}  // namespace

void notifyReady() {
  send("READY=1\nSTATUS=accepting connections");
}

void notifyReloading() {
  // systemd 253 and later want the CLOCK_MONOTONIC time of the reload request with
  // RELOADING=1; older versions ignore the extra field.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000U +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1000U;
  char state[96];
  std::snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                static_cast<unsigned long long>(usec));
  send(state);
}

void notifyStopping() {
  send("STOPPING=1\nSTATUS=shutting down");
}

#else

void notifyReady() {}
void notifyReloading() {}
void notifyStopping() {}

#endif

}  // namespace pgpivot::app
