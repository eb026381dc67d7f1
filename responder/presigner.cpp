#include "responder/presigner.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <queue>
#include <system_error>

#include "common/log.h"
#include "common/thread_name.h"

namespace ocsp::responder {
namespace {

using Steady = std::chrono::steady_clock;

// Newest revocation on top of a min-heap of the batch kept so far: the oldest is the one to push out.
struct NewerFirst {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.revocation_time > b.revocation_time;
  }
};

void LowerPriority() {
  // SCHED_IDLE: the scheduler runs these threads only when nothing else wants the core.
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
}

}  // namespace

PresignOptions PresignOptionsFrom(const config::PresignConfig& config) {
  PresignOptions options;
  options.threads = config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  options.algorithms.clear();
  for (const std::string& name : config.hash_algorithms) {
    options.algorithms.push_back(name == "sha256" ? store::HashAlgorithm::kSha256 : store::HashAlgorithm::kSha1);
  }
  options.resign_lead_seconds = config.resign_lead_seconds;
  options.scan_interval_seconds = config.scan_interval_seconds;
  options.full_scan_interval_seconds = std::max(config.scan_interval_seconds, 600u);
  options.batch = config.batch;
  options.good_from_issued_serials = config.good_from_issued_serials;
  options.max_good_responses = config.max_good_responses;
  return options;
}

std::optional<ResponseToStore> KeepableResponse(const Decision& decision, const RequestedCert& cert, Bytes der,
                                                UnixSeconds produced_at) {
  if (decision.exception || decision.answers.size() != 1 || decision.issuer_no == 0 || !cert.algorithm) {
    return std::nullopt;
  }
  const signer::SingleAnswer& answer = decision.answers.front();
  if (answer.status == signer::CertStatus::kUnknown || !answer.next_update) return std::nullopt;
  ResponseToStore keep;
  keep.issuer_no = decision.issuer_no;
  keep.algorithm = *cert.algorithm;
  keep.serial = cert.serial;
  keep.info.status =
      answer.status == signer::CertStatus::kGood ? store::StoredStatus::kGood : store::StoredStatus::kRevoked;
  keep.info.revocation_time = answer.status == signer::CertStatus::kRevoked ? answer.revocation_time : 0;
  if (answer.status == signer::CertStatus::kRevoked && answer.reason) {
    keep.info.reason = static_cast<store::Reason>(*answer.reason);
  }
  keep.info.signer_id = decision.signer_id;
  keep.info.this_update = answer.this_update;
  keep.info.next_update = *answer.next_update;
  keep.info.produced_at = produced_at;
  keep.info.requested_hour = static_cast<std::uint32_t>(produced_at / 3600);
  keep.der = std::move(der);
  return keep;
}

Presigner::Presigner(const store::Store& store, SnapshotSource snapshots, ResponseWriter& writer,
                     const Clock& clock, PresignOptions options)
    : store_(store), snapshots_(std::move(snapshots)), writer_(writer), clock_(clock), options_(std::move(options)) {
  if (options_.threads == 0) options_.threads = 1;
}

Presigner::~Presigner() { Stop(); }

void Presigner::Start() {
  thread_ = std::thread([this] {
    NameThisThread("ocsp-presigner");
    Loop();
  });
}

void Presigner::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Presigner::Wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

PresignProgress Presigner::progress() const {
  return PresignProgress{signed_.load(),     failed_.load(), skipped_.load(), scans_.load(), quiet_skips_.load(),
                         signing_seconds_.load()};
}

Result<std::uint64_t> Presigner::StateToken(MDB_txn* txn, const Snapshot& snapshot) const {
  std::uint64_t token = 14695981039346656037ull;  // FNV-1a over the fields
  auto mix = [&token](std::uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      token ^= (value >> (8 * i)) & 0xff;
      token *= 1099511628211ull;
    }
  };
  for (std::size_t index = 0; index < snapshot.issuers.size(); ++index) {
    auto state = store_.GetIssuerState(txn, snapshot.issuers.at(index).id);
    if (!state) return std::unexpected(state.error());
    mix(index);
    if (!*state) continue;
    const store::IssuerState& s = **state;
    mix(s.issuer_no), mix(s.last_crl_id), mix(s.last_partition_no), mix(s.pinned ? 1 : 0);
    mix(s.compromised_since ? static_cast<std::uint64_t>(*s.compromised_since) : ~0ull);
    mix(s.coverage.partitions_held), mix(s.coverage.partitions_expected), mix(s.coverage.complete ? 1 : 0);
    mix(static_cast<std::uint64_t>(s.coverage.oldest_this_update));
    mix(s.coverage.earliest_next_update ? static_cast<std::uint64_t>(*s.coverage.earliest_next_update) : ~0ull);
    mix(s.coverage.entries);
  }
  return token;
}

