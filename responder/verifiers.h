// The verifier access registry: who may ask this responder, from which addresses, for which environment,
// from which day, and how fast (domain notes 1: verifiers register the IP addresses of their systems).
//
// Registry file (TOML), one table per verifier:
//
//   [[verifier]]
//   name = "example-bank"                            # unique; used in logs and metrics
//   networks = ["192.0.2.0/24", "2001:db8:1::/48"]   # CIDR ranges, IPv4 and IPv6
//   environment = "production"                       # "production" or "test": the issuers it may query
//   access_from = 2026-04-01                         # the day its agreement takes effect (00:00 JST), or
//                                                    # an offset date-time (2026-04-01T09:00:00+09:00)
//   rate_per_second = 200                            # sustained requests per second (all workers together)
//   burst = 400                                      # optional, default: rate_per_second
//
// Networks of different verifiers must not overlap: each address belongs to at most one verifier, so every
// request is attributed to exactly one (or none). An IPv4-mapped IPv6 peer (::ffff:a.b.c.d, from a
// dual-stack socket) is matched as IPv4. Lookup is a binary search over sorted disjoint ranges.
//
// Rate limits are enforced per worker with no shared state: each of the N workers keeps its own token bucket
// per verifier, refilled at rate/N with a burst of burst/N (at least one token). The sum over workers never
// exceeds the registered rate; a verifier reaches its full rate only when its connections spread over the
// workers (the kernel spreads SO_REUSEPORT connections by address and port, or by the CPU that received them
// with connection_steering = "cpu", so several keep-alive connections do; a single connection gets rate/N).
// Thread safety: a VerifierRegistry is immutable after Parse/Load and may be read from any thread.
// RateLimiter belongs to one worker thread.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace ocsp::responder {

enum class Environment : std::uint8_t { kProduction, kTest };
std::string_view ToString(Environment environment);
Result<Environment> ParseEnvironment(std::string_view text);

struct Verifier {
  std::string name;
  std::vector<std::string> networks;  // as written, for logs
  Environment environment = Environment::kProduction;
  UnixSeconds access_from = 0;
  double rate_per_second = 0;
  double burst = 0;
};

// An address as a 128-bit number: IPv4 as ::ffff:a.b.c.d, so both families share one ordered space.
__extension__ typedef unsigned __int128 Address128;  // g++ and clang; -Wpedantic needs __extension__
std::optional<Address128> AddressOf(const sockaddr* address);
Result<Address128> ParseAddress(std::string_view text);  // "192.0.2.1", "2001:db8::1"

class VerifierRegistry {
 public:
  static Result<VerifierRegistry> Parse(std::string_view text);
  static Result<VerifierRegistry> Load(const std::filesystem::path& path);

  // The index of the verifier whose networks hold `address`, or nullopt (unregistered).
  [[nodiscard]] std::optional<std::size_t> Match(Address128 address) const;
  [[nodiscard]] const Verifier& at(std::size_t index) const { return verifiers_[index]; }
  [[nodiscard]] std::size_t size() const { return verifiers_.size(); }

 private:
  struct Range {
    Address128 first;
    Address128 last;
    std::size_t verifier;
  };
  std::vector<Verifier> verifiers_;
  std::vector<Range> ranges_;  // sorted by `first`, disjoint
};

// Per-worker token buckets, one per verifier of one registry; rebuilt (not per request) when the registry
// changes.
class RateLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  RateLimiter() = default;
  RateLimiter(const VerifierRegistry& registry, unsigned workers, TimePoint now);
  // Takes one token from the verifier's bucket; false when it is empty.
  bool Allow(std::size_t verifier, TimePoint now);

 private:
  struct Bucket {
    double rate = 0;      // tokens per second
    double capacity = 0;  // burst
    double tokens = 0;
    TimePoint refilled;
  };
  std::vector<Bucket> buckets_;
};

}  // namespace ocsp::responder
