// Prometheus metrics of the responder, named ocsp_<module>_<thing>_<unit>, every one listed in docs/metrics.md.
//
// The hot path touches only its own worker's WorkerMetrics: plain loads and stores of counters that one thread
// writes (no locked read-modify-write, no shared lock, no allocation, no map lookup; every label combination
// is an array index). ResponderMetrics is a prometheus-cpp Collectable that sums the workers' counters and
// histograms when /metrics is scraped, and appends what other collectables (the store's gauges) report.
//
// Labels are bounded: method (3), outcome (8), verifier (the names given at construction or by SetVerifiers,
// plus "none" and "unregistered"), answer source (2).
//
// Thread safety:
//   - WorkerMetrics::Observe* only from the thread that owns that WorkerMetrics (its event loop).
//   - ResponderMetrics: AddWorker, SetVerifiers, SetSigningLoadSource, AddCollectable, Collect and Serialize from
//     any thread (a mutex that the hot path never takes serialises them).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ocsp::metrics {

enum class Method : std::uint8_t { kGet, kPost, kOther };
inline constexpr std::size_t kMethodCount = 3;

// What a request ended as: a certificate status, an OCSP exception status, or an HTTP-level refusal (405, 413,
// 415, and a verifier the registry refuses). A request with several CertIDs counts once, as its worst status
// (revoked over unknown over good), which is what StatusAuthority reports.
enum class Outcome : std::uint8_t {
  kGood, kRevoked, kUnknown, kUnauthorized, kMalformed, kTryLater, kInternalError, kRefused
};
inline constexpr std::size_t kOutcomeCount = 8;

// Where a successful answer came from: a response signed earlier and stored, or one signed for this request.
enum class AnswerSource : std::uint8_t { kStored, kSigned };
inline constexpr std::size_t kAnswerSourceCount = 2;

std::string_view ToString(Method method);
std::string_view ToString(Outcome outcome);
std::string_view ToString(AnswerSource source);

// The verifier label of a request, as a slot number. Slots 0 and 1 are fixed; named verifiers start at 2.
using VerifierIndex = std::uint16_t;
inline constexpr VerifierIndex kVerifierNone = 0;          // label "none": no verifier registry is configured
inline constexpr VerifierIndex kVerifierUnregistered = 1;  // label "unregistered": the registry knows no match
inline constexpr VerifierIndex kFirstNamedVerifier = 2;

// Request latency: 10 us (a stored answer) to 1 s; a signed answer takes about a millisecond.
inline constexpr std::array<double, 16> kLatencyBounds{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                                                       0.001,   0.0025,   0.005,   0.01,   0.025,   0.05,
                                                       0.1,     0.25,     0.5,     1.0};
// Age of a served response (now - producedAt): 1 s to 10 days, the longest validity a response may have.
inline constexpr std::array<double, 16> kAgeBounds{1,     10,    60,    300,    900,    1800,   3600,   7200,
                                                   14400, 28800, 43200, 86400, 172800, 345600, 604800, 864000};

