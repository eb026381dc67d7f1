// The streaming CRL parser (importer/crl_parser.h), a security boundary, as a specification:
//   1. what it reads from a CRL, field by field;
//   2. what it refuses, and that every refusal names the offset of the element at fault;
//   3. that it agrees with OpenSSL's d2i_X509_CRL on hundreds of random CRLs over every field combination;
//   4. that SignatureCheck verifies every supported algorithm, in chunks, and nothing else.
// Malformed inputs are built by hand from TLVs (testing::der) so that exactly one element is wrong.
#include <doctest/doctest.h>

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "importer/crl_parser.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::importer;
using ocsp::testing::CrlOptions;
using ocsp::testing::CrlSummary;
using ocsp::testing::DistributionPointSpec;
using ocsp::testing::KeyType;
using ocsp::testing::RevokedSpec;
using ocsp::testing::TestCa;
using ocsp::testing::TimeForm;
using ocsp::testing::ToDer;
namespace build = ocsp::testing::der;

namespace {

// --- Reading helpers ---

UnixSeconds Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  std::tm parts{};
  parts.tm_year = year - 1900;
  parts.tm_mon = month - 1;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  return static_cast<UnixSeconds>(timegm(&parts));
}

Bytes Copy(ByteView view) { return Bytes(view.begin(), view.end()); }

RevokedSpec Revoked(Bytes serial, UnixSeconds at = 0, std::optional<int> reason = std::nullopt,
                    std::optional<UnixSeconds> invalidity_date = std::nullopt) {
  RevokedSpec spec;
  spec.serial = std::move(serial);
  spec.revoked_at = at;
  spec.reason = reason;
  spec.invalidity_date = invalidity_date;
  return spec;
}

// The first error of Open and of the walk over the entries, if any.
std::optional<Error> FirstError(ByteView der) {
  auto parser = CrlParser::Open(der);
  if (!parser) return parser.error();
  auto walk = parser->ForEachEntry([](const CrlEntry&) -> Result<void> { return {}; });
  if (!walk) return walk.error();
  return std::nullopt;
}

std::vector<CrlEntry> EntriesOf(const CrlParser& parser) {
  std::vector<CrlEntry> entries;
  auto walk = parser.ForEachEntry([&](const CrlEntry& entry) -> Result<void> {
    entries.push_back(entry);
    return {};
  });
  REQUIRE_MESSAGE(walk.has_value(), walk.error().message);
  return entries;
}

// Refused, with `words` in the message and the offset of the element at fault.
void CheckRefusedAt(ByteView der, std::size_t offset, std::string_view words) {
  const std::optional<Error> error = FirstError(der);
  CHECK_MESSAGE(error.has_value(), "accepted: " << ToHex(der));
  if (!error) return;
  INFO("message: " << error->message);
  CHECK(error->message.find(words) != std::string::npos);
  CHECK(error->message.find("at offset " + std::to_string(offset) + ":") != std::string::npos);
}

// Where `needle` occurs in `haystack`; it must occur exactly once.
std::size_t OffsetOf(ByteView haystack, ByteView needle) {
  const auto found = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end());
  REQUIRE_MESSAGE(found != haystack.end(), "not found: " << ToHex(needle));
  REQUIRE_MESSAGE(std::search(found + 1, haystack.end(), needle.begin(), needle.end()) == haystack.end(),
                  "found twice: " << ToHex(needle));
  return static_cast<std::size_t>(found - haystack.begin());
}

// --- Hand-built DER ---

Bytes Integer(ByteView contents) { return build::Tlv(0x02, contents); }  // contents exactly as given
Bytes UtcTime(std::string_view text) { return build::Tlv(0x17, AsBytes(text)); }
Bytes GeneralizedTime(std::string_view text) { return build::Tlv(0x18, AsBytes(text)); }
Bytes Algorithm(std::string_view oid) { return build::Tlv(0x30, build::Oid(oid)); }
Bytes EcdsaSha256() { return Algorithm("1.2.840.10045.4.3.2"); }

Bytes RawIssuer() {
  return build::Tlv(0x30, build::Tlv(0x31, build::Tlv(0x30, {build::Oid("2.5.4.3"), build::Tlv(0x0c, AsBytes("Raw CA"))})));
}

Bytes ReasonCode(std::uint8_t code) { return build::Extension("2.5.29.21", false, build::Tlv(0x0a, Bytes{code})); }
Bytes InvalidityDate(std::string_view text) { return build::Extension("2.5.29.24", false, GeneralizedTime(text)); }
Bytes CrlNumber(ByteView magnitude) { return build::Extension("2.5.29.20", false, build::Integer(magnitude)); }
Bytes DistributionPoint(ByteView fields) { return build::Extension("2.5.29.28", true, build::Tlv(0x30, fields)); }
Bytes UriFullName(std::string_view uri) {  // distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] } }
  return build::Tlv(0xa0, build::Tlv(0xa0, build::Tlv(0x86, AsBytes(uri))));
}

Bytes Entry(ByteView serial, ByteView time, const std::vector<Bytes>& extensions = {}) {
  Bytes list;
  for (const Bytes& extension : extensions) list.insert(list.end(), extension.begin(), extension.end());
  return build::Tlv(0x30, {serial, time, extensions.empty() ? Bytes{} : build::Tlv(0x30, list)});
}

// A CRL from raw parts, each replaceable, so that exactly one element is wrong. Open() never looks at the
// signature value, so a constant stands in for it.
struct RawCrl {
  std::optional<Bytes> version = Integer(Bytes{0x01});
  Bytes algorithm = EcdsaSha256();
  Bytes issuer = RawIssuer();
  Bytes this_update = UtcTime("250301120000Z");
  std::optional<Bytes> next_update = UtcTime("250308120000Z");
  std::vector<Bytes> entries;
  std::optional<Bytes> revoked;  // the whole revokedCertificates element, instead of one built from `entries`
  std::vector<Bytes> extensions = {CrlNumber(Bytes{0x07})};
  std::optional<Bytes> extensions_field;  // the whole [0] element, instead of one built from `extensions`
  Bytes after_extensions;                 // anything appended inside tbsCertList
  Bytes outer_algorithm = EcdsaSha256();
  Bytes signature = build::Tlv(0x03, {Bytes{0x00}, Bytes(64, 0x5a)});

  [[nodiscard]] Bytes Tbs() const {
    Bytes fields;
    auto add = [&](ByteView part) { fields.insert(fields.end(), part.begin(), part.end()); };
    if (version) add(*version);
    add(algorithm);
    add(issuer);
    add(this_update);
    if (next_update) add(*next_update);
    if (revoked) {
      add(*revoked);
    } else if (!entries.empty()) {
      Bytes list;
      for (const Bytes& entry : entries) list.insert(list.end(), entry.begin(), entry.end());
      add(build::Tlv(0x30, list));
    }
    if (extensions_field) {
      add(*extensions_field);
    } else if (!extensions.empty()) {
      Bytes list;
      for (const Bytes& extension : extensions) list.insert(list.end(), extension.begin(), extension.end());
      add(build::Tlv(0xa0, build::Tlv(0x30, list)));
    }
    add(after_extensions);
    return build::Tlv(0x30, fields);
  }
  [[nodiscard]] Bytes Der() const { return build::Tlv(0x30, {Tbs(), outer_algorithm, signature}); }
};

// A RawCrl with one ordinary entry whose serial or time the test replaces.
RawCrl WithEntry(ByteView serial, ByteView time, const std::vector<Bytes>& extensions = {}) {
  RawCrl crl;
  crl.entries = {Entry(Integer(Bytes{0x10, 0x01}), UtcTime("250201000000Z")), Entry(serial, time, extensions)};
  return crl;
}

// --- Our reading in OpenSSL's vocabulary (testing::CrlSummary), for the differential tests ---

Result<CrlSummary> Summarize(ByteView der) {
  auto parser = CrlParser::Open(der);
  if (!parser) return std::unexpected(parser.error());
  const CrlHeader& header = parser->header();
  CrlSummary summary;
  summary.issuer = Copy(header.issuer);
  summary.signature_algorithm = Copy(header.signature_algorithm);
  summary.tbs = Copy(header.tbs);
  summary.signature = Copy(header.signature);
  summary.this_update = header.this_update;
  summary.next_update = header.next_update;
  summary.crl_number = header.crl_number;
  summary.delta_base = header.delta_base;
  summary.authority_key_id = header.authority_key_id;
  if (header.distribution_point) {
    summary.has_distribution_point = true;
    summary.distribution_point_name = header.distribution_point->distribution_point;
    summary.scope = static_cast<int>(header.distribution_point->scope);
  }
  auto walk = parser->ForEachEntry([&](const CrlEntry& entry) -> Result<void> {
    CrlSummary::Entry copy;
    copy.serial = Copy(entry.serial);
    copy.revocation_time = entry.revocation_time;
    if (entry.reason) copy.reason = static_cast<int>(*entry.reason);
    copy.invalidity_date = entry.invalidity_date;
    summary.entries.push_back(std::move(copy));
    return {};
  });
  if (!walk) return std::unexpected(walk.error());
  return summary;
}

