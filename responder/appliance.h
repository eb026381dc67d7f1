// The issuers a configuration names, with their responder certificates and keys, loaded and checked.
//
// Shared by ocsp-responder and `ocspctl presign`, which must answer for exactly the same issuers.
// Thread safety: a LoadedIssuers is immutable once loaded and may be read from any thread.
#pragma once

#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/store_collector.h"
#include "signer/signer.h"
#include "store/issuer.h"

namespace ocsp::responder {

struct LoadedIssuers {
  store::IssuerDirectory issuers;
  std::vector<std::unique_ptr<signer::SignerSet>> signers;  // signers[i] answers for issuers.at(i)
  std::vector<metrics::IssuerLabel> labels;               // the configured names, for the store's metrics

  [[nodiscard]] std::vector<const signer::SignerSet*> signer_pointers() const;
};

// Every [[issuer]]: its CA certificate and its responder certificates and keys, checked at `now`. The error
// names the issuer and what is wrong.
Result<LoadedIssuers> LoadIssuers(const config::Config& config, UnixSeconds now);

}  // namespace ocsp::responder
