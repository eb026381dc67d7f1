// ServiceNotifier: tells systemd what the responder is doing (sd_notify(3), for a Type=notify unit), and
// TakeListenSockets: the listening sockets systemd passes with socket activation (sd_listen_fds(3)).
//
// Outside systemd (no NOTIFY_SOCKET in the environment) every notification is a cheap no-op, so the same binary
// runs under systemd, in tests and by hand. The watchdog interval comes from WATCHDOG_USEC (WatchdogSec= in the
// unit); the control loop pings only when every worker's event loop has proven itself alive (server.cpp).
// Thread safety: every method may be called from any thread; sd_notify keeps no state between calls.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "common/result.h"
#include "responder/libevent.h"

namespace ocsp::responder {

class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET and WATCHDOG_USEC (and WATCHDOG_PID, through sd_watchdog_enabled).
  static ServiceNotifier FromEnvironment();
  // A notifier that never sends anything (tests, --check-config).
  ServiceNotifier() = default;

  // READY=1: the sockets accept and answers can be given. Also sent after a reload has finished.
  void Ready() const;
  // RELOADING=1: systemctl reload shows the unit as reloading until the next Ready().
  void Reloading() const;
  // STOPPING=1: draining; systemd stops counting the watchdog as a liveness proof from here.
  void Stopping() const;
  // STATUS=...: one line shown by systemctl status.
  void Status(std::string_view text) const;
  // WATCHDOG=1: call only when the process has proven it is alive, at most every interval/2.
  void WatchdogPing() const;

  // How often systemd expects WATCHDOG=1, or nullopt when the unit has no watchdog.
  [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }
  [[nodiscard]] bool enabled() const { return enabled_; }

 private:
  void Send(const char* state) const;

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_;
};

// Sockets passed by systemd socket activation (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES). With one socket it is the
// OCSP listener; with two, the one named "metrics" (FileDescriptorName= in the .socket unit) is the metrics
// listener and the other the OCSP one. Every socket must be a listening TCP socket. No LISTEN_FDS: both empty.
// Call once, from the main thread, before any other thread starts (it unsets the LISTEN_* variables).
struct ListenSockets {
  Socket ocsp;     // get() < 0: bind the configured address
  Socket metrics;  // get() < 0: bind the configured metrics address (if any)
};
Result<ListenSockets> TakeListenSockets();

}  // namespace ocsp::responder
