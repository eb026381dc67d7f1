#include "responder/authority.h"

#include <algorithm>

namespace ocsp::responder {
namespace {

// Turns `decision` into an exception answer in place, keeping its buffers' capacity for the next request.
void SetException(Decision& decision, signer::ResponseStatus status, metrics::Outcome outcome, std::string_view reason) {
  decision.answers.clear();
  decision.exception = status;
  decision.outcome = outcome;
  decision.signer = nullptr;
  decision.next_update.reset();
  decision.reason.assign(reason);
  decision.issuer_no = 0;
  decision.signer_id = 0;
}

// The outcome a whole response is counted as: the most serious status in it.
int Severity(signer::CertStatus status) {
  switch (status) {
    case signer::CertStatus::kGood: return 0;
    case signer::CertStatus::kUnknown: return 1;
    case signer::CertStatus::kRevoked: return 2;
  }
  return 0;
}

metrics::Outcome OutcomeOf(signer::CertStatus status) {
  switch (status) {
    case signer::CertStatus::kGood: return metrics::Outcome::kGood;
    case signer::CertStatus::kUnknown: return metrics::Outcome::kUnknown;
    case signer::CertStatus::kRevoked: return metrics::Outcome::kRevoked;
  }
  return metrics::Outcome::kInternalError;
}

}  // namespace

std::uint64_t StatusAuthority::signer_id(std::size_t index) const {
  const signer::Signer* active = signers_[index] ? signers_[index]->Active(clock_.Now()) : nullptr;
  return active ? active->id() : 0;
}

bool StoredResponseServes(const store::StoredResponseInfo& stored, const signer::SingleAnswer& answer,
                          std::uint64_t signer_id, UnixSeconds now) {
  if (stored.signer_id != signer_id) return false;
  if (!answer.next_update || stored.next_update > *answer.next_update) return false;
  if (stored.next_update <= now || stored.this_update > now) return false;
  switch (answer.status) {
    case signer::CertStatus::kGood: return stored.status == store::StoredStatus::kGood;
    case signer::CertStatus::kRevoked: {
      // Compared by hand: g++ 12 at -O1 (the TSan build) warns that an optional<int> built here may be
      // used uninitialised.
      const bool same_reason = stored.reason.has_value() == answer.reason.has_value() &&
                               (!stored.reason || static_cast<int>(*stored.reason) == *answer.reason);
      return stored.status == store::StoredStatus::kRevoked && stored.revocation_time == answer.revocation_time &&
             same_reason;
    }
    case signer::CertStatus::kUnknown: return false;
  }
  return false;
}

Decision StatusAuthority::Decide(MDB_txn* txn, const DecodedRequest& request) const {
  Decision decision;
  Decide(txn, request, decision);
  return decision;
}

void StatusAuthority::Decide(MDB_txn* txn, const DecodedRequest& request, Decision& decision) const {
  using signer::CertStatus;
  using signer::ResponseStatus;
  const UnixSeconds now = clock_.Now();
  decision.outcome = metrics::Outcome::kInternalError;
  decision.exception.reset();
  decision.signer = nullptr;
  decision.answers.clear();
  decision.answers.reserve(request.certs.size());
  decision.next_update.reset();
  decision.reason.clear();
  decision.issuer_no = 0;
  decision.signer_id = 0;
  int worst = -1;

  for (const RequestedCert& cert : request.certs) {
    if (!cert.algorithm) {
      return SetException(decision, ResponseStatus::kUnauthorized, metrics::Outcome::kUnauthorized,
                       "CertID hash algorithm not served");
    }
    const auto index = issuers_.Resolve(*cert.algorithm, cert.name_hash, cert.key_hash);
    if (!index) {
      return SetException(decision, ResponseStatus::kUnauthorized, metrics::Outcome::kUnauthorized, "issuer not served");
    }
    // A null set decides without a signer (ocspctl lookup, which must not need the keys).
    const signer::SignerSet* set = signers_[*index];
    const signer::Signer* signer = set != nullptr ? set->Active(now) : nullptr;
    if (set != nullptr && signer == nullptr) {
      return SetException(decision, ResponseStatus::kTryLater, metrics::Outcome::kTryLater,
                       "no responder certificate of the issuer is valid now");
    }
    if (decision.signer != nullptr && decision.signer != signer) {
      return SetException(decision, ResponseStatus::kUnauthorized, metrics::Outcome::kUnauthorized,
                       "CertIDs of issuers with different responder certificates in one request");
    }
    decision.signer = signer;
    decision.signer_id = signer != nullptr ? signer->id() : 0;

    signer::SingleAnswer answer;
    answer.cert_id = cert.cert_id;
    auto state = store_.GetIssuerState(txn, issuers_.at(*index).id);
    if (!state) {
      return SetException(decision, ResponseStatus::kInternalError, metrics::Outcome::kInternalError, state.error().Describe());
    }
    const store::Coverage coverage = *state ? (*state)->coverage : store::Coverage{};
    const bool any_crl = coverage.entries > 0 || coverage.partitions_held > 0 || coverage.oldest_this_update != 0;
    if (any_crl && coverage.earliest_next_update && *coverage.earliest_next_update + grace_ < now) {
      return SetException(decision, ResponseStatus::kTryLater, metrics::Outcome::kTryLater,
                       "a CRL of the issuer is past its nextUpdate");
    }
    answer.this_update = any_crl ? std::min(coverage.oldest_this_update, now) : now;
    answer.next_update = any_crl ? coverage.earliest_next_update : std::nullopt;
    if (any_crl) {
      // The configured bound on a response's validity; past it the store's state is too old to vouch for.
      const UnixSeconds bound = answer.this_update + max_validity_;
      answer.next_update = answer.next_update ? std::min(*answer.next_update, bound) : bound;
      // The signer caps nextUpdate at its certificate's notAfter; the decision says what the response will say.
      if (signer != nullptr) answer.next_update = std::min(*answer.next_update, signer->not_after());
      if (*answer.next_update + grace_ < now) {
        return SetException(decision, ResponseStatus::kTryLater, metrics::Outcome::kTryLater,
                         "the issuer's CRL is older than the longest response validity allowed");
      }
    }
    if (decision.answers.empty() && *state) decision.issuer_no = (*state)->issuer_no;

    std::optional<store::RevokedEntry> revoked;
    if (*state && (*state)->compromised_since && *(*state)->compromised_since <= now) {
      // The CA's own key is compromised (RFC 5280 cACompromise): nothing it signed can be trusted since.
      revoked = store::RevokedEntry{*(*state)->compromised_since, store::Reason::kCaCompromise, std::nullopt, 0, false};
    } else if (*state) {
      auto entry = store_.GetRevoked(txn, (*state)->issuer_no, cert.serial);
      if (!entry) {
        return SetException(decision, ResponseStatus::kInternalError, metrics::Outcome::kInternalError, entry.error().Describe());
      }
      revoked = *entry;
    }
    const IssuedSerials* issued = *index < issued_.size() ? issued_[*index] : nullptr;
    if (revoked) {
      answer.status = CertStatus::kRevoked;
      answer.revocation_time = revoked->revocation_time;
      if (revoked->reason) answer.reason = static_cast<int>(*revoked->reason);
      answer.invalidity_date = revoked->invalidity_date;
    } else if (issued != nullptr && !issued->Contains(cert.serial)) {
      // Never issued: not `good`, whatever the CRL says (a CRL only lists what was issued and revoked).
      answer.status = CertStatus::kUnknown;
      answer.this_update = now;
      answer.next_update.reset();
    } else if (coverage.partitions_held == 0) {
      // Nothing is known about this issuer's end-entity revocations yet: say so, promise nothing.
      answer.status = CertStatus::kUnknown;
      answer.this_update = now;
      answer.next_update.reset();
    } else if (!coverage.complete) {
      // Absence from the partitions held proves nothing while an expected partition is missing.
      return SetException(decision, ResponseStatus::kTryLater, metrics::Outcome::kTryLater,
                       "an expected partition of the issuer's CRL is missing");
    } else {
      answer.status = CertStatus::kGood;
    }
    if (answer.next_update) {
      decision.next_update =
          decision.next_update ? std::min(*decision.next_update, *answer.next_update) : *answer.next_update;
    }
    if (Severity(answer.status) > worst) {
      worst = Severity(answer.status);
      decision.outcome = OutcomeOf(answer.status);
    }
    decision.answers.push_back(answer);
  }
  // A response with an unknown answer and no nextUpdate must not be cached for long.
  if (std::any_of(decision.answers.begin(), decision.answers.end(),
                  [](const signer::SingleAnswer& a) { return !a.next_update; })) {
    decision.next_update.reset();
  }
}

}  // namespace ocsp::responder
