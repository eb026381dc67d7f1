// stall-probe: how much of each core this machine takes away from a running thread, and for how long at a time.
//
// One thread per CPU, pinned there, reads the clock in a tight loop for the given seconds; a gap between two
// reads longer than the threshold is time the thread did not run: another task on that core (a kernel thread
// such as kdamond, a kworker), an interrupt, or the hypervisor holding the virtual CPU. Every server on the
// machine, and the load generator, loses the same time, so the benchmarks print it beside their tail latencies:
// at half load, a core that stalls for 1% of the time in multi-millisecond gaps puts about 1% of requests
// behind a gap whatever the server does.
//
// Output: one line per CPU, key=value pairs for the benchmark scripts. Exit status: 0; 1 a thread could not
// be pinned; 2 bad usage.
#include <pthread.h>
#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct CpuStalls {
  unsigned cpu = 0;
  bool pinned = false;
  std::uint64_t gaps = 0;
  std::uint64_t gaps_over_1ms = 0;
  Clock::duration lost{};
  Clock::duration longest{};
};

void Probe(CpuStalls& stalls, Clock::duration span, Clock::duration threshold) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(stalls.cpu, &set);
  stalls.pinned = pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
  if (!stalls.pinned) return;
  const Clock::time_point end = Clock::now() + span;
  Clock::time_point previous = Clock::now();
  while (previous < end) {
    const Clock::time_point now = Clock::now();
    const Clock::duration gap = now - previous;
    if (gap > threshold) {
      ++stalls.gaps;
      if (gap > std::chrono::milliseconds(1)) ++stalls.gaps_over_1ms;
      stalls.lost += gap;
      stalls.longest = std::max(stalls.longest, gap);
    }
    previous = now;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stall-probe: the time this machine takes away from a running thread, per core"};
  double seconds = 5;
  unsigned threshold_us = 100;
  std::vector<unsigned> cpus;
  app.add_option("--seconds", seconds, "how long each core is watched")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--threshold-us", threshold_us, "a gap longer than this counts as a stall")->check(CLI::Range(1u, 1000000u));
  app.add_option("--cpus", cpus, "the CPUs to watch (default: every CPU this process may use)")->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  if (cpus.empty()) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    sched_getaffinity(0, sizeof(allowed), &allowed);
    for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
    }
  }
  std::vector<CpuStalls> results(cpus.size());
  {
    std::vector<std::jthread> probes;
    const auto span = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (std::size_t i = 0; i < cpus.size(); ++i) {
      results[i].cpu = cpus[i];
      probes.emplace_back(Probe, std::ref(results[i]), span, std::chrono::microseconds(threshold_us));
    }
  }
  int status = 0;
  for (const CpuStalls& stalls : results) {
    if (!stalls.pinned) {
      std::fprintf(stderr, "stall-probe: cannot run a thread on CPU %u\n", stalls.cpu);
      status = 1;
      continue;
    }
    const double lost_ms = std::chrono::duration<double, std::milli>(stalls.lost).count();
    std::printf("cpu=%u seconds=%.1f threshold_us=%u stalls=%llu stalls_over_1ms=%llu lost_ms=%.2f lost_pct=%.3f "
                "longest_ms=%.2f\n",
                stalls.cpu, seconds, threshold_us, static_cast<unsigned long long>(stalls.gaps),
                static_cast<unsigned long long>(stalls.gaps_over_1ms), lost_ms, lost_ms / (seconds * 10.0),
                std::chrono::duration<double, std::milli>(stalls.longest).count());
  }
  return status;
}
