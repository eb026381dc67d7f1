#include "importer/der.h"

namespace ocsp::importer {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool Digits(ByteView text, std::size_t at, std::size_t count, unsigned& out) {
  out = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

unsigned DaysInMonth(std::int64_t year, unsigned month) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

}  // namespace

Error DerError(std::size_t offset, std::string_view what, std::string_view problem) {
  std::string message(what);
  message += " at offset ";
  message += std::to_string(offset);
  message += ": ";
  message += problem;
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

Result<Tlv> DerReader::Next(std::string_view what) {
  const std::size_t start = position_;
  const std::size_t remaining = data_.size() - position_;
  if (remaining < 2) return std::unexpected(DerError(base_ + start, what, "truncated"));
  const std::uint8_t tag = data_[position_];
  if ((tag & 0x1f) == 0x1f) return std::unexpected(DerError(base_ + start, what, "multi-octet tags are not used here"));
  std::size_t cursor = position_ + 1;
  std::size_t length = data_[cursor++];
  if (length & 0x80) {
    const std::size_t octets = length & 0x7f;
    if (octets == 0) return std::unexpected(DerError(base_ + start, what, "indefinite length is not DER"));
    if (octets > 8 || cursor + octets > data_.size()) {
      return std::unexpected(DerError(base_ + start, what, "length field out of range"));
    }
    if (data_[cursor] == 0) return std::unexpected(DerError(base_ + start, what, "length with leading zero is not DER"));
    length = 0;
    for (std::size_t i = 0; i < octets; ++i) length = (length << 8) | data_[cursor++];
    if (length < 0x80) return std::unexpected(DerError(base_ + start, what, "long-form length below 128 is not DER"));
  }
  if (length > data_.size() - cursor) {
    return std::unexpected(DerError(base_ + start, what,
                                    "length " + std::to_string(length) + " runs past the end of its container"));
  }
  Tlv tlv;
  tlv.tag = tag;
  tlv.value = data_.subspan(cursor, length);
  tlv.encoding = data_.subspan(start, cursor + length - start);
  tlv.offset = base_ + start;
  position_ = cursor + length;
  return tlv;
}

Result<Tlv> DerReader::Expect(std::uint8_t tag, std::string_view what) {
  if (empty()) return std::unexpected(DerError(offset(), what, "missing"));
  if (data_[position_] != tag) {
    return std::unexpected(DerError(offset(), what,
                                    "expected tag 0x" + ToHex({&tag, 1}) + ", found 0x" +
                                        ToHex({&data_[position_], 1})));
  }
  return Next(what);
}

Result<std::optional<Tlv>> DerReader::Optional(std::uint8_t tag, std::string_view what) {
  if (empty() || data_[position_] != tag) return std::optional<Tlv>();
  auto tlv = Next(what);
  if (!tlv) return std::unexpected(tlv.error());
  return std::optional<Tlv>(*tlv);
}

bool IsTime(std::uint8_t tag) { return tag == der::kUtcTime || tag == der::kGeneralizedTime; }

Result<UnixSeconds> ReadTime(const Tlv& tlv, std::string_view what) {
  const ByteView text = tlv.value;
  std::int64_t year = 0;
  std::size_t at = 0;
  unsigned value = 0;
  if (tlv.tag == der::kUtcTime) {
    if (text.size() != 13) return std::unexpected(DerError(tlv.offset, what, "UTCTime is not YYMMDDHHMMSSZ"));
    if (!Digits(text, 0, 2, value)) return std::unexpected(DerError(tlv.offset, what, "bad UTCTime year"));
    year = value >= 50 ? 1900 + value : 2000 + value;  // RFC 5280 4.1.2.5.1
    at = 2;
  } else if (tlv.tag == der::kGeneralizedTime) {
    if (text.size() != 15) {
      return std::unexpected(DerError(tlv.offset, what, "GeneralizedTime is not YYYYMMDDHHMMSSZ"));
    }
    if (!Digits(text, 0, 4, value)) return std::unexpected(DerError(tlv.offset, what, "bad GeneralizedTime year"));
    year = value;
    at = 4;
  } else {
    return std::unexpected(DerError(tlv.offset, what, "not a time"));
  }
  unsigned month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!Digits(text, at, 2, month) || !Digits(text, at + 2, 2, day) || !Digits(text, at + 4, 2, hour) ||
      !Digits(text, at + 6, 2, minute) || !Digits(text, at + 8, 2, second) || text[at + 10] != 'Z') {
    return std::unexpected(DerError(tlv.offset, what, "malformed time"));
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 || minute > 59 ||
      second > 59) {
    return std::unexpected(DerError(tlv.offset, what, "time out of range"));
  }
  return DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

Result<ByteView> ReadUnsignedInteger(const Tlv& tlv, std::string_view what, std::size_t max_octets) {
  const ByteView value = tlv.value;
  if (value.empty()) return std::unexpected(DerError(tlv.offset, what, "empty INTEGER"));
  if (value[0] & 0x80) return std::unexpected(DerError(tlv.offset, what, "negative"));
  if (value.size() > 1 && value[0] == 0 && !(value[1] & 0x80)) {
    return std::unexpected(DerError(tlv.offset, what, "non-minimal INTEGER encoding"));
  }
  if (value.size() > max_octets) {
    return std::unexpected(DerError(tlv.offset, what,
                                    std::to_string(value.size()) + " octets (at most " +
                                        std::to_string(max_octets) + ")"));
  }
  if (value.size() > 1 && value[0] == 0) return value.subspan(1);
  return value;
}

}  // namespace ocsp::importer