// Whether OpenSSL decodes the CRL and finds nothing in it it cannot use (testing::ReadCrlWithOpenSsl).
bool OpenSslCanUse(ByteView der) {
  const auto reading = testing::ReadCrlWithOpenSsl(der);
  return reading.has_value() && reading->problems.empty();
}

// Minimal magnitude of a serial or number as the test asked for it.
Bytes Minimal(const Bytes& magnitude) {
  auto first = std::find_if(magnitude.begin(), magnitude.end(), [](std::uint8_t byte) { return byte != 0; });
  return first == magnitude.end() ? Bytes{0} : Bytes(first, magnitude.end());
}

}  // namespace

// =====================================================================================================
// 1. What the parser reads
// =====================================================================================================

TEST_CASE("parser: a CRL made by OpenSSL reads back with every header field") {
  const TestCa ca = TestCa::Create();
  const UnixSeconds this_update = Utc(2025, 3, 1, 12, 0, 0);
  CrlOptions options;
  options.number = 42;
  options.this_update = this_update;
  options.next_update = this_update + 7 * 86400;
  options.issuing_distribution_point = true;  // fullName URI:http://crl.test/p1.crl
  options.revoked = {{{0x10, 0x01}, this_update - 3600, 1, this_update - 86400}};
  const Bytes der = ToDer(ca.Crl(options).get());

  auto parser = CrlParser::Open(der);
  REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
  const CrlHeader& header = parser->header();

  // The signed bytes are the tbsCertList TLV itself, a view into the input.
  REQUIRE(header.tbs.size() > 4);
  CHECK(header.tbs.data() >= der.data());
  CHECK(header.tbs.data() + header.tbs.size() <= der.data() + der.size());
  CHECK(header.tbs[0] == 0x30);
  CHECK(header.tbs.data() == der.data() + (der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2));

  CHECK(Copy(header.issuer) == NameDer(X509_get_subject_name(ca.certificate.get())));
  CHECK(header.this_update == this_update);
  CHECK(header.next_update == this_update + 7 * 86400);
  CHECK(header.crl_number == Bytes{42});
  CHECK_FALSE(header.delta_base.has_value());
  const ASN1_OCTET_STRING* key_id = X509_get0_subject_key_id(ca.certificate.get());
  REQUIRE(key_id != nullptr);
  CHECK(header.authority_key_id == Bytes(key_id->data, key_id->data + key_id->length));
  REQUIRE(header.distribution_point.has_value());
  CHECK(header.distribution_point->scope == PartitionScope::kUserCerts);
  CHECK(header.distribution_point->name == "URI:http://crl.test/p1.crl");
  CHECK(header.distribution_point->distribution_point ==
        build::Tlv(0xa0, build::Tlv(0x86, AsBytes("http://crl.test/p1.crl"))));

  // Both algorithm identifiers and the signature are OpenSSL's.
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* algorithm = nullptr;
  const unsigned char* cursor = der.data();
  UniquePtr<X509_CRL> decoded(d2i_X509_CRL(nullptr, &cursor, static_cast<long>(der.size())));
  REQUIRE(decoded);
  X509_CRL_get0_signature(decoded.get(), &signature, &algorithm);
  CHECK(Copy(header.signature) == Bytes(signature->data, signature->data + signature->length));
  CHECK(Copy(header.signature_algorithm) == EcdsaSha256());
  CHECK(Copy(header.tbs_signature_algorithm) == EcdsaSha256());
}

TEST_CASE("parser: entries come in file order with magnitudes, times, reasons, invalidity dates and offsets") {
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = Utc(2025, 3, 1);
  const Bytes twenty(20, 0x7f);                  // the longest serial: 20 octets, no pad needed
  Bytes padded(19, 0xab);                         // 19 octets whose top bit needs a 0x00 pad: 20 on the wire
  CrlOptions options;
  options.this_update = now;
  options.sort_entries = false;
  options.revoked = {
      {{0x30, 0x39}, now - 10, 4, std::nullopt},
      {{0x05}, now - 20, std::nullopt, now - 86400},
      {twenty, now - 30, 10, std::nullopt},
      {padded, now - 40, 0, now - 2 * 86400},
      {{0x00}, now - 50, 8, std::nullopt},       // serial zero: non-conforming but seen in the wild
      {{0x80}, now - 60, std::nullopt, std::nullopt},
  };
  const Bytes der = ToDer(ca.Crl(options).get());
  auto parser = CrlParser::Open(der);
  REQUIRE_MESSAGE(parser.has_value(), parser.error().message);

  std::vector<std::size_t> reported;
  std::vector<CrlEntry> entries;
  auto walk = parser->ForEachEntry(
      [&](const CrlEntry& entry) -> Result<void> {
        entries.push_back(entry);
        return {};
      },
      [&](std::size_t consumed_to) { reported.push_back(consumed_to); });
  REQUIRE_MESSAGE(walk.has_value(), walk.error().message);

  REQUIRE(entries.size() == options.revoked.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    CAPTURE(i);
    const RevokedSpec& spec = options.revoked[i];
    CHECK(Copy(entries[i].serial) == spec.serial);
    CHECK(entries[i].revocation_time == spec.revoked_at);
    CHECK(entries[i].reason.has_value() == spec.reason.has_value());
    if (spec.reason) CHECK(static_cast<int>(*entries[i].reason) == *spec.reason);
    CHECK(entries[i].invalidity_date == spec.invalidity_date);
    // The serial is a view into the input, and the offset is the entry's SEQUENCE.
    CHECK(entries[i].serial.data() > der.data());
    CHECK(entries[i].serial.data() < der.data() + der.size());
    REQUIRE(entries[i].offset < der.size());
    CHECK(der[entries[i].offset] == 0x30);
    if (i > 0) CHECK(entries[i].offset > entries[i - 1].offset);
  }
  const CrlHeader& header = parser->header();
  CHECK(entries.front().offset == header.entries_offset);
  CHECK(header.entries.data() == der.data() + header.entries_offset);
  // Progress ends with the offset just past the last entry.
  REQUIRE_FALSE(reported.empty());
  CHECK(reported.back() == header.entries_offset + header.entries.size());
}

TEST_CASE("parser: a CRL with no entries and no nextUpdate walks nothing") {
  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.omit_next_update = true;
  const Bytes der = ToDer(ca.Crl(options).get());
  auto parser = CrlParser::Open(der);
  REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
  CHECK_FALSE(parser->header().next_update.has_value());
  CHECK(parser->header().entries.empty());
  CHECK(EntriesOf(*parser).empty());

  RawCrl raw;  // an empty revokedCertificates SEQUENCE is read as no entries too
  raw.revoked = build::Tlv(0x30, ByteView{});
  const Bytes der_1 = raw.Der();
  auto empty_list = CrlParser::Open(der_1);
  REQUIRE_MESSAGE(empty_list.has_value(), empty_list.error().message);
  CHECK(EntriesOf(*empty_list).empty());
}

TEST_CASE("parser: the visitor's error stops the walk and is returned as it is") {
  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.revoked = {Revoked({0x01}), Revoked({0x02}), Revoked({0x03})};
  const Bytes der = ToDer(ca.Crl(options).get());
  auto parser = CrlParser::Open(der);
  REQUIRE(parser.has_value());
  int visited = 0;
  auto walk = parser->ForEachEntry([&](const CrlEntry&) -> Result<void> {
    if (++visited == 2) return Fail(ErrorCode::kRefused, "stop here");
    return {};
  });
  REQUIRE_FALSE(walk.has_value());
  CHECK(walk.error().code == ErrorCode::kRefused);
  CHECK(walk.error().message == "stop here");
  CHECK(visited == 2);
}

