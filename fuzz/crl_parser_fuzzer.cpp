// Fuzz target: the streaming CRL parser (importer/crl_parser.h), differentially against OpenSSL.
//
// Invariants; a violation abort()s with both readings printed (unless its category is listed in the
// environment variable CRL_FUZZ_TOLERATE, for known disagreements being fixed; see docs/fuzzing.md):
//  1. CrlParser::Open and ForEachEntry never crash, and every refusal names an offset inside the input.
//  2. Whatever the parser accepts, d2i_X509_CRL accepts too, finds nothing in it that it cannot use (a duplicate
//     or undecodable extension), and reads the same header fields and the same entries in the same order
//     (testing::ReadCrlWithOpenSsl gives OpenSSL's reading in plain values).
//  3. SignatureCheck never crashes on what Open accepted, whatever its algorithm identifiers say, and never
//     verifies a signature with keys that did not make it.
//
// Run through scripts/fuzz.sh; docs/fuzzing.md has the details and the record of runs.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <map>
#include <string>
#include <utility>

#include "common/openssl.h"
#include "fuzz/der_mutator.h"
#include "importer/crl_parser.h"
#include "tests/support/test_pki.h"

namespace {

using ocsp::Bytes;
using ocsp::ByteView;
using ocsp::testing::CrlSummary;

// Disagreements are named by a category, so that a known one can be tolerated while it is being fixed:
// CRL_FUZZ_TOLERATE=category,category... (default: none, every disagreement aborts). A tolerated one is
// counted, and its first input printed, instead.
std::string& Tolerated() {
  static std::string list = [] {
    const char* value = std::getenv("CRL_FUZZ_TOLERATE");
    return "," + std::string(value != nullptr ? value : "") + ",";
  }();
  return list;
}

void Disagree(ByteView input, const std::string& category, const std::string& detail) {
  if (Tolerated().find("," + category + ",") != std::string::npos) {
    static std::map<std::string, unsigned long long> counts;
    if (counts.empty()) {
      std::atexit([] {
        for (const auto& [name, count] : counts) {
          std::fprintf(stderr, "==crl_parser_fuzzer== tolerated [%s]: %llu inputs\n", name.c_str(), count);
        }
      });
    }
    if (++counts[category] == 1) {
      std::fprintf(stderr, "\n==crl_parser_fuzzer== tolerated disagreement [%s] (first of its kind): %s\ninput: %s\n",
                   category.c_str(), detail.c_str(), ocsp::ToHex(input).c_str());
    }
    return;
  }
  std::fprintf(stderr, "\n==crl_parser_fuzzer== DISAGREEMENT [%s]\n%s\ninput (%zu bytes): %s\n", category.c_str(),
               detail.c_str(), input.size(), ocsp::ToHex(input).c_str());
  std::abort();
}

template <typename T>
bool OpenSslDecodes(ByteView der, T* (*decode)(T**, const unsigned char**, long), void (*free)(T*)) {
  const unsigned char* cursor = der.data();
  T* object = decode(nullptr, &cursor, static_cast<long>(der.size()));
  const bool whole = object != nullptr && cursor == der.data() + der.size();
  if (object != nullptr) free(object);
  ERR_clear_error();
  return whole;
}

// Decodes, and is DER: OpenSSL's re-encoding gives the same bytes back.
bool IsDerAlgorithm(ByteView der) {
  const unsigned char* cursor = der.data();
  ocsp::UniquePtr<X509_ALGOR> algorithm(d2i_X509_ALGOR(nullptr, &cursor, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!algorithm || cursor != der.data() + der.size()) return false;
  unsigned char* encoded = nullptr;
  const int length = i2d_X509_ALGOR(algorithm.get(), &encoded);
  const bool same = length >= 0 && static_cast<std::size_t>(length) == der.size() &&
                    std::equal(der.begin(), der.end(), encoded);
  OPENSSL_free(encoded);
  return same;
}

// Whether every OBJECT IDENTIFIER in `der` (looking inside constructed elements and OCTET STRINGs that hold
// DER) is one OpenSSL can decode. A plain TLV walk, independent of the parser under test.
bool AllOidsDecode(ByteView der, int depth = 0) {
  std::size_t at = 0;
  while (at + 2 <= der.size()) {
    const std::uint8_t tag = der[at];
    std::size_t length = der[at + 1];
    std::size_t header = 2;
    if (length & 0x80) {
      const std::size_t octets = length & 0x7f;
      if (octets == 0 || octets > 4 || at + 2 + octets > der.size()) return true;  // not a TLV: nothing to check
      length = 0;
      for (std::size_t i = 0; i < octets; ++i) length = (length << 8) | der[at + 2 + i];
      header += octets;
    }
    if (length > der.size() - at - header) return true;
    const ByteView contents = der.subspan(at + header, length);
    if (tag == 0x06 && !OpenSslDecodes<ASN1_OBJECT>(der.subspan(at, header + length), d2i_ASN1_OBJECT, ASN1_OBJECT_free)) {
      return false;
    }
    if (((tag & 0x20) != 0 || tag == 0x04) && depth < 32 && !AllOidsDecode(contents, depth + 1)) return false;
    at += header + length;
  }
  return true;
}

// Why OpenSSL's reading differs from ours: the first difference, as a category and a description.
std::pair<std::string, std::string> Explain(const ocsp::importer::CrlHeader& header, const CrlSummary& ours,
                                            const std::optional<ocsp::testing::OpenSslCrlReading>& theirs) {
  if (!IsDerAlgorithm(header.signature_algorithm) || !IsDerAlgorithm(header.tbs_signature_algorithm)) {
    return {"algorithm-identifier-unchecked",
            "CrlParser accepts a signature AlgorithmIdentifier that is not DER (OpenSSL cannot decode it, or "
            "re-encodes it differently): outer " +
                ocsp::ToHex(header.signature_algorithm) + ", inner " + ocsp::ToHex(header.tbs_signature_algorithm)};
  }
  if (!OpenSslDecodes<X509_NAME>(header.issuer, d2i_X509_NAME, X509_NAME_free)) {
    return {"issuer-name-unchecked",
            "CrlParser accepts an issuer Name that OpenSSL cannot decode: " + ocsp::ToHex(header.issuer)};
  }
  if (!AllOidsDecode(header.tbs)) {
    return {"oid-unchecked", "CrlParser accepts an extension whose OBJECT IDENTIFIER OpenSSL cannot decode"};
  }
  if (!theirs) return {"refused-by-openssl", "accepted by CrlParser, refused by d2i_X509_CRL"};
  for (const std::string& problem : theirs->problems) {
    const char* category = problem.find("more than once") != std::string::npos            ? "duplicate-extension"
                           : problem.find("authorityKeyIdentifier") != std::string::npos   ? "authority-key-id"
                           : problem.find("issuingDistributionPoint") != std::string::npos ? "distribution-point"
                           : problem.find("IDP") != std::string::npos                       ? "distribution-point"
                           : problem.find("delta CRL") != std::string::npos                 ? "delta-without-number"
                                                                                            : "openssl-problem";
    return {category, "accepted by CrlParser, unusable for OpenSSL: " + problem};
  }
  const CrlSummary& other = theirs->summary;
  const std::string both =
      "\nours:\n" + ocsp::testing::Describe(ours) + "\nOpenSSL's:\n" + ocsp::testing::Describe(other);
  if (!other.unsupported.empty()) return {"unsupported-accepted", "OpenSSL sees " + other.unsupported + both};
  if (ours.has_distribution_point != other.has_distribution_point || ours.scope != other.scope ||
      ours.distribution_point_name != other.distribution_point_name) {
    return {"distribution-point", "the issuingDistributionPoint is read differently" + both};
  }
  if (ours.entries != other.entries) return {"entries", "the entries are read differently" + both};
  if (ours.authority_key_id != other.authority_key_id) {
    return {"authority-key-id", "the authorityKeyIdentifier is read differently" + both};
  }
  if (ours.issuer != other.issuer || ours.signature_algorithm != other.signature_algorithm ||
      ours.signature != other.signature || ours.this_update != other.this_update ||
      ours.next_update != other.next_update || ours.crl_number != other.crl_number ||
      ours.delta_base != other.delta_base || ours.authority_key_id != other.authority_key_id) {
    return {"header", "the header is read differently" + both};
  }
  if (ours.tbs != other.tbs) {
    return {"non-der-accepted", "CrlParser accepts a tbsCertList that OpenSSL re-encodes differently (not DER):\n" +
                                    ocsp::ToHex(ours.tbs) + "\nOpenSSL's DER:\n" + ocsp::ToHex(other.tbs)};
  }
  return {"other", "the readings differ" + both};
}

void CheckNamesOffset(ByteView input, const ocsp::Error& error) {
  const auto at = error.message.find(" at offset ");
  if (at == std::string::npos) {
    Disagree(input, "refusal-without-offset", "a refusal names no offset: " + error.message);
    return;
  }
  const unsigned long long offset = std::strtoull(error.message.c_str() + at + 11, nullptr, 10);
  if (offset > input.size()) {
    Disagree(input, "refusal-offset-outside", "a refusal names an offset past the input: " + error.message);
  }
}

Bytes Copy(ByteView view) { return Bytes(view.begin(), view.end()); }

struct Keys {
  ocsp::UniquePtr<EVP_PKEY> ec = ocsp::testing::GenerateKey(ocsp::testing::KeyType::kEcP256);
  ocsp::UniquePtr<EVP_PKEY> rsa = ocsp::testing::GenerateKey(ocsp::testing::KeyType::kRsa2048);
  ocsp::UniquePtr<EVP_PKEY> ed25519 = ocsp::testing::GenerateKey(ocsp::testing::KeyType::kEd25519);
};

const Keys& TestKeys() {
  static const Keys keys;
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  TestKeys();  // RSA key generation is slow: once, before the clock starts
  return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  return ocsp::fuzz::MutateDer(data, size, max_size, seed);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);

  // 1. Our reading.
  auto parser = ocsp::importer::CrlParser::Open(input);
  if (!parser) {
    CheckNamesOffset(input, parser.error());
    return 0;
  }
  const ocsp::importer::CrlHeader& header = parser->header();
  CrlSummary ours;
  ours.issuer = Copy(header.issuer);
  ours.signature_algorithm = Copy(header.signature_algorithm);
  ours.signature = Copy(header.signature);
  ours.tbs = Copy(header.tbs);
  ours.this_update = header.this_update;
  ours.next_update = header.next_update;
  ours.crl_number = header.crl_number;
  ours.delta_base = header.delta_base;
  ours.authority_key_id = header.authority_key_id;
  if (header.distribution_point) {
    ours.has_distribution_point = true;
    ours.distribution_point_name = header.distribution_point->distribution_point;
    ours.scope = static_cast<int>(header.distribution_point->scope);
  }
  std::size_t last_offset = 0;
  auto walk = parser->ForEachEntry([&](const ocsp::importer::CrlEntry& entry) -> ocsp::Result<void> {
    if (entry.serial.empty() || entry.serial.size() > ocsp::importer::kMaxSerialOctets ||
        (entry.serial.size() > 1 && entry.serial[0] == 0) || entry.offset < last_offset ||
        entry.offset >= input.size()) {
      Disagree(input, "entry-contract", "an entry breaks CrlEntry's contract at offset " + std::to_string(entry.offset));
    }
    last_offset = entry.offset + 1;
    CrlSummary::Entry copy;
    copy.serial = Copy(entry.serial);
    copy.revocation_time = entry.revocation_time;
    if (entry.reason) copy.reason = static_cast<int>(*entry.reason);
    copy.invalidity_date = entry.invalidity_date;
    ours.entries.push_back(std::move(copy));
    return {};
  });
  if (!walk) {
    CheckNamesOffset(input, walk.error());
    return 0;
  }

  // 2. OpenSSL's reading of what we accepted.
  const auto theirs = ocsp::testing::ReadCrlWithOpenSsl(input);
  if (!theirs || !theirs->problems.empty() || !(ours == theirs->summary)) {
    const auto [category, detail] = Explain(header, ours, theirs);
    Disagree(input, category, detail);
    return 0;
  }

  // 3. The signature check, with keys that cannot have made the signature.
  for (EVP_PKEY* key : {TestKeys().ec.get(), TestKeys().rsa.get(), TestKeys().ed25519.get()}) {
    auto check = ocsp::importer::SignatureCheck::Begin(header, key);
    if (!check) continue;
    check->HashUpTo(header.tbs.size() / 2);
    if (check->Finish()) Disagree(input, "signature-forged", "a signature verified with a key that did not make it");
  }
  ERR_clear_error();
  return 0;
}
