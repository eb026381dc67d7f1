#include "responder/signing_pool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "common/thread_name.h"

namespace ocsp::responder {
namespace {

// On 2 cores, two signing threads at the workers' priority hold both cores for a signature's milliseconds
// while a worker with a stored answer waits in the run queue (the abuse bench's never-seen-serials sweep:
// the legitimate p99 went from 0.4 to 2 ms). SCHED_BATCH keeps a signer from preempting a worker on wake-up,
// and nice +5 gives the workers about three times its share when both want a core; signing is never starved.
void LowerSigningPriority() {
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, 0);
  if (errno == 0) setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), std::min(nice + 5, 19));
}

}  // namespace

SigningPool::SigningPool(unsigned threads, std::size_t max_pending) : max_pending_(max_pending) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] {
      NameThisThread("ocsp-signer-" + std::to_string(i));
      Run();
    });
  }
}

SigningPool::~SigningPool() { Stop(); }

bool SigningPool::TrySubmit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || pending_ >= max_pending_) return false;
    ++pending_;
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

SigningPool::Load SigningPool::CurrentLoad() const {
  std::lock_guard lock(mutex_);
  return {pending_ - queue_.size(), queue_.size(), max_pending_};
}

void SigningPool::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void SigningPool::Run() {
  LowerSigningPriority();
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
    std::lock_guard lock(mutex_);
    --pending_;
  }
}

}  // namespace ocsp::responder
