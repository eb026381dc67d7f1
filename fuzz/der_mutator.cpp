#include "fuzz/der_mutator.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

namespace ocsp::fuzz {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr int kMaxDepth = 24;

enum class LengthForm : std::uint8_t { kMinimal, kLongShort, kLeadingZero, kIndefinite };

struct Node {
  std::uint8_t tag = 0;
  bool raw = false;           // not a TLV: `content` is written as it is
  bool constructed = false;   // `children` hold the contents
  bool encapsulates = false;  // a primitive (OCTET STRING) whose contents are the DER of `children`
  LengthForm length_form = LengthForm::kMinimal;
  Bytes content;
  std::vector<Node> children;
};

bool ParseList(const std::uint8_t* data, std::size_t size, std::vector<Node>& out, int depth, bool strict);

// One TLV at data[0..); returns its total size, or 0 if it is not one.
std::size_t ParseOne(const std::uint8_t* data, std::size_t size, Node& node, int depth) {
  if (size < 2 || (data[0] & 0x1f) == 0x1f) return 0;
  std::size_t length = data[1];
  std::size_t header = 2;
  if (length & 0x80) {
    const std::size_t octets = length & 0x7f;
    if (octets == 0 || octets > 4 || 2 + octets > size) return 0;
    length = 0;
    for (std::size_t i = 0; i < octets; ++i) length = (length << 8) | data[2 + i];
    header += octets;
  }
  if (length > size - header) return 0;
  node.tag = data[0];
  const std::uint8_t* contents = data + header;
  if ((node.tag & 0x20) && depth < kMaxDepth && ParseList(contents, length, node.children, depth + 1, true)) {
    node.constructed = true;
  } else {
    node.content.assign(contents, contents + length);
    if (node.tag == 0x04 && length >= 2 && depth < kMaxDepth &&
        ParseList(contents, length, node.children, depth + 1, true)) {
      node.encapsulates = true;
    } else {
      node.children.clear();
    }
  }
  return header + length;
}

// strict: the whole range must be TLVs; otherwise the unparsable rest becomes one raw node.
bool ParseList(const std::uint8_t* data, std::size_t size, std::vector<Node>& out, int depth, bool strict) {
  std::size_t at = 0;
  while (at < size) {
    Node node;
    const std::size_t used = ParseOne(data + at, size - at, node, depth);
    if (used == 0) {
      if (strict) {
        out.clear();
        return false;
      }
      Node rest;
      rest.raw = true;
      rest.content.assign(data + at, data + size);
      out.push_back(std::move(rest));
      return true;
    }
    out.push_back(std::move(node));
    at += used;
  }
  return true;
}

void Write(const std::vector<Node>& nodes, Bytes& out);

void WriteLength(std::size_t length, LengthForm form, Bytes& out) {
  if (form == LengthForm::kIndefinite) {
    out.push_back(0x80);
    return;
  }
  Bytes octets;
  for (std::size_t rest = length; rest != 0; rest >>= 8) octets.insert(octets.begin(), static_cast<std::uint8_t>(rest));
  if (form == LengthForm::kLeadingZero) octets.insert(octets.begin(), 0x00);
  if (length < 0x80 && form == LengthForm::kMinimal) {
    out.push_back(static_cast<std::uint8_t>(length));
    return;
  }
  if (octets.empty()) octets.push_back(0x00);
  out.push_back(static_cast<std::uint8_t>(0x80 | octets.size()));
  out.insert(out.end(), octets.begin(), octets.end());
}

void WriteOne(const Node& node, Bytes& out) {
  if (node.raw) {
    out.insert(out.end(), node.content.begin(), node.content.end());
    return;
  }
  Bytes contents;
  if (node.constructed || node.encapsulates) {
    Write(node.children, contents);
  } else {
    contents = node.content;
  }
  out.push_back(node.tag);
  WriteLength(contents.size(), node.length_form, out);
  out.insert(out.end(), contents.begin(), contents.end());
  if (node.length_form == LengthForm::kIndefinite) out.insert(out.end(), {0x00, 0x00});
}

void Write(const std::vector<Node>& nodes, Bytes& out) {
  for (const Node& node : nodes) WriteOne(node, out);
}

// Every node with its parent list, for picking one at random.
struct Place {
  std::vector<Node>* list;
  std::size_t index;
};

void Collect(std::vector<Node>& list, std::vector<Place>& places) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    places.push_back({&list, i});
    if (list[i].constructed || list[i].encapsulates) Collect(list[i].children, places);
  }
}

Bytes Text(std::string_view text) { return Bytes(text.begin(), text.end()); }