bool Presigner::StillQuiet() {
  if (!quiet_ || options_.good_from_issued_serials) return false;  // that walk resumes where it stopped
  if (Steady::now() - quiet_->scanned_at >= std::chrono::seconds(options_.full_scan_interval_seconds)) return false;
  if (clock_.Now() >= quiet_->next_due) return false;
  const auto snapshot = snapshots_();
  if (snapshot != quiet_->snapshot || !snapshot) return false;
  auto txn = store_.BeginRead();
  if (!txn) return false;
  auto token = StateToken(txn->get(), *snapshot);
  return token && *token == quiet_->state_token;
}

Result<Presigner::Batch> Presigner::Scan(bool& more) {
  ++scans_;
  more = false;
  Batch batch_out;
  batch_out.snapshot = snapshots_();
  if (!batch_out.snapshot || !batch_out.snapshot->authority) return batch_out;
  const store::IssuerDirectory& issuers = batch_out.snapshot->issuers;
  const StatusAuthority& authority = *batch_out.snapshot->authority;
  for (std::size_t i = 0; i < issuers.size(); ++i) {
    auto certificate = ParseCertificate(issuers.at(i).certificate_der);
    batch_out.issuer_certificates.push_back(certificate ? std::move(*certificate) : nullptr);
  }
  const UnixSeconds now = clock_.Now();
  auto txn = store_.BeginRead();
  if (!txn) return std::unexpected(txn.error());
  auto token = StateToken(txn->get(), *batch_out.snapshot);
  if (!token) return std::unexpected(token.error());
  batch_out.state_token = *token;
  std::priority_queue<Candidate, std::vector<Candidate>, NewerFirst> revoked;
  std::vector<Candidate> good;
  std::size_t wanted_revoked = 0;

  for (std::size_t index = 0; index < issuers.size(); ++index) {
    if (!batch_out.issuer_certificates[index]) continue;
    auto state = store_.GetIssuerState(txn->get(), issuers.at(index).id);
    if (!state) return std::unexpected(state.error());
    if (!*state || (*state)->coverage.oldest_this_update == 0) continue;  // no CRL yet: nothing to presign
    const std::uint64_t signer_id = authority.signer_id(index);
    const UnixSeconds current_this_update = std::min((*state)->coverage.oldest_this_update, now);
    // A stored response needs signing again when another responder certificate is in use, or when the store
    // holds a newer CRL state and the response is within the lead of its nextUpdate.
    // The time a response becomes stale: at its nextUpdate, or within the lead of it once a newer CRL is held.
    auto due = [&](const store::StoredResponseInfo& info) {
      return info.this_update < current_this_update ? info.next_update - options_.resign_lead_seconds
                                                     : info.next_update;
    };
    auto stale = [&](const store::StoredResponseInfo& info) {
      if (info.signer_id != signer_id || now >= due(info) || info.next_update <= now) return true;
      batch_out.next_due = std::min(batch_out.next_due, due(info));
      return false;
    };
    auto walked = store_.WalkRevoked(
        txn->get(), (*state)->issuer_no,
        [&](ByteView serial, const store::RevokedEntry& entry, const auto& stored) {
          for (store::HashAlgorithm algorithm : options_.algorithms) {
            const auto& info = stored[static_cast<std::size_t>(algorithm) - 1];
            if (info && !stale(*info)) continue;
            ++wanted_revoked;
            Candidate candidate{index, algorithm, {}, std::max<UnixSeconds>(entry.revocation_time, 1)};
            if (revoked.size() < options_.batch) {
              candidate.serial.assign(serial.begin(), serial.end());
              revoked.push(std::move(candidate));
            } else if (revoked.top().revocation_time < candidate.revocation_time) {
              revoked.pop();
              candidate.serial.assign(serial.begin(), serial.end());
              revoked.push(std::move(candidate));
            }
          }
        });
    if (!walked) return std::unexpected(walked.error());
    if (options_.good_from_issued_serials && index < batch_out.snapshot->issued.size() &&
        batch_out.snapshot->issued[index]) {
      auto listed = IssuedCandidates(txn->get(), index, (*state)->issuer_no, *batch_out.snapshot->issued[index],
                                     stale, good, more);
      if (!listed) return std::unexpected(listed.error());
    }
    auto responses = store_.WalkResponses(
        txn->get(), (*state)->issuer_no,
        [&](ByteView serial, store::HashAlgorithm algorithm, const store::StoredResponseInfo& info) {
          if (info.status != store::StoredStatus::kGood || !stale(info)) return;
          if (good.size() < options_.batch) good.push_back(Candidate{index, algorithm, Bytes(serial.begin(), serial.end()), 0});
          else more = true;
        });
    if (!responses) return std::unexpected(responses.error());
  }
  txn->Reset();

  std::vector<Candidate>& batch = batch_out.candidates;
  batch.reserve(revoked.size() + good.size());
  while (!revoked.empty()) {
    batch.push_back(std::move(const_cast<Candidate&>(revoked.top())));
    revoked.pop();
  }
  std::reverse(batch.begin(), batch.end());  // newest revocation first
  if (wanted_revoked > batch.size()) more = true;
  for (auto& candidate : good) {
    if (batch.size() >= options_.batch) {
      more = true;
      break;
    }
    batch.push_back(std::move(candidate));
  }
  return batch_out;
}

