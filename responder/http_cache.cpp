#include "responder/http_cache.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>

namespace ocsp::responder {
namespace {

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

void Mix(std::uint64_t& hash, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * kFnvPrime;
}

template <typename T>
void MixValue(std::uint64_t& hash, const T& value) {
  Mix(hash, &value, sizeof value);
}

void MixBytes(std::uint64_t& hash, ByteView bytes) {
  MixValue(hash, bytes.size());  // lengths keep field boundaries unambiguous
  Mix(hash, bytes.data(), bytes.size());
}

// One entity tag's opaque part, without W/ (weak comparison, RFC 9110 8.8.3.2).
std::string_view Opaque(std::string_view tag) {
  if (tag.starts_with("W/")) tag.remove_prefix(2);
  return tag;
}

}  // namespace

std::string_view FormatHttpDate(UnixSeconds time, HeaderBuffer& buffer) {
  const std::time_t t = static_cast<std::time_t>(time);
  std::tm utc{};
  gmtime_r(&t, &utc);
  const std::size_t length = std::strftime(buffer.data(), buffer.size(), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return {buffer.data(), length};
}

UnixSeconds MaxAge(UnixSeconds now, UnixSeconds next_update, UnixSeconds cap) {
  return std::clamp<UnixSeconds>(next_update - now, 0, std::max<UnixSeconds>(0, cap));
}

// Formatted by hand: both run for every cacheable answer, and snprintf's format interpretation was 1% of a
// stored response's CPU time.
std::string_view FormatCacheControl(UnixSeconds max_age, HeaderBuffer& buffer) {
  constexpr std::string_view kPrefix = "max-age=";
  constexpr std::string_view kSuffix = ", public, no-transform, must-revalidate";
  char* out = std::copy(kPrefix.begin(), kPrefix.end(), buffer.data());
  out = std::to_chars(out, buffer.data() + buffer.size() - kSuffix.size(), max_age).ptr;
  out = std::copy(kSuffix.begin(), kSuffix.end(), out);
  return {buffer.data(), static_cast<std::size_t>(out - buffer.data())};
}

std::uint64_t ResponseIdentity(const DecodedRequest& request, const Decision& decision) {
  std::uint64_t hash = kFnvOffset;
  for (std::size_t i = 0; i < request.certs.size() && i < decision.answers.size(); ++i) {
    const RequestedCert& cert = request.certs[i];
    const signer::SingleAnswer& answer = decision.answers[i];
    MixValue(hash, cert.algorithm ? static_cast<int>(*cert.algorithm) : -1);
    MixBytes(hash, cert.name_hash);
    MixBytes(hash, cert.key_hash);
    MixBytes(hash, cert.serial);
    MixValue(hash, static_cast<int>(answer.status));
    MixValue(hash, answer.this_update);
    MixValue(hash, answer.next_update.value_or(-1));
    MixValue(hash, answer.revocation_time);
    MixValue(hash, answer.reason.value_or(-1));
    MixValue(hash, answer.invalidity_date.value_or(-1));
  }
  return hash;
}

std::string_view FormatEtag(std::uint64_t identity, HeaderBuffer& buffer) {
  static constexpr char kHex[] = "0123456789abcdef";
  char* out = buffer.data();
  *out++ = 'W', *out++ = '/', *out++ = '"';
  for (int shift = 60; shift >= 0; shift -= 4) *out++ = kHex[(identity >> shift) & 0xf];
  *out++ = '"';
  return {buffer.data(), static_cast<std::size_t>(out - buffer.data())};
}

bool IfNoneMatchHits(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    const auto comma = if_none_match.find(',');
    std::string_view tag = if_none_match.substr(0, comma);
    if_none_match = comma == std::string_view::npos ? std::string_view() : if_none_match.substr(comma + 1);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*" || (!tag.empty() && Opaque(tag) == Opaque(etag))) return true;
  }
  return false;
}

UnixSeconds LatestThisUpdate(const Decision& decision) {
  UnixSeconds latest = 0;
  for (const auto& answer : decision.answers) latest = std::max(latest, answer.this_update);
  return latest;
}

}  // namespace ocsp::responder
