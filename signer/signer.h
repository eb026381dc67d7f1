// The signer: turns decided statuses into signed BasicOCSPResponses (RFC 6960 4.2), and builds the unsigned
// exception responses.
//
// One Signer per responder certificate. The response's CertIDs are the request's own (same hash algorithm,
// RFC 9919); the responderID is the key hash; the responder certificate travels in `certs` so clients can
// verify a delegated responder. Times come from the caller, who takes them from the issuer's current CRL.
// Cost: one private-key signature per call (about 0.7 ms for RSA-2048 here); never call it on an event loop.
// Thread safety: a Signer is immutable after Load and may sign from several threads at once.
#pragma once

#include <openssl/ocsp.h>

#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/openssl.h"
#include "common/result.h"

namespace ocsp::signer {

enum class CertStatus { kGood, kRevoked, kUnknown };

struct SingleAnswer {
  const OCSP_CERTID* cert_id = nullptr;  // copied into the response unchanged
  CertStatus status = CertStatus::kUnknown;
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  // For kRevoked only.
  UnixSeconds revocation_time = 0;
  std::optional<int> reason;  // CRLReason code; absent when the CRL entry has none
  std::optional<UnixSeconds> invalidity_date;
};

// The OCSPResponseStatus values (RFC 6960 4.2.1).
enum class ResponseStatus {
  kSuccessful = 0,
  kMalformedRequest = 1,
  kInternalError = 2,
  kTryLater = 3,
  kSigRequired = 5,
  kUnauthorized = 6,
};

// An unsigned OCSPResponse carrying only an exception status (DER).
Bytes ExceptionResponse(ResponseStatus status);

struct SignerFiles {
  std::filesystem::path certificate;  // PEM: the delegated responder certificate
  std::filesystem::path private_key;  // PEM: its key; refused if readable or writable by others
};

class Signer {
 public:
  // Loads and checks the responder certificate against the CA it answers for: the key matches, the
  // certificate carries id-kp-OCSPSigning, was issued (and signed) by `issuer`, and is valid at `now`.
  static Result<Signer> Load(const SignerFiles& files, const X509* issuer, UnixSeconds now);

  // A DER OCSPResponse (successful) over `answers`, echoing `nonce_extension_value` (the extnValue bytes of
  // the request's nonce extension) when given.
  [[nodiscard]] Result<Bytes> Sign(std::span<const SingleAnswer> answers,
                                   std::optional<ByteView> nonce_extension_value,
                                   UnixSeconds produced_at) const;

  [[nodiscard]] const X509* certificate() const { return certificate_.get(); }
  [[nodiscard]] UnixSeconds not_after() const { return not_after_; }

 private:
  Signer(UniquePtr<X509> certificate, UniquePtr<EVP_PKEY> key, const EVP_MD* digest, UnixSeconds not_after)
      : certificate_(std::move(certificate)), key_(std::move(key)), digest_(digest), not_after_(not_after) {}

  UniquePtr<X509> certificate_;
  UniquePtr<EVP_PKEY> key_;
  const EVP_MD* digest_;  // nullptr for Ed25519/Ed448, which hash internally
  UnixSeconds not_after_;
};

}  // namespace ocsp::signer