TEST_CASE("parser: a delta CRL names its base, an ARL's IDP has the CA scope, a directoryName IDP is printed") {
  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.number_magnitude = Bytes{0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
  options.delta = true;
  options.delta_base_magnitude = Bytes{0xff, 0xee};
  DistributionPointSpec point;
  point.directory_name = "/C=JP/O=JPKI-TEST/CN=Partition 7";
  point.only_ca_certs = true;
  options.distribution_point = point;
  const Bytes der = ToDer(ca.Crl(options).get());
  auto parser = CrlParser::Open(der);
  REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
  const CrlHeader& header = parser->header();
  CHECK(header.crl_number == *options.number_magnitude);
  CHECK(header.delta_base == Bytes{0xff, 0xee});
  REQUIRE(header.distribution_point.has_value());
  CHECK(header.distribution_point->scope == PartitionScope::kCaCerts);
  CHECK(header.distribution_point->name == "DirName:CN=Partition 7,O=JPKI-TEST,C=JP");

  SUBCASE("an IDP with only onlyContainsCACerts is the whole ARL") {
    DistributionPointSpec arl;
    arl.only_ca_certs = true;
    options.distribution_point = arl;
    const Bytes arl_der = ToDer(ca.Crl(options).get());
    auto arl_parser = CrlParser::Open(arl_der);
    REQUIRE_MESSAGE(arl_parser.has_value(), arl_parser.error().message);
    REQUIRE(arl_parser->header().distribution_point.has_value());
    CHECK(arl_parser->header().distribution_point->scope == PartitionScope::kCaCerts);
    CHECK(arl_parser->header().distribution_point->distribution_point.empty());
  }
  SUBCASE("an IDP with only onlyContainsUserCerts is the user-certificate partition") {
    DistributionPointSpec users;
    users.only_user_certs = true;
    options.distribution_point = users;
    const Bytes users_der = ToDer(ca.Crl(options).get());
    auto users_parser = CrlParser::Open(users_der);
    REQUIRE_MESSAGE(users_parser.has_value(), users_parser.error().message);
    REQUIRE(users_parser->header().distribution_point.has_value());
    CHECK(users_parser->header().distribution_point->scope == PartitionScope::kUserCerts);
  }
}

TEST_CASE("parser: unknown non-critical extensions and holdInstructionCode are ignored") {
  RawCrl crl;
  crl.extensions = {CrlNumber(Bytes{0x02}), build::Extension("1.3.6.1.4.1.99999.7", false, Bytes{0x05, 0x00}),
                    build::Extension("2.5.29.46", true, Bytes{0x30, 0x00})};  // freshestCRL, even critical
  crl.entries = {Entry(Integer(Bytes{0x01}), UtcTime("250201000000Z"),
                       {build::Extension("1.3.6.1.4.1.99999.8", false, Bytes{0x05, 0x00}),
                        build::Extension("2.5.29.23", false, build::Oid("1.2.840.10040.2.2"))})};
  const Bytes der = crl.Der();
  auto parser = CrlParser::Open(der);
  REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
  CHECK(parser->header().crl_number == Bytes{0x02});
  const auto entries = EntriesOf(*parser);
  REQUIRE(entries.size() == 1);
  CHECK_FALSE(entries[0].reason.has_value());
}

TEST_CASE("parser: times are read in both forms, either side of 2050, with RFC 5280's UTCTime century") {
  struct Case {
    Bytes time;
    UnixSeconds expected;
  };
  const std::vector<Case> cases = {
      {UtcTime("500101000000Z"), Utc(1950, 1, 1)},                      // YY >= 50: 19YY
      {UtcTime("491231235959Z"), Utc(2049, 12, 31, 23, 59, 59)},        // YY < 50: 20YY
      {UtcTime("700101000000Z"), 0},
      {GeneralizedTime("20250301120000Z"), Utc(2025, 3, 1, 12)},        // GeneralizedTime before 2050 too
      {GeneralizedTime("20500101000000Z"), Utc(2050, 1, 1)},
      {GeneralizedTime("99991231235959Z"), Utc(9999, 12, 31, 23, 59, 59)},
      {GeneralizedTime("19000101000000Z"), Utc(1900, 1, 1)},
      {UtcTime("240229000000Z"), Utc(2024, 2, 29)},                     // leap days
      {GeneralizedTime("20000229000000Z"), Utc(2000, 2, 29)},
  };
  for (const Case& item : cases) {
    CAPTURE(ToHex(item.time));
    RawCrl crl;
    crl.this_update = item.time;
    crl.next_update = item.time;
    crl.entries = {Entry(Integer(Bytes{0x01}), item.time, {InvalidityDate("20240101000000Z")})};
    const Bytes der = crl.Der();
    auto parser = CrlParser::Open(der);
    REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
    CHECK(parser->header().this_update == item.expected);
    CHECK(parser->header().next_update == item.expected);
    const auto entries = EntriesOf(*parser);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].revocation_time == item.expected);
    CHECK(entries[0].invalidity_date == Utc(2024, 1, 1));
  }
}

TEST_CASE("parser: a v1 CRL (no version, no extensions) is read") {
  RawCrl crl;
  crl.version.reset();
  crl.extensions.clear();
  crl.entries = {Entry(Integer(Bytes{0x01}), UtcTime("250201000000Z"))};
  const Bytes der = crl.Der();
  auto parser = CrlParser::Open(der);
  REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
  CHECK_FALSE(parser->header().crl_number.has_value());
  CHECK(EntriesOf(*parser).size() == 1);
}

// =====================================================================================================
// 2. What the parser refuses, and where
// =====================================================================================================

TEST_CASE("parser: every proper prefix of a CRL is refused, naming an offset") {
  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.revoked = {Revoked({0x01}, 0, 1), Revoked({0x02})};
  const Bytes der = ToDer(ca.Crl(options).get());
  for (std::size_t length = 0; length < der.size(); ++length) {
    CAPTURE(length);
    const std::optional<Error> error = FirstError(ByteView(der).first(length));
    REQUIRE(error.has_value());
    CHECK(error->message.find(" at offset ") != std::string::npos);
  }
  CheckRefusedAt(ByteView(der).first(der.size() - 1), 0, "runs past the end");
  CheckRefusedAt(ByteView(der).first(1), 0, "truncated");
  CheckRefusedAt(ByteView{}, 0, "missing");
}

TEST_CASE("parser: bytes after the CRL are refused at the first of them") {
  const TestCa ca = TestCa::Create();
  Bytes der = ToDer(ca.Crl({}).get());
  const std::size_t end = der.size();
  der.push_back(0x00);
  CheckRefusedAt(der, end, "trailing bytes");
  der.back() = 0x30;
  der.push_back(0x00);  // even a second, empty SEQUENCE
  CheckRefusedAt(der, end, "trailing bytes");
}

TEST_CASE("parser: indefinite lengths are refused") {
  RawCrl crl;
  const Bytes entry = Entry(Integer(Bytes{0x01}), UtcTime("250201000000Z"));
  crl.revoked = build::Cat({Bytes{0x30, 0x80}, entry, Bytes{0x00, 0x00}});
  const Bytes der = crl.Der();
  CheckRefusedAt(der, OffsetOf(der, build::Cat({Bytes{0x30, 0x80}, entry})), "indefinite length");

  RawCrl outer;  // the outermost SEQUENCE itself
  Bytes whole = outer.Der();
  const std::size_t header_length = 2 + (whole[1] & 0x7f);
  Bytes indefinite{0x30, 0x80};
  indefinite.insert(indefinite.end(), whole.begin() + static_cast<std::ptrdiff_t>(header_length), whole.end());
  indefinite.insert(indefinite.end(), {0x00, 0x00});
  CheckRefusedAt(indefinite, 0, "indefinite length");
}

TEST_CASE("parser: non-minimal length encodings are refused") {
  const Bytes issuer = RawIssuer();  // short form: 30 LL ...
  REQUIRE(issuer[1] < 0x80);
  SUBCASE("long form for a length below 128") {
    RawCrl crl;
    crl.issuer = build::Cat({Bytes{0x30, 0x81, issuer[1]}, ByteView(issuer).subspan(2)});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, crl.issuer), "long-form length below 128");
  }
  SUBCASE("a length with a leading zero octet") {
    RawCrl crl;
    crl.issuer = build::Cat({Bytes{0x30, 0x82, 0x00, issuer[1]}, ByteView(issuer).subspan(2)});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, crl.issuer), "leading zero");
  }
  SUBCASE("a length of more than eight octets") {
    RawCrl crl;
    crl.this_update = Bytes{0x17, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, crl.this_update), "length field out of range");
  }
  SUBCASE("a length that runs past its container") {
    RawCrl crl;  // the last entry claims 127 octets; its list has 2 left
    const Bytes entry = Entry(Integer(Bytes{0x01}), UtcTime("250201000000Z"));
    crl.revoked = build::Tlv(0x30, {entry, Bytes{0x30, 0x7f}});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({entry, Bytes{0x30, 0x7f}})) + entry.size(), "runs past the end");
  }
}

TEST_CASE("parser: multi-octet tags are refused") {
  RawCrl crl;
  crl.this_update = Bytes{0x1f, 0x81, 0x17, 0x00};
  const Bytes der = crl.Der();
  CheckRefusedAt(der, OffsetOf(der, crl.this_update), "multi-octet tags");
}

TEST_CASE("parser: serials must be positive, minimal and at most 20 octets") {
  const Bytes time = UtcTime("250201000000Z");
  struct Case {
    const char* name;
    Bytes serial;
    const char* words;
  };
  const std::vector<Case> cases = {
      {"negative", Integer(Bytes{0x80}), "negative"},
      {"negative, long", Integer(Bytes{0xff, 0x01, 0x02}), "negative"},
      {"a needless 0x00 pad", Integer(Bytes{0x00, 0x01}), "non-minimal"},
      {"a needless 0xff pad (and negative)", Integer(Bytes{0xff, 0x80}), "negative"},
      {"empty", Integer(ByteView{}), "empty INTEGER"},
      {"21 octets", Integer(Bytes(21, 0x11)), "21 octets (at most 20)"},
      // RFC 5280 4.1.2.2 counts the INTEGER's octets: a 20-octet magnitude with its top bit set needs a 21st.
      {"a 20-octet magnitude that needs a pad", Integer(build::Cat({Bytes{0x00}, Bytes(20, 0x99)})),
       "21 octets (at most 20)"},
      {"not an INTEGER", build::Tlv(0x04, Bytes{0x01}), "expected tag 0x02"},
  };
  for (const Case& item : cases) {
    INFO("case: " << std::string(item.name));
    const RawCrl crl = WithEntry(item.serial, time);
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({item.serial, time})), item.words);
  }
  SUBCASE("20 octets on the wire is the most there is") {
    const RawCrl crl = WithEntry(Integer(build::Cat({Bytes{0x00}, Bytes(19, 0x99)})), time);
    const Bytes der_2 = crl.Der();
    auto parser = CrlParser::Open(der_2);
    REQUIRE(parser.has_value());
    const auto entries = EntriesOf(*parser);
    REQUIRE(entries.size() == 2);
    CHECK(Copy(entries[1].serial) == Bytes(19, 0x99));
  }
}

