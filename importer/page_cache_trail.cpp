#include "importer/page_cache_trail.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

namespace ocsp::importer {

void PageCacheTrail::Follow(int descriptor, std::size_t walked, std::size_t hashed, bool archived, bool last) {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (descriptor < 0 || !archived || dropped_ >= walked) return;
  if (last && hashed >= walked) {
    ::posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED);  // to the end, its partial page included
    dropped_ = walked;
    return;
  }
  // Whole pages only: a partial page at the end still holds bytes a reader needs.
  const std::size_t end = std::min(walked, hashed) / page * page;
  if (end <= dropped_ || (!last && end - dropped_ < step_)) return;
  ::posix_fadvise(descriptor, 0, static_cast<off_t>(end), POSIX_FADV_DONTNEED);
  dropped_ = end;
}

}  // namespace ocsp::importer
