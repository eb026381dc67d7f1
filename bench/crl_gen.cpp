// crl-gen: writes large, JPKI-shaped CRLs in DER for the import benchmark, fast and in bounded memory.
//
// Why it does not use X509_CRL: building a 10-million-entry X509_CRL with OpenSSL takes about 4 GiB, and the
// benchmark needs several such files. This tool encodes the DER itself. It computes every length first, then
// streams tbsCertList into the file and into EVP_DigestSign at the same time, so memory holds the list of
// serials (about 8 bytes per entry, 18 when partitioning), never the CRL.
//
// What the files model (from the project's JPKI domain notes):
//  - Serials are 4-byte values from one increasing counter per CA. Day 0 holds --entries serials drawn
//    uniformly without replacement from [1,000,000, 114,000,000).
//  - Reasons: affiliationChanged 70%, cessationOfOperation 15%, superseded 8%, keyCompromise 4% (with an
//    invalidityDate), certificateHold 1%, unspecified 1% (present as reason 0), no reasonCode 1%.
//  - Revocation dates lie between the certificate's issuance (a serial's place in the counter maps to a date
//    in the last five years) and thisUpdate.
//  - Day D (--day) follows day D-1: 0.5% of --entries leave the CRL as expired (drawn from the oldest fifth of
//    the serial range: entries leave when the certificate would have expired) and 0.5% are newly revoked
//    during the previous day (any live serial by default, as address changes do; --additions higher: only
//    serials above day 0's); the CRL number and thisUpdate advance by one (day) per day.
//  - Partitions (--partitions P): one CRL per municipality, each with its own critical
//    issuingDistributionPoint; a serial's municipality is a hash of the serial, weighted so that large
//    municipalities hold several times the average and villages a fraction of it. The union of the P files is
//    exactly the entries of the single file of the same seed, size and day.
// Every byte is a pure function of the arguments: the same arguments (with an explicit --this-update) give
// byte-identical files.
//
// Exit status: 0 written; 1 failed (unusable CA certificate or key, file system); 2 bad usage.
#include <fcntl.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/openssl.h"

namespace {

using ocsp::Bytes;
using ocsp::ByteView;
using ocsp::ErrorCode;
using ocsp::Fail;
using ocsp::Result;
using ocsp::UniquePtr;
using ocsp::UnixSeconds;

// ---------------------------------------------------------------------------------------------------------
// The population being modelled.

constexpr std::uint32_t kFirstSerial = 1'000'000;
// About 1.14e8 serials were used by 2023 (domain notes, section 3).
constexpr std::uint32_t kDayZeroSerialEnd = 114'000'000;
// ~1.14e8 certificates over ~8 years: the counter advances about this much per day.
constexpr std::uint32_t kSerialsIssuedPerDay = 40'000;
constexpr UnixSeconds kSecondsPerDay = 86'400;
// Certificates are valid until the holder's 5th birthday after issuance: entries are at most ~5 years old.
constexpr UnixSeconds kLiveWindow = 5 * 365 * kSecondsPerDay;
// Entries that expire are drawn from the serials issued in the oldest fifth of that window.
constexpr double kExpiringBandFraction = 0.2;
constexpr double kDailyRemovedFraction = 0.005;
constexpr double kDailyAddedFraction = 0.005;

enum class AdditionPattern {
  kScattered,  // new revocations hit any live certificate, old or new (what address changes do)
  kHigher,     // new revocations only hit serials above every serial of day 0
};

struct Model {
  std::uint64_t seed = 1;
  std::uint64_t base_entries = 0;
  UnixSeconds base_this_update = 0;  // day 0's thisUpdate; day D's is D days later
  AdditionPattern additions = AdditionPattern::kScattered;
};

// A CRL entry as the generator keeps it: everything else about it is derived from the serial.
struct Revocation {
  std::uint32_t serial;
  std::uint32_t day_revoked;  // 0: already in the base CRL; D: revoked during the day before day D's CRL
};

enum class Reason : std::uint8_t {
  kUnspecified = 0,
  kKeyCompromise = 1,
  kAffiliationChanged = 3,
  kSuperseded = 4,
  kCessationOfOperation = 5,
  kCertificateHold = 6,
};

struct EntryDetails {
  UnixSeconds revoked_at = 0;
  std::optional<Reason> reason;
  std::optional<UnixSeconds> invalidity_date;
};

// ---------------------------------------------------------------------------------------------------------
// Deterministic randomness. std::*_distribution is implementation-defined, so it would make the files
// depend on the standard library; these are fixed formulas.

constexpr std::uint64_t Mix(std::uint64_t z) {  // SplitMix64's finaliser: a good 64-bit bijection
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Independent streams of decisions, so that e.g. changing the reason mix does not move the serials.
enum class Stream : std::uint64_t {
  kDayZeroSerials = 1,
  kReason,
  kRevocationTime,
  kInvalidityDate,
  kExpiry,
  kAddition,
  kMunicipality,
};

std::uint64_t Hash(std::uint64_t seed, Stream stream, std::uint64_t value) {
  return Mix(Mix(seed ^ (static_cast<std::uint64_t>(stream) << 56)) ^ Mix(value + 0x9E3779B97F4A7C15ULL));
}

double UnitInterval(std::uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// GCC's 128-bit integer; __extension__ keeps -Wpedantic quiet about a type the standard lacks.
__extension__ using Uint128 = unsigned __int128;

class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return Mix(state_);
  }
  // In [0, bound). Lemire's multiply-shift: the bias (< bound / 2^64) is far below anything measurable here.
  std::uint64_t Below(std::uint64_t bound) {
    return static_cast<std::uint64_t>((static_cast<Uint128>(Next()) * bound) >> 64);
  }

 private:
  std::uint64_t state_;
};

// ---------------------------------------------------------------------------------------------------------
// Which serials are on the CRL of a given day.

// Knuth's selection sampling (Algorithm S): exactly `count` of the candidates, each equally likely, produced
// in ascending order, in one pass and without a set of already-chosen values.
template <typename Candidate, typename Choose>
void SelectExactly(std::uint64_t candidates, std::uint64_t count, Random& random, Candidate candidate, Choose choose) {
  for (std::uint64_t index = 0; count > 0 && index < candidates; ++index) {
    if (random.Below(candidates - index) < count) {
      choose(candidate(index));
      --count;
    }
  }
}

class SerialBitmap {
 public:
  explicit SerialBitmap(std::uint64_t end) : words_((end + 63) / 64, 0) {}
  [[nodiscard]] bool Contains(std::uint32_t serial) const { return (words_[serial / 64] >> (serial % 64)) & 1; }
  void Insert(std::uint32_t serial) { words_[serial / 64] |= std::uint64_t{1} << (serial % 64); }

