#include "responder/front_end_metrics.h"

#include <string>

#include "metrics/families.h"
#include "responder/server.h"

namespace ocsp::responder {
namespace {

double Value(const std::atomic<std::uint64_t>& counter) {
  return static_cast<double>(counter.load(std::memory_order_relaxed));
}

}  // namespace

FrontEndCollector::FrontEndCollector(std::shared_ptr<const FrontEndCounters> counters, unsigned workers)
    : counters_(std::move(counters)), workers_(std::min<unsigned>(workers, kMaxWorkers)) {}

std::vector<prometheus::MetricFamily> FrontEndCollector::Collect() const {
  using prometheus::MetricType;
  const FrontEndCounters& c = *counters_;
  metrics::Families f;
  auto& open = f.Add("ocsp_responder_connections_open", "OCSP connections a worker holds now", MetricType::Gauge);
  for (unsigned i = 0; i < workers_; ++i) metrics::Gauge(open, {{"worker", std::to_string(i)}}, Value(c.open_by_worker[i]));
  metrics::Counter(f.Add("ocsp_responder_connections_refused_total",
                         "New connections answered 503 and closed at the overall or per-address connection cap",
                         MetricType::Counter),
                   {}, Value(c.connections.refused_over_cap));
  metrics::Counter(f.Add("ocsp_responder_connections_evicted_total",
                         "Idle keep-alive connections closed to admit a new one at the overall cap",
                         MetricType::Counter),
                   {}, Value(c.connections.evicted_idle));
  metrics::Counter(f.Add("ocsp_responder_header_timeouts_total",
                         "Connections answered 408 because a request took longer than header_timeout_seconds",
                         MetricType::Counter),
                   {}, Value(c.connections.header_timeouts));
  metrics::Counter(f.Add("ocsp_responder_accept_pauses_total",
                         "Times accepting paused for 100 ms because no descriptor was left", MetricType::Counter),
                   {}, Value(c.connections.accept_pauses));
  metrics::Counter(f.Add("ocsp_responder_connections_rebalanced_total",
                         "Idle connections a worker handed to another: to even out the shares, or to the CPU their packets arrive on", MetricType::Counter),
                   {}, Value(c.connections.rebalanced));
  auto& access = f.Add("ocsp_responder_access_refusals_total",
                       "Requests the verifier registry refused or limited, by reason", MetricType::Counter);
  metrics::Counter(access, {{"reason", "unregistered"}}, Value(c.forbidden_unregistered));
  metrics::Counter(access, {{"reason", "not_yet_open"}}, Value(c.forbidden_not_yet_open));
  metrics::Counter(access, {{"reason", "rate_limited"}}, Value(c.rate_limited));
  metrics::Counter(access, {{"reason", "wrong_environment"}}, Value(c.wrong_environment));
  metrics::Counter(f.Add("ocsp_responder_not_modified_total", "Requests answered 304 (If-None-Match)",
                         MetricType::Counter),
                   {}, Value(c.not_modified));
  auto& reloads = f.Add("ocsp_responder_reloads_total", "Reloads (SIGHUP) by result", MetricType::Counter);
  metrics::Counter(reloads, {{"result", "ok"}}, Value(c.reloads));
  metrics::Counter(reloads, {{"result", "failed"}}, Value(c.failed_reloads));
  return f.Take();
}

}  // namespace ocsp::responder
