#pragma once

// PageCacheTrail: lets a CRL file's pages leave the page cache behind the last of its readers while an import
// is still walking it. An import reads each file three times: the hasher (both digests, in order), the
// archive (the whole file, in call order) and the walk that parses the entries, usually last. Once all three
// are past a stretch, nothing reads it again: the stretch leaves the cache (posix_fadvise DONTNEED), and the
// pages the kernel frees are the ones it hands out next, to the import's own heap (and, for what leaves last,
// to the store's file at the commit), instead of pages the host of a virtual machine may have taken back. A
// set's small files leave during the walk, so its commit does not get them (bench/README.md, "Where the
// set's lead goes" and "Free page reporting"). At 10M entries, five alternating runs each: the single file
// took 2.91-3.45 s instead of 3.30-3.87 s and the 1,900-partition set 2.77-3.33 s instead of 3.14-3.46 s (its
// system time 0.89-1.25 s instead of 1.49-1.90 s); bench/README.md.
//
// The page cache holds a file in folios of up to 2 MiB: the kernel drops only folios wholly inside the range
// it is given, so every call covers the file from its start, and a folio the last one cut goes with the next.
//
// Thread safety: one walking thread calls Follow; the readers' progress it is given is read by the caller.
// Advice only: a failed call changes nothing, and a dropped stretch read again comes from the disk.

#include <cstddef>

namespace ocsp::importer {

class PageCacheTrail {
 public:
  // `step`: how many bytes the trail lets accumulate between two calls into the kernel.
  explicit PageCacheTrail(std::size_t step) : step_(step) {}

  // The walk needs nothing of the file before `walked` any more, the hasher nothing before `hashed`;
  // `archived`: whether the archive has read the whole file. `last`: the walk is done with the file (`walked`
  // is its size), so the rest goes whatever its size, whole once the hasher is done too. `descriptor`: the
  // file, open for reading.
  void Follow(int descriptor, std::size_t walked, std::size_t hashed, bool archived, bool last = false);
  // The file's bytes, from its start, that the trail has let go (whole pages, or the whole file).
  [[nodiscard]] std::size_t dropped() const { return dropped_; }

 private:
  std::size_t step_;
  std::size_t dropped_ = 0;
};

}  // namespace ocsp::importer
