// Prometheus metrics of the responder, named ocsp_<module>_<thing>_<unit> (docs/metrics.md).
//
// Every label combination is created up front, so recording a request is an array index and an atomic add,
// never a map lookup or an allocation.
// Thread safety: Observe* may be called from any thread; Serialize from any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace ocsp::metrics {

enum class Method { kGet, kPost, kOther };
inline constexpr std::size_t kMethodCount = 3;

// What a request ended as: a certificate status, an OCSP exception status, or an HTTP-level refusal.
enum class Outcome { kGood, kRevoked, kUnknown, kUnauthorized, kMalformed, kTryLater, kInternalError, kRefused };
inline constexpr std::size_t kOutcomeCount = 8;

std::string_view ToString(Method method);
std::string_view ToString(Outcome outcome);

class ResponderMetrics {
 public:
  explicit ResponderMetrics(std::string_view version);

  void ObserveRequest(Method method, Outcome outcome, double seconds);
  void ObserveSignature(double seconds);

  // The whole registry in the Prometheus text exposition format.
  [[nodiscard]] std::string Serialize() const;
  [[nodiscard]] prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::array<std::array<prometheus::Counter*, kOutcomeCount>, kMethodCount> requests_{};
  prometheus::Histogram* request_duration_ = nullptr;
  prometheus::Histogram* signing_duration_ = nullptr;
};

}  // namespace ocsp::metrics
