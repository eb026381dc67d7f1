// Byte buffers and views shared by every module.
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ocsp {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// Lower-case hex without separators ("0a1b").
std::string ToHex(ByteView bytes);

// Big-endian fixed-width integers, used by the store's on-disk layout.
void AppendU32(Bytes& out, std::uint32_t value);
void AppendU64(Bytes& out, std::uint64_t value);
std::uint32_t ReadU32(const std::uint8_t* in);
std::uint64_t ReadU64(const std::uint8_t* in);

}  // namespace ocsp