Result<void> Presigner::IssuedCandidates(MDB_txn* txn, std::size_t index, std::uint32_t issuer_no,
                                         const IssuedSerials& issued,
                                         const std::function<bool(const store::StoredResponseInfo&)>& stale,
                                         std::vector<Candidate>& good, bool& more) {
  auto counts = store_.CountResponses(txn);
  if (!counts) return std::unexpected(counts.error());
  std::uint64_t room = options_.max_good_responses > counts->good ? options_.max_good_responses - counts->good : 0;
  // Past kGoodResponsesMapShare the writer keeps the good set from growing: presigning more would only evict
  // requested ones, scan after scan.
  auto fill = store_.MapFill();
  if (!fill) return std::unexpected(fill.error());
  if (*fill >= store::kGoodResponsesMapShare) room = 0;
  if (issued_position_.size() <= index) issued_position_.resize(index + 1, 0);
  std::uint64_t& position = issued_position_[index];  // the next serial to look at
  Bytes serial;
  for (const IssuedSerials::Range& range : issued.ranges()) {
    // Serials of up to 8 octets (JPKI's are 4): longer ranges are answered from the list but not presigned.
    if (range.last.length > 8) continue;
    auto value = [](const IssuedSerials::Key& key) {
      std::uint64_t v = 0;
      for (std::uint8_t i = 0; i < key.length; ++i) v = v << 8 | key.bytes[i];
      return v;
    };
    for (std::uint64_t s = std::max(value(range.first), position); s <= value(range.last); ++s) {
      if (good.size() >= options_.batch) {
        position = s;
        more = true;
        return {};
      }
      serial.clear();
      for (int shift = 56; shift >= 0; shift -= 8) {
        const auto octet = static_cast<std::uint8_t>(s >> shift);
        if (!serial.empty() || octet != 0) serial.push_back(octet);
      }
      if (serial.empty()) continue;  // serial 0 is not a certificate's
      auto revoked = store_.GetRevoked(txn, issuer_no, serial);
      if (!revoked) return std::unexpected(revoked.error());
      if (*revoked) continue;  // the revoked walk handles it
      for (store::HashAlgorithm algorithm : options_.algorithms) {
        auto stored = store_.GetResponse(txn, issuer_no, algorithm, serial);
        if (!stored) return std::unexpected(stored.error());
        if (*stored && !stale((*stored)->info)) continue;
        if (!*stored) {
          if (room == 0) continue;  // the kept set is full: the requested ones have it
          --room;
        }
        good.push_back(Candidate{index, algorithm, serial, 0});
      }
    }
  }
  position = 0;  // the whole list was looked at: the next scan starts again from the beginning
  return {};
}