TEST_CASE("parser: times must be DER's UTCTime or GeneralizedTime, and real dates") {
  struct Case {
    const char* name;
    Bytes time;
    const char* words;
  };
  const std::vector<Case> cases = {
      {"UTCTime without seconds", UtcTime("2503011200Z"), "UTCTime is not YYMMDDHHMMSSZ"},
      {"UTCTime without Z", UtcTime("250301120000"), "UTCTime is not YYMMDDHHMMSSZ"},
      {"UTCTime with an offset", UtcTime("250301120000+0900"), "UTCTime is not YYMMDDHHMMSSZ"},
      {"UTCTime, 13 octets ending in no Z", UtcTime("2503011200000"), "malformed time"},
      {"UTCTime with a non-digit", UtcTime("25030112000AZ"), "malformed time"},
      {"UTCTime with a sign", UtcTime("25030112-100Z"), "malformed time"},
      {"February 30", UtcTime("250230000000Z"), "out of range"},
      {"February 29 of 2023", UtcTime("230229000000Z"), "out of range"},
      {"February 29 of 2100", GeneralizedTime("21000229000000Z"), "out of range"},
      {"month 13", UtcTime("251301000000Z"), "out of range"},
      {"day 0", UtcTime("250100000000Z"), "out of range"},
      {"hour 24", UtcTime("250301240000Z"), "out of range"},
      {"second 60", UtcTime("250301235960Z"), "out of range"},
      {"GeneralizedTime with fractional seconds", GeneralizedTime("20250301120000.5Z"), "GeneralizedTime is not"},
      {"GeneralizedTime without Z", GeneralizedTime("20250301120000"), "GeneralizedTime is not"},
      {"GeneralizedTime with a two-digit year", GeneralizedTime("250301120000Z"), "GeneralizedTime is not"},
      {"neither", build::Tlv(0x04, AsBytes("250301120000Z")), "not a time"},
  };
  for (const Case& item : cases) {
    INFO("case: " << std::string(item.name));
    {
      INFO("in thisUpdate");
      RawCrl crl;
      crl.this_update = item.time;
      crl.next_update.reset();
      const Bytes der = crl.Der();
      CheckRefusedAt(der, OffsetOf(der, item.time), item.words);
    }
    if (item.time[0] != 0x04) {  // something that is not a time would be read as the next field
      INFO("in nextUpdate");
      RawCrl crl;
      crl.next_update = item.time;
      const Bytes der = crl.Der();
      CheckRefusedAt(der, OffsetOf(der, item.time), item.words);
    }
    {
      INFO("in an entry's revocationDate");
      const RawCrl crl = WithEntry(Integer(Bytes{0x02}), item.time);
      const Bytes der = crl.Der();
      CheckRefusedAt(der, OffsetOf(der, item.time), item.words);
    }
    if (item.time[0] == 0x18) {
      INFO("in an entry's invalidityDate");
      const RawCrl crl = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"),
                                   {build::Extension("2.5.29.24", false, item.time)});
      const Bytes der = crl.Der();
      CheckRefusedAt(der, OffsetOf(der, item.time), item.words);
    }
  }
  SUBCASE("an invalidityDate must be a GeneralizedTime (RFC 5280 5.3.2)") {
    const Bytes utc = UtcTime("250101000000Z");
    const RawCrl crl =
        WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"), {build::Extension("2.5.29.24", false, utc)});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, utc), "not a GeneralizedTime");
  }
}

TEST_CASE("parser: an unknown critical CRL extension is refused at the extension") {
  RawCrl crl;
  const Bytes unknown = build::Extension("1.3.6.1.4.1.99999.1", true, Bytes{0x05, 0x00});
  crl.extensions = {CrlNumber(Bytes{0x01}), unknown};
  const Bytes der = crl.Der();
  CheckRefusedAt(der, OffsetOf(der, unknown), "unknown critical extension 1.3.6.1.4.1.99999.1");

  // The same, made by OpenSSL.
  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.unknown_critical_extension = true;
  const Bytes made = ToDer(ca.Crl(options).get());
  const std::optional<Error> error = FirstError(made);
  REQUIRE(error.has_value());
  CHECK(error->message.find("unknown critical extension 1.3.6.1.4.1.99999.1") != std::string::npos);
}

TEST_CASE("parser: an unknown critical entry extension is refused at the extension") {
  const Bytes unknown = build::Extension("1.3.6.1.4.1.99999.1", true, Bytes{0x05, 0x00});
  const RawCrl crl = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"), {ReasonCode(1), unknown});
  const Bytes der = crl.Der();
  CheckRefusedAt(der, OffsetOf(der, unknown), "unknown critical extension 1.3.6.1.4.1.99999.1");

  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.revoked = {Revoked({0x01}), Revoked({0x02})};
  options.revoked[1].unknown_critical_extension = true;
  const std::optional<Error> error = FirstError(ToDer(ca.Crl(options).get()));
  REQUIRE(error.has_value());
  CHECK(error->message.find("unknown critical extension") != std::string::npos);
}

TEST_CASE("parser: a certificateIssuer entry extension (an indirect CRL) is refused") {
  const Bytes issuer_name = build::Tlv(0x30, build::Tlv(0xa4, RawIssuer()));  // GeneralNames { directoryName }
  for (const bool critical : {true, false}) {
    CAPTURE(critical);
    const Bytes extension = build::Extension("2.5.29.29", critical, issuer_name);
    const RawCrl crl = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"), {extension});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, extension), "certificateIssuer");
  }
}

TEST_CASE("parser: an extension that appears twice is refused at the second") {
  SUBCASE("in the CRL") {
    RawCrl crl;
    const Bytes second = CrlNumber(Bytes{0x09});
    crl.extensions = {CrlNumber(Bytes{0x01}), second};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, second), "appears twice");
  }
  SUBCASE("in an entry") {
    const Bytes second = ReasonCode(4);
    const RawCrl crl = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"), {ReasonCode(1), second});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, second), "appears twice");
  }
  SUBCASE("however many other extensions come first") {
    RawCrl crl;
    crl.extensions = {CrlNumber(Bytes{0x01})};
    for (int i = 0; i < 20; ++i) {
      crl.extensions.push_back(
          build::Extension("1.3.6.1.4.1.99999." + std::to_string(100 + i), false, Bytes{0x05, 0x00}));
    }
    const Bytes second = CrlNumber(Bytes{0x09});
    crl.extensions.push_back(second);
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, second), "appears twice");

    RawCrl late;  // a duplicate among extensions after the sixteenth
    late.extensions.clear();
    for (int i = 0; i < 20; ++i) {
      late.extensions.push_back(
          build::Extension("1.3.6.1.4.1.99999." + std::to_string(100 + i), false, Bytes{0x05, 0x00}));
    }
    const Bytes late_second = CrlNumber(Bytes{0x09});
    late.extensions.push_back(CrlNumber(Bytes{0x01}));
    late.extensions.push_back(late_second);
    const Bytes late_der = late.Der();
    CheckRefusedAt(late_der, OffsetOf(late_der, late_second), "appears twice");
  }
}

TEST_CASE("parser: a reasonCode must be one of RFC 5280's CRLReasons (7 is unused)") {
  for (const std::uint8_t code : {std::uint8_t{7}, std::uint8_t{11}, std::uint8_t{0x7f}}) {
    CAPTURE(int{code});
    const Bytes enumerated = build::Tlv(0x0a, Bytes{code});
    const RawCrl crl = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"),
                                 {build::Extension("2.5.29.21", false, enumerated)});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({Bytes{0x04, 0x03}, enumerated})) + 2, "is not a CRLReason");
  }
  for (const Bytes& wrong : {build::Tlv(0x0a, Bytes{0x00, 0x01}), build::Tlv(0x02, Bytes{0x01}),
                             build::Tlv(0x0a, ByteView{})}) {
    CAPTURE(ToHex(wrong));
    const RawCrl crl = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"),
                                 {build::Extension("2.5.29.21", false, wrong)});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({Bytes{0x04, static_cast<std::uint8_t>(wrong.size())}, wrong})) + 2,
                   "one-octet ENUMERATED");
  }
  // Every defined code is read.
  for (const int code : {0, 1, 2, 3, 4, 5, 6, 8, 9, 10}) {
    const RawCrl crl =
        WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"), {ReasonCode(static_cast<std::uint8_t>(code))});
    const Bytes der_3 = crl.Der();
    auto parser = CrlParser::Open(der_3);
    REQUIRE(parser.has_value());
    const auto entries = EntriesOf(*parser);
    REQUIRE(entries[1].reason.has_value());
    CHECK(static_cast<int>(*entries[1].reason) == code);
  }
}

