#include "responder/connection_balancer.h"

#include <algorithm>

#include "responder/http1.h"

namespace ocsp::responder {

std::size_t ConnectionBalancer::Join(HttpFrontEnd& front_end, std::optional<int> cpu) {
  members_.push_back(Member{&front_end, cpu});
  wants_ = std::make_unique<std::atomic<std::uint32_t>[]>(members_.size() * members_.size());
  return members_.size() - 1;
}

void ConnectionBalancer::PublishWants(std::size_t from, std::span<const std::uint32_t> wants) {
  for (std::size_t to = 0; to < members_.size() && to < wants.size(); ++to) {
    wants_[from * members_.size() + to].store(wants[to], std::memory_order_relaxed);
  }
}

std::optional<std::size_t> ConnectionBalancer::MemberOnCpu(int cpu) const {
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].cpu == cpu) return i;
  }
  return std::nullopt;
}

bool ConnectionBalancer::MayTake(std::size_t from, std::size_t to, std::size_t sent, std::size_t open) const {
  if (open == 0) return false;
  const std::size_t theirs = members_[to].front_end->shared_open_connections() + sent + 1;
  if (Surplus(theirs, open - 1) == 0) return true;
  return sent < wants_[to * members_.size() + from].load(std::memory_order_relaxed);
}

std::size_t ConnectionBalancer::Surplus(std::size_t open, std::size_t least) {
  if (open <= least) return 0;
  const std::size_t gap = open - least;
  return gap >= std::max<std::size_t>(2, (open + least) / 4) ? gap / 2 : 0;
}

std::optional<ConnectionBalancer::Transfer> ConnectionBalancer::Plan(std::size_t from, std::size_t open) const {
  std::optional<Transfer> best;
  std::size_t least = open;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (i == from) continue;
    const std::size_t theirs = members_[i].front_end->shared_open_connections();
    if (theirs < least) {
      least = theirs;
      best = Transfer{.to = i, .count = 0};
    }
  }
  if (!best) return std::nullopt;
  best->count = Surplus(open, least);
  if (best->count == 0) return std::nullopt;
  return best;
}

}  // namespace ocsp::responder
