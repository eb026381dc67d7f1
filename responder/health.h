// /healthz and /readyz: machine-readable (JSON) answers for load balancers and the service manager.
//
//   /healthz  200 {"status":"alive"} whenever a worker's loop answers at all.
//   /readyz   200 when the store reads, every issuer is fresh (a CRL imported, not past nextUpdate plus the
//             grace, coverage complete or nothing answered `good` from it) and every responder certificate is
//             within its validity; 503 otherwise. The body says which check failed, per issuer.
// Neither is access-controlled by the verifier registry (they reveal no status) and neither is cacheable.
// Thread safety: pure functions of their arguments; run on a worker's loop with that worker's transaction.
#pragma once

#include <string>

#include "responder/snapshot.h"
#include "store/store.h"

namespace ocsp::responder {

inline constexpr std::string_view kAliveJson = "{\"status\":\"alive\"}\n";

struct Readiness {
  bool ready = false;
  std::string json;
};

// `txn` is null when the store could not be read.
Readiness CheckReadiness(const Snapshot& snapshot, const store::Store& store, MDB_txn* txn, UnixSeconds now);

}  // namespace ocsp::responder
