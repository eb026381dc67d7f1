// Asks the scheduler for a short time slice for the calling thread (EEVDF, Linux 6.12 and later: sched_setattr's
// sched_runtime for a normal thread). A waking thread whose slice is shorter than the running one's preempts it
// at once (PREEMPT_SHORT) instead of waiting out the other's protected slice, up to a tick. The responder's
// workers ask for it. Thread safety: affects only the calling thread.
#pragma once

#include <chrono>

#include "common/result.h"

namespace ocsp {

Result<void> AskForShortSlice(std::chrono::microseconds slice);

}  // namespace ocsp
