// The HTTP front end: libevent workers that answer OCSP over HTTP (RFC 6960 Appendix A), and the metrics
// listener.
//
// Each worker thread owns an event_base, an evhttp and its own SO_REUSEPORT socket on the OCSP address, and a
// read transaction it resets and renews per request. A worker decodes, asks the StatusAuthority, and serves
// the stored response when one states exactly what the store holds now; otherwise it hands signing to the
// SigningPool, and the signed bytes come back through the worker's completion queue and are sent from its own
// loop (and kept in the store through the ResponseWriter). A request's nonce is ignored or honoured within a
// per-worker signing budget, as configured. The main thread runs a control loop: signals (SIGUSR1 reopens the access log), /metrics
// and the systemd watchdog. Each worker records into its own metrics::WorkerMetrics; /metrics merges them when
// scraped.
//
// Service life (docs/operations.md): SIGHUP reloads (RELOADING=1, ReloadHook, READY=1) without closing a
// connection; SIGTERM/SIGINT stop accepting, let in-flight requests finish for at most
// responder.drain_timeout_seconds (STOPPING=1), then leave. With a watchdog (WatchdogSec=), each worker's loop
// stamps a heartbeat from a timer, and the control loop sends WATCHDOG=1 only while every heartbeat is recent:
// one stuck event loop is enough for systemd to restart the service. With socket activation every worker
// accepts on its own duplicate of the one passed OCSP socket (the kernel hands each connection to one of them).
// Thread safety: Start and Run from the main thread; RequestStop from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "responder/access_log.h"
#include "responder/authority.h"
#include "responder/response_writer.h"
#include "responder/service_notify.h"
#include "responder/signing_pool.h"
#include "store/store.h"

namespace ocsp::responder {

struct ServerDependencies {
  const StatusAuthority& authority;
  const store::Store& store;
  metrics::ResponderMetrics& metrics;
  SigningPool& signing_pool;
  const Clock& clock;
  // Keeps what is signed on demand (nullptr: nothing is kept, every answer is signed).
  ResponseWriter* writer = nullptr;
  AccessLog* access_log = nullptr;  // log.access_log; reopened on SIGUSR1
};

// What the service manager provides. Both parts are optional.
struct ServiceContext {
  const ServiceNotifier* notifier = nullptr;  // nullptr: no sd_notify and no watchdog
  ListenSockets sockets;                      // from socket activation; empty: bind the configured addresses
};

class Worker;

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(const config::Config& config, ServerDependencies dependencies,
                                               ServiceContext service = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until SIGINT, SIGTERM or RequestStop; then stops accepting and lets in-flight requests finish for at
  // most the configured drain timeout.
  void Run();
  void RequestStop();

  [[nodiscard]] std::uint16_t ocsp_port() const { return ocsp_port_; }
  [[nodiscard]] std::uint16_t metrics_port() const { return metrics_port_; }

 private:
  explicit Server(ServerDependencies dependencies);
  // The reload hook, called on the control loop's thread for SIGHUP between RELOADING=1 and READY=1: swap a
  // new configuration, verifiers and certificates into the workers here. An error keeps the running state.
  Result<void> ReloadHook();
  void OnReloadSignal();
  void OnWatchdogTick();

  ServerDependencies dependencies_;
  std::vector<std::unique_ptr<Worker>> workers_;
  struct Control;
  std::unique_ptr<Control> control_;
  std::uint16_t ocsp_port_ = 0;
  std::uint16_t metrics_port_ = 0;
  const ServiceNotifier* notifier_ = nullptr;
  std::chrono::seconds drain_timeout_{0};
};

}  // namespace ocsp::responder
