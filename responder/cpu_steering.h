// Connection steering by CPU: each new connection goes to the worker pinned to the CPU on which the kernel
// processed its SYN, so a connection's packets and its worker share a CPU (no cross-CPU wake-up per request,
// the socket stays in that CPU's cache).
//
// With a NIC that spreads flows over receive queues (RSS), each queue's interrupt CPU then serves its flows
// end to end. With one receive queue, or all queue interrupts on one CPU, every connection would go to one
// worker: the workers' ConnectionBalancer (connection_balancer.h) then hands half of them on, which leaves
// them where the kernel's hash would have put them. Applies (responder.connection_steering = "cpu", the
// default) only when there is one worker per CPU the process may use and threads may be pinned. A connection
// whose SYN arrives on a CPU without a worker is placed by the kernel's usual SO_REUSEPORT hash.
// Thread safety: free functions; PinThisThreadTo affects only the calling thread.
#pragma once

#include <span>
#include <vector>

#include "common/result.h"

namespace ocsp::responder {

// The CPUs this process may run on (sched_getaffinity), in ascending order.
std::vector<int> AllowedCpus();

// Attaches to the SO_REUSEPORT group of `listener` (any of its sockets) a classic BPF program that sends a
// connection whose SYN is processed on cpus[i] to the group's i-th socket (in the order they were bound).
Result<void> SteerByCpu(int listener, std::span<const int> cpus);

Result<void> PinThisThreadTo(int cpu);

// Whether this thread may set its CPU affinity (a seccomp filter, such as a systemd unit's
// SystemCallFilter=~@resources, can forbid it); tried by setting the mask it already has.
Result<void> CanPinThreads();

}  // namespace ocsp::responder