 private:
  std::vector<std::uint64_t> words_;
};

std::uint32_t ExpiringBandEnd() {
  return kFirstSerial +
         static_cast<std::uint32_t>(static_cast<double>(kDayZeroSerialEnd - kFirstSerial) * kExpiringBandFraction);
}

std::uint64_t DailyChanges(const Model& model, double fraction) {
  return static_cast<std::uint64_t>(std::llround(static_cast<double>(model.base_entries) * fraction));
}

// How far the serial counter has advanced by day D: wide enough that a day's new revocations always fit.
std::uint64_t SerialsIssuedPerDay(const Model& model) {
  return std::max<std::uint64_t>(kSerialsIssuedPerDay, 2 * DailyChanges(model, kDailyAddedFraction));
}

std::vector<Revocation> DayZero(const Model& model) {
  std::vector<Revocation> revoked;
  revoked.reserve(model.base_entries);
  Random random(Hash(model.seed, Stream::kDayZeroSerials, 0));
  SelectExactly(
      kDayZeroSerialEnd - kFirstSerial, model.base_entries, random,
      [](std::uint64_t index) { return static_cast<std::uint32_t>(kFirstSerial + index); },
      [&](std::uint32_t serial) {
        revoked.push_back({serial, 0});
      });
  return revoked;
}

// Turns the list of day - 1 (sorted by serial) into the list of `day`.
void AdvanceOneDay(const Model& model, std::uint32_t day, std::vector<Revocation>& revoked) {
  // Expiry: certificates from the oldest part of the counter leave the CRL.
  const std::uint32_t band_end = ExpiringBandEnd();
  const auto band = std::lower_bound(revoked.begin(), revoked.end(), band_end,
                                     [](const Revocation& r, std::uint32_t serial) { return r.serial < serial; });
  const auto band_size = static_cast<std::uint64_t>(band - revoked.begin());
  const std::uint64_t removals = std::min(band_size, DailyChanges(model, kDailyRemovedFraction));
  std::vector<bool> expired(band_size, false);
  Random expiry(Hash(model.seed, Stream::kExpiry, day));
  SelectExactly(
      band_size, removals, expiry, [](std::uint64_t index) { return index; },
      [&](std::uint64_t index) { expired[index] = true; });
  std::size_t kept = 0;
  for (std::size_t i = 0; i < revoked.size(); ++i) {
    if (i < band_size && expired[i]) continue;
    revoked[kept++] = revoked[i];
  }
  revoked.resize(kept);

  // New revocations: serials not on the CRL, among live certificates newer than the expiring band (an
  // expired certificate cannot be revoked, so a serial that left the CRL never comes back).
  const std::uint64_t issued_per_day = SerialsIssuedPerDay(model);
  const std::uint64_t range_end = kDayZeroSerialEnd + day * issued_per_day;
  const std::uint64_t range_begin =
      model.additions == AdditionPattern::kScattered ? band_end : range_end - issued_per_day;
  SerialBitmap present(range_end);
  for (const Revocation& r : revoked) present.Insert(r.serial);
  Random addition(Hash(model.seed, Stream::kAddition, day));
  std::vector<Revocation> added;
  const std::uint64_t additions = DailyChanges(model, kDailyAddedFraction);
  added.reserve(additions);
  // Rejection sampling terminates quickly: at most half of any candidate range is ever taken.
  while (added.size() < additions) {
    const auto serial = static_cast<std::uint32_t>(range_begin + addition.Below(range_end - range_begin));
    if (present.Contains(serial)) continue;
    present.Insert(serial);
    added.push_back({serial, day});
  }
  std::sort(added.begin(), added.end(), [](const Revocation& a, const Revocation& b) { return a.serial < b.serial; });
  const std::size_t old_size = revoked.size();
  revoked.insert(revoked.end(), added.begin(), added.end());
  std::inplace_merge(revoked.begin(), revoked.begin() + static_cast<std::ptrdiff_t>(old_size), revoked.end(),
                     [](const Revocation& a, const Revocation& b) { return a.serial < b.serial; });
}

std::vector<Revocation> RevokedOnDay(const Model& model, std::uint32_t day) {
  std::vector<Revocation> revoked = DayZero(model);
  for (std::uint32_t d = 1; d <= day; ++d) AdvanceOneDay(model, d, revoked);
  return revoked;
}

Reason ChooseReason(double u) {
  if (u < 0.70) return Reason::kAffiliationChanged;
  if (u < 0.85) return Reason::kCessationOfOperation;
  if (u < 0.93) return Reason::kSuperseded;
  if (u < 0.97) return Reason::kKeyCompromise;
  if (u < 0.98) return Reason::kCertificateHold;
  return Reason::kUnspecified;
}

EntryDetails DetailsOf(const Model& model, const Revocation& revocation) {
  EntryDetails details;
  const double reason_draw = UnitInterval(Hash(model.seed, Stream::kReason, revocation.serial));
  if (reason_draw < 0.99) details.reason = ChooseReason(reason_draw);  // the last 1%: no reasonCode at all

  const double time_draw = UnitInterval(Hash(model.seed, Stream::kRevocationTime, revocation.serial));
  if (revocation.day_revoked == 0) {
    // The counter maps linearly onto the live window: a higher serial was issued later, and its certificate
    // was revoked some time between issuance and a minute before day 0's thisUpdate.
    const double issued_fraction = std::clamp(
        static_cast<double>(revocation.serial - kFirstSerial) / static_cast<double>(kDayZeroSerialEnd - kFirstSerial),
        0.0, 1.0);
    const UnixSeconds latest = model.base_this_update - 60;
    const UnixSeconds issued_at = model.base_this_update - kLiveWindow +
                                  static_cast<UnixSeconds>(issued_fraction * static_cast<double>(kLiveWindow));
    details.revoked_at = issued_at + static_cast<UnixSeconds>(
                                         time_draw * static_cast<double>(std::max<UnixSeconds>(latest - issued_at, 0)));
  } else {
    const UnixSeconds day_start = model.base_this_update + (revocation.day_revoked - 1) * kSecondsPerDay;
    details.revoked_at = day_start + static_cast<UnixSeconds>(time_draw * static_cast<double>(kSecondsPerDay - 60));
  }
  if (details.reason == Reason::kKeyCompromise) {
    // The holder reports a lost card some hours to a week after losing it.
    const double lag = UnitInterval(Hash(model.seed, Stream::kInvalidityDate, revocation.serial));
    details.invalidity_date = details.revoked_at - 3600 - static_cast<UnixSeconds>(lag * 7 * kSecondsPerDay);
  }
  return details;
}

// ---------------------------------------------------------------------------------------------------------
// DER encoding. Every CRL entry is shorter than 128 bytes, so entries use short-form lengths throughout.

std::size_t LengthOfLength(std::size_t length) {
  std::size_t bytes = 1;
  if (length >= 0x80) {
    for (std::size_t rest = length; rest > 0; rest >>= 8) ++bytes;
  }
  return bytes;
}

std::size_t TlvLength(std::size_t content_length) { return 1 + LengthOfLength(content_length) + content_length; }

void AppendHeader(Bytes& out, std::uint8_t tag, std::size_t length) {
  out.push_back(tag);
  if (length < 0x80) {
    out.push_back(static_cast<std::uint8_t>(length));
    return;
  }
  const std::size_t length_bytes = LengthOfLength(length) - 1;
  out.push_back(static_cast<std::uint8_t>(0x80 | length_bytes));
  for (std::size_t i = length_bytes; i > 0; --i) out.push_back(static_cast<std::uint8_t>(length >> (8 * (i - 1))));
}

Bytes Tlv(std::uint8_t tag, std::initializer_list<ByteView> parts) {
  std::size_t length = 0;
  for (ByteView part : parts) length += part.size();
  Bytes out;
  out.reserve(TlvLength(length));
  AppendHeader(out, tag, length);
  for (ByteView part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

namespace tag {
constexpr std::uint8_t kBoolean = 0x01;
constexpr std::uint8_t kInteger = 0x02;
constexpr std::uint8_t kBitString = 0x03;
constexpr std::uint8_t kOctetString = 0x04;
constexpr std::uint8_t kEnumerated = 0x0A;
constexpr std::uint8_t kUtcTime = 0x17;
constexpr std::uint8_t kGeneralizedTime = 0x18;
constexpr std::uint8_t kSequence = 0x30;
constexpr std::uint8_t kContext0 = 0xA0;           // [0] constructed
constexpr std::uint8_t kContext4 = 0xA4;           // [4] constructed
constexpr std::uint8_t kContextPrimitive0 = 0x80;  // [0] primitive
}  // namespace tag

// The content octets of a non-negative INTEGER: minimal, with a 0x00 only when the top bit would read as a sign.
struct IntegerContent {
  std::array<std::uint8_t, 9> bytes{};
  std::size_t size = 0;

  explicit IntegerContent(std::uint64_t value) {
    std::size_t significant = 1;
    while (significant < 8 && (value >> (8 * significant)) != 0) ++significant;
    const bool needs_sign_byte = ((value >> (8 * (significant - 1))) & 0x80) != 0;
    if (needs_sign_byte) bytes[size++] = 0;
    for (std::size_t i = significant; i > 0; --i) bytes[size++] = static_cast<std::uint8_t>(value >> (8 * (i - 1)));
  }
  [[nodiscard]] ByteView view() const { return {bytes.data(), size}; }
};

Bytes EncodeInteger(std::uint64_t value) { return Tlv(tag::kInteger, {IntegerContent(value).view()}); }

struct CivilTime {
  std::int64_t year;
  unsigned month, day, hour, minute, second;
};

// Howard Hinnant's days_from_civil / civil_from_days: exact proleptic Gregorian arithmetic, no time zone,
// and much faster than gmtime_r (which would run 20 million times for a 10M-entry file).
std::int64_t DaysFromCivil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

CivilTime ToCivil(UnixSeconds seconds) {
  std::int64_t days = seconds / kSecondsPerDay;
  std::int64_t second_of_day = seconds % kSecondsPerDay;
  if (second_of_day < 0) {
    second_of_day += kSecondsPerDay;
    --days;
  }
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned shifted_month = (5 * day_of_year + 2) / 153;
  const unsigned day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  const unsigned month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  const std::int64_t year = static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
  const auto sod = static_cast<unsigned>(second_of_day);
  return {year, month, day, sod / 3600, sod / 60 % 60, sod % 60};
}

std::uint8_t* WriteDigits(std::uint8_t* out, std::int64_t value, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>('0' + value % 10);
    value /= 10;
  }
  return out + digits;
}

// RFC 5280 4.1.2.5: UTCTime for 1950-2049, GeneralizedTime otherwise; always Zulu, always with seconds.
bool UsesUtcTime(UnixSeconds seconds) {
  const std::int64_t year = ToCivil(seconds).year;
  return year >= 1950 && year < 2050;
}
std::size_t TimeTlvLength(UnixSeconds seconds) { return UsesUtcTime(seconds) ? 2 + 13 : 2 + 15; }

std::uint8_t* WriteTime(std::uint8_t* out, UnixSeconds seconds, bool force_generalized = false) {
  const CivilTime t = ToCivil(seconds);
  const bool utc = !force_generalized && t.year >= 1950 && t.year < 2050;
  if (!utc && (t.year < 0 || t.year > 9999)) throw std::out_of_range("time outside years 0000-9999");
  *out++ = utc ? tag::kUtcTime : tag::kGeneralizedTime;
  *out++ = utc ? 13 : 15;
  out = utc ? WriteDigits(out, t.year % 100, 2) : WriteDigits(out, t.year, 4);
  out = WriteDigits(out, t.month, 2);
  out = WriteDigits(out, t.day, 2);
  out = WriteDigits(out, t.hour, 2);
  out = WriteDigits(out, t.minute, 2);
  out = WriteDigits(out, t.second, 2);
  *out++ = 'Z';
  return out;
}

Bytes EncodeTime(UnixSeconds seconds) {
  Bytes out(TimeTlvLength(seconds));
  WriteTime(out.data(), seconds);
  return out;
}

// OIDs, DER-encoded with tag and length.
constexpr std::array<std::uint8_t, 5> kOidReasonCode = {0x06, 0x03, 0x55, 0x1D, 0x15};                // 2.5.29.21
constexpr std::array<std::uint8_t, 5> kOidInvalidityDate = {0x06, 0x03, 0x55, 0x1D, 0x18};            // 2.5.29.24
constexpr std::array<std::uint8_t, 5> kOidCrlNumber = {0x06, 0x03, 0x55, 0x1D, 0x14};                 // 2.5.29.20
constexpr std::array<std::uint8_t, 5> kOidIssuingDistributionPoint = {0x06, 0x03, 0x55, 0x1D, 0x1C};  // 2.5.29.28
constexpr std::array<std::uint8_t, 5> kOidAuthorityKeyIdentifier = {0x06, 0x03, 0x55, 0x1D, 0x23};    // 2.5.29.35
// AlgorithmIdentifier { sha256WithRSAEncryption (1.2.840.113549.1.1.11), NULL }.
constexpr std::array<std::uint8_t, 15> kSha256WithRsaEncryption = {0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86,
                                                                   0xF7, 0x0D, 0x01, 0x01, 0x0B, 0x05, 0x00};

// Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
Bytes EncodeExtension(ByteView oid, bool critical, ByteView value) {
  static constexpr std::array<std::uint8_t, 3> kCriticalTrue = {tag::kBoolean, 0x01, 0xFF};
  const Bytes octets = Tlv(tag::kOctetString, {value});
  return critical ? Tlv(tag::kSequence, {oid, kCriticalTrue, octets}) : Tlv(tag::kSequence, {oid, octets});
}

// Exact sizes of the two entry extensions (reasonCode: ENUMERATED; invalidityDate: GeneralizedTime always).
constexpr std::size_t kReasonCodeExtensionLength = 2 + 5 + 2 + 3;       // 30 0A | OID | 04 03 | 0A 01 rr
constexpr std::size_t kInvalidityDateExtensionLength = 2 + 5 + 2 + 17;  // 30 18 | OID | 04 11 | 18 0F ...
constexpr std::size_t kMaxEntryLength = 128;

// revokedCertificates' element: SEQUENCE { userCertificate INTEGER, revocationDate Time,
// crlEntryExtensions Extensions OPTIONAL }. Writes into `out` (kMaxEntryLength bytes) and returns the length.
std::size_t EncodeRevokedCertificate(std::uint32_t serial, const EntryDetails& details, std::uint8_t* out) {
  const IntegerContent serial_content(serial);
  std::size_t extensions_length = 0;
  if (details.reason) extensions_length += kReasonCodeExtensionLength;
  if (details.invalidity_date) extensions_length += kInvalidityDateExtensionLength;
  const std::size_t content_length =
      2 + serial_content.size + TimeTlvLength(details.revoked_at) + (extensions_length > 0 ? 2 + extensions_length : 0);
  std::uint8_t* p = out;
  *p++ = tag::kSequence;
  *p++ = static_cast<std::uint8_t>(content_length);
  *p++ = tag::kInteger;
  *p++ = static_cast<std::uint8_t>(serial_content.size);
  p = std::copy_n(serial_content.bytes.data(), serial_content.size, p);
  p = WriteTime(p, details.revoked_at);
  if (extensions_length > 0) {
    *p++ = tag::kSequence;
    *p++ = static_cast<std::uint8_t>(extensions_length);
    if (details.reason) {
      *p++ = tag::kSequence;
      *p++ = kReasonCodeExtensionLength - 2;
      p = std::copy(kOidReasonCode.begin(), kOidReasonCode.end(), p);
      *p++ = tag::kOctetString;
      *p++ = 3;
      *p++ = tag::kEnumerated;
      *p++ = 1;
      *p++ = static_cast<std::uint8_t>(*details.reason);
    }
    if (details.invalidity_date) {
      *p++ = tag::kSequence;
      *p++ = kInvalidityDateExtensionLength - 2;
      p = std::copy(kOidInvalidityDate.begin(), kOidInvalidityDate.end(), p);
      *p++ = tag::kOctetString;
      *p++ = 17;
      p = WriteTime(p, *details.invalidity_date, /*force_generalized=*/true);
    }
  }
  return static_cast<std::size_t>(p - out);
}

// ---------------------------------------------------------------------------------------------------------
// Files.

// A file written under a temporary name and renamed into place only when complete, so that an interrupted
// run never leaves a truncated CRL that a cache would take for a finished one.
class OutputFile {
 public:
  static Result<OutputFile> Create(std::filesystem::path path) {
    std::filesystem::path partial = path;
    partial += ".partial";
    const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Fail(ErrorCode::kIo, "cannot create " + partial.string() + ": " + std::strerror(errno));
    return OutputFile(std::move(path), std::move(partial), fd);
  }

  OutputFile(OutputFile&& other) noexcept
      : path_(std::move(other.path_)), partial_(std::move(other.partial_)), fd_(std::exchange(other.fd_, -1)) {}
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  ~OutputFile() {
    if (fd_ >= 0) {
      ::close(fd_);
      std::error_code ignored;
      std::filesystem::remove(partial_, ignored);
    }
  }

  Result<void> Write(ByteView bytes) {
    while (!bytes.empty()) {
      const ssize_t written = ::write(fd_, bytes.data(), bytes.size());
      if (written < 0) {
        if (errno == EINTR) continue;
        return Fail(ErrorCode::kIo, "cannot write " + partial_.string() + ": " + std::strerror(errno));
      }
      bytes = bytes.subspan(static_cast<std::size_t>(written));
    }
    return {};
  }

  Result<void> Commit() {
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) {
      return Fail(ErrorCode::kIo, "cannot write " + partial_.string() + ": " + std::strerror(errno));
    }
    std::error_code error;
    std::filesystem::rename(partial_, path_, error);
    if (error) return Fail(ErrorCode::kIo, "cannot rename " + partial_.string() + ": " + error.message());
    return {};
  }

 private:
  OutputFile(std::filesystem::path path, std::filesystem::path partial, int fd)
      : path_(std::move(path)), partial_(std::move(partial)), fd_(fd) {}

  std::filesystem::path path_;
  std::filesystem::path partial_;
  int fd_;
};

// The CA as the CRLs need it.
struct Authority {
  UniquePtr<X509> certificate;
  UniquePtr<EVP_PKEY> key;
  Bytes subject_der;
  Bytes key_identifier;
  std::size_t signature_length = 0;
};

Result<Authority> LoadAuthority(const std::filesystem::path& certificate_path, const std::filesystem::path& key_path) {
  Authority authority;
  auto certificate = ocsp::LoadCertificate(certificate_path);
  if (!certificate) return std::unexpected(certificate.error());
  authority.certificate = std::move(*certificate);

  UniquePtr<BIO> key_file(BIO_new_file(key_path.c_str(), "r"));
  if (!key_file)
    return Fail(ErrorCode::kNotFound, "cannot open " + key_path.string() + ": " + ocsp::DrainOpenSslErrors());
  authority.key.reset(PEM_read_bio_PrivateKey(key_file.get(), nullptr, nullptr, nullptr));
  if (!authority.key) {
    return Fail(ErrorCode::kInvalidArgument,
                key_path.string() + ": not a PEM private key: " + ocsp::DrainOpenSslErrors());
  }
  // The encoding is laid out before signing, so the signature's length must be known in advance: RSA
  // PKCS#1 v1.5 signatures are exactly the modulus length (ECDSA's vary), and JPKI's CAs are RSA-2048.
  if (EVP_PKEY_is_a(authority.key.get(), "RSA") != 1) {
    return Fail(ErrorCode::kInvalidArgument, key_path.string() + ": only RSA CA keys are supported");
  }
  if (X509_check_private_key(authority.certificate.get(), authority.key.get()) != 1) {
    ocsp::DrainOpenSslErrors();
    return Fail(ErrorCode::kInvalidArgument, key_path.string() + " is not the key of " + certificate_path.string());
  }
  authority.signature_length = static_cast<std::size_t>(EVP_PKEY_get_size(authority.key.get()));
  authority.subject_der = ocsp::NameDer(X509_get_subject_name(authority.certificate.get()));
  if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(authority.certificate.get())) {
    authority.key_identifier.assign(ski->data, ski->data + ski->length);
  } else {
    // RFC 5280's method (1): SHA-1 of the subjectPublicKey, which is what the CA would have put there.
    auto hash = ocsp::PublicKeyHash(authority.certificate.get(), EVP_sha1());
    if (!hash) return std::unexpected(hash.error());
    authority.key_identifier = std::move(*hash);
  }
  return authority;
}

