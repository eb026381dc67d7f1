// The HTTP front end: libevent workers that answer OCSP over HTTP (RFC 6960 Appendix A), and the control
// loop (signals, reload, /metrics).
//
// Each worker thread owns an event_base, an HttpFrontEnd (http1.h) and its own SO_REUSEPORT socket on
// every OCSP listen address, a read transaction it resets and renews per request, its rate-limit buckets
// and a shared_ptr to the current Snapshot (configuration, issuers, signers, registry). A worker routes
// (path prefix, /healthz, /readyz), admits (verifier registry, rate limit), decodes, asks the Snapshot's
// StatusAuthority, answers If-None-Match with 304 before signing, and serves the stored response when one
// states exactly what the store holds now; otherwise it hands signing to the SigningPool, and the signed bytes
// come back through the worker's completion queue and are sent from its own loop (and kept in the store
// through the ResponseWriter). A request's nonce is ignored or honoured within a per-worker signing budget.
// Each worker records into its own metrics::WorkerMetrics; /metrics merges them when scraped.
// The main thread runs the control loop: SIGINT/SIGTERM stop, SIGHUP reloads (snapshot.h says what), SIGUSR1
// reopens the access log, /metrics, and the systemd watchdog. A reload reaches every worker through that
// worker's own loop: no lock on the request path.
//
// Service life (docs/operations.md): SIGHUP reloads (RELOADING=1, the next Snapshot, READY=1) without closing a
// connection; SIGTERM/SIGINT stop accepting, let in-flight requests finish for at most
// responder.drain_timeout_seconds (STOPPING=1), then leave. With a watchdog (WatchdogSec=), each worker's loop
// stamps a heartbeat from a timer, and the control loop sends WATCHDOG=1 only while every heartbeat is recent:
// one stuck event loop is enough for systemd to restart the service. With socket activation every worker
// accepts on its own duplicate of the one passed OCSP socket (the kernel hands each connection to one of them).
// With several workers, their front ends share a ConnectionBalancer: a worker holding clearly more connections
// than another hands it idle ones, however the kernel spread them.
// Thread safety: Start and Run from the main thread; RequestStop and RequestReload from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "responder/access_log.h"
#include "responder/authority.h"
#include "responder/connection_balancer.h"
#include "responder/response_writer.h"
#include "responder/service_notify.h"
#include "responder/connections.h"
#include "responder/signing_pool.h"
#include "responder/snapshot.h"
#include "store/store.h"

namespace ocsp::responder {

struct ServerDependencies {
  std::shared_ptr<const Snapshot> snapshot;  // the one to start with; SIGHUP builds the next from its source
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

// The most workers a configuration may ask for (config: responder.workers).
inline constexpr unsigned kMaxWorkers = 256;

// Refusals and closes the front end counted (relaxed atomics; for logs and the metrics module).
struct FrontEndCounters {
  std::atomic<std::uint64_t> forbidden_unregistered{0};  // HTTP 403: address in no verifier's networks
  std::atomic<std::uint64_t> forbidden_not_yet_open{0};  // HTTP 403: before the verifier's access_from
  std::atomic<std::uint64_t> rate_limited{0};            // tryLater or HTTP 429
  std::atomic<std::uint64_t> wrong_environment{0};       // unauthorized: a test verifier asking production
  std::atomic<std::uint64_t> not_modified{0};            // HTTP 304
  std::atomic<std::uint64_t> reloads{0};
  std::atomic<std::uint64_t> failed_reloads{0};
  ConnectionCounters connections;
  std::array<std::atomic<std::uint64_t>, kMaxWorkers> open_by_worker{};  // each written by its worker only
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
  void RequestReload();  // as SIGHUP

  // The bound address of each configured listen address (port 0 resolved), in configuration order.
  [[nodiscard]] const std::vector<config::ListenAddress>& ocsp_addresses() const { return ocsp_addresses_; }
  [[nodiscard]] std::uint16_t ocsp_port() const { return ocsp_addresses_.front().port; }
  [[nodiscard]] std::uint16_t metrics_port() const { return metrics_port_; }
  [[nodiscard]] const FrontEndCounters& counters() const { return *counters_; }
  // The newest snapshot handed to the workers (any thread; a short lock, never on the request path): the
  // presigner signs with it.
  [[nodiscard]] std::shared_ptr<const Snapshot> CurrentSnapshot() const;

 private:
  explicit Server(ServerDependencies dependencies, const config::Config& config);
  void Reload();
  void ReloadSwitched();
  void OnWatchdogTick();

  ServerDependencies dependencies_;
  config::Config config_;  // as at start: the restart-only keys
  std::shared_ptr<FrontEndCounters> counters_;  // shared with the metrics collector
  std::unique_ptr<ConnectionLimits> limits_;
  std::unique_ptr<ConnectionBalancer> balancer_;  // outlives the workers, whose front ends hold it
  std::vector<std::unique_ptr<Worker>> workers_;
  struct Control;
  std::unique_ptr<Control> control_;
  std::vector<config::ListenAddress> ocsp_addresses_;
  std::uint16_t metrics_port_ = 0;
  const ServiceNotifier* notifier_ = nullptr;
  mutable std::mutex published_mutex_;
  std::shared_ptr<const Snapshot> published_;  // CurrentSnapshot()
  std::chrono::seconds drain_timeout_{0};
};

}  // namespace ocsp::responder
