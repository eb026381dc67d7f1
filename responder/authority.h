// StatusAuthority: the one place that decides what a request is answered, from the store's facts.
//
//   CertID hash we do not serve, or an issuer not configured  -> unauthorized (unsigned)
//   a CRL of the issuer is past nextUpdate plus the grace     -> tryLater: never an expired answer
//   the issuer's key is declared compromised (cACompromise)   -> revoked for every serial from that time
//   serial listed by a CRL or partition of the issuer         -> revoked, with the entry's time, reason and
//                                                                invalidity date
//   the issuer has an issued-serials list without the serial   -> unknown (signed, no nextUpdate): never issued
//   no CRL for end-entity certificates imported yet           -> unknown (signed, no nextUpdate)
//   an expected partition is missing                          -> tryLater: absence proves nothing then
//   serial absent and every expected partition held           -> good
//   the store fails                                           -> internalError
// thisUpdate is the oldest and nextUpdate the earliest over the issuer's partitions (thisUpdate never later
// than now), so no answer claims more freshness than its least fresh source.
// Thread safety: Decide is const and may run on many threads at once, each with its own transaction.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "metrics/metrics.h"
#include "responder/issued_serials.h"
#include "responder/request.h"
#include "signer/signer.h"
#include "store/store.h"

namespace ocsp::responder {

struct Decision {
  metrics::Outcome outcome = metrics::Outcome::kInternalError;
  // Set for the exception statuses, which are sent unsigned; otherwise `signer` signs `answers`.
  std::optional<signer::ResponseStatus> exception;
  const signer::Signer* signer = nullptr;
  std::vector<signer::SingleAnswer> answers;
  std::optional<UnixSeconds> next_update;  // the earliest of the answers', for HTTP caching
  std::string reason;                      // why an exception was chosen, for the debug log
};

class StatusAuthority {
 public:
  // `signers[i]` answers for `issuers.at(i)`; `issued[i]`, when given and not null, lists the serials that
  // issuer issued (must outlive the authority).
  StatusAuthority(const store::Store& store, const store::IssuerDirectory& issuers,
                  std::vector<const signer::Signer*> signers, const Clock& clock,
                  UnixSeconds next_update_grace_seconds, std::vector<const IssuedSerials*> issued = {})
      : store_(store),
        issuers_(issuers),
        signers_(std::move(signers)),
        clock_(clock),
        grace_(next_update_grace_seconds),
        issued_(std::move(issued)) {}

  [[nodiscard]] Decision Decide(MDB_txn* txn, const DecodedRequest& request) const;

 private:
  const store::Store& store_;
  const store::IssuerDirectory& issuers_;
  std::vector<const signer::Signer*> signers_;
  const Clock& clock_;
  UnixSeconds grace_;
  std::vector<const IssuedSerials*> issued_;
};

}  // namespace ocsp::responder
