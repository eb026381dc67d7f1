#include "responder/health.h"

#include "common/text.h"

namespace ocsp::responder {

Readiness CheckReadiness(const Snapshot& snapshot, const store::Store& store, MDB_txn* txn, UnixSeconds now) {
  Readiness readiness;
  bool ready = txn != nullptr;
  std::string issuers;
  for (std::size_t i = 0; i < snapshot.issuers.size(); ++i) {
    std::string problem;
    std::optional<UnixSeconds> next_update;
    if (txn != nullptr) {
      auto state = store.GetIssuerState(txn, snapshot.issuers.at(i).id);
      if (!state) {
        problem = state.error().Describe();
      } else if (!*state || (*state)->coverage.partitions_held == 0) {
        problem = "no CRL imported";
      } else {
        const store::Coverage& coverage = (*state)->coverage;
        next_update = coverage.earliest_next_update;
        if (next_update && *next_update + snapshot.config.next_update_grace_seconds < now) {
          problem = "a CRL is past its nextUpdate";
        } else if (!coverage.complete) {
          problem = "an expected partition is missing";
        }
      }
    } else {
      problem = "store not readable";
    }
    // The responder certificate in use now (the set's Active rule); none valid now is not ready.
    const signer::Signer* signer = snapshot.signers[i]->Active(now);
    if (signer == nullptr && problem.empty()) problem = "no responder certificate is valid now";
    if (!problem.empty()) ready = false;
    if (!issuers.empty()) issuers += ",";
    issuers += "{\"name\":" + JsonQuote(snapshot.config.issuers[i].name) +
               ",\"environment\":" + JsonQuote(ToString(snapshot.environments[i])) +
               ",\"fresh\":" + (problem.empty() ? "true" : "false") +
               ",\"next_update\":" + (next_update ? JsonQuote(IsoTime(*next_update)) : std::string("null")) +
               ",\"signer_not_after\":" + (signer ? JsonQuote(IsoTime(signer->not_after())) : std::string("null")) +
               ",\"problem\":" + (problem.empty() ? std::string("null") : JsonQuote(problem)) + "}";
  }
  readiness.ready = ready;
  readiness.json = std::string("{\"status\":") + (ready ? "\"ready\"" : "\"not_ready\"") +
                   ",\"store\":" + (txn != nullptr ? "\"ok\"" : "\"unreadable\"") +
                   ",\"config_generation\":" + std::to_string(snapshot.generation) + ",\"issuers\":[" + issuers +
                   "]}\n";
  return readiness;
}

}  // namespace ocsp::responder
