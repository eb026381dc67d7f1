// A streaming, allocation-free reader of DER CRLs (RFC 5280 5.1), for CRLs of tens of millions of entries.
//
// CrlParser::Open reads the structure around the entries (tbsCertList fields, CRL extensions, signature) in
// O(1): the revokedCertificates SEQUENCE is skipped by its length. ForEachEntry then walks the entries in file
// order and hands each to a visitor as views into the input: no X509_CRL, no heap object per entry. Every
// error names what is wrong and its byte offset in the file.
//
// This reader is a security boundary: it accepts DER only (definite lengths, minimal length encodings),
// refuses what it does not understand when it is marked critical, and is checked against OpenSSL's parser by
// differential tests and a fuzzer (tests/unit/crl_parser_test.cpp, fuzz/).
// Thread safety: a CrlParser is immutable after Open; ForEachEntry may run on any one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/openssl.h"
#include "common/result.h"
#include "store/store.h"

namespace ocsp::importer {

inline constexpr std::size_t kMaxSerialOctets = 20;  // RFC 5280 4.1.2.2

struct CrlEntry {
  ByteView serial;  // minimal unsigned magnitude, a view into the input (1-20 octets)
  UnixSeconds revocation_time = 0;
  std::optional<store::Reason> reason;
  std::optional<UnixSeconds> invalidity_date;
  std::size_t offset = 0;  // of the entry's SEQUENCE in the input
};

using store::PartitionScope;

struct IssuingDistributionPoint {
  Bytes distribution_point;  // DER of the DistributionPointName: identifies the partition
  std::string name;          // printable (URI or directory name), for messages
  PartitionScope scope = PartitionScope::kUserCerts;
};

struct CrlHeader {
  ByteView tbs;                        // the signed bytes (tbsCertList, tag and length included)
  ByteView tbs_signature_algorithm;    // AlgorithmIdentifier inside tbsCertList (DER)
  ByteView signature_algorithm;        // the outer AlgorithmIdentifier (DER); must equal the inner one
  ByteView signature;                  // signatureValue BIT STRING contents, without the unused-bits octet
  ByteView issuer;                     // issuer Name (DER)
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  std::optional<Bytes> crl_number;         // minimal magnitude
  std::optional<Bytes> delta_base;         // deltaCRLIndicator's BaseCRLNumber, minimal magnitude
  std::optional<Bytes> authority_key_id;   // keyIdentifier of the authorityKeyIdentifier extension
  std::optional<IssuingDistributionPoint> distribution_point;
  ByteView entries;                        // contents of revokedCertificates (empty when absent)
  std::size_t entries_offset = 0;          // offset of `entries` in the input
};

// One entry located but not decoded: its DER and its serial, checked as Next checks them (a minimal,
// non-negative INTEGER of at most 20 octets). DecodeEntry checks and decodes the rest.
struct RawEntry {
  ByteView encoding;  // the whole entry SEQUENCE, tag and length included
  ByteView serial;    // minimal unsigned magnitude
  std::size_t offset = 0;
};
Result<CrlEntry> DecodeEntry(const RawEntry& raw);

// Pulls entries one at a time, in file order (what a k-way merge of partition files needs).
class EntryReader {
 public:
  EntryReader(ByteView entries, std::size_t base_offset);
  // Reads the next entry into `out`; false at the end.
  [[nodiscard]] Result<bool> Next(CrlEntry& out);
  // Locates the next entry and reads only its serial (a re-import decodes only the entries that changed).
  [[nodiscard]] Result<bool> NextRaw(RawEntry& out);
  // Offset in the input up to which entries have been consumed.
  [[nodiscard]] std::size_t offset() const;

 private:
  ByteView entries_;
  std::size_t base_;
  std::size_t position_ = 0;
};

// Reads the one entry whose SEQUENCE starts at `offset` (as reported in CrlEntry::offset).
Result<CrlEntry> ReadEntryAt(ByteView der, std::size_t offset);
Result<RawEntry> ReadRawEntryAt(ByteView der, std::size_t offset);

class CrlParser {
 public:
  // Parses everything but the entries. `der` must outlive the parser.
  static Result<CrlParser> Open(ByteView der);

  [[nodiscard]] const CrlHeader& header() const { return header_; }

  // Visits every entry in file order; stops at the first malformed entry or the first error the visitor
  // returns. `progress`, when given, is called with the number of entry bytes consumed so far, at most every
  // few megabytes (a progress bar, the streaming hash).
  using Visitor = std::function<Result<void>(const CrlEntry&)>;
  using Progress = std::function<void(std::size_t consumed_to_offset)>;
  [[nodiscard]] Result<void> ForEachEntry(const Visitor& visit, const Progress& progress = nullptr) const;
  [[nodiscard]] EntryReader Entries() const { return EntryReader(header_.entries, header_.entries_offset); }

 private:
  CrlParser(ByteView der, CrlHeader header) : der_(der), header_(std::move(header)) {}
  ByteView der_;
  CrlHeader header_;
};

// Verifies the CRL's signature with the issuer's public key, hashing the tbsCertList in chunks.
// Supports RSA PKCS#1 v1.5 and RSASSA-PSS (SHA-256/384/512), ECDSA (SHA-256/384/512) and Ed25519.
// SHA-1 signatures are refused.
class SignatureCheck {
 public:
  static Result<SignatureCheck> Begin(const CrlHeader& header, EVP_PKEY* issuer_key);
  // Hash tbs bytes up to `end` (an offset into header.tbs); call with increasing values.
  void HashUpTo(std::size_t end);
  [[nodiscard]] Result<void> Finish();

 private:
  SignatureCheck() = default;
  ByteView tbs_;
  ByteView signature_;
  std::size_t hashed_ = 0;
  bool one_shot_ = false;  // Ed25519 cannot hash in pieces
  UniquePtr<EVP_MD_CTX> context_;
};

}  // namespace ocsp::importer