// Contents worth trying for a primitive of a given tag.
std::vector<Bytes> Interesting(std::uint8_t tag) {
  switch (tag) {
    case 0x01: return {{0xff}, {0x00}, {0x01}, {}, {0xff, 0xff}};
    case 0x02:
      return {{}, {0x00}, {0x01}, {0x7f}, {0x80}, {0x00, 0x80}, {0x00, 0x01}, {0xff}, {0xff, 0x7f},
              Bytes(20, 0x7f), Bytes(21, 0x01), [] { Bytes b(21, 0x99); b[0] = 0; return b; }(),
              [] { Bytes b(20, 0x99); b[0] = 0; return b; }()};
    case 0x0a: return {{0x00}, {0x01}, {0x06}, {0x07}, {0x08}, {0x0a}, {0x0b}, {0xff}, {}, {0x00, 0x01}};
    case 0x17:
      return {Text("500101000000Z"), Text("491231235959Z"), Text("250230000000Z"), Text("240229000000Z"),
              Text("2503011200Z"), Text("250301120000+0000"), Text("250301120000"), Text("25030112000AZ")};
    case 0x18:
      return {Text("20500101000000Z"), Text("99991231235959Z"), Text("00000101000000Z"), Text("21000229000000Z"),
              Text("20250301120000.5Z"), Text("20250301120000"), Text("19500101000000Z")};
    case 0x06:
      return {{0x55, 0x1d, 0x14}, {0x55, 0x1d, 0x15}, {0x55, 0x1d, 0x17}, {0x55, 0x1d, 0x18}, {0x55, 0x1d, 0x1b},
              {0x55, 0x1d, 0x1c}, {0x55, 0x1d, 0x1d}, {0x55, 0x1d, 0x23}, {0x55, 0x1d, 0x2e}, {0x55, 0x1d, 0x12},
              {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01},
              {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03},
              {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b}, {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a},
              {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05}, {0x2b, 0x65, 0x70}, {}, {0x80}};
    default: return {{}, {0x00}, {0xff}};
  }
}

constexpr std::uint8_t kTags[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0a, 0x0c, 0x13, 0x16, 0x17, 0x18,
                                  0x30, 0x31, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0xa0, 0xa1, 0xa3, 0xa4};

bool MutateTree(std::vector<Node>& roots, std::mt19937& random, std::size_t max_size) {
  std::vector<Place> places;
  Collect(roots, places);
  if (places.empty()) return false;
  auto below = [&](std::size_t n) { return n == 0 ? std::size_t{0} : static_cast<std::size_t>(random() % n); };
  const Place place = places[below(places.size())];
  Node& node = (*place.list)[place.index];
  switch (below(11)) {
    case 0:  // drop it
      place.list->erase(place.list->begin() + static_cast<std::ptrdiff_t>(place.index));
      return true;
    case 1: {  // duplicate it
      Node copy = node;
      place.list->insert(place.list->begin() + static_cast<std::ptrdiff_t>(place.index + below(2)), std::move(copy));
      return true;
    }
    case 2: {  // swap with a sibling
      if (place.list->size() < 2) return false;
      std::swap(node, (*place.list)[below(place.list->size())]);
      return true;
    }
    case 3: {  // copy it into another constructed element
      const Place target = places[below(places.size())];
      Node& into = (*target.list)[target.index];
      if (!into.constructed && !into.encapsulates) return false;
      Node copy = node;
      into.children.insert(into.children.begin() + static_cast<std::ptrdiff_t>(below(into.children.size() + 1)),
                           std::move(copy));
      return true;
    }
    case 4: {  // retag
      node.tag = kTags[below(sizeof kTags)];
      return true;
    }
    case 5: {  // wrap in a SEQUENCE, a [0], a SET or an OCTET STRING
      static constexpr std::uint8_t kWrappers[] = {0x30, 0xa0, 0x31, 0x04};
      Node wrapper;
      wrapper.tag = kWrappers[below(sizeof kWrappers)];
      wrapper.constructed = wrapper.tag != 0x04;
      wrapper.encapsulates = wrapper.tag == 0x04;
      wrapper.children.push_back(std::move(node));
      (*place.list)[place.index] = std::move(wrapper);
      return true;
    }
    case 6: {  // unwrap: the element's children take its place
      if (!node.constructed && !node.encapsulates) return false;
      std::vector<Node> children = std::move(node.children);
      place.list->erase(place.list->begin() + static_cast<std::ptrdiff_t>(place.index));
      place.list->insert(place.list->begin() + static_cast<std::ptrdiff_t>(place.index),
                         std::make_move_iterator(children.begin()), std::make_move_iterator(children.end()));
      return true;
    }
    case 7: {  // a non-DER length on this element
      static constexpr LengthForm kForms[] = {LengthForm::kLongShort, LengthForm::kLeadingZero, LengthForm::kIndefinite};
      node.length_form = kForms[below(3)];
      return true;
    }
    case 8:
    case 9: {  // contents chosen for the tag
      if (node.constructed || node.raw) return false;
      const std::vector<Bytes> candidates = Interesting(node.tag);
      node.content = candidates[below(candidates.size())];
      node.encapsulates = false;
      node.children.clear();
      return true;
    }
    default: {  // contents through the byte-level mutator
      if (node.constructed) return false;
      Bytes contents = node.content;
      const std::size_t room = std::min<std::size_t>(max_size, contents.size() + 64);
      contents.resize(std::max(room, contents.size()));
      const std::size_t size = LLVMFuzzerMutate(contents.data(), node.content.size(), room);
      contents.resize(size);
      node.content = std::move(contents);
      node.encapsulates = false;
      node.children.clear();
      return true;
    }
  }
}

}  // namespace

std::size_t MutateDer(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned int seed) {
  std::mt19937 random(seed);
  if (random() % 3 == 0) return LLVMFuzzerMutate(data, size, max_size);
  std::vector<Node> roots;
  ParseList(data, size, roots, 0, false);
  if (roots.empty() || (roots.size() == 1 && roots[0].raw)) return LLVMFuzzerMutate(data, size, max_size);
  const auto rounds = static_cast<unsigned>(1 + random() % 3);
  bool changed = false;
  for (unsigned i = 0, tries = 0; i < rounds && tries < 16; ++tries) {
    if (MutateTree(roots, random, max_size)) {
      changed = true;
      ++i;
    }
  }
  Bytes out;
  Write(roots, out);
  if (!changed || out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  if (!out.empty()) std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace ocsp::fuzz
