// A minimal DER reader for the CRL parser: single-octet tags, definite and minimally encoded lengths.
// Every error carries the absolute byte offset of the element it is about.
// Thread safety: a DerReader is a cursor over caller-owned bytes; one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"

namespace ocsp::importer {

namespace der {
inline constexpr std::uint8_t kBoolean = 0x01;
inline constexpr std::uint8_t kInteger = 0x02;
inline constexpr std::uint8_t kBitString = 0x03;
inline constexpr std::uint8_t kOctetString = 0x04;
inline constexpr std::uint8_t kOid = 0x06;
inline constexpr std::uint8_t kEnumerated = 0x0a;
inline constexpr std::uint8_t kUtcTime = 0x17;
inline constexpr std::uint8_t kGeneralizedTime = 0x18;
inline constexpr std::uint8_t kSequence = 0x30;
inline constexpr std::uint8_t kContext0Constructed = 0xa0;
}  // namespace der

struct Tlv {
  std::uint8_t tag = 0;
  ByteView value;       // contents
  ByteView encoding;    // tag, length and contents
  std::size_t offset = 0;  // absolute offset of the tag octet
};

class DerReader {
 public:
  DerReader(ByteView data, std::size_t base_offset) : data_(data), base_(base_offset) {}

  [[nodiscard]] bool empty() const { return position_ == data_.size(); }
  [[nodiscard]] std::size_t offset() const { return base_ + position_; }
  [[nodiscard]] std::optional<std::uint8_t> PeekTag() const {
    return empty() ? std::nullopt : std::optional<std::uint8_t>(data_[position_]);
  }

  // Reads the next element whatever its tag.
  Result<Tlv> Next(std::string_view what);
  // Reads the next element and requires `tag`.
  Result<Tlv> Expect(std::uint8_t tag, std::string_view what);
  // Reads the next element only if it has `tag`.
  Result<std::optional<Tlv>> Optional(std::uint8_t tag, std::string_view what);

  // A reader over an element's contents.
  static DerReader Inside(const Tlv& tlv) {
    return DerReader(tlv.value, tlv.offset + (tlv.encoding.size() - tlv.value.size()));
  }

 private:
  ByteView data_;
  std::size_t base_;
  std::size_t position_ = 0;
};

Error DerError(std::size_t offset, std::string_view what, std::string_view problem);

// UTCTime or GeneralizedTime in their DER forms (YYMMDDHHMMSSZ, YYYYMMDDHHMMSSZ).
Result<UnixSeconds> ReadTime(const Tlv& tlv, std::string_view what);
bool IsTime(std::uint8_t tag);

// A non-negative INTEGER's minimal magnitude (a view into the contents). Refuses negative and non-minimal
// encodings and contents longer than `max_octets`.
Result<ByteView> ReadUnsignedInteger(const Tlv& tlv, std::string_view what, std::size_t max_octets);

}  // namespace ocsp::importer