// A counter with a single writer. Add is a relaxed load and store, not a locked add: only the owning thread
// writes, so nothing is lost, and a scrape on another core reads a value at most one increment old.
class LocalCounter {
 public:
  void Add(std::uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t Read() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A histogram with a single writer and fixed bucket bounds (inclusive upper bounds, as Prometheus's `le`).
// The count is not stored: the scrape derives it from the buckets, so count and +Inf always agree.
template <std::size_t N>
class LocalHistogram {
 public:
  explicit LocalHistogram(const std::array<double, N>& bounds) : bounds_(bounds) {}
  void Observe(double value) noexcept {
    const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value);
    buckets_[static_cast<std::size_t>(at - bounds_.begin())].Add();
    sum_.store(sum_.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  [[nodiscard]] const std::array<double, N>& bounds() const { return bounds_; }
  [[nodiscard]] std::uint64_t bucket(std::size_t i) const { return buckets_[i].Read(); }  // i <= N (N: +Inf)
  [[nodiscard]] double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::array<double, N>& bounds_;
  std::array<LocalCounter, N + 1> buckets_{};
  std::atomic<double> sum_{0};
};

// One worker's metrics. Owned by ResponderMetrics (so its counts outlive a worker), used by one event loop.
// Aligned to a cache line so two workers never write the same line.
class alignas(64) WorkerMetrics {
 public:
  WorkerMetrics(bool enabled, std::size_t verifier_capacity);
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // Every request that got an HTTP answer: its method, outcome, verifier slot, the time from the complete
  // request to the response handed to the socket, and the body's size.
  void ObserveRequest(Method method, Outcome outcome, VerifierIndex verifier, double seconds,
                      std::size_t response_bytes) noexcept {
    if (!enabled_) return;
    if (verifier >= verifier_capacity_) verifier = kVerifierNone;
    const std::size_t index =
        (static_cast<std::size_t>(method) * kOutcomeCount + static_cast<std::size_t>(outcome)) * verifier_capacity_ +
        verifier;
    requests_[index / kCountersPerLine].counters[index % kCountersPerLine].Add();
    latency_.Observe(seconds);
    response_bytes_.Add(response_bytes);
  }
  // Every successful (signed) OCSP response sent: where it came from and how old it is (now - producedAt; 0
  // for one signed for this request).
  void ObserveAnswer(AnswerSource source, double age_seconds) noexcept {
    if (!enabled_) return;
    answers_[static_cast<std::size_t>(source)].Add();
    age_.Observe(age_seconds);
  }
  // The time one signature took on the signing pool. Call it from the worker when the result comes back, not
  // from the signing thread.
  void ObserveSignature(double seconds) noexcept {
    if (!enabled_) return;
    signing_.Observe(seconds);
  }
  [[nodiscard]] bool enabled() const { return enabled_; }

 private:
  friend class ResponderMetrics;
  static constexpr std::size_t kCountersPerLine = 8;
  struct alignas(64) CounterLine {
    std::array<LocalCounter, kCountersPerLine> counters;
  };
  [[nodiscard]] std::uint64_t requests(std::size_t method, std::size_t outcome, std::size_t verifier) const {
    const std::size_t index = (method * kOutcomeCount + outcome) * verifier_capacity_ + verifier;
    return requests_[index / kCountersPerLine].counters[index % kCountersPerLine].Read();
  }

  const bool enabled_;
  const std::size_t verifier_capacity_;
  std::unique_ptr<CounterLine[]> requests_;  // [method][outcome][verifier slot]
  LocalHistogram<kLatencyBounds.size()> latency_{kLatencyBounds};
  LocalCounter response_bytes_;
  std::array<LocalCounter, kAnswerSourceCount> answers_{};
  LocalHistogram<kAgeBounds.size()> age_{kAgeBounds};
  LocalHistogram<kLatencyBounds.size()> signing_{kLatencyBounds};
};

// The signing pool's state at scrape time (responder::SigningPool::CurrentLoad).
struct SigningLoad {
  std::size_t running = 0;
  std::size_t waiting = 0;
  std::size_t max_pending = 0;
};

struct ResponderMetricsOptions {
  // false: Observe* return at once (metrics.enabled = false; the cost benchmark compares both).
  bool enabled = true;
  // Verifier slots, including the two fixed ones: the most names this process may ever have seen, reloads
  // included (a removed name's slot is never reused, so a counter never changes owner).
  std::size_t verifier_capacity = 256;
};

class ResponderMetrics : public prometheus::Collectable {
 public:
  using Options = ResponderMetricsOptions;

  // `verifiers`: the registry's names, in order: the i-th gets slot kFirstNamedVerifier + i. Empty when there
  // is no registry. Names beyond the capacity, and repeated names, are errors (the constructor throws: a
  // configuration the caller validated).
  ResponderMetrics(std::string_view version, const std::vector<std::string>& verifiers = {}, Options options = {});
  ResponderMetrics(const ResponderMetrics&) = delete;
  ResponderMetrics& operator=(const ResponderMetrics&) = delete;

  // A new worker's metrics; the reference stays valid as long as this object.
  WorkerMetrics& AddWorker();

  // After a reload: the slot of each name, in order. A name seen before keeps its slot; a new name gets an
  // unused one; a name no longer listed stops being exported. Fails (and changes nothing) when the slots are
  // exhausted. Workers keep using the old slots until the caller hands them the new ones.
  [[nodiscard]] Result<std::vector<VerifierIndex>> SetVerifiers(const std::vector<std::string>& names);

  void SetSigningLoadSource(std::function<SigningLoad()> source);
  // Another source of families (the store's gauges), collected after ours. Kept alive by this object.
  void AddCollectable(std::shared_ptr<const prometheus::Collectable> collectable);

  // Every family: ours merged over the workers, the registry's, then the added collectables'.
  [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;
  // The same in the Prometheus text exposition format (version 0.0.4).
  [[nodiscard]] std::string Serialize() const;
  // For metrics other code defines with prometheus-cpp's builders; collected with ours.
  [[nodiscard]] prometheus::Registry& registry() { return *registry_; }
  [[nodiscard]] bool enabled() const { return options_.enabled; }

 private:
  const Options options_;
  const std::string version_;
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mutex_;  // scrape and control paths only
  std::vector<std::unique_ptr<WorkerMetrics>> workers_;
  std::vector<std::string> slot_names_;  // by slot; "" for a retired slot
  std::vector<bool> slot_active_;
  std::function<SigningLoad()> signing_load_;
  std::vector<std::shared_ptr<const prometheus::Collectable>> collectables_;
  mutable double last_collect_seconds_ = 0;
};

}  // namespace ocsp::metrics