struct Municipality {
  unsigned index = 0;
  unsigned prefecture = 0;
};

std::string Padded(unsigned value, int width) {
  std::string digits = std::to_string(value);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, static_cast<std::size_t>(width) - digits.size(), '0');
  return digits;
}

std::string MunicipalityName(const Municipality& m) { return "Municipality-" + Padded(m.index, 4); }
std::string PrefectureName(const Municipality& m) { return "Prefecture-" + Padded(m.prefecture, 2); }

// directoryName C=JP, OU=CRL Distribution Points, OU=<prefecture>, CN=<municipality> CRLDP, as in JPKI's
// end-entity certificates' cRLDistributionPoints.
Result<Bytes> DistributionPointNameDer(const Municipality& m) {
  UniquePtr<X509_NAME> name(X509_NAME_new());
  const std::string prefecture = PrefectureName(m);
  const std::string common_name = MunicipalityName(m) + " CRLDP";
  const std::string country = "JP";
  const std::string points = "CRL Distribution Points";
  const std::array<std::pair<int, const std::string*>, 4> attributes = {{
      {NID_countryName, &country},
      {NID_organizationalUnitName, &points},
      {NID_organizationalUnitName, &prefecture},
      {NID_commonName, &common_name},
  }};
  for (const auto& [nid, value] : attributes) {
    if (!name || X509_NAME_add_entry_by_NID(name.get(), nid, V_ASN1_PRINTABLESTRING,
                                            reinterpret_cast<const unsigned char*>(value->data()),
                                            static_cast<int>(value->size()), -1, 0) != 1) {
      return Fail(ErrorCode::kCrypto, "building a distribution point name: " + ocsp::DrainOpenSslErrors());
    }
  }
  return ocsp::NameDer(name.get());
}

