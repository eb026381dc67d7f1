#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

namespace ocsp::metrics {
namespace {

// 10 us to 1 s: a stored answer takes tens of microseconds, a signed one about a millisecond.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
          0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1.0};
}

}  // namespace

std::string_view ToString(Method method) {
  switch (method) {
    case Method::kGet: return "GET";
    case Method::kPost: return "POST";
    case Method::kOther: return "other";
  }
  return "other";
}

std::string_view ToString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kGood: return "good";
    case Outcome::kRevoked: return "revoked";
    case Outcome::kUnknown: return "unknown";
    case Outcome::kUnauthorized: return "unauthorized";
    case Outcome::kMalformed: return "malformed";
    case Outcome::kTryLater: return "tryLater";
    case Outcome::kInternalError: return "internalError";
    case Outcome::kRefused: return "refused";
  }
  return "refused";
}

ResponderMetrics::ResponderMetrics(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& requests = prometheus::BuildCounter()
                       .Name("ocsp_responder_requests_total")
                       .Help("OCSP requests answered, by HTTP method and outcome")
                       .Register(*registry_);
  for (std::size_t m = 0; m < kMethodCount; ++m) {
    for (std::size_t o = 0; o < kOutcomeCount; ++o) {
      requests_[m][o] = &requests.Add({{"method", std::string(ToString(static_cast<Method>(m)))},
                                       {"outcome", std::string(ToString(static_cast<Outcome>(o)))}});
    }
  }
  request_duration_ = &prometheus::BuildHistogram()
                           .Name("ocsp_responder_request_duration_seconds")
                           .Help("Time from a complete request to the response handed to the socket")
                           .Register(*registry_)
                           .Add({}, LatencyBuckets());
  signing_duration_ = &prometheus::BuildHistogram()
                           .Name("ocsp_signer_sign_duration_seconds")
                           .Help("Time to sign one OCSP response")
                           .Register(*registry_)
                           .Add({}, LatencyBuckets());
  prometheus::BuildGauge()
      .Name("ocsp_build_info")
      .Help("Build information; the value is always 1")
      .Register(*registry_)
      .Add({{"version", std::string(version)}})
      .Set(1);
}

void ResponderMetrics::ObserveRequest(Method method, Outcome outcome, double seconds) {
  requests_[static_cast<std::size_t>(method)][static_cast<std::size_t>(outcome)]->Increment();
  request_duration_->Observe(seconds);
}

void ResponderMetrics::ObserveSignature(double seconds) { signing_duration_->Observe(seconds); }

std::string ResponderMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace ocsp::metrics
