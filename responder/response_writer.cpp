#include "responder/response_writer.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "common/log.h"
#include "common/thread_name.h"

namespace ocsp::responder {
namespace {

// A batch is written when this many are queued, or after kBatchDelay, whichever comes first: large enough to
// amortise a commit (an fsync), short enough that a kept response is served from the store soon.
constexpr std::size_t kBatchSize = 1024;
constexpr auto kBatchDelay = std::chrono::milliseconds(50);

}  // namespace

ResponseWriter::ResponseWriter(store::Store& store, std::uint64_t max_good_responses, std::size_t max_queued)
    : store_(store), max_good_(max_good_responses), max_queued_(max_queued) {
  thread_ = std::thread([this] {
    NameThisThread("ocsp-writer");
    Run();
  });
}

ResponseWriter::~ResponseWriter() { Stop(); }

bool ResponseWriter::Enqueue(ResponseToStore response) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || responses_.size() >= max_queued_) {
      ++stats_.dropped;
      return false;
    }
    responses_.push_back(std::move(response));
    ++enqueued_;
    if (responses_.size() < kBatchSize) return true;
  }
  wake_.notify_one();
  return true;
}

void ResponseWriter::EnqueueTouch(std::uint32_t issuer_no, store::HashAlgorithm algorithm, ByteView serial,
                                  std::uint32_t hour) {
  std::lock_guard lock(mutex_);
  if (stopping_ || touches_.size() >= max_queued_) return;  // a lost touch only ages a response a little
  touches_.push_back(Touch{issuer_no, algorithm, Bytes(serial.begin(), serial.end()), hour});
  ++enqueued_;
}

void ResponseWriter::Flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = enqueued_;
  wake_.notify_one();
  flushed_.wait(lock, [&] { return done_ >= target || !thread_.joinable(); });
}

void ResponseWriter::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  flushed_.notify_all();
}

ResponseWriterStats ResponseWriter::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void ResponseWriter::Run() {
  std::deque<ResponseToStore> responses;
  std::deque<Touch> touches;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kBatchDelay, [&] { return stopping_ || responses_.size() >= kBatchSize; });
      responses.swap(responses_);
      touches.swap(touches_);
      if (responses.empty() && touches.empty()) {
        if (stopping_) return;
        continue;
      }
    }
    const std::uint64_t count = responses.size() + touches.size();
    WriteBatch(responses, touches);
    responses.clear();
    touches.clear();
    {
      std::lock_guard lock(mutex_);
      done_ += count;
    }
    flushed_.notify_all();
  }
}

bool ResponseWriter::StillTrue(MDB_txn* txn, const std::vector<store::IssuerRecord>& issuers,
                               const ResponseToStore& response) const {
  const store::IssuerRecord* issuer = nullptr;
  for (const auto& record : issuers) {
    if (record.state.issuer_no == response.issuer_no) issuer = &record;
  }
  if (issuer == nullptr || issuer->state.compromised_since) return false;
  const store::Coverage& coverage = issuer->state.coverage;
  // A response may not claim a later nextUpdate than the CRLs now held allow.
  if (coverage.earliest_next_update && response.info.next_update > *coverage.earliest_next_update) return false;
  auto entry = store_.GetRevoked(txn, response.issuer_no, response.serial);
  if (!entry) return false;
  if (response.info.status == store::StoredStatus::kGood) return !*entry && coverage.complete;
  return *entry && (*entry)->revocation_time == response.info.revocation_time &&
         (*entry)->reason == response.info.reason;
}

void ResponseWriter::WriteBatch(std::deque<ResponseToStore>& responses, std::deque<Touch>& touches) {
  auto txn = store_.BeginWrite();
  if (!txn) {
    Log(LogLevel::kError, "response_write_failed", {{"error", txn.error().Describe()}});
    std::lock_guard lock(mutex_);
    ++stats_.failures;
    return;
  }
  ResponseWriterStats batch;
  auto fail = [&](const Error& error) {
    Log(LogLevel::kError, "response_write_failed", {{"error", error.Describe()}});
    std::lock_guard lock(mutex_);
    ++stats_.failures;
  };
  // The issuer records are few (keyed by id, not number): read them once per batch.
  auto issuers = store_.ListIssuers(txn->get());
  if (!issuers) return fail(issuers.error());
  std::uint64_t keep_good = max_good_;
  auto fill = store_.MapFill();
  if (!fill) return fail(fill.error());
  const bool held = *fill >= store::kGoodResponsesMapShare;
  if (held) {
    auto counts = store_.CountResponses(txn->get());
    if (!counts) return fail(counts.error());
    keep_good = std::min(keep_good, counts->good);
    ++batch.held_by_map;
  }
  if (held != held_by_map_) {
    held_by_map_ = held;
    Log(held ? LogLevel::kWarning : LogLevel::kInfo, held ? "good_responses_held_by_map" : "good_responses_may_grow",
        {{"map_fill", std::to_string(*fill)}, {"share", std::to_string(store::kGoodResponsesMapShare)}});
  }
  for (const ResponseToStore& response : responses) {
    if (!StillTrue(txn->get(), *issuers, response)) {
      ++batch.stale;
      continue;
    }
    if (auto put = store_.PutResponse(*txn, response.issuer_no, response.algorithm, response.serial, response.info,
                                      response.der);
        !put) {
      return fail(put.error());
    }
    ++batch.written;
  }
  for (const Touch& touch : touches) {
    if (auto touched = store_.TouchResponse(*txn, touch.issuer_no, touch.algorithm, touch.serial, touch.hour);
        !touched) {
      return fail(touched.error());
    }
  }
  auto evicted = store_.EvictGoodResponses(*txn, keep_good);
  if (!evicted) return fail(evicted.error());
  if (auto committed = txn->Commit(); !committed) return fail(committed.error());
  std::lock_guard lock(mutex_);
  stats_.written += batch.written;
  stats_.stale += batch.stale;
  stats_.evicted += *evicted;
  stats_.held_by_map += batch.held_by_map;
  ++stats_.batches;
}

}  // namespace ocsp::responder