// The fields of one CRL file other than its entries.
struct CrlHeader {
  std::uint64_t number = 1;
  UnixSeconds this_update = 0;
  UnixSeconds next_update = 0;
  std::optional<Bytes> distribution_point_name;  // set for a partition
};

Bytes EncodeCrlExtensions(const Authority& authority, const CrlHeader& header) {
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING, ... }
  const Bytes key_identifier = Tlv(tag::kSequence, {Tlv(tag::kContextPrimitive0, {authority.key_identifier})});
  Bytes extensions;
  const Bytes aki = EncodeExtension(kOidAuthorityKeyIdentifier, false, key_identifier);
  const Bytes number = EncodeExtension(kOidCrlNumber, false, EncodeInteger(header.number));
  extensions.insert(extensions.end(), aki.begin(), aki.end());
  extensions.insert(extensions.end(), number.begin(), number.end());
  if (header.distribution_point_name) {
    // IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName, ... }
    // DistributionPointName ::= CHOICE { fullName [0] IMPLICIT GeneralNames, ... }; a tag on a CHOICE is
    // explicit, hence [0] { [0] { [4] { Name } } } with directoryName [4] explicit around the Name CHOICE.
    const Bytes directory_name = Tlv(tag::kContext4, {*header.distribution_point_name});
    const Bytes full_name = Tlv(tag::kContext0, {directory_name});
    const Bytes distribution_point = Tlv(tag::kContext0, {full_name});
    // Critical, as RFC 5280 5.2.5 requires: a consumer that ignored it would take a partition for the whole.
    const Bytes idp = EncodeExtension(kOidIssuingDistributionPoint, true, Tlv(tag::kSequence, {distribution_point}));
    extensions.insert(extensions.end(), idp.begin(), idp.end());
  }
  // crlExtensions [0] EXPLICIT Extensions
  return Tlv(tag::kContext0, {Tlv(tag::kSequence, {extensions})});
}

