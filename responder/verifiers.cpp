#include "responder/verifiers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>
#include <sstream>

#include "common/openssl.h"

namespace ocsp::responder {
namespace {

constexpr Address128 kV4Mapped = Address128{0xffff} << 32;
constexpr UnixSeconds kJstOffsetSeconds = 9 * 3600;  // a date without an offset is a Japanese calendar day

Address128 FromBytes(const std::uint8_t* bytes) {
  Address128 value = 0;
  for (int i = 0; i < 16; ++i) value = (value << 8) | bytes[i];
  return value;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Cidr {
  Address128 first;
  Address128 last;
};

Result<Cidr> ParseCidr(std::string_view text) {
  const auto slash = text.find('/');
  auto address = ParseAddress(text.substr(0, slash));
  if (!address) return std::unexpected(address.error());
  const bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  unsigned bits = v4 ? 32 : 128;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (ec != std::errc() || end != digits.data() + digits.size() || bits > (v4 ? 32u : 128u)) {
      return Fail(ErrorCode::kInvalidArgument, "\"" + std::string(text) + "\" has a bad prefix length");
    }
  }
  const unsigned host_bits = (v4 ? 32 : 128) - bits;
  const Address128 host_mask = host_bits == 128 ? ~Address128{0} : (Address128{1} << host_bits) - 1;
  if ((*address & host_mask) != 0) {
    // A typo such as 192.0.2.1/24 is more likely than a wish to register the whole /24: refuse it.
    return Fail(ErrorCode::kInvalidArgument, "\"" + std::string(text) + "\" has host bits set");
  }
  return Cidr{*address, *address | host_mask};
}

std::string Describe(const toml::source_region& source) {
  return "line " + std::to_string(source.begin.line);
}

}  // namespace

std::string_view ToString(Environment environment) {
  return environment == Environment::kTest ? "test" : "production";
}

Result<Environment> ParseEnvironment(std::string_view text) {
  if (text == "production") return Environment::kProduction;
  if (text == "test") return Environment::kTest;
  return Fail(ErrorCode::kInvalidArgument, "environment \"" + std::string(text) + "\" is not production or test");
}

std::optional<Address128> AddressOf(const sockaddr* address) {
  if (address == nullptr) return std::nullopt;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    return kV4Mapped | ntohl(v4->sin_addr.s_addr);
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    return FromBytes(v6->sin6_addr.s6_addr);  // a v4-mapped peer is already in kV4Mapped's space
  }
  return std::nullopt;
}

Result<Address128> ParseAddress(std::string_view text) {
  const std::string copy(text);
  in_addr v4{};
  if (::inet_pton(AF_INET, copy.c_str(), &v4) == 1) return kV4Mapped | ntohl(v4.s_addr);
  in6_addr v6{};
  if (::inet_pton(AF_INET6, copy.c_str(), &v6) == 1) return FromBytes(v6.s6_addr);
  return Fail(ErrorCode::kInvalidArgument, "\"" + copy + "\" is not an IPv4 or IPv6 address");
}

