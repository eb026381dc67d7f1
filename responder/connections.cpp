#include "responder/connections.h"

namespace ocsp::responder {

std::size_t ConnectionLimits::Slot(Address128 address) {
  std::uint64_t x = static_cast<std::uint64_t>(address) ^ static_cast<std::uint64_t>(address >> 64);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return static_cast<std::size_t>(x % 16384);
}

Admission ConnectionLimits::TryAcquire(Address128 address) {
  if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total_) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    return Admission::kOverTotal;
  }
  auto& slot = per_address_[Slot(address)];
  if (slot.fetch_add(1, std::memory_order_relaxed) >= max_per_address_) {
    slot.fetch_sub(1, std::memory_order_relaxed);
    total_.fetch_sub(1, std::memory_order_relaxed);
    return Admission::kOverAddress;
  }
  return Admission::kAdmitted;
}

void ConnectionLimits::Release(Address128 address) {
  per_address_[Slot(address)].fetch_sub(1, std::memory_order_relaxed);
  total_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace ocsp::responder
