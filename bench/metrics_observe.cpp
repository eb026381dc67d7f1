// What recording one request costs on the hot path, in nanoseconds: WorkerMetrics::ObserveRequest (and
// ObserveAnswer) in a tight loop on one thread per worker, metrics on and off. The responder benchmark
// (metrics-cost.sh) measures the same cost inside real requests, where it is too small to see through the
// noise of a shared machine; this gives the floor it should be compared with.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "metrics/metrics.h"

namespace {

// CPU time of the calling thread: what other processes on a shared machine do does not count.
double ThreadCpuNanoseconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

using ocsp::metrics::AnswerSource;
using ocsp::metrics::Method;
using ocsp::metrics::Outcome;
using ocsp::metrics::ResponderMetrics;
using ocsp::metrics::WorkerMetrics;

double NanosecondsPerRequest(bool enabled, unsigned threads, long iterations) {
  ResponderMetrics metrics("bench", {"a", "b", "c"}, {.enabled = enabled});
  std::vector<WorkerMetrics*> workers;
  for (unsigned t = 0; t < threads; ++t) workers.push_back(&metrics.AddWorker());
  std::vector<double> cpu_ns(threads);
  std::vector<std::thread> running;
  for (unsigned t = 0; t < threads; ++t) {
    running.emplace_back([worker = workers[t], iterations, &result = cpu_ns[t]] {
      const double started = ThreadCpuNanoseconds();
      for (long i = 0; i < iterations; ++i) {
        // What Worker::Observe does per request: with metrics off, nothing; on, a clock read, then the counters.
        if (!worker->enabled()) continue;
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        const double seconds = static_cast<double>(now % 1000) * 1e-6;
        worker->ObserveRequest(Method::kGet, static_cast<Outcome>(i & 3), static_cast<std::uint16_t>(i % 5),
                               seconds, 1500);
        worker->ObserveAnswer(AnswerSource::kStored, seconds * 1000);
      }
      result = ThreadCpuNanoseconds() - started;
    });
  }
  for (std::thread& thread : running) thread.join();
  if (enabled && metrics.Serialize().empty()) std::puts("no output");  // keep the work observable
  double total = 0;
  for (double ns : cpu_ns) total += ns;
  return total / static_cast<double>(iterations * threads);
}

}  // namespace

int main() {
  constexpr long kIterations = 20'000'000;
  for (unsigned threads : {1u, 2u}) {
    const double on = NanosecondsPerRequest(true, threads, kIterations);
    const double off = NanosecondsPerRequest(false, threads, kIterations);
    std::printf("workers %u: %.1f ns of CPU per request with metrics on (a clock read and the counters), %.1f ns off\n",
                threads, on, off);
  }
}
