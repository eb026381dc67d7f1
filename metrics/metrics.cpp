#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <chrono>
#include <limits>
#include <stdexcept>

namespace ocsp::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

ClientMetric Labelled(std::vector<ClientMetric::Label> labels) {
  ClientMetric metric;
  metric.label = std::move(labels);
  return metric;
}

ClientMetric CounterValue(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric metric = Labelled(std::move(labels));
  metric.counter.value = value;
  return metric;
}

ClientMetric GaugeValue(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric metric = Labelled(std::move(labels));
  metric.gauge.value = value;
  return metric;
}

// Sums one histogram over the workers into the cumulative buckets Prometheus expects.
template <std::size_t N>
ClientMetric MergedHistogram(const std::vector<const LocalHistogram<N>*>& parts, const std::array<double, N>& bounds) {
  std::array<std::uint64_t, N + 1> counts{};
  double sum = 0;
  for (const LocalHistogram<N>* part : parts) {
    for (std::size_t i = 0; i <= N; ++i) counts[i] += part->bucket(i);
    sum += part->sum();
  }
  ClientMetric metric;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= N; ++i) {
    cumulative += counts[i];
    metric.histogram.bucket.push_back(
        {cumulative, i < N ? bounds[i] : std::numeric_limits<double>::infinity()});
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum;
  return metric;
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

std::string_view ToString(AnswerSource source) {
  return source == AnswerSource::kStored ? "stored" : "signed";
}

WorkerMetrics::WorkerMetrics(bool enabled, std::size_t verifier_capacity)
    : enabled_(enabled),
      verifier_capacity_(verifier_capacity),
      requests_(new CounterLine[(kMethodCount * kOutcomeCount * verifier_capacity + kCountersPerLine - 1) /
                                kCountersPerLine]) {}

ResponderMetrics::ResponderMetrics(std::string_view version, const std::vector<std::string>& verifiers,
                                   Options options)
    : options_(options), version_(version), registry_(std::make_shared<prometheus::Registry>()) {
  if (options_.verifier_capacity < kFirstNamedVerifier + 1 ||
      options_.verifier_capacity > std::numeric_limits<VerifierIndex>::max()) {
    throw std::invalid_argument("metrics: verifier capacity out of range");
  }
  slot_names_ = {"none", "unregistered"};
  slot_active_ = {true, true};
  auto slots = SetVerifiers(verifiers);
  if (!slots) throw std::invalid_argument("metrics: " + slots.error().message);
}

WorkerMetrics& ResponderMetrics::AddWorker() {
  std::lock_guard lock(mutex_);
  workers_.push_back(std::make_unique<WorkerMetrics>(options_.enabled, options_.verifier_capacity));
  return *workers_.back();
}

Result<std::vector<VerifierIndex>> ResponderMetrics::SetVerifiers(const std::vector<std::string>& names) {
  std::lock_guard lock(mutex_);
  std::vector<VerifierIndex> slots;
  std::vector<std::string> new_names = slot_names_;
  std::vector<bool> active(slot_active_.size(), false);
  active[kVerifierNone] = active[kVerifierUnregistered] = true;
  for (const std::string& name : names) {
    if (name.empty() || name == "none" || name == "unregistered") {
      return Fail(ErrorCode::kInvalidArgument, "verifier name \"" + name + "\" is reserved");
    }
    auto found = std::find(new_names.begin() + kFirstNamedVerifier, new_names.end(), name);
    std::size_t slot = static_cast<std::size_t>(found - new_names.begin());
    if (found == new_names.end()) {
      if (new_names.size() >= options_.verifier_capacity) {
        return Fail(ErrorCode::kInvalidArgument, "more than " + std::to_string(options_.verifier_capacity - 2) +
                                                     " verifier names since start; restart to reuse slots");
      }
      new_names.push_back(name);
      active.push_back(false);
    }
    if (active[slot]) return Fail(ErrorCode::kInvalidArgument, "verifier \"" + name + "\" is listed twice");
    active[slot] = true;
    slots.push_back(static_cast<VerifierIndex>(slot));
  }
  slot_names_ = std::move(new_names);
  slot_active_ = std::move(active);
  return slots;
}

void ResponderMetrics::SetSigningLoadSource(std::function<SigningLoad()> source) {
  std::lock_guard lock(mutex_);
  signing_load_ = std::move(source);
}

void ResponderMetrics::AddCollectable(std::shared_ptr<const prometheus::Collectable> collectable) {
  std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

std::vector<MetricFamily> ResponderMetrics::Collect() const {
  const auto started = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  std::vector<MetricFamily> out;

  auto build = Family("ocsp_build_info", "Build information; the value is always 1", MetricType::Gauge);
  build.metric.push_back(GaugeValue({{"version", version_}}, 1));
  out.push_back(std::move(build));

  auto requests = Family("ocsp_responder_requests_total",
                         "OCSP requests answered, by HTTP method, outcome and verifier", MetricType::Counter);
  for (std::size_t m = 0; m < kMethodCount; ++m) {
    for (std::size_t o = 0; o < kOutcomeCount; ++o) {
      for (std::size_t v = 0; v < slot_names_.size(); ++v) {
        if (!slot_active_[v]) continue;
        std::uint64_t total = 0;
        for (const auto& worker : workers_) total += worker->requests(m, o, v);
        requests.metric.push_back(CounterValue({{"method", std::string(ToString(static_cast<Method>(m)))},
                                                {"outcome", std::string(ToString(static_cast<Outcome>(o)))},
                                                {"verifier", slot_names_[v]}},
                                               static_cast<double>(total)));
      }
    }
  }
  out.push_back(std::move(requests));

  std::vector<const LocalHistogram<kLatencyBounds.size()>*> latency;
  std::vector<const LocalHistogram<kLatencyBounds.size()>*> signing;
  std::vector<const LocalHistogram<kAgeBounds.size()>*> age;
  std::uint64_t bytes = 0;
  std::array<std::uint64_t, kAnswerSourceCount> answers{};
  for (const auto& worker : workers_) {
    latency.push_back(&worker->latency_);
    signing.push_back(&worker->signing_);
    age.push_back(&worker->age_);
    bytes += worker->response_bytes_.Read();
    for (std::size_t s = 0; s < kAnswerSourceCount; ++s) answers[s] += worker->answers_[s].Read();
  }

  auto duration = Family("ocsp_responder_request_duration_seconds",
                         "Time from a complete request to the response handed to the socket", MetricType::Histogram);
  duration.metric.push_back(MergedHistogram(latency, kLatencyBounds));
  out.push_back(std::move(duration));

  auto response_bytes = Family("ocsp_responder_response_bytes_total", "Bytes of HTTP response bodies sent",
                               MetricType::Counter);
  response_bytes.metric.push_back(CounterValue({}, static_cast<double>(bytes)));
  out.push_back(std::move(response_bytes));

  auto sources = Family("ocsp_responder_answers_total",
                        "Successful OCSP responses sent, by source: stored (signed earlier) or signed on demand",
                        MetricType::Counter);
  for (std::size_t s = 0; s < kAnswerSourceCount; ++s) {
    sources.metric.push_back(CounterValue({{"source", std::string(ToString(static_cast<AnswerSource>(s)))}},
                                          static_cast<double>(answers[s])));
  }
  out.push_back(std::move(sources));

  auto ages = Family("ocsp_responder_response_age_seconds",
                     "Age of each successful response sent (now minus producedAt)", MetricType::Histogram);
  ages.metric.push_back(MergedHistogram(age, kAgeBounds));
  out.push_back(std::move(ages));

  auto sign = Family("ocsp_signer_sign_duration_seconds", "Time to sign one OCSP response on the signing pool",
                     MetricType::Histogram);
  sign.metric.push_back(MergedHistogram(signing, kLatencyBounds));
  out.push_back(std::move(sign));

  if (signing_load_) {
    const SigningLoad load = signing_load_();
    auto running = Family("ocsp_signer_in_flight_jobs", "Signatures being computed now", MetricType::Gauge);
    running.metric.push_back(GaugeValue({}, static_cast<double>(load.running)));
    out.push_back(std::move(running));
    auto waiting = Family("ocsp_signer_waiting_jobs", "Signatures queued for a signing thread", MetricType::Gauge);
    waiting.metric.push_back(GaugeValue({}, static_cast<double>(load.waiting)));
    out.push_back(std::move(waiting));
    auto limit = Family("ocsp_signer_max_pending_jobs",
                        "Signatures running plus waiting beyond which requests get tryLater", MetricType::Gauge);
    limit.metric.push_back(GaugeValue({}, static_cast<double>(load.max_pending)));
    out.push_back(std::move(limit));
  }

  for (MetricFamily& family : registry_->Collect()) out.push_back(std::move(family));
  for (const auto& collectable : collectables_) {
    for (MetricFamily& family : collectable->Collect()) out.push_back(std::move(family));
  }

  // The previous scrape's cost: shows what the store's per-partition gauges cost at JPKI scale.
  auto cost = Family("ocsp_metrics_collect_duration_seconds", "Time the previous /metrics collection took",
                     MetricType::Gauge);
  cost.metric.push_back(GaugeValue({}, last_collect_seconds_));
  out.push_back(std::move(cost));
  last_collect_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

std::string ResponderMetrics::Serialize() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace ocsp::metrics
