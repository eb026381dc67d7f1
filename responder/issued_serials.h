// IssuedSerials: the serial numbers one CA is known to have issued, from a file the operator keeps, so that
// a serial the CA never issued is not answered `good` (CA/Browser Forum practice; domain notes 5).
//
// File format (UTF-8 text, one entry per line): a serial in hexadecimal ("1a2b", "0x1A2B") or an inclusive
// range of them ("1000-1fff"); '#' starts a comment; blank lines are ignored. Overlapping and adjacent
// entries are merged. Serials longer than 20 octets are refused (RFC 5280 4.1.2.2).
// Lookup is a binary search over sorted, disjoint ranges of fixed-size keys: no allocation per request.
// Thread safety: immutable after Parse/Load; Contains may run on many threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace ocsp::responder {

class IssuedSerials {
 public:
  static Result<IssuedSerials> Parse(std::string_view text);
  static Result<IssuedSerials> Load(const std::filesystem::path& path);

  // `serial` is a minimal unsigned magnitude (as RequestedCert::serial).
  [[nodiscard]] bool Contains(ByteView serial) const;
  [[nodiscard]] std::size_t range_count() const { return ranges_.size(); }

  // A serial as a fixed-size key: numeric order is (length, bytes) order for minimal magnitudes.
  struct Key {
    std::uint8_t length = 0;
    std::array<std::uint8_t, 20> bytes{};
    auto operator<=>(const Key&) const = default;
  };
  struct Range {
    Key first;
    Key last;
  };
  [[nodiscard]] const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::vector<Range> ranges_;  // sorted by `first`, disjoint
};

}  // namespace ocsp::responder
