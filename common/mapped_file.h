// A read-only memory map of a whole file, for walking very large CRLs without copying them.
//
// Release(offset) tells the kernel we are done with everything before `offset`: those pages leave our
// resident set (they stay in the page cache), so a 445 MB CRL is walked in a bounded RSS.
// Thread safety: the mapping is immutable; Release from one thread.
#pragma once

#include <filesystem>

#include "common/bytes.h"
#include "common/result.h"

namespace ocsp {

class MappedFile {
 public:
  static Result<MappedFile> Open(const std::filesystem::path& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  [[nodiscard]] ByteView bytes() const { return {static_cast<const std::uint8_t*>(data_), size_}; }
  void Release(std::size_t offset);

 private:
  MappedFile(void* data, std::size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t released_ = 0;
};

}  // namespace ocsp