struct FileSummary {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
};

// Signs while writing: tbsCertList goes through this buffer, which feeds both the digest and the file.
class SignedStream {
 public:
  SignedStream(OutputFile& file, EVP_MD_CTX* signing) : file_(file), signing_(signing) {
    buffer_.reserve(kChunk + kMaxEntryLength);
  }
  Bytes& buffer() { return buffer_; }
  std::uint64_t total() const { return total_ + buffer_.size(); }

  void Append(ByteView bytes) { buffer_.insert(buffer_.end(), bytes.begin(), bytes.end()); }

  Result<void> FlushIfFull() { return buffer_.size() >= kChunk ? Flush() : Result<void>{}; }
  Result<void> Flush() {
    if (EVP_DigestSignUpdate(signing_, buffer_.data(), buffer_.size()) != 1) {
      return Fail(ErrorCode::kCrypto, "signing: " + ocsp::DrainOpenSslErrors());
    }
    if (auto written = file_.Write(buffer_); !written) return written;
    total_ += buffer_.size();
    buffer_.clear();
    return {};
  }

 private:
  static constexpr std::size_t kChunk = std::size_t{1} << 20;
  OutputFile& file_;
  EVP_MD_CTX* signing_;
  Bytes buffer_;
  std::uint64_t total_ = 0;
};

