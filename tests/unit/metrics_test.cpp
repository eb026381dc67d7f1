#include <doctest/doctest.h>

#include "metrics/metrics.h"

using namespace ocsp::metrics;

TEST_CASE("metrics: requests are counted by method and outcome and timed in the histogram") {
  ResponderMetrics metrics("9.9.9");
  metrics.ObserveRequest(Method::kGet, Outcome::kGood, 0.0002);
  metrics.ObserveRequest(Method::kGet, Outcome::kGood, 0.0003);
  metrics.ObserveRequest(Method::kPost, Outcome::kMalformed, 0.00001);
  const std::string text = metrics.Serialize();
  CHECK(text.find("ocsp_responder_requests_total{method=\"GET\",outcome=\"good\"} 2") != std::string::npos);
  CHECK(text.find("ocsp_responder_requests_total{method=\"POST\",outcome=\"malformed\"} 1") != std::string::npos);
  CHECK(text.find("ocsp_responder_requests_total{method=\"POST\",outcome=\"revoked\"} 0") != std::string::npos);
  CHECK(text.find("ocsp_responder_request_duration_seconds_count 3") != std::string::npos);
  CHECK(text.find("ocsp_responder_request_duration_seconds_bucket{le=\"0.00025\"} 2") != std::string::npos);
  CHECK(text.find("ocsp_build_info{version=\"9.9.9\"} 1") != std::string::npos);
}
