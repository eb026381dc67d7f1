// Presigner: signs responses into the store ahead of the requests for them.
//
// After each import it signs a response for every revoked entry that has none (or only one from an older
// CRL state or another responder certificate), newest revocations first, in batches; and it re-signs stored
// good responses from a newer CRL before their nextUpdate comes within the configured lead. Every response is
// decided by the StatusAuthority, exactly as a request would be, and written by the ResponseWriter, which
// checks it against the store once more. The walk over the store takes a read snapshot only while it walks;
// signing happens outside any snapshot, so old pages are never pinned through a long signing run.
// Threads: one scheduling thread plus `threads` signing threads at idle priority, which take the CPU only
// when serving and on-demand signing leave it free.
// A periodic scan that found nothing to do is not repeated while the snapshot and every issuer's state are
// unchanged and no stored response has reached its re-sign time (at JPKI scale a scan walks tens of millions
// of entries); a full scan still runs every `full_scan_interval_seconds`, and after every Wake.
// Thread safety: Start/Stop/RunUntilDone from one thread; Wake from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/openssl.h"
#include "common/result.h"
#include "config/config.h"
#include "responder/authority.h"
#include "responder/response_writer.h"
#include "responder/snapshot.h"
#include "store/issuer.h"
#include "store/store.h"

namespace ocsp::responder {

struct PresignOptions {
  unsigned threads = 1;
  std::vector<store::HashAlgorithm> algorithms{store::HashAlgorithm::kSha1};
  UnixSeconds resign_lead_seconds = 12 * 3600;
  unsigned scan_interval_seconds = 30;
  unsigned full_scan_interval_seconds = 600;
  std::size_t batch = 4096;
  bool idle_priority = true;
  // Presign good responses for the serials of an issuer's issued-serials list (within max_good_responses).
  bool good_from_issued_serials = false;
  std::uint64_t max_good_responses = 1'000'000;
};

PresignOptions PresignOptionsFrom(const config::PresignConfig& config);

struct PresignProgress {
  std::uint64_t signed_responses = 0;
  std::uint64_t failed = 0;   // signing failed (logged)
  std::uint64_t skipped = 0;  // the authority no longer answered the same (an import in between)
  std::uint64_t scans = 0;
  std::uint64_t quiet_skips = 0;  // periodic scans left out: nothing could have changed since a quiet scan
  double signing_seconds = 0;  // wall time spent in signing phases
};

// What to keep of a signed answer, or nullopt when it is not worth keeping (unknown, several CertIDs, no
// nextUpdate, no store record for the issuer).
std::optional<ResponseToStore> KeepableResponse(const Decision& decision, const RequestedCert& cert, Bytes der,
                                                UnixSeconds produced_at);

// The snapshot in force (issuers, responder certificates, authority); a reload replaces it, and the next scan
// signs with the new one.
using SnapshotSource = std::function<std::shared_ptr<const Snapshot>()>;

class Presigner {
 public:
  Presigner(const store::Store& store, SnapshotSource snapshots, ResponseWriter& writer, const Clock& clock,
            PresignOptions options);
  ~Presigner();
  Presigner(const Presigner&) = delete;
  Presigner& operator=(const Presigner&) = delete;

  void Start();
  void Stop();
  void Wake();
  // Scans and signs until a scan finds nothing to do (ocspctl presign, tests, benchmarks).
  Result<PresignProgress> RunUntilDone();
  // One scan and the signing of its batch; returns how many responses were signed and kept.
  Result<std::uint64_t> RunOnce();
  [[nodiscard]] PresignProgress progress() const;

 private:
  struct Candidate {
    std::size_t issuer_index;
    store::HashAlgorithm algorithm;
    Bytes serial;
    UnixSeconds revocation_time;  // 0 for good responses: they come after every revoked one
  };
  // What one scan and its signing work with: the snapshot and its CA certificates, parsed once.
  struct Batch {
    std::shared_ptr<const Snapshot> snapshot;
    std::vector<UniquePtr<X509>> issuer_certificates;  // parallel to snapshot->issuers, for building CertIDs
    std::vector<Candidate> candidates;                 // newest revocations first
    std::uint64_t state_token = 0;                      // StateToken as the scan read it
    UnixSeconds next_due = std::numeric_limits<UnixSeconds>::max();  // the earliest re-sign time it saw
  };
  // What a scan that found nothing to do saw.
  struct Quiet {
    std::shared_ptr<const Snapshot> snapshot;
    std::uint64_t state_token = 0;
    UnixSeconds next_due = 0;
    std::chrono::steady_clock::time_point scanned_at;
  };
  // A digest of every issuer's state in the store (CRLs held, partitions, coverage, compromise): an import or
  // a declaration changes it.
  Result<std::uint64_t> StateToken(MDB_txn* txn, const Snapshot& snapshot) const;
  // True when a scan now would find what the quiet scan found: nothing.
  bool StillQuiet();
  // Up to options_.batch candidates; `more` when the batch was full.
  Result<Batch> Scan(bool& more);
  // Good responses to presign from the issuer's issued-serials list, resuming where the last scan stopped.
  Result<void> IssuedCandidates(MDB_txn* txn, std::size_t index, std::uint32_t issuer_no, const IssuedSerials& issued,
                                const std::function<bool(const store::StoredResponseInfo&)>& stale,
                                std::vector<Candidate>& good, bool& more);
  void SignAll(const Batch& batch);
  void SignOne(const Batch& batch, const Candidate& candidate, store::ReadTxn& txn);
  void Loop();

  const store::Store& store_;
  SnapshotSource snapshots_;
  ResponseWriter& writer_;
  const Clock& clock_;
  PresignOptions options_;

  // Where the walk over each issuer's issued-serials list resumes (the scheduling thread's, or RunUntilDone's).
  std::vector<std::uint64_t> issued_position_;
  std::atomic<std::uint64_t> signed_{0}, failed_{0}, skipped_{0}, scans_{0}, quiet_skips_{0};
  std::optional<Quiet> quiet_;  // the scheduling thread's
  std::atomic<double> signing_seconds_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ocsp::responder
