// StatusAuthority: the one place that decides what a request is answered, from the store's facts.
//
//   CertID hash we do not serve, or an issuer not configured  -> unauthorized (unsigned)
//   a CRL of the issuer is past nextUpdate plus the grace     -> tryLater: never an expired answer
//   no responder certificate of the issuer valid now          -> tryLater
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
  // Where a response for the first answer is kept in the store (0: the issuer has no store record yet).
  std::uint32_t issuer_no = 0;
  std::uint64_t signer_id = 0;  // signer->id(): stored responses carry it, so a rollover re-signs them
};

// Whether `stored` may be served for `answer` now: it states the same status (and revocation) as the store,
// was signed by the responder certificate in use, is not expired, and claims no later nextUpdate than the
// store's current state allows.
bool StoredResponseServes(const store::StoredResponseInfo& stored, const signer::SingleAnswer& answer,
                          std::uint64_t signer_id, UnixSeconds now);

class StatusAuthority {
 public:
  // `signers[i]` answers for `issuers.at(i)`; its Active(now) signs. A null set decides without a signer
  // (Decision::signer stays null): what `ocspctl lookup` needs, without access to the keys. `issued[i]`, when
  // given and not null, lists the serials that issuer issued (must outlive the authority).
  StatusAuthority(const store::Store& store, const store::IssuerDirectory& issuers,
                  std::vector<const signer::SignerSet*> signers, const Clock& clock,
                  UnixSeconds next_update_grace_seconds, UnixSeconds max_validity_seconds = 10 * 86400,
                  std::vector<const IssuedSerials*> issued = {})
      : store_(store),
        issuers_(issuers),
        signers_(std::move(signers)),
        clock_(clock),
        grace_(next_update_grace_seconds),
        max_validity_(max_validity_seconds),
        issued_(std::move(issued)) {}

  [[nodiscard]] Decision Decide(MDB_txn* txn, const DecodedRequest& request) const;
  // The same into `out`, reusing its buffers (the hot path: no allocation once they have grown).
  void Decide(MDB_txn* txn, const DecodedRequest& request, Decision& out) const;
  // The id of the responder certificate that answers for issuers.at(index) now (0: none is valid now).
  [[nodiscard]] std::uint64_t signer_id(std::size_t index) const;

 private:
  const store::Store& store_;
  const store::IssuerDirectory& issuers_;
  std::vector<const signer::SignerSet*> signers_;
  const Clock& clock_;
  UnixSeconds grace_;
  UnixSeconds max_validity_;
  std::vector<const IssuedSerials*> issued_;
};

}  // namespace ocsp::responder
