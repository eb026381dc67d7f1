// Connection admission: the caps on open connections, overall and per client address, that the HTTP front
// end (http1.h) asks at accept, and what it counted.
//
// ConnectionLimits is shared by all workers: atomics only, no lock. The per-address count is kept in
// 16,384 hashed slots; two addresses that share a slot share its count (stricter, never looser).
// Thread safety: ConnectionLimits and ConnectionCounters from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "responder/verifiers.h"

namespace ocsp::responder {

enum class Admission : std::uint8_t { kAdmitted, kOverTotal, kOverAddress };

class ConnectionLimits {
 public:
  ConnectionLimits(unsigned max_total, unsigned max_per_address)
      : max_total_(max_total), max_per_address_(max_per_address) {}
  // Takes a slot for a new connection from `address` (kAdmitted); otherwise nothing is taken, and the result
  // says which cap was reached.
  Admission TryAcquire(Address128 address);
  void Release(Address128 address);
  [[nodiscard]] unsigned open() const { return total_.load(std::memory_order_relaxed); }

 private:
  static std::size_t Slot(Address128 address);
  const unsigned max_total_;
  const unsigned max_per_address_;
  std::atomic<unsigned> total_{0};
  std::array<std::atomic<std::uint32_t>, 16384> per_address_{};
};

// What the front end counted, for logs and metrics (read from other threads: relaxed atomics).
struct ConnectionCounters {
  std::atomic<std::uint64_t> refused_over_cap{0};
  std::atomic<std::uint64_t> header_timeouts{0};
  // Idle keep-alive connections closed to admit a new one at the overall cap.
  std::atomic<std::uint64_t> evicted_idle{0};
  // Times accepting paused for 100 ms because accept() found no descriptor (or kernel memory) left.
  std::atomic<std::uint64_t> accept_pauses{0};
  // Idle connections handed to a less loaded worker (connection_balancer.h).
  std::atomic<std::uint64_t> rebalanced{0};
  // Connections the front ends hold (and so a descriptor or a reply still due); 0 once every closed one is
  // freed. A gauge, for tests and the fuzz target, which wait for it to return to 0.
  std::atomic<std::uint64_t> tracked{0};
};

}  // namespace ocsp::responder
