// CRL import, first version: verify a full CRL against its CA and make it the issuer's current CRL.
//
// Every check runs before the write transaction opens, and the whole CRL is written in one transaction:
// a refused CRL leaves the store exactly as it was, and a reader sees the old CRL or the new one, never a mix.
// This version parses with OpenSSL's X509_CRL (the streaming parser for JPKI-sized CRLs, partitions and delta
// CRLs come later); it refuses what it cannot yet handle correctly (delta CRLs, partitioned CRLs, indirect
// CRLs, unknown critical extensions) instead of answering wrongly from them.
// Thread safety: one CrlImporter per thread; the store serialises writers across threads and processes.
#pragma once

#include <openssl/x509.h>

#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace ocsp::importer {

struct ImportOptions {
  // How far a CRL's thisUpdate may lie in the future (clock skew between CA and appliance).
  UnixSeconds max_clock_skew_seconds = 300;
  // Import a CRL whose nextUpdate has passed (an operator's explicit decision, e.g. during an outage).
  bool allow_expired = false;
};

struct ImportReport {
  enum class Outcome { kImported, kUnchanged };
  Outcome outcome = Outcome::kImported;
  store::IssuerId issuer;
  std::string issuer_name;
  store::CrlNumber number;
  std::optional<store::CrlNumber> previous_number;
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  std::uint64_t entries = 0;
  std::uint64_t previous_entries = 0;
};

class CrlImporter {
 public:
  CrlImporter(store::Store& store, const Clock& clock, ImportOptions options = {})
      : store_(store), clock_(clock), options_(options) {}

  // `crl_file` is the CRL as read from disk, DER or PEM.
  [[nodiscard]] Result<ImportReport> Import(const X509* issuer_certificate, ByteView crl_file);

 private:
  store::Store& store_;
  const Clock& clock_;
  ImportOptions options_;
};

}  // namespace ocsp::importer