TEST_CASE("parser: an issuingDistributionPoint that partitions by more than scope is refused at the field") {
  const Bytes name = UriFullName("http://crl.test/p1.crl");
  struct Case {
    const char* name;
    Bytes field;
    const char* words;
  };
  const std::vector<Case> cases = {
      {"indirectCRL", Bytes{0x84, 0x01, 0xff}, "indirect CRLs"},
      {"onlySomeReasons", Bytes{0x83, 0x02, 0x06, 0x40}, "onlySomeReasons"},
      {"onlyContainsAttributeCerts", Bytes{0x85, 0x01, 0xff}, "attribute-certificate"},
      {"an unknown field", Bytes{0x86, 0x01, 0xff}, "unknown field"},
  };
  for (const Case& item : cases) {
    INFO("case: " << std::string(item.name));
    RawCrl crl;
    crl.extensions = {CrlNumber(Bytes{0x01}), DistributionPoint(build::Cat({name, item.field}))};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({name, item.field})) + name.size(), item.words);
  }
  SUBCASE("both onlyContainsUserCerts and onlyContainsCACerts") {
    RawCrl crl;
    const Bytes extension = DistributionPoint(build::Cat({name, Bytes{0x81, 0x01, 0xff, 0x82, 0x01, 0xff}}));
    crl.extensions = {CrlNumber(Bytes{0x01}), extension};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, extension), "both onlyContainsUserCerts and onlyContainsCACerts");
  }
  SUBCASE("an empty IDP names nothing") {
    RawCrl crl;
    const Bytes extension = DistributionPoint(ByteView{});
    crl.extensions = {CrlNumber(Bytes{0x01}), extension};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, extension), "names no distribution point");
  }
}

TEST_CASE("parser: the IDP's BOOLEANs must be DER's TRUE (0xff): a BER TRUE is not read as FALSE") {
  // OpenSSL, like any BER reader, reads any non-zero octet as TRUE. A reader that takes it for FALSE would treat
  // an indirect CRL as a direct one. A BOOLEAN of other than one octet OpenSSL cannot decode at all.
  const Bytes name = UriFullName("http://crl.test/p1.crl");
  for (const std::uint8_t tag : {std::uint8_t{0x81}, std::uint8_t{0x82}, std::uint8_t{0x84}, std::uint8_t{0x85}}) {
    for (const Bytes& value : {Bytes{0x01}, Bytes{0x80}, Bytes{0xff, 0xff}, Bytes{}}) {
      CAPTURE(int{tag});
      CAPTURE(ToHex(value));
      const Bytes field = build::Tlv(tag, value);
      RawCrl crl;
      crl.extensions = {CrlNumber(Bytes{0x01}), DistributionPoint(build::Cat({name, field}))};
      const Bytes der = crl.Der();
      const std::optional<Error> error = FirstError(der);
      CHECK_MESSAGE(error.has_value(), "accepted an IDP field " << ToHex(field));
      if (error) CHECK(error->message.find("at offset " + std::to_string(OffsetOf(der, build::Cat({name, field})) + name.size())) !=
            std::string::npos);
    }
  }
}

TEST_CASE("parser: errors inside an extension's value name that element's own offset") {
  // The offset of an element inside extnValue is where it is in the file, not where its Extension starts.
  SUBCASE("a cRLNumber that is not an INTEGER") {
    RawCrl crl;
    const Bytes value = build::Tlv(0x04, Bytes{0x01});
    crl.extensions = {build::Extension("2.5.29.20", false, value)};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({Bytes{0x04, 0x03}, value})) + 2, "not an INTEGER");
  }
  SUBCASE("a negative cRLNumber") {
    RawCrl crl;
    const Bytes value = Integer(Bytes{0x80});
    crl.extensions = {build::Extension("2.5.29.20", false, value)};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({Bytes{0x04, 0x03}, value})) + 2, "negative");
  }
  SUBCASE("a cRLNumber of 21 octets") {
    RawCrl crl;
    const Bytes value = Integer(Bytes(21, 0x22));
    crl.extensions = {build::Extension("2.5.29.20", false, value)};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, value), "21 octets");
  }
  SUBCASE("an IDP that is not a SEQUENCE") {
    RawCrl crl;
    const Bytes value = build::Tlv(0x31, UriFullName("http://x"));
    crl.extensions = {CrlNumber(Bytes{0x01}), build::Extension("2.5.29.28", true, value)};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, value), "not a SEQUENCE");
  }
}

