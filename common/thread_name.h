// Names the calling thread as `top -H`, `ps -L`, perf and gdb show it ("ocsp-worker-0"): without names every
// thread of the responder reads "ocsp-responder", and a scheduler trace cannot tell a worker from a signer.
// Linux keeps 15 bytes of a name; longer names are cut. Thread safety: names only the calling thread.
#pragma once

#include <pthread.h>

#include <string>

namespace ocsp {

inline void NameThisThread(std::string name) {
  if (name.size() > 15) name.resize(15);
  pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace ocsp
