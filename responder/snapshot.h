// Snapshot: everything the request path reads that a reload (SIGHUP) may replace, built whole and then never
// changed: the configuration as loaded, the issuers with their responder certificates and keys, their
// environments and issued-serials lists, the verifier registry, and the StatusAuthority over them.
//
// A reload builds a new Snapshot on the control thread; a failed build leaves the running one in place. Each
// worker receives the new one through its own event loop and swaps its shared_ptr there, so the request path
// takes no lock; a request waiting for its signature holds the Snapshot it was decided with, and the old
// Snapshot is freed when the last worker and the last such request have let go of it.
//
// What a reload applies: [[issuer]] (certificates, responder certificates and keys, environment,
// issued_serials), the [access] registry and over_rate_limit, responder.path_prefix,
// responder.max_cache_age_seconds, responder.next_update_grace_seconds. Everything else (listen addresses,
// workers, signer threads, limits and timeouts, [store], [metrics]) is read at start only: RestartOnlyChanges
// names those that differ, and the reload logs them.
// Thread safety: immutable once built; share it by shared_ptr<const Snapshot>.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "metrics/store_collector.h"
#include "responder/authority.h"
#include "responder/issued_serials.h"
#include "responder/verifiers.h"
#include "signer/signer.h"
#include "store/issuer.h"
#include "store/store.h"

namespace ocsp::responder {

struct Snapshot {
  std::uint64_t generation = 0;  // 1 at start, +1 per successful reload
  config::Config config;
  store::IssuerDirectory issuers;
  std::vector<std::unique_ptr<signer::SignerSet>> signers;  // parallel to issuers
  std::vector<metrics::IssuerLabel> labels;                 // parallel to issuers: configured names
  std::vector<Environment> environments;                 // parallel to issuers
  std::vector<std::unique_ptr<IssuedSerials>> issued;    // parallel to issuers; null: no list
  std::optional<VerifierRegistry> registry;              // nullopt: open access
  std::vector<metrics::VerifierIndex> verifier_slots;    // parallel to the registry: each one's metrics label
  std::unique_ptr<StatusAuthority> authority;            // null when built without a store (--check-config)

  Snapshot() = default;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
};

// Loads and checks every file the configuration names. `store` may be null (checking only). With `metrics`,
// the registry's names become its verifier labels (a reload keeps the slots of the names it keeps).
Result<std::shared_ptr<const Snapshot>> BuildSnapshot(const config::Config& config, const store::Store* store,
                                                      const Clock& clock, std::uint64_t generation,
                                                      metrics::ResponderMetrics* metrics = nullptr);

// The keys that differ between the running and the reloaded configuration but take effect only at restart.
std::vector<std::string> RestartOnlyChanges(const config::Config& running, const config::Config& loaded);

}  // namespace ocsp::responder
