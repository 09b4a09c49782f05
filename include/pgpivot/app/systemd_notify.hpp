// Readiness notification for systemd (Type=notify services), after sd_notify(3).
//
// Each call sends one state change to the service manager over $NOTIFY_SOCKET. They do
// nothing when pgpivot was built without libsystemd (PGPIVOT_WITH_SYSTEMD off) or when
// NOTIFY_SOCKET is unset, i.e. whenever pgpivot is not a systemd Type=notify service, so
// callers never need to check. Call them from the main thread only.
#pragma once

namespace pgpivot::app {

// Start-up is complete: the listeners are bound and pgpivot accepts clients. Also ends a
// reload started with notifyReloading().
void notifyReady();

// A configuration reload (SIGHUP) begins; follow with notifyReady() when it is done,
// whether the new configuration was applied or refused.
void notifyReloading();

// Shutdown (SIGINT or SIGTERM) begins.
void notifyStopping();

}  // namespace pgpivot::app
