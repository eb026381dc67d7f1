#include "responder/cpu_steering.h"

#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ocsp::responder {

std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

Result<void> SteerByCpu(int listener, std::span<const int> cpus) {
  // A = the processing CPU; for each i: if A == cpus[i], return i. Otherwise return an index past the group,
  // which makes the kernel fall back to its hash.
  constexpr std::size_t kMaxCpus = 1024;  // well inside classic BPF's 4,096 instructions
  if (cpus.empty() || cpus.size() > kMaxCpus) {
    return Fail(ErrorCode::kInvalidArgument, "connection steering needs 1 to 1024 CPUs, not " +
                                                 std::to_string(cpus.size()));
  }
  std::vector<sock_filter> program;
  program.reserve(2 * cpus.size() + 2);
  program.push_back(sock_filter{BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_CPU)});
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    // Equal: fall through to the return; not equal: skip it.
    program.push_back(sock_filter{BPF_JMP | BPF_JEQ | BPF_K, 0, 1, static_cast<std::uint32_t>(cpus[i])});
    program.push_back(sock_filter{BPF_RET | BPF_K, 0, 0, static_cast<std::uint32_t>(i)});
  }
  program.push_back(sock_filter{BPF_RET | BPF_K, 0, 0, 0xffffffffu});
  const sock_fprog attached{static_cast<unsigned short>(program.size()), program.data()};
  if (::setsockopt(listener, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &attached, sizeof attached) != 0) {
    return Fail(ErrorCode::kIo, std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno));
  }
  return {};
}

Result<void> CanPinThreads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (int rc = pthread_getaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
    return Fail(ErrorCode::kIo, std::string("pthread_getaffinity_np: ") + std::strerror(rc));
  }
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
    return Fail(ErrorCode::kIo, std::string("threads cannot be pinned (sched_setaffinity: ") + std::strerror(rc) +
                                    "; a systemd unit needs SystemCallFilter=sched_setaffinity)");
  }
  return {};
}

Result<void> PinThisThreadTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
    return Fail(ErrorCode::kIo, "cannot pin a worker to CPU " + std::to_string(cpu) + ": " + std::strerror(rc));
  }
  return {};
}

}  // namespace ocsp::responder