// Writes CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }.
// `entries` must be sorted by serial; `entries_length` is the sum of their encoded lengths (computed by the
// caller in its counting pass, so that every length is known before the first byte is written).
Result<FileSummary> WriteCrl(const std::filesystem::path& path, const Authority& authority, const Model& model,
                             const CrlHeader& header, std::span<const Revocation> entries,
                             std::uint64_t entries_length) {
  Bytes prefix;                            // tbsCertList's fields before revokedCertificates
  const Bytes version = EncodeInteger(1);  // v2
  const Bytes this_update = EncodeTime(header.this_update);
  const Bytes next_update = EncodeTime(header.next_update);
  for (ByteView part : {ByteView(version), ByteView(kSha256WithRsaEncryption), ByteView(authority.subject_der),
                        ByteView(this_update), ByteView(next_update)}) {
    prefix.insert(prefix.end(), part.begin(), part.end());
  }
  // An empty list is left out rather than encoded empty (RFC 5280 5.1.2.6).
  Bytes revoked_header;
  if (!entries.empty()) AppendHeader(revoked_header, tag::kSequence, entries_length);
  const Bytes extensions = EncodeCrlExtensions(authority, header);
  const std::uint64_t tbs_content =
      prefix.size() + revoked_header.size() + (entries.empty() ? 0 : entries_length) + extensions.size();
  Bytes tbs_header;
  AppendHeader(tbs_header, tag::kSequence, tbs_content);
  const std::uint64_t tbs_length = tbs_header.size() + tbs_content;
  const std::size_t signature_content = 1 + authority.signature_length;  // leading "unused bits" octet
  const std::uint64_t certificate_list_content =
      tbs_length + kSha256WithRsaEncryption.size() + TlvLength(signature_content);
  Bytes outer_header;
  AppendHeader(outer_header, tag::kSequence, certificate_list_content);

  auto file = OutputFile::Create(path);
  if (!file) return std::unexpected(file.error());
  UniquePtr<EVP_MD_CTX> signing(EVP_MD_CTX_new());
  if (!signing || EVP_DigestSignInit(signing.get(), nullptr, EVP_sha256(), nullptr, authority.key.get()) != 1) {
    return Fail(ErrorCode::kCrypto, "starting the signature: " + ocsp::DrainOpenSslErrors());
  }
  if (auto written = file->Write(outer_header); !written) return std::unexpected(written.error());

  SignedStream tbs(*file, signing.get());
  tbs.Append(tbs_header);
  tbs.Append(prefix);
  tbs.Append(revoked_header);
  Bytes& buffer = tbs.buffer();
  for (const Revocation& revocation : entries) {
    const std::size_t at = buffer.size();
    buffer.resize(at + kMaxEntryLength);
    buffer.resize(at + EncodeRevokedCertificate(revocation.serial, DetailsOf(model, revocation), buffer.data() + at));
    if (auto flushed = tbs.FlushIfFull(); !flushed) return std::unexpected(flushed.error());
  }
  tbs.Append(extensions);
  if (auto flushed = tbs.Flush(); !flushed) return std::unexpected(flushed.error());
  if (tbs.total() != tbs_length) {
    return Fail(ErrorCode::kInternal, "encoded " + std::to_string(tbs.total()) + " bytes of tbsCertList, laid out " +
                                          std::to_string(tbs_length));
  }

  Bytes signature(authority.signature_length);
  std::size_t signature_size = signature.size();
  if (EVP_DigestSignFinal(signing.get(), signature.data(), &signature_size) != 1) {
    return Fail(ErrorCode::kCrypto, "signing: " + ocsp::DrainOpenSslErrors());
  }
  if (signature_size != authority.signature_length) {
    return Fail(ErrorCode::kInternal, "the signature is not as long as the key's modulus");
  }
  Bytes trailer(kSha256WithRsaEncryption.begin(), kSha256WithRsaEncryption.end());
  AppendHeader(trailer, tag::kBitString, signature_content);
  trailer.push_back(0);
  trailer.insert(trailer.end(), signature.begin(), signature.end());
  if (auto written = file->Write(trailer); !written) return std::unexpected(written.error());
  if (auto committed = file->Commit(); !committed) return std::unexpected(committed.error());
  return FileSummary{entries.size(), outer_header.size() + certificate_list_content};
}