TEST_CASE("parser: what OpenSSL cannot decode or use is refused too, at the element at fault") {
  // The fuzzer's invariant (fuzz/crl_parser_fuzzer.cpp): whatever this parser accepts, d2i_X509_CRL accepts and
  // can use, and reads the same. Each case here is one that OpenSSL refuses or marks invalid (checked first,
  // so the case is what it claims to be), and that this parser must refuse.
  SUBCASE("a signature AlgorithmIdentifier that is not SEQUENCE { OBJECT IDENTIFIER, parameters }") {
    const Bytes ecdsa = build::Oid("1.2.840.10045.4.3.2");
    for (const Bytes& algorithm : {build::Tlv(0x30, ByteView{}), build::Tlv(0x30, Integer(Bytes{0x01})),
                                   build::Tlv(0x30, {ecdsa, Bytes{0x05, 0x00}, Bytes{0x05, 0x00}}),
                                   // parameters that OpenSSL decodes by their tag, and refuses
                                   build::Tlv(0x30, {ecdsa, Bytes{0x03, 0x02, 0x08, 0x00}}),  // BIT STRING, 8 unused bits
                                   build::Tlv(0x30, {ecdsa, Bytes{0x05, 0x01, 0x00}}),        // NULL with contents
                                   build::Tlv(0x30, {ecdsa, Bytes{0x02, 0x02, 0x00, 0x01}}),  // INTEGER, non-minimal
                                   build::Tlv(0x30, {ecdsa, Bytes{0x06, 0x01, 0x80}})}) {     // OID, malformed
      CAPTURE(ToHex(algorithm));
      RawCrl inner;
      inner.algorithm = algorithm;
      const Bytes inner_der = inner.Der();
      CHECK_FALSE(OpenSslCanUse(inner_der));
      CheckRefusedAt(inner_der, OffsetOf(inner_der, build::Cat({algorithm, RawIssuer()})), "");
      RawCrl outer;
      outer.outer_algorithm = algorithm;
      const Bytes outer_der = outer.Der();
      CHECK_FALSE(OpenSslCanUse(outer_der));
      CheckRefusedAt(outer_der, OffsetOf(outer_der, build::Cat({algorithm, outer.signature})), "");
    }
  }
  SUBCASE("an issuer that is not a Name (SEQUENCE OF SET OF SEQUENCE { OID, value })") {
    const Bytes attribute = build::Tlv(0x30, {build::Oid("2.5.4.3"), build::Tlv(0x0c, AsBytes("CA"))});
    for (const Bytes& issuer : {build::Tlv(0x30, Integer(Bytes{0x01})),
                                build::Tlv(0x30, build::Tlv(0x31, build::Tlv(0x30, build::Oid("2.5.4.3")))),
                                build::Tlv(0x30, build::Tlv(0x30, attribute))}) {
      CAPTURE(ToHex(issuer));
      RawCrl crl;
      crl.issuer = issuer;
      const Bytes der = crl.Der();
    CHECK_FALSE(OpenSslCanUse(der));
      CHECK_FALSE(OpenSslCanUse(der));
      CheckRefusedAt(der, OffsetOf(der, build::Cat({issuer, crl.this_update})), "");
    }
  }
  SUBCASE("an issuer whose strings OpenSSL cannot convert (it canonicalises every Name it decodes)") {
    struct Case {
      const char* name;
      Bytes value;
    };
    for (const Case& item : {Case{"UTF8String that is not UTF-8", build::Tlv(0x0c, Bytes{0x4a, 0xd5, 0x4b})},
                             Case{"UTF8String with a lone continuation octet", build::Tlv(0x0c, Bytes{0x80})},
                             Case{"BMPString of an odd length", build::Tlv(0x1e, Bytes{0x00, 0x41, 0x00})},
                             Case{"UniversalString not a multiple of 4", build::Tlv(0x1c, Bytes{0x00, 0x00, 0x41})},
                             Case{"GeneralString, which X509_NAME does not read", build::Tlv(0x1b, Bytes{0x41})},
                             Case{"VisibleString, which X509_NAME does not read", build::Tlv(0x1a, Bytes{0x41})}}) {
      INFO("case: " << std::string(item.name));
      const Bytes issuer =
          build::Tlv(0x30, build::Tlv(0x31, build::Tlv(0x30, {build::Oid("2.5.4.3"), item.value})));
      RawCrl crl;
      crl.issuer = issuer;
      const Bytes der = crl.Der();
      CHECK_FALSE(OpenSslCanUse(der));
      const std::optional<Error> error = FirstError(der);
      CHECK_MESSAGE(error.has_value(), "accepted issuer " << ToHex(issuer));
      if (error) CHECK(error->message.find(" at offset ") != std::string::npos);
    }
  }
  SUBCASE("an extension whose OBJECT IDENTIFIER is not a valid encoding") {
    for (const Bytes& oid : {Bytes{0x06, 0x00}, Bytes{0x06, 0x01, 0x80}, Bytes{0x06, 0x02, 0x2b, 0x86}}) {
      CAPTURE(ToHex(oid));
      const Bytes extension = build::Tlv(0x30, {oid, build::Tlv(0x04, Bytes{0x05, 0x00})});
      RawCrl crl;
      crl.extensions = {CrlNumber(Bytes{0x01}), extension};
      const Bytes der = crl.Der();
    CHECK_FALSE(OpenSslCanUse(der));
      CHECK_FALSE(OpenSslCanUse(der));
      CheckRefusedAt(der, OffsetOf(der, extension) + 2, "");
      const RawCrl entry = WithEntry(Integer(Bytes{0x02}), UtcTime("250201000000Z"), {extension});
      const Bytes entry_der = entry.Der();
      CHECK_FALSE(OpenSslCanUse(entry_der));
      CheckRefusedAt(entry_der, OffsetOf(entry_der, extension) + 2, "");
    }
  }
  SUBCASE("an authorityKeyIdentifier that is not DER's SEQUENCE { [0] keyIdentifier, ... }") {
    const Bytes key_id(20, 0x99);
    for (const Bytes& value : {build::Tlv(0x04, build::Tlv(0x80, key_id)),  // not a SEQUENCE
                               build::Tlv(0x30, {build::Tlv(0x80, key_id), build::Tlv(0x80, key_id)}),
                               build::Tlv(0x30, {build::Tlv(0x80, key_id), Bytes{0x05, 0x00}}),
                               // authorityCertIssuer [1] that is not GeneralNames; an empty serial [2]
                               build::Tlv(0x30, build::Tlv(0xa1, key_id)),
                               build::Tlv(0x30, {build::Tlv(0x80, key_id), Bytes{0x82, 0x00}}),
                               // an authorityCertSerialNumber that is not a minimal INTEGER
                               build::Tlv(0x30, Bytes{0x82, 0x03, 0x00, 0x00, 0x00}),
                               build::Tlv(0x30, {build::Tlv(0x80, key_id), Bytes{0x82, 0x02, 0xff, 0x80}})}) {
      CAPTURE(ToHex(value));
      RawCrl crl;
      crl.extensions = {CrlNumber(Bytes{0x01}), build::Extension("2.5.29.35", false, value)};
      const Bytes der = crl.Der();
    CHECK_FALSE(OpenSslCanUse(der));
      CHECK_FALSE(OpenSslCanUse(der));
      const std::optional<Error> error = FirstError(der);
      CHECK_MESSAGE(error.has_value(), "accepted authorityKeyIdentifier " << ToHex(value));
      if (error) CHECK(error->message.find(" at offset ") != std::string::npos);
    }
  }
  SUBCASE("a keyIdentifier in BER's constructed form, which OpenSSL reads and this parser would skip") {
    RawCrl crl;
    const Bytes value = build::Tlv(0x30, build::Tlv(0xa0, build::Tlv(0x80, Bytes(20, 0x99))));
    crl.extensions = {CrlNumber(Bytes{0x01}), build::Extension("2.5.29.35", false, value)};
    const Bytes der = crl.Der();
    const auto theirs = testing::ReadCrlWithOpenSsl(der);
    REQUIRE(theirs.has_value());
    CHECK(theirs->summary.authority_key_id == Bytes(20, 0x99));
    CheckRefusedAt(der, OffsetOf(der, value) + 2, "");
  }
  SUBCASE("an issuingDistributionPoint whose fields are out of order, repeated, or not GeneralNames OpenSSL decodes") {
    const Bytes name = UriFullName("http://crl.test/p1.crl");
    const Bytes only_user{0x81, 0x01, 0xff};
    for (const Bytes& fields : {build::Cat({only_user, name}), build::Cat({name, only_user, only_user}),
                                build::Cat({name, name}),
                                build::Tlv(0xa0, build::Tlv(0xa0, Integer(Bytes{0x01}))),   // fullName of non-names
                                build::Tlv(0xa0, build::Tlv(0x04, Bytes{0x01})),             // neither fullName nor relative
                                // a directoryName that is not a Name, and one whose string is not UTF-8
                                build::Tlv(0xa0, build::Tlv(0xa0, build::Tlv(0xa4, build::Tlv(0x30, build::Tlv(
                                    0x31, build::Tlv(0x30, {Bytes{0x83, 0x01, 0x00}, Bytes{0x0c, 0x00}})))))),
                                build::Tlv(0xa0, build::Tlv(0xa0, build::Tlv(0xa4, build::Tlv(0x30, build::Tlv(
                                    0x31, build::Tlv(0x30, {build::Oid("2.5.4.3"), Bytes{0x0c, 0x01, 0xff}})))))),
                                // a registeredID that is not an OBJECT IDENTIFIER encoding
                                build::Tlv(0xa0, build::Tlv(0xa0, Bytes{0x88, 0x01, 0x80}))}) {
      CAPTURE(ToHex(fields));
      RawCrl crl;
      crl.extensions = {CrlNumber(Bytes{0x01}), DistributionPoint(fields)};
      const Bytes der = crl.Der();
    CHECK_FALSE(OpenSslCanUse(der));
      CHECK_FALSE(OpenSslCanUse(der));
      const std::optional<Error> error = FirstError(der);
      CHECK_MESSAGE(error.has_value(), "accepted issuingDistributionPoint " << ToHex(fields));
      if (error) CHECK(error->message.find(" at offset ") != std::string::npos);
    }
  }
  SUBCASE("a delta CRL without a cRLNumber (RFC 5280 5.2.3: every CRL has one)") {
    RawCrl crl;
    crl.extensions = {build::Extension("2.5.29.27", true, build::Integer(Bytes{0x06}))};
    const Bytes der = crl.Der();
    CHECK_FALSE(OpenSslCanUse(der));
    const std::optional<Error> error = FirstError(der);
    CHECK_MESSAGE(error.has_value(), "accepted a delta CRL without a cRLNumber");
    if (error) CHECK(error->message.find(" at offset ") != std::string::npos);
  }
}

TEST_CASE("parser: a v1 CRL with extensions is refused at the extensions") {
  RawCrl crl;
  crl.version.reset();
  const Bytes der = crl.Der();
  CheckRefusedAt(der, OffsetOf(der, build::Tlv(0xa0, build::Tlv(0x30, CrlNumber(Bytes{0x07})))),
                 "extensions in a v1 CRL");
}

TEST_CASE("parser: only version v2 (1) may be given") {
  for (const Bytes& version : {Integer(Bytes{0x00}), Integer(Bytes{0x02}), Integer(Bytes{0x00, 0x01})}) {
    CAPTURE(ToHex(version));
    RawCrl crl;
    crl.version = version;
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({version, crl.algorithm})), "only v2");
  }
}

TEST_CASE("parser: the structure around the entries is exactly RFC 5280's") {
  SUBCASE("a signature BIT STRING with unused bits") {
    RawCrl crl;
    crl.signature = build::Tlv(0x03, {Bytes{0x01}, Bytes(64, 0x5a)});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, crl.signature), "unused bits");
  }
  SUBCASE("an empty signature BIT STRING") {
    RawCrl crl;
    crl.signature = build::Tlv(0x03, ByteView{});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, der.size() - 2, "unused bits");
  }
  SUBCASE("a field after the signature") {
    RawCrl crl;
    const Bytes der = build::Tlv(0x30, {crl.Tbs(), crl.outer_algorithm, crl.signature, Bytes{0x05, 0x00}});
    CheckRefusedAt(der, der.size() - 2, "unexpected field");
  }
  SUBCASE("a field after the extensions") {
    RawCrl crl;
    crl.after_extensions = Bytes{0x05, 0x00};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({crl.after_extensions, crl.outer_algorithm})), "unexpected field");
  }
  SUBCASE("an empty extension list") {
    RawCrl crl;
    crl.extensions_field = build::Tlv(0xa0, build::Tlv(0x30, ByteView{}));
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({*crl.extensions_field, crl.outer_algorithm})) + 2,
                   "empty extension list");
  }
  SUBCASE("an empty entry extension list") {
    const Bytes entry = build::Tlv(0x30, {Integer(Bytes{0x02}), UtcTime("250201000000Z"), Bytes{0x30, 0x00}});
    RawCrl crl;
    crl.entries = {entry};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, entry) + entry.size() - 2, "empty extension list");
  }
  SUBCASE("a critical flag that is not DER's BOOLEAN") {
    const Bytes extension = build::Tlv(0x30, {build::Oid("2.5.29.20"), Bytes{0x01, 0x01, 0x01}, build::Tlv(0x04, build::Integer(Bytes{0x01}))});
    RawCrl crl;
    crl.extensions = {extension};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, Bytes{0x01, 0x01, 0x01, 0x04}), "malformed BOOLEAN");
  }
  SUBCASE("an entry with a field after its extensions") {
    const Bytes entry = build::Tlv(0x30, {Integer(Bytes{0x02}), UtcTime("250201000000Z"),
                                          build::Tlv(0x30, ReasonCode(1)), Bytes{0x05, 0x00}});
    RawCrl crl;
    crl.entries = {entry};
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, entry) + entry.size() - 2, "unexpected field");
  }
  SUBCASE("something other than an entry in revokedCertificates") {
    RawCrl crl;
    crl.revoked = build::Tlv(0x30, {Entry(Integer(Bytes{0x01}), UtcTime("250201000000Z")), Bytes{0x05, 0x00}});
    const Bytes der = crl.Der();
    CheckRefusedAt(der, OffsetOf(der, build::Cat({Bytes{0x05, 0x00}, Bytes{0xa0}})), "expected tag 0x30");
  }
}

