// The clock, injected wherever time decides an answer, so tests can use a fake one.
// Thread safety: SystemClock is stateless; FakeClock is safe to read from any thread and to set from one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ocsp {

// Seconds since the Unix epoch: the resolution of every time in X.509 and OCSP.
using UnixSeconds = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual UnixSeconds Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] UnixSeconds Now() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(UnixSeconds start) : now_(start) {}
  [[nodiscard]] UnixSeconds Now() const override { return now_.load(std::memory_order_relaxed); }
  void Set(UnixSeconds now) { now_.store(now, std::memory_order_relaxed); }
  void Advance(UnixSeconds seconds) { now_.fetch_add(seconds, std::memory_order_relaxed); }

 private:
  std::atomic<UnixSeconds> now_;
};

}  // namespace ocsp
