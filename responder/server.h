// The HTTP front end: libevent workers that answer OCSP over HTTP (RFC 6960 Appendix A), and the metrics
// listener.
//
// Each worker thread owns an event_base, an evhttp and its own SO_REUSEPORT socket on the OCSP address, and a
// read transaction it resets and renews per request. A worker decodes, asks the StatusAuthority, and hands
// signing to the SigningPool; the signed bytes come back through the worker's completion queue and are sent
// from its own loop. The main thread runs a control loop: signals (SIGUSR1 reopens the access log) and /metrics.
// Each worker records into its own metrics::WorkerMetrics; /metrics merges them when scraped.
// Thread safety: Start and Run from the main thread; RequestStop from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "responder/access_log.h"
#include "responder/authority.h"
#include "responder/signing_pool.h"
#include "store/store.h"

namespace ocsp::responder {

struct ServerDependencies {
  const StatusAuthority& authority;
  const store::Store& store;
  metrics::ResponderMetrics& metrics;
  SigningPool& signing_pool;
  const Clock& clock;
  AccessLog* access_log = nullptr;  // log.access_log; reopened on SIGUSR1
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

  [[nodiscard]] std::uint16_t ocsp_port() const { return ocsp_port_; }
  [[nodiscard]] std::uint16_t metrics_port() const { return metrics_port_; }

 private:
  explicit Server(ServerDependencies dependencies);

  ServerDependencies dependencies_;
  std::vector<std::unique_ptr<Worker>> workers_;
  struct Control;
  std::unique_ptr<Control> control_;
  std::uint16_t ocsp_port_ = 0;
  std::uint16_t metrics_port_ = 0;
};

}  // namespace ocsp::responder