void Presigner::SignOne(const Batch& batch, const Candidate& candidate, store::ReadTxn& txn) {
  const store::IssuerIdentity& identity = batch.snapshot->issuers.at(candidate.issuer_index);
  const X509* ca = batch.issuer_certificates[candidate.issuer_index].get();
  auto serial = IntegerFromMagnitude(candidate.serial);
  UniquePtr<OCSP_CERTID> cert_id(OCSP_cert_id_new(store::Digest(candidate.algorithm), X509_get_subject_name(ca),
                                                  X509_get0_pubkey_bitstr(ca), serial.get()));
  if (!cert_id) {
    ++failed_;
    return;
  }
  DecodedRequest request;
  const auto& hashes = identity.HashesFor(candidate.algorithm);
  request.certs.push_back(RequestedCert{cert_id.get(), candidate.algorithm, hashes.name_hash, hashes.key_hash,
                                        candidate.serial});
  if (auto renewed = txn.Renew(); !renewed) {
    ++failed_;
    return;
  }
  const Decision decision = batch.snapshot->authority->Decide(txn.get(), request);
  txn.Reset();
  if (decision.exception || decision.answers.size() != 1 ||
      decision.answers.front().status == signer::CertStatus::kUnknown) {
    ++skipped_;  // the store changed since the scan (or the issuer is not answerable now)
    return;
  }
  const UnixSeconds now = clock_.Now();
  auto der = decision.signer->Sign(decision.answers, std::nullopt, now);
  if (!der) {
    ++failed_;
    Log(LogLevel::kError, "presign_failed", {{"error", der.error().Describe()}});
    return;
  }
  auto keep = KeepableResponse(decision, request.certs.front(), std::move(*der), now);
  if (!keep) {
    ++skipped_;
    return;
  }
  // A full queue means the writer is behind: wait for it rather than sign what would be thrown away.
  while (!writer_.Enqueue(*keep)) writer_.Flush();
  ++signed_;
}

void Presigner::SignAll(const Batch& batch) {
  const std::vector<Candidate>& candidates = batch.candidates;
  const auto started = Steady::now();
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    if (options_.idle_priority) LowerPriority();
    auto txn = store_.BeginRead();
    if (!txn) {
      Log(LogLevel::kError, "presign_failed", {{"error", txn.error().Describe()}});
      return;
    }
    txn->Reset();
    for (std::size_t i = next++; i < candidates.size(); i = next++) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      SignOne(batch, candidates[i], *txn);
    }
  };
  // The calling thread signs too. A thread that cannot be created (out of resources: found with the
  // responder held to 128 descriptors under ASan) only narrows the batch's parallelism; it must never end
  // the process.
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < options_.threads; ++i) {
    try {
      threads.emplace_back([&work, i] {
        NameThisThread("ocsp-presign-" + std::to_string(i));
        work();
      });
    } catch (const std::system_error& error) {
      Log(LogLevel::kWarning, "presign_thread_failed", {{"error", error.what()}, {"threads", std::to_string(i)}});
      break;
    }
  }
  work();
  for (auto& thread : threads) thread.join();
  writer_.Flush();  // the next scan must see what this one signed
  signing_seconds_ = signing_seconds_.load() + std::chrono::duration<double>(Steady::now() - started).count();
}

Result<std::uint64_t> Presigner::RunOnce() {
  bool more = false;
  auto batch = Scan(more);
  if (!batch) return std::unexpected(batch.error());
  const std::uint64_t before = signed_.load();
  SignAll(*batch);
  return signed_.load() - before;
}

Result<PresignProgress> Presigner::RunUntilDone() {
  while (true) {
    bool more = false;
    auto batch = Scan(more);
    if (!batch) return std::unexpected(batch.error());
    if (batch->candidates.empty()) break;
    const std::uint64_t before = signed_.load();
    SignAll(*batch);
    // Nothing signed from a non-empty batch: what is left cannot be signed now (an issuer not answerable).
    if (signed_.load() == before) break;
  }
  return progress();
}

void Presigner::Loop() {
  bool more = false;
  bool woken = false;
  // Idle priority for this thread too: it signs beside its helpers (SignAll).
  if (options_.idle_priority) LowerPriority();
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (!more) {
        wake_.wait_for(lock, std::chrono::seconds(options_.scan_interval_seconds),
                       [&] { return stopping_ || woken_; });
      }
      if (stopping_) return;
      woken = std::exchange(woken_, false);
    }
    if (!more && !woken && StillQuiet()) {
      ++quiet_skips_;
      continue;
    }
    quiet_.reset();
    auto batch = Scan(more);
    if (!batch) {
      Log(LogLevel::kError, "presign_scan_failed", {{"error", batch.error().Describe()}});
      more = false;
      continue;
    }
    if (batch->candidates.empty()) {
      if (!more) quiet_ = Quiet{batch->snapshot, batch->state_token, batch->next_due, Steady::now()};
      more = false;
      continue;
    }
    const std::uint64_t before = signed_.load();
    try {
      SignAll(*batch);
    } catch (const std::exception& error) {  // e.g. out of memory: the responder keeps answering without it
      Log(LogLevel::kError, "presign_failed", {{"error", error.what()}});
      more = false;
      continue;
    }
    const std::uint64_t done = signed_.load() - before;
    if (done == 0) more = false;  // nothing could be signed: wait for the store to change
    Log(LogLevel::kInfo, "presigned", {{"responses", std::to_string(done)}, {"more", more ? "yes" : "no"}});
  }
}

}  // namespace ocsp::responder
