// The HTTP front end: libevent workers that answer OCSP over HTTP (RFC 6960 Appendix A), and the control
// loop (signals, reload, /metrics).
//
// Each worker thread owns an event_base, an evhttp, a ConnectionGuard and its own SO_REUSEPORT socket on
// every OCSP listen address, a read transaction it resets and renews per request, its rate-limit buckets
// and a shared_ptr to the current Snapshot (configuration, issuers, signers, registry). A worker routes
// (path prefix, /healthz, /readyz), admits (verifier registry, rate limit), decodes, asks the Snapshot's
// StatusAuthority, answers If-None-Match with 304 before signing, and hands signing to the SigningPool; the
// signed bytes come back through the worker's completion queue and are sent from its own loop.
// The main thread runs the control loop: SIGINT/SIGTERM stop, SIGHUP reloads (snapshot.h says what), and
// /metrics. A reload reaches every worker through that worker's own loop: no lock on the request path.
// Thread safety: Start and Run from the main thread; RequestStop and RequestReload from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
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
};

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
};

class Worker;

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(const config::Config& config, ServerDependencies dependencies);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until SIGINT, SIGTERM or RequestStop, then lets pending signatures finish and their replies go out.
  void Run();
  void RequestStop();
  void RequestReload();  // as SIGHUP

  // The bound address of each configured listen address (port 0 resolved), in configuration order.
  [[nodiscard]] const std::vector<config::ListenAddress>& ocsp_addresses() const { return ocsp_addresses_; }
  [[nodiscard]] std::uint16_t ocsp_port() const { return ocsp_addresses_.front().port; }
  [[nodiscard]] std::uint16_t metrics_port() const { return metrics_port_; }
  [[nodiscard]] const FrontEndCounters& counters() const { return *counters_; }

 private:
  explicit Server(ServerDependencies dependencies, const config::Config& config);
  void Reload();
  void ReloadSwitched();

  ServerDependencies dependencies_;
  config::Config config_;  // as at start: the restart-only keys
  std::unique_ptr<FrontEndCounters> counters_;
  std::unique_ptr<ConnectionLimits> limits_;
  std::vector<std::unique_ptr<Worker>> workers_;
  struct Control;
  std::unique_ptr<Control> control_;
  std::vector<config::ListenAddress> ocsp_addresses_;
  std::uint16_t metrics_port_ = 0;
};

}  // namespace ocsp::responder
