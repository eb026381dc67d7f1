#include "responder/issued_serials.h"

#include <algorithm>

#include "common/openssl.h"

namespace ocsp::responder {
namespace {

using Key = IssuedSerials::Key;

bool MakeKey(ByteView magnitude, Key& key) {
  while (!magnitude.empty() && magnitude.front() == 0) magnitude = magnitude.subspan(1);
  if (magnitude.size() > key.bytes.size()) return false;
  key = Key{};
  key.length = static_cast<std::uint8_t>(magnitude.size());
  std::copy(magnitude.begin(), magnitude.end(), key.bytes.begin());
  return true;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

Result<Key> ParseSerial(std::string_view text) {
  text = Trim(text);
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty()) return Fail(ErrorCode::kInvalidArgument, "empty serial");
  while (text.size() > 1 && text.front() == '0') text.remove_prefix(1);
  Bytes magnitude((text.size() + 1) / 2);
  std::size_t nibble = text.size() % 2;  // an odd count starts in the low half of the first octet
  for (const char c : text) {
    const int value = Hex(c);
    if (value < 0) return Fail(ErrorCode::kInvalidArgument, "\"" + std::string(text) + "\" is not hexadecimal");
    magnitude[nibble / 2] = static_cast<std::uint8_t>(magnitude[nibble / 2] | (nibble % 2 ? value : value << 4));
    ++nibble;
  }
  Key key;
  if (!MakeKey(magnitude, key)) return Fail(ErrorCode::kInvalidArgument, "serial longer than 20 octets");
  return key;
}

// The key one more than `key` (for merging adjacent ranges); false when it would pass 20 octets.
bool Successor(const Key& key, Key& next) {
  Bytes magnitude(key.bytes.begin(), key.bytes.begin() + key.length);
  std::size_t i = magnitude.size();
  while (i > 0 && magnitude[i - 1] == 0xff) magnitude[--i] = 0;
  if (i == 0) {
    magnitude.insert(magnitude.begin(), 1);
  } else {
    ++magnitude[i - 1];
  }
  return MakeKey(magnitude, next);
}

}  // namespace

Result<IssuedSerials> IssuedSerials::Parse(std::string_view text) {
  IssuedSerials list;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const auto dash = line.find('-');
    auto first = ParseSerial(line.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : ParseSerial(line.substr(dash + 1));
    if (!first || !last) {
      return Fail(ErrorCode::kInvalidArgument, "line " + std::to_string(line_number) + ": " +
                                                   (first ? last : first).error().message);
    }
    if (*last < *first) {
      return Fail(ErrorCode::kInvalidArgument, "line " + std::to_string(line_number) + ": range ends before it starts");
    }
    list.ranges_.push_back({*first, *last});
  }
  std::sort(list.ranges_.begin(), list.ranges_.end(), [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> merged;
  merged.reserve(list.ranges_.size());
  for (const Range& range : list.ranges_) {
    Key after;
    if (!merged.empty() && (range.first <= merged.back().last ||
                            (Successor(merged.back().last, after) && range.first == after))) {
      merged.back().last = std::max(merged.back().last, range.last);
    } else {
      merged.push_back(range);
    }
  }
  merged.shrink_to_fit();
  list.ranges_ = std::move(merged);
  return list;
}

Result<IssuedSerials> IssuedSerials::Load(const std::filesystem::path& path) {
  auto data = ReadFile(path);
  if (!data) return std::unexpected(data.error());
  auto list = Parse(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()));
  if (!list) return Fail(list.error().code, path.string() + ": " + list.error().message);
  return list;
}

bool IssuedSerials::Contains(ByteView serial) const {
  Key key;
  if (!MakeKey(serial, key)) return false;
  // The last range starting at or before `key`.
  auto after = std::upper_bound(ranges_.begin(), ranges_.end(), key,
                                [](const Key& k, const Range& range) { return k < range.first; });
  if (after == ranges_.begin()) return false;
  return key <= std::prev(after)->last;
}

}  // namespace ocsp::responder