Result<VerifierRegistry> VerifierRegistry::Parse(std::string_view text) {
  VerifierRegistry registry;
  try {
    const toml::table root = toml::parse(text);
    for (const auto& [key, value] : root) {
      if (key.str() != "verifier") return Fail(ErrorCode::kInvalidArgument, "unknown key " + std::string(key.str()));
    }
    const toml::array* list = root["verifier"].as_array();
    if (root.contains("verifier") && list == nullptr) {
      return Fail(ErrorCode::kInvalidArgument, "verifier must be an array of tables ([[verifier]])");
    }
    std::set<std::string> names;
    for (std::size_t i = 0; list != nullptr && i < list->size(); ++i) {
      const toml::table* table = list->get(i)->as_table();
      const std::string where = "verifier[" + std::to_string(i) + "]";
      if (table == nullptr) return Fail(ErrorCode::kInvalidArgument, where + " must be a table");
      static const std::set<std::string_view> kKnown{"name", "networks", "environment", "access_from",
                                                     "rate_per_second", "burst"};
      for (const auto& [key, value] : *table) {
        if (!kKnown.contains(key.str())) {
          return Fail(ErrorCode::kInvalidArgument, "unknown key " + where + "." + std::string(key.str()));
        }
      }
      Verifier verifier;
      const auto name = (*table)["name"].value<std::string>();
      if (!name || name->empty()) return Fail(ErrorCode::kInvalidArgument, where + ".name is required");
      verifier.name = *name;
      if (!names.insert(verifier.name).second) {
        return Fail(ErrorCode::kInvalidArgument, where + ": the name \"" + verifier.name + "\" is used twice");
      }
      const std::string label = "verifier \"" + verifier.name + "\"";

      const toml::array* networks = (*table)["networks"].as_array();
      if (networks == nullptr || networks->empty()) {
        return Fail(ErrorCode::kInvalidArgument, label + ": networks must list at least one CIDR range");
      }
      for (const toml::node& node : *networks) {
        const auto cidr_text = node.value<std::string>();
        if (!cidr_text) return Fail(ErrorCode::kInvalidArgument, label + ": networks must be strings");
        auto cidr = ParseCidr(*cidr_text);
        if (!cidr) return Fail(ErrorCode::kInvalidArgument, label + ": " + cidr.error().message);
        verifier.networks.push_back(*cidr_text);
        registry.ranges_.push_back({cidr->first, cidr->last, registry.verifiers_.size()});
      }

      const auto environment = (*table)["environment"].value<std::string>();
      if (!environment) return Fail(ErrorCode::kInvalidArgument, label + ": environment is required");
      auto parsed = ParseEnvironment(*environment);
      if (!parsed) return Fail(ErrorCode::kInvalidArgument, label + ": " + parsed.error().message);
      verifier.environment = *parsed;

      const toml::node_view from = (*table)["access_from"];
      if (const auto* date = from.as_date()) {
        const toml::date d = date->get();
        verifier.access_from = DaysFromCivil(d.year, d.month, d.day) * 86400 - kJstOffsetSeconds;
      } else if (const auto* when = from.as_date_time()) {
        const toml::date_time t = when->get();
        if (!t.offset) return Fail(ErrorCode::kInvalidArgument, label + ": access_from needs a UTC offset");
        verifier.access_from = DaysFromCivil(t.date.year, t.date.month, t.date.day) * 86400 + t.time.hour * 3600 +
                               t.time.minute * 60 + t.time.second - t.offset->minutes * 60;
      } else {
        return Fail(ErrorCode::kInvalidArgument,
                    label + ": access_from is required (the day its agreement takes effect, e.g. 2026-04-01)");
      }

      const auto number = [&](std::string_view key) -> std::optional<double> {
        const toml::node_view node = (*table)[key];
        if (const auto* integer = node.as_integer()) return static_cast<double>(integer->get());
        if (const auto* floating = node.as_floating_point()) return floating->get();
        return std::nullopt;
      };
      const auto rate = number("rate_per_second");
      if (!rate || !(*rate > 0 && *rate <= 1e7)) {
        return Fail(ErrorCode::kInvalidArgument, label + ": rate_per_second must be a number in (0, 1e7]");
      }
      verifier.rate_per_second = *rate;
      const auto burst = number("burst");
      if ((*table).contains("burst") && (!burst || !(*burst >= 1 && *burst <= 1e8))) {
        return Fail(ErrorCode::kInvalidArgument, label + ": burst must be a number in [1, 1e8]");
      }
      verifier.burst = burst.value_or(std::max(1.0, *rate));
      registry.verifiers_.push_back(std::move(verifier));
    }
  } catch (const toml::parse_error& error) {
    return Fail(ErrorCode::kInvalidArgument, std::string(error.description()) + " at " + Describe(error.source()));
  }

  std::sort(registry.ranges_.begin(), registry.ranges_.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < registry.ranges_.size(); ++i) {
    const Range& before = registry.ranges_[i - 1];
    const Range& range = registry.ranges_[i];
    if (range.first <= before.last) {
      return Fail(ErrorCode::kInvalidArgument,
                  "networks overlap: verifier \"" + registry.verifiers_[before.verifier].name + "\" and verifier \"" +
                      registry.verifiers_[range.verifier].name + "\" (an address must name one verifier)");
    }
  }
  return registry;
}

Result<VerifierRegistry> VerifierRegistry::Load(const std::filesystem::path& path) {
  auto data = ReadFile(path);
  if (!data) return std::unexpected(data.error());
  auto registry = Parse(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()));
  if (!registry) return Fail(registry.error().code, path.string() + ": " + registry.error().message);
  return registry;
}

std::optional<std::size_t> VerifierRegistry::Match(Address128 address) const {
  auto after = std::upper_bound(ranges_.begin(), ranges_.end(), address,
                                [](Address128 a, const Range& range) { return a < range.first; });
  if (after == ranges_.begin()) return std::nullopt;
  const Range& range = *std::prev(after);
  if (address > range.last) return std::nullopt;
  return range.verifier;
}

RateLimiter::RateLimiter(const VerifierRegistry& registry, unsigned workers, TimePoint now) {
  const double share = 1.0 / std::max(1u, workers);
  buckets_.resize(registry.size());
  for (std::size_t i = 0; i < registry.size(); ++i) {
    Bucket& bucket = buckets_[i];
    bucket.rate = registry.at(i).rate_per_second * share;
    bucket.capacity = std::max(1.0, registry.at(i).burst * share);
    bucket.tokens = bucket.capacity;
    bucket.refilled = now;
  }
}

bool RateLimiter::Allow(std::size_t verifier, TimePoint now) {
  Bucket& bucket = buckets_[verifier];
  const double elapsed = std::chrono::duration<double>(now - bucket.refilled).count();
  if (elapsed > 0) {
    bucket.tokens = std::min(bucket.capacity, bucket.tokens + elapsed * bucket.rate);
    bucket.refilled = now;
  }
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

}  // namespace ocsp::responder
