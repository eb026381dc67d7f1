// CRL import at JPKI scale: verify, then switch the store to the new revocation state in one transaction.
//
// Import() takes one or more CRL files of ONE issuer: full CRLs, partitions (an issuing distribution
// point), ARLs (onlyContainsCACerts) and delta CRLs. Each file is memory-mapped and walked once by the
// streaming parser while its signature is hashed; nothing is committed unless every file passes every check
// (signature, issuer and key identifier, CRL number increasing, times, size, critical extensions). The files
// of one call are one write transaction: readers in other processes see the old state or the new one.
// Entries are merged against what the store holds (both sorted by serial), so only changes are written. An
// entry whose serial, partition and DER fingerprint match the stored record (see store::EntryFingerprinter)
// is counted unchanged without being decoded: it is byte-identical to an entry that was decoded and checked
// in full when it was first imported. Every other entry is decoded and checked in full. A set of two or more
// complete CRLs (a partition set) is parsed on two worker threads while the calling thread writes
// (ImportOptions::parallel_range_entries); the store ends up the same either way.
//
// Every attempt, refused or not, is appended to the audit history next to the store (history.jsonl), and
// imported files are archived when an archive directory is configured.
// Thread safety: one Importer per thread; LMDB serialises writers across threads and processes.
#pragma once

#include <openssl/x509.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "importer/crl_parser.h"
#include "store/store.h"

namespace ocsp::importer {

struct ImportOptions {
  UnixSeconds max_clock_skew_seconds = 300;  // thisUpdate may be this far in the future
  bool allow_expired = false;                // import a CRL whose nextUpdate has passed
  double max_shrink_fraction = 0.10;         // refuse a CRL with this much fewer entries than the one it replaces
  bool allow_shrink = false;                 // the operator confirms a large shrink
  std::filesystem::path archive_directory;   // empty: do not archive
  UnixSeconds archive_retention_seconds = 90 * 86400;
  // Two or more complete CRLs imported together (a partition set) are parsed on a worker thread, range of
  // serials by range, into sorted runs of about this many entries while the calling thread writes them; 0
  // merges them on the calling thread alone. Either way the store ends up the same. A set whose serials are
  // not spread alike over its files (a range would grow past 4x this) falls back to the calling thread.
  std::size_t parallel_range_entries = 16384;
};

struct ImportInput {
  std::filesystem::path path;
  std::string source;  // where it came from (a path or URL), for the history
};

enum class CrlKind { kFull, kPartition, kAuthorityRevocationList, kDelta };
std::string_view ToString(CrlKind kind);

struct FileReport {
  std::string source;
  store::Sha256 sha256{};
  CrlKind kind = CrlKind::kFull;
  std::string partition;  // printable distribution point, empty for a full CRL
  std::string number;     // decimal CRL number
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  std::uint64_t entries = 0;
  bool unchanged = false;  // the identical file is already held
};

struct ImportReport {
  std::string issuer_name;
  store::IssuerId issuer;
  std::vector<FileReport> files;
  std::uint64_t added = 0;
  std::uint64_t removed = 0;
  std::uint64_t changed = 0;
  std::uint64_t unchanged = 0;
  std::uint64_t holds_kept = 0;  // certificateHold entries a newer CRL dropped; kept revoked (JPKI policy)
  std::vector<std::string> warnings;
  double seconds = 0;
  [[nodiscard]] bool nothing_to_do() const;
};

// Progress of a long import: bytes of entries walked so far out of the total of all files.
using ProgressSink = std::function<void(std::uint64_t done, std::uint64_t total)>;

class Importer {
 public:
  Importer(store::Store& store, std::filesystem::path store_directory, const Clock& clock,
           ImportOptions options = {})
      : store_(store), store_directory_(std::move(store_directory)), clock_(clock), options_(std::move(options)) {}

  // All files must be CRLs of `issuer_certificate`. On refusal nothing changes and the error says which file
  // and why; either way the attempt is recorded in the history.
  [[nodiscard]] Result<ImportReport> Import(const X509* issuer_certificate, const std::vector<ImportInput>& files,
                                            const ProgressSink& progress = nullptr);

 private:
  store::Store& store_;
  std::filesystem::path store_directory_;
  const Clock& clock_;
  ImportOptions options_;
};

// The audit history (history.jsonl in the store directory), newest last.
struct HistoryRecord {
  UnixSeconds at = 0;
  std::string issuer;
  std::string issuer_key;  // hex IssuerId: key generations that share a subject are told apart
  std::string source;
  std::string sha256;
  std::string kind;
  std::string partition;
  std::string number;
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  std::uint64_t entries = 0, added = 0, removed = 0, changed = 0;
  std::string result;  // "imported", "unchanged", "refused"
  std::string reason;  // why it was refused
  double seconds = 0;  // wall time of the whole import call this file was part of
  std::uint64_t holds_kept = 0;  // on the last record of a call: holds a newer CRL dropped, kept revoked
};
Result<std::vector<HistoryRecord>> ReadHistory(const std::filesystem::path& store_directory);
// One line of history.jsonl; nullopt for a line that does not parse (a torn last line after a crash).
std::optional<HistoryRecord> ParseHistoryLine(std::string_view line);

}  // namespace ocsp::importer