TEST_CASE("parser: whatever byte is changed, a refusal names an offset inside the input") {
  const TestCa ca = TestCa::Create();
  CrlOptions options;
  options.issuing_distribution_point = true;
  options.revoked = {{{0x01}, 0, 1, Utc(2024, 1, 1)}, {{0x81, 0x02}, 0, 9, std::nullopt}};
  const Bytes original = ToDer(ca.Crl(options).get());
  int refused = 0;
  for (std::size_t at = 0; at < original.size(); ++at) {
    for (const std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0x80}, std::uint8_t{0xff},
                                     static_cast<std::uint8_t>(original[at] ^ 0x01)}) {
      Bytes der = original;
      der[at] = value;
      const std::optional<Error> error = FirstError(der);
      if (!error) continue;
      ++refused;
      CAPTURE(at);
      INFO(error->message);
      const auto position = error->message.find(" at offset ");
      REQUIRE(position != std::string::npos);
      const std::size_t offset = std::stoul(error->message.substr(position + 11));
      CHECK(offset <= der.size());
    }
  }
  CHECK(refused > 0);
}

// =====================================================================================================
// 3. Agreement with OpenSSL
// =====================================================================================================

namespace {

// A random time in [first, last] (years), in a form that can encode it, possibly forced to GeneralizedTime.
std::pair<UnixSeconds, TimeForm> RandomTime(std::mt19937_64& random, int first_year, int last_year) {
  std::uniform_int_distribution<UnixSeconds> seconds(Utc(first_year, 1, 1), Utc(last_year, 12, 31, 23, 59, 59));
  const UnixSeconds value = seconds(random);
  const bool utc_possible = value >= Utc(1950, 1, 1) && value < Utc(2050, 1, 1);
  switch (random() % 3) {
    case 0: return {value, TimeForm::kAuto};
    case 1: return {value, utc_possible ? TimeForm::kUtcTime : TimeForm::kGeneralizedTime};
    default: return {value, TimeForm::kGeneralizedTime};
  }
}

std::pair<UnixSeconds, TimeForm> RandomEraTime(std::mt19937_64& random) {
  switch (random() % 4) {
    case 0: return RandomTime(random, 1950, 2049);
    case 1: return RandomTime(random, 2050, 2200);
    case 2: return RandomTime(random, 2201, 9998);
    default: return RandomTime(random, 2000, 2030);
  }
}

// A magnitude whose INTEGER has 1..20 content octets: a 0x00 pad is needed when the top bit is set.
Bytes RandomMagnitude(std::mt19937_64& random) {
  if (random() % 25 == 0) return Bytes{0x00};
  const std::size_t octets = 1 + random() % 20;
  Bytes magnitude(octets);
  for (std::uint8_t& byte : magnitude) byte = static_cast<std::uint8_t>(random());
  if (magnitude[0] == 0) magnitude[0] = 0x01;
  if (octets == 20) magnitude[0] &= 0x7f;  // 20 octets on the wire at most
  if (magnitude[0] == 0) magnitude[0] = 0x42;
  return magnitude;
}

CrlOptions RandomOptions(std::mt19937_64& random) {
  CrlOptions options;
  const auto [this_update, form] = RandomEraTime(random);
  options.this_update = this_update;
  options.time_form = form;
  if (random() % 4 == 0) {
    options.omit_next_update = true;
  } else {
    UnixSeconds next = this_update + 1 + static_cast<UnixSeconds>(random() % (400ull * 86400));
    if (form == TimeForm::kUtcTime) next = std::min(next, Utc(2049, 12, 31, 23, 59, 59));
    options.next_update = next;
  }
  options.include_number = random() % 8 != 0;
  if (options.include_number) options.number_magnitude = RandomMagnitude(random);
  options.delta = options.include_number && random() % 5 == 0;
  if (options.delta) options.delta_base_magnitude = RandomMagnitude(random);
  options.include_authority_key_id = random() % 10 != 0;
  if (random() % 5 < 2) {
    DistributionPointSpec point;
    const auto names = random() % 4;  // 0 URI, 1 directoryName, 2 both, 3 none (then a scope is needed)
    if (names == 0 || names == 2) point.uri = "http://crl.test/partition-" + std::to_string(random() % 1000) + ".crl";
    if (names == 1 || names == 2) point.directory_name = "/C=JP/O=JPKI-TEST/CN=Partition " + std::to_string(random() % 100);
    const auto scope = names == 3 ? 1 + random() % 2 : random() % 3;  // 0 none, 1 user, 2 CA
    point.only_user_certs = scope == 1;
    point.only_ca_certs = scope == 2;
    point.critical = random() % 4 != 0;
    options.distribution_point = point;
  }
  const EVP_MD* digests[] = {EVP_sha256(), EVP_sha384(), EVP_sha512()};
  options.digest = digests[random() % 3];
  options.sort_entries = false;
  const std::size_t count = random() % 51;
  static constexpr int kReasons[] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10};
  for (std::size_t i = 0; i < count; ++i) {
    RevokedSpec spec;
    spec.serial = RandomMagnitude(random);
    const auto [revoked_at, revoked_form] = RandomEraTime(random);
    spec.revoked_at = revoked_at == 0 ? 1 : revoked_at;  // MakeCrl reads 0 as "an hour before thisUpdate"
    spec.revoked_at_form = revoked_form;
    if (random() % 2 == 0) spec.reason = kReasons[random() % 10];
    if (random() % 3 == 0) spec.invalidity_date = RandomEraTime(random).first;
    options.revoked.push_back(std::move(spec));
  }
  return options;
}

}  // namespace

