// The HTTP front end's connection and access counters as Prometheus series, read when /metrics is scraped:
// open connections per worker (how connection steering or the kernel's hash spread them), connections
// refused at the caps, idle connections evicted to make room, header timeouts, accept pauses, requests the
// verifier registry refused (by reason), 304 answers, and reloads.
// Thread safety: Collect from any thread; it only loads relaxed atomics that the workers store. It shares
// ownership of the counters, so a scrape after the server has stopped reads their last values.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <vector>

namespace ocsp::responder {

struct FrontEndCounters;

class FrontEndCollector : public prometheus::Collectable {
 public:
  FrontEndCollector(std::shared_ptr<const FrontEndCounters> counters, unsigned workers);
  [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::shared_ptr<const FrontEndCounters> counters_;
  unsigned workers_;
};

}  // namespace ocsp::responder
