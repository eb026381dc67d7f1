// A fixed pool of signing threads with a bounded number of pending jobs.
//
// Signing is the expensive step and must never run on an event loop. Past `max_pending` jobs (queued plus
// running) TrySubmit refuses at once, so the caller answers tryLater instead of queueing without bound.
// Thread safety: TrySubmit from any thread; Stop (and the destructor) from one thread, after which queued jobs
// have run. The pool's threads run below the event loops' priority (SCHED_BATCH, nice +5): a burst of
// signing must not delay the stored answers, which take microseconds of a worker's time.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ocsp::responder {

class SigningPool {
 public:
  SigningPool(unsigned threads, std::size_t max_pending);
  ~SigningPool();
  SigningPool(const SigningPool&) = delete;
  SigningPool& operator=(const SigningPool&) = delete;

  [[nodiscard]] bool TrySubmit(std::function<void()> job);

  // For the metrics scrape (takes the pool's lock briefly; never call it per request).
  struct Load {
    std::size_t running = 0;  // jobs a thread is executing
    std::size_t waiting = 0;  // jobs queued for a thread
    std::size_t max_pending = 0;
  };
  [[nodiscard]] Load CurrentLoad() const;
  // Runs what is queued, then joins the threads. Later TrySubmit calls are refused.
  void Stop();

 private:
  void Run();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  std::size_t pending_ = 0;  // queued + running
  std::size_t max_pending_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ocsp::responder
