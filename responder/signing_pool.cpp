#include "responder/signing_pool.h"

namespace ocsp::responder {

SigningPool::SigningPool(unsigned threads, std::size_t max_pending) : max_pending_(max_pending) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
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