// Counts per reason, for the summary: lets a reader check the mix without parsing the file.
struct ReasonCounts {
  std::array<std::uint64_t, 8> by_code{};  // index: reason code; index 7: no reasonCode
  std::uint64_t with_invalidity_date = 0;

  void Add(const EntryDetails& details) {
    ++by_code[details.reason ? static_cast<std::size_t>(*details.reason) : 7];
    if (details.invalidity_date) ++with_invalidity_date;
  }
  [[nodiscard]] std::string Summary() const {
    static constexpr std::array<std::pair<std::size_t, const char*>, 7> kNames = {{
        {3, "affiliationChanged"},
        {5, "cessationOfOperation"},
        {4, "superseded"},
        {1, "keyCompromise"},
        {6, "certificateHold"},
        {0, "unspecified"},
        {7, "none"},
    }};
    std::string out;
    for (const auto& [code, name] : kNames) {
      if (!out.empty()) out += ' ';
      out += std::string(name) + '=' + std::to_string(by_code[code]);
    }
    return out + " invalidityDate=" + std::to_string(with_invalidity_date);
  }
};

// Municipalities differ in size: weight k is proportional to 1 / (k + 100), so the largest of 1,900 holds
// about 6x the average and the smallest about a third of it (the domain notes: ~15k entries on average,
// ~1e5 for large cities).
class MunicipalityMap {
 public:
  explicit MunicipalityMap(unsigned count) : cumulative_(count) {
    double total = 0;
    for (unsigned k = 0; k < count; ++k) cumulative_[k] = (total += 1.0 / (k + 100.0));
    for (double& c : cumulative_) c /= total;
    cumulative_.back() = 1.0;
  }
  // Depends on the serial only, like a real certificate's distribution point: the same serial falls in the
  // same partition on every day and for every seed.
  [[nodiscard]] unsigned Of(std::uint32_t serial) const {
    const double u = UnitInterval(Hash(0, Stream::kMunicipality, serial));
    const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
    return static_cast<unsigned>(
        std::min<std::ptrdiff_t>(it - cumulative_.begin(), static_cast<std::ptrdiff_t>(cumulative_.size()) - 1));
  }

 private:
  std::vector<double> cumulative_;
};

constexpr unsigned kPrefectures = 47;

struct Options {
  std::string ca_cert;
  std::string ca_key;
  std::uint64_t entries = 1'000'000;
  std::string out;
  std::string out_dir;
  unsigned partitions = 0;
  std::uint64_t number = 1;
  std::uint64_t seed = 1;
  std::uint32_t day = 0;
  std::string this_update;  // day 0's
  double validity_hours = 24;
  AdditionPattern additions = AdditionPattern::kScattered;
};

Result<UnixSeconds> ParseTime(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return static_cast<UnixSeconds>(std::stoll(text));
  }
  int year = 0;
  unsigned month = 0, day = 0, hour = 0, minute = 0, second = 0;
  char zulu = 0;
  if (std::sscanf(text.c_str(), "%4d-%2u-%2uT%2u:%2u:%2u%c", &year, &month, &day, &hour, &minute, &second, &zulu) !=
          7 ||
      zulu != 'Z' || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return Fail(ErrorCode::kInvalidArgument,
                "--this-update: expected Unix seconds or YYYY-MM-DDTHH:MM:SSZ, got '" + text + "'");
  }
  return DaysFromCivil(year, month, day) * kSecondsPerDay + hour * 3600 + minute * 60 + second;
}