TEST_CASE("parser: agrees with OpenSSL on 300 random CRLs over every field combination") {
  const TestCa ca = TestCa::Create();
  std::mt19937_64 random(0x5eed'c41);
  int utc = 0, generalized_before_2050 = 0, generalized_after = 0, padded = 0, twenty = 0, without_next = 0,
      with_idp = 0, ca_scope = 0, deltas = 0, entries_total = 0;
  for (int round = 0; round < 300; ++round) {
    CAPTURE(round);
    const CrlOptions options = RandomOptions(random);
    const Bytes der = ToDer(ca.Crl(options).get());

    const auto theirs = testing::ReadCrlWithOpenSsl(der);
    REQUIRE_MESSAGE(theirs.has_value(), "OpenSSL refuses " << ToHex(der));
    std::string problems;
    for (const std::string& problem : theirs->problems) problems += problem + "; ";
    CHECK_MESSAGE(theirs->problems.empty(), problems);
    const auto ours = Summarize(der);
    REQUIRE_MESSAGE(ours.has_value(), ours.error().message << "\n" << ToHex(der));
    CHECK_MESSAGE(*ours == theirs->summary, "ours:\n" << testing::Describe(*ours) << "\nOpenSSL's:\n"
                                                      << testing::Describe(theirs->summary));

    // And both read what was asked for.
    CHECK(ours->this_update == options.this_update);
    CHECK(ours->next_update == (options.omit_next_update ? std::nullopt : options.next_update));
    CHECK(ours->crl_number == (options.include_number ? std::optional(Minimal(*options.number_magnitude)) : std::nullopt));
    CHECK(ours->delta_base == (options.delta ? std::optional(Minimal(*options.delta_base_magnitude)) : std::nullopt));
    CHECK(ours->authority_key_id.has_value() == options.include_authority_key_id);
    CHECK(ours->has_distribution_point == options.distribution_point.has_value());
    REQUIRE(ours->entries.size() == options.revoked.size());
    for (std::size_t i = 0; i < options.revoked.size(); ++i) {
      const RevokedSpec& spec = options.revoked[i];
      CHECK(ours->entries[i].serial == Minimal(spec.serial));
      CHECK(ours->entries[i].revocation_time == spec.revoked_at);
      CHECK(ours->entries[i].reason == spec.reason);
      CHECK(ours->entries[i].invalidity_date == spec.invalidity_date);
      padded += (spec.serial[0] & 0x80) != 0;
      twenty += spec.serial.size() == 20;
    }

    // Coverage of the generator, checked below.
    const auto year_2050 = Utc(2050, 1, 1);
    utc += options.time_form != TimeForm::kGeneralizedTime && options.this_update < year_2050;
    generalized_before_2050 += options.time_form == TimeForm::kGeneralizedTime && options.this_update < year_2050;
    generalized_after += options.this_update >= year_2050;
    without_next += options.omit_next_update;
    with_idp += options.distribution_point.has_value();
    ca_scope += options.distribution_point && options.distribution_point->only_ca_certs;
    deltas += options.delta;
    entries_total += static_cast<int>(options.revoked.size());
  }
  // The random CRLs did cover every combination the test promises.
  CHECK(utc > 20);
  CHECK(generalized_before_2050 > 20);
  CHECK(generalized_after > 20);
  CHECK(padded > 100);
  CHECK(twenty > 100);
  CHECK(without_next > 20);
  CHECK(with_idp > 50);
  CHECK(ca_scope > 10);
  CHECK(deltas > 20);
  CHECK(entries_total > 5000);
}

TEST_CASE("parser: agrees with OpenSSL on CRLs signed with every supported algorithm and an unknown extension") {
  struct Signer {
    const char* name;
    KeyType key;
    const EVP_MD* digest;
    bool pss;
  };
  const std::vector<Signer> signers = {
      {"RSA SHA-384", KeyType::kRsa2048, EVP_sha384(), false},
      {"RSASSA-PSS SHA-256", KeyType::kRsa2048, EVP_sha256(), true},
      {"ECDSA P-384 SHA-384", KeyType::kEcP384, EVP_sha384(), false},
      {"Ed25519", KeyType::kEd25519, nullptr, false},
  };
  for (const Signer& signer : signers) {
    INFO("signer: " << std::string(signer.name));
    const TestCa ca = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA", signer.key);
    CrlOptions options;
    options.digest = signer.digest;
    options.rsa_pss = signer.pss;
    options.revoked = {{{0x01}, 0, 1, std::nullopt}, {{0xff, 0x00}, 0, std::nullopt, Utc(2020, 2, 29)}};
    const Bytes der = ToDer(ca.Crl(options).get());
    const auto theirs = testing::ReadCrlWithOpenSsl(der);
    REQUIRE(theirs.has_value());
    const auto ours = Summarize(der);
    REQUIRE_MESSAGE(ours.has_value(), ours.error().message);
    CHECK(*ours == theirs->summary);
  }
}

// =====================================================================================================
// 4. Signatures
// =====================================================================================================

namespace {

// Opens `der` and verifies it with `key`, feeding the tbsCertList to HashUpTo in uneven chunks.
Result<void> VerifyInChunks(ByteView der, EVP_PKEY* key) {
  auto parser = CrlParser::Open(der);
  if (!parser) return std::unexpected(parser.error());
  auto check = SignatureCheck::Begin(parser->header(), key);
  if (!check) return std::unexpected(check.error());
  const std::size_t size = parser->header().tbs.size();
  for (const std::size_t end : {std::size_t{1}, std::size_t{7}, std::size_t{7}, std::size_t{3}, size / 3, size / 2,
                                size - 1}) {
    check->HashUpTo(end);  // a smaller or equal end than before is a no-op
  }
  return check->Finish();
}

bool OpenSslVerifies(ByteView der, EVP_PKEY* key) {
  const unsigned char* cursor = der.data();
  UniquePtr<X509_CRL> crl(d2i_X509_CRL(nullptr, &cursor, static_cast<long>(der.size())));
  const bool verified = crl && X509_CRL_verify(crl.get(), key) == 1;
  ERR_clear_error();
  return verified;
}

struct SignedCrl {
  TestCa ca;
  Bytes der;
};

SignedCrl MakeSigned(KeyType key, const EVP_MD* digest, bool pss = false) {
  SignedCrl out{TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA", key), {}};
  CrlOptions options;
  options.digest = digest;
  options.rsa_pss = pss;
  options.revoked = {Revoked({0x01}, 0, 1), Revoked({0x02}), Revoked({0x99, 0x01})};
  out.der = ToDer(out.ca.Crl(options).get());
  return out;
}

}  // namespace

TEST_CASE("parser: signatures verify in chunks for every supported algorithm, and one changed byte breaks them") {
  struct Signer {
    const char* name;
    KeyType key;
    const EVP_MD* digest;
    bool pss;
  };
  const std::vector<Signer> signers = {
      {"RSA PKCS#1 v1.5 SHA-256", KeyType::kRsa2048, EVP_sha256(), false},
      {"RSA PKCS#1 v1.5 SHA-384", KeyType::kRsa2048, EVP_sha384(), false},
      {"RSA PKCS#1 v1.5 SHA-512", KeyType::kRsa2048, EVP_sha512(), false},
      {"RSASSA-PSS SHA-256, MGF1-SHA-256, salt 32", KeyType::kRsa2048, EVP_sha256(), true},
      {"ECDSA P-256 SHA-256", KeyType::kEcP256, EVP_sha256(), false},
      {"ECDSA P-384 SHA-384", KeyType::kEcP384, EVP_sha384(), false},
      {"Ed25519", KeyType::kEd25519, nullptr, false},
  };
  for (const Signer& signer : signers) {
    INFO("signer: " << std::string(signer.name));
    const SignedCrl crl = MakeSigned(signer.key, signer.digest, signer.pss);
    EVP_PKEY* key = X509_get0_pubkey(crl.ca.certificate.get());
    REQUIRE(OpenSslVerifies(crl.der, key));

    auto verified = VerifyInChunks(crl.der, key);
    CHECK_MESSAGE(verified.has_value(), verified.error().message);

    // Without any HashUpTo, Finish hashes everything itself.
    auto parser = CrlParser::Open(crl.der);
    REQUIRE(parser.has_value());
    auto check = SignatureCheck::Begin(parser->header(), key);
    REQUIRE_MESSAGE(check.has_value(), check.error().message);
    CHECK(check->Finish().has_value());

    // One byte of the tbsCertList: a letter of the issuer's name, so that the CRL still parses.
    Bytes tbs_changed = crl.der;
    tbs_changed[OffsetOf(tbs_changed, AsBytes("Test Signing CA"))] ^= 0x20;
    auto tbs_result = VerifyInChunks(tbs_changed, key);
    REQUIRE_FALSE(tbs_result.has_value());
    CHECK(tbs_result.error().code == ErrorCode::kVerificationFailed);

    // One byte of the signature value (its last, which every scheme uses).
    Bytes signature_changed = crl.der;
    signature_changed.back() ^= 0x01;
    auto signature_result = VerifyInChunks(signature_changed, key);
    REQUIRE_FALSE(signature_result.has_value());
    CHECK(signature_result.error().code == ErrorCode::kVerificationFailed);
  }
}

TEST_CASE("parser: a CRL signed by another key of the same type does not verify") {
  for (const KeyType type : {KeyType::kEcP256, KeyType::kRsa2048, KeyType::kEd25519}) {
    const SignedCrl crl = MakeSigned(type, nullptr);
    const TestCa other = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA", type);
    auto result = VerifyInChunks(crl.der, X509_get0_pubkey(other.certificate.get()));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ErrorCode::kVerificationFailed);
  }
}

TEST_CASE("parser: a key of another type is refused before hashing") {
  const SignedCrl ecdsa = MakeSigned(KeyType::kEcP256, EVP_sha256());
  const SignedCrl rsa = MakeSigned(KeyType::kRsa2048, EVP_sha256());
  const SignedCrl ed25519 = MakeSigned(KeyType::kEd25519, nullptr);
  const std::vector<std::pair<const SignedCrl*, const SignedCrl*>> mismatches = {
      {&ecdsa, &rsa}, {&rsa, &ecdsa}, {&ed25519, &ecdsa}, {&ecdsa, &ed25519}};
  for (const auto& [crl, key_owner] : mismatches) {
    auto parser = CrlParser::Open(crl->der);
    REQUIRE(parser.has_value());
    auto check = SignatureCheck::Begin(parser->header(), X509_get0_pubkey(key_owner->ca.certificate.get()));
    REQUIRE_FALSE(check.has_value());
    CHECK(check.error().code == ErrorCode::kVerificationFailed);
  }
}

TEST_CASE("parser: SHA-1 signatures are refused, however valid") {
  struct Case {
    const char* name;
    KeyType key;
    bool pss;
  };
  for (const Case& item : {Case{"RSA PKCS#1 v1.5", KeyType::kRsa2048, false},
                           Case{"RSASSA-PSS with SHA-1 (RFC 4055's defaults)", KeyType::kRsa2048, true},
                           Case{"ECDSA", KeyType::kEcP256, false}}) {
    INFO("case: " << std::string(item.name));
    const SignedCrl crl = MakeSigned(item.key, EVP_sha1(), item.pss);
    EVP_PKEY* key = X509_get0_pubkey(crl.ca.certificate.get());
    REQUIRE(OpenSslVerifies(crl.der, key));
    auto parser = CrlParser::Open(crl.der);
    REQUIRE_MESSAGE(parser.has_value(), parser.error().message);
    auto check = SignatureCheck::Begin(parser->header(), key);
    REQUIRE_FALSE(check.has_value());
    CHECK(check.error().code == ErrorCode::kRefused);
    CHECK(check.error().message.find("SHA-1") != std::string::npos);
  }
}

TEST_CASE("parser: the outer and the signed signature algorithms must be the same") {
  const SignedCrl crl = MakeSigned(KeyType::kEcP256, EVP_sha256());
  // ecdsa-with-SHA256 (1.2.840.10045.4.3.2) appears twice: inside tbsCertList and outside. Change the outer one
  // to ecdsa-with-SHA384, which the signature could not be.
  const Bytes oid = build::Oid("1.2.840.10045.4.3.2");
  Bytes der = crl.der;
  const auto last = std::find_end(der.begin(), der.end(), oid.begin(), oid.end());
  REQUIRE(last != der.end());
  *(last + static_cast<std::ptrdiff_t>(oid.size()) - 1) = 0x03;
  // A structural rule (RFC 5280 5.1.1.2), so Open refuses it, naming the outer algorithm's offset.
  auto parser = CrlParser::Open(der);
  REQUIRE_FALSE(parser.has_value());
  CHECK(parser.error().message.find("differs") != std::string::npos);
  CHECK(parser.error().message.find("signatureAlgorithm at offset ") != std::string::npos);
}
