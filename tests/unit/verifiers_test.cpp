#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>

#include "responder/verifiers.h"

using namespace ocsp;
using namespace ocsp::responder;

namespace {

constexpr std::string_view kRegistry = R"(
[[verifier]]
name = "bank-a"
networks = ["192.0.2.0/24", "2001:db8:a::/48"]
environment = "production"
access_from = 2026-04-01
rate_per_second = 100

[[verifier]]
name = "lab-b"
networks = ["198.51.100.7/32", "2001:db8:b::1"]
environment = "test"
access_from = 2026-04-01T12:00:00+09:00
rate_per_second = 10
burst = 20
)";

Address128 At(std::string_view text) { return *ParseAddress(text); }

}  // namespace

TEST_CASE("verifiers: CIDR ranges match IPv4 and IPv6 addresses, and nothing else") {
  auto registry = VerifierRegistry::Parse(kRegistry);
  REQUIRE(registry.has_value());
  REQUIRE(registry->size() == 2);
  CHECK(registry->Match(At("192.0.2.0")) == 0u);
  CHECK(registry->Match(At("192.0.2.255")) == 0u);
  CHECK(registry->Match(At("2001:db8:a:ffff::1")) == 0u);
  CHECK(registry->Match(At("198.51.100.7")) == 1u);
  CHECK(registry->Match(At("2001:db8:b::1")) == 1u);
  CHECK_FALSE(registry->Match(At("192.0.3.0")).has_value());
  CHECK_FALSE(registry->Match(At("192.0.1.255")).has_value());
  CHECK_FALSE(registry->Match(At("198.51.100.8")).has_value());
  CHECK_FALSE(registry->Match(At("2001:db8:b::2")).has_value());
  CHECK_FALSE(registry->Match(At("2001:db8:b::")).has_value());
  CHECK_FALSE(registry->Match(At("::1")).has_value());
}

TEST_CASE("verifiers: an IPv4-mapped IPv6 peer is matched as IPv4") {
  auto registry = VerifierRegistry::Parse(kRegistry);
  REQUIRE(registry.has_value());
  CHECK(registry->Match(At("::ffff:192.0.2.9")) == 0u);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, "::ffff:198.51.100.7", &v6.sin6_addr) == 1);
  CHECK(registry->Match(*AddressOf(reinterpret_cast<sockaddr*>(&v6))) == 1u);
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, "192.0.2.77", &v4.sin_addr) == 1);
  CHECK(registry->Match(*AddressOf(reinterpret_cast<sockaddr*>(&v4))) == 0u);
}

TEST_CASE("verifiers: access opens at 00:00 JST on the agreement's day, or at the stated instant") {
  auto registry = VerifierRegistry::Parse(kRegistry);
  REQUIRE(registry.has_value());
  // 2026-04-01T00:00:00+09:00 is 2026-03-31T15:00:00Z = 1774969200.
  CHECK(registry->at(0).access_from == 1774969200);
  CHECK(registry->at(1).access_from == 1774969200 + 12 * 3600);
  CHECK(registry->at(0).environment == Environment::kProduction);
  CHECK(registry->at(1).environment == Environment::kTest);
}

TEST_CASE("verifiers: overlapping networks, host bits, unknown keys and missing fields are refused") {
  CHECK_FALSE(VerifierRegistry::Parse(R"(
[[verifier]]
name = "a"
networks = ["10.0.0.0/8"]
environment = "production"
access_from = 2026-01-01
rate_per_second = 1
[[verifier]]
name = "b"
networks = ["10.1.0.0/16"]
environment = "production"
access_from = 2026-01-01
rate_per_second = 1
)").has_value());
  const std::string base = "[[verifier]]\nname = \"a\"\nenvironment = \"production\"\naccess_from = 2026-01-01\n"
                           "rate_per_second = 1\n";
  CHECK(VerifierRegistry::Parse(base + "networks = [\"10.0.0.0/8\"]\n").has_value());
  auto host_bits = VerifierRegistry::Parse(base + "networks = [\"10.0.0.1/8\"]\n");
  REQUIRE_FALSE(host_bits.has_value());
  CHECK(host_bits.error().message.find("host bits") != std::string::npos);
  CHECK_FALSE(VerifierRegistry::Parse(base + "networks = [\"10.0.0.0/33\"]\n").has_value());
  CHECK_FALSE(VerifierRegistry::Parse(base + "networks = []\n").has_value());
  CHECK_FALSE(VerifierRegistry::Parse(base + "networks = [\"10.0.0.0/8\"]\nrate = 5\n").has_value());
  CHECK_FALSE(VerifierRegistry::Parse("[[verifier]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n"
                                      "environment = \"staging\"\naccess_from = 2026-01-01\nrate_per_second = 1\n")
                  .has_value());
  CHECK_FALSE(VerifierRegistry::Parse("[[verifier]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n"
                                      "environment = \"test\"\nrate_per_second = 1\n")
                  .has_value());  // no access_from
  CHECK(VerifierRegistry::Parse("").has_value());  // an empty registry refuses everyone
}

TEST_CASE("verifiers: each of N workers enforces rate/N with a burst of burst/N") {
  auto registry = VerifierRegistry::Parse(kRegistry);
  REQUIRE(registry.has_value());
  const auto start = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  RateLimiter limiter(*registry, /*workers=*/2, start);
  // lab-b: 10/s, burst 20 -> 5/s and 10 tokens on this worker.
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.Allow(1, start) ? 1 : 0;
  CHECK(allowed == 10);
  CHECK_FALSE(limiter.Allow(1, start + std::chrono::milliseconds(100)));  // half a token
  CHECK(limiter.Allow(1, start + std::chrono::milliseconds(200)));        // one token
  allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.Allow(1, start + std::chrono::seconds(10)) ? 1 : 0;
  CHECK(allowed == 10);  // refilled to the burst, never beyond
  // bank-a (100/s, burst = rate) is not touched by lab-b's traffic.
  allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.Allow(0, start) ? 1 : 0;
  CHECK(allowed == 50);
}