std::string IsoTime(UnixSeconds seconds) {
  const CivilTime t = ToCivil(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%04lld-%02u-%02uT%02u:%02u:%02uZ", static_cast<long long>(t.year), t.month, t.day,
                t.hour, t.minute, t.second);
  return text;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int Run(const Options& options) {
  const auto started = std::chrono::steady_clock::now();
  auto authority = LoadAuthority(options.ca_cert, options.ca_key);
  if (!authority) {
    std::cerr << "crl-gen: " << authority.error().Describe() << "\n";
    return 1;
  }
  const UnixSeconds now = ocsp::SystemClock().Now();
  Model model;
  model.seed = options.seed;
  model.base_entries = options.entries;
  model.additions = options.additions;
  if (options.this_update.empty()) {
    // Without an explicit time, the requested day's CRL is current: thisUpdate ten minutes ago.
    model.base_this_update = now - 600 - static_cast<UnixSeconds>(options.day) * kSecondsPerDay;
  } else {
    auto parsed = ParseTime(options.this_update);
    if (!parsed) {
      std::cerr << "crl-gen: " << parsed.error().message << "\n";
      return 2;
    }
    model.base_this_update = *parsed;
  }
  CrlHeader header;
  header.number = options.number + options.day;
  header.this_update = model.base_this_update + static_cast<UnixSeconds>(options.day) * kSecondsPerDay;
  header.next_update = header.this_update + static_cast<UnixSeconds>(std::llround(options.validity_hours * 3600));

  const std::vector<Revocation> revoked = RevokedOnDay(model, options.day);

  ReasonCounts reasons;
  std::array<std::uint8_t, kMaxEntryLength> scratch{};
  auto timing = [&] { return " in " + std::to_string(SecondsSince(started)).substr(0, 5) + " s"; };
  const std::string what = "day " + std::to_string(options.day) + ", CRL number " + std::to_string(header.number) +
                           ", thisUpdate " + IsoTime(header.this_update) + ", nextUpdate " +
                           IsoTime(header.next_update);

  if (options.partitions == 0) {
    std::uint64_t entries_length = 0;
    for (const Revocation& r : revoked) {
      const EntryDetails details = DetailsOf(model, r);
      reasons.Add(details);
      entries_length += EncodeRevokedCertificate(r.serial, details, scratch.data());
    }
    auto written = WriteCrl(options.out, *authority, model, header, revoked, entries_length);
    if (!written) {
      std::cerr << "crl-gen: " << written.error().Describe() << "\n";
      return 1;
    }
    std::cout << "crl-gen: wrote " << options.out << ": " << written->entries << " entries, " << written->bytes
              << " bytes, " << what << timing() << "\n  reasons: " << reasons.Summary() << "\n";
    return 0;
  }

  // Partitions: a stable counting sort by municipality keeps each municipality's serials ascending.
  const MunicipalityMap map(options.partitions);
  std::vector<std::uint16_t> municipality_of(revoked.size());
  std::vector<std::uint64_t> counts(options.partitions, 0);
  std::vector<std::uint64_t> lengths(options.partitions, 0);
  for (std::size_t i = 0; i < revoked.size(); ++i) {
    const unsigned m = map.Of(revoked[i].serial);
    municipality_of[i] = static_cast<std::uint16_t>(m);
    const EntryDetails details = DetailsOf(model, revoked[i]);
    reasons.Add(details);
    ++counts[m];
    lengths[m] += EncodeRevokedCertificate(revoked[i].serial, details, scratch.data());
  }
  std::vector<std::uint64_t> offsets(options.partitions + 1, 0);
  for (unsigned m = 0; m < options.partitions; ++m) offsets[m + 1] = offsets[m] + counts[m];
  std::vector<Revocation> by_municipality(revoked.size());
  {
    std::vector<std::uint64_t> next(offsets.begin(), offsets.end() - 1);
    for (std::size_t i = 0; i < revoked.size(); ++i) by_municipality[next[municipality_of[i]]++] = revoked[i];
  }
  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error) {
    std::cerr << "crl-gen: cannot create " << options.out_dir << ": " << error.message() << "\n";
    return 1;
  }
  std::uint64_t total_bytes = 0;
  for (unsigned m = 0; m < options.partitions; ++m) {
    const Municipality municipality{m, m % kPrefectures + 1};
    auto name = DistributionPointNameDer(municipality);
    if (!name) {
      std::cerr << "crl-gen: " << name.error().Describe() << "\n";
      return 1;
    }
    header.distribution_point_name = std::move(*name);
    const std::filesystem::path path =
        std::filesystem::path(options.out_dir) / (MunicipalityName(municipality) + ".der");
    auto written = WriteCrl(path, *authority, model, header,
                            std::span<const Revocation>(by_municipality).subspan(offsets[m], counts[m]), lengths[m]);
    if (!written) {
      std::cerr << "crl-gen: " << written.error().Describe() << "\n";
      return 1;
    }
    total_bytes += written->bytes;
  }
  std::vector<std::uint64_t> sorted_counts = counts;
  std::sort(sorted_counts.begin(), sorted_counts.end());
  std::cout << "crl-gen: wrote " << options.partitions << " partitions to " << options.out_dir << ": " << revoked.size()
            << " entries, " << total_bytes << " bytes, " << what << timing() << "\n  entries per partition: min "
            << sorted_counts.front() << ", median " << sorted_counts[sorted_counts.size() / 2] << ", max "
            << sorted_counts.back() << "\n  reasons: " << reasons.Summary() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"crl-gen: write large JPKI-shaped CRLs (DER) for the import benchmark"};
  Options options;
  app.add_option("--ca-cert", options.ca_cert, "the CA certificate (PEM or DER): issuer name and key identifier")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--ca-key", options.ca_key, "the CA's RSA private key (PEM) that signs the CRLs")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("-n,--entries", options.entries, "entries on day 0 (changes per day are 0.5% of this each way)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{(kDayZeroSerialEnd - kFirstSerial) / 2}));
  auto* out = app.add_option("-o,--out", options.out, "write one CRL to this file");
  auto* partitions = app.add_option("--partitions", options.partitions,
                                    "write this many per-municipality CRLs instead (needs --out-dir)")
                         ->check(CLI::Range(1u, 65535u));
  auto* out_dir = app.add_option("--out-dir", options.out_dir, "directory for the partitions (Municipality-NNNN.der)");
  partitions->needs(out_dir);
  out_dir->needs(partitions);
  out->excludes(partitions);
  app.add_option("--number", options.number, "CRL number of day 0 (day D has number + D)")->capture_default_str();
  app.add_option("--seed", options.seed, "selects the serials, reasons and dates")->capture_default_str();
  app.add_option("--day", options.day, "0: the base CRL; D: D days later, 1% of the entries changed per day")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3650u));
  app.add_option("--this-update", options.this_update,
                 "day 0's thisUpdate, Unix seconds or YYYY-MM-DDTHH:MM:SSZ (default: 10 minutes ago minus D "
                 "days). Give the same value to every day of a series: revocation dates are relative to it");
  app.add_option("--validity-hours", options.validity_hours, "nextUpdate - thisUpdate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option(
         "--additions", options.additions,
         "where each day's new revocations fall: scattered (any live certificate) or higher (above day 0's serials)")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, AdditionPattern>{{"scattered", AdditionPattern::kScattered},
                                                                         {"higher", AdditionPattern::kHigher}},
                                  CLI::ignore_case))
      ->default_str("scattered");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return 2;  // bad usage, as ocspctl
  }
  if (options.out.empty() && options.partitions == 0) {
    std::cerr << "crl-gen: give --out FILE, or --partitions P --out-dir DIR\n";
    return 2;
  }
  try {
    return Run(options);
  } catch (const std::exception& error) {
    std::cerr << "crl-gen: " << error.what() << "\n";
    return 1;
  }
}
