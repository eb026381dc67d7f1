#include "common/time_slice.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace ocsp {

Result<void> AskForShortSlice(std::chrono::microseconds slice) {
  // glibc 2.36 has no wrapper; the layout is the kernel's (include/uapi/linux/sched/types.h), version 1.
  struct SchedAttr {
    std::uint32_t size;
    std::uint32_t sched_policy;
    std::uint64_t sched_flags;
    std::int32_t sched_nice;
    std::uint32_t sched_priority;
    std::uint64_t sched_runtime;
    std::uint64_t sched_deadline;
    std::uint64_t sched_period;
  } attr{};
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  errno = 0;
  attr.sched_nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  if (errno != 0) attr.sched_nice = 0;
  attr.sched_runtime = static_cast<std::uint64_t>(slice.count()) * 1000;  // ns
  if (::syscall(SYS_sched_setattr, 0, &attr, 0) != 0) {
    return Fail(ErrorCode::kIo, std::string("sched_setattr: ") + std::strerror(errno));
  }
  return {};
}

}  // namespace ocsp
