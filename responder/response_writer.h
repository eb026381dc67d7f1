// ResponseWriter: the single writer of signed responses into the store.
//
// Signing threads (on-demand and presign) hand it responses; worker loops hand it "served again" touches. It
// writes them in batches, one write transaction each, and evicts the least recently requested good responses
// past the configured cap, and past the count they had once the store's file reached kGoodResponsesMapShare of
// the map (logged when that starts and ends). Inside each transaction it checks every response against the
// store once more: an import may have committed between the signature and the write, and a response whose
// status the store no longer holds is dropped, never written.
// Thread safety: Enqueue* from any thread (a short mutex; worker loops call it only for the first hit of a
// response in an hour); Stop from one thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "store/store.h"

namespace ocsp::responder {

struct ResponseToStore {
  std::uint32_t issuer_no = 0;
  store::HashAlgorithm algorithm = store::HashAlgorithm::kSha1;
  Bytes serial;
  store::StoredResponseInfo info;
  Bytes der;
};

struct ResponseWriterStats {
  std::uint64_t written = 0;
  std::uint64_t stale = 0;    // the store changed since signing: not written
  std::uint64_t dropped = 0;  // the queue was full
  std::uint64_t evicted = 0;
  std::uint64_t batches = 0;
  std::uint64_t failures = 0;  // write transactions that failed (logged)
  std::uint64_t held_by_map = 0;  // batches in which good responses could not grow: the map is filling
};

class ResponseWriter {
 public:
  ResponseWriter(store::Store& store, std::uint64_t max_good_responses, std::size_t max_queued = 65536);
  ~ResponseWriter();
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  // False when the queue is full (the response is simply not kept).
  bool Enqueue(ResponseToStore response);
  void EnqueueTouch(std::uint32_t issuer_no, store::HashAlgorithm algorithm, ByteView serial, std::uint32_t hour);
  // Returns once everything queued before the call is written (for tests and the presigner's progress).
  void Flush();
  // Writes what is queued, then stops the thread.
  void Stop();

  [[nodiscard]] ResponseWriterStats stats() const;

 private:
  struct Touch {
    std::uint32_t issuer_no;
    store::HashAlgorithm algorithm;
    Bytes serial;
    std::uint32_t hour;
  };
  void Run();
  void WriteBatch(std::deque<ResponseToStore>& responses, std::deque<Touch>& touches);
  // Whether `response` states what the store (in `txn`) holds now.
  bool StillTrue(MDB_txn* txn, const std::vector<store::IssuerRecord>& issuers,
                 const ResponseToStore& response) const;

  store::Store& store_;
  const std::uint64_t max_good_;
  const std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable flushed_;
  std::deque<ResponseToStore> responses_;
  std::deque<Touch> touches_;
  std::uint64_t enqueued_ = 0;  // sequence numbers, for Flush
  std::uint64_t done_ = 0;
  bool stopping_ = false;
  ResponseWriterStats stats_;
  bool held_by_map_ = false;  // the writer thread's own: whether the last batch found the map filling
  std::thread thread_;
};

}  // namespace ocsp::responder
