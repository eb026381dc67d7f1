// The signer: turns decided statuses into signed BasicOCSPResponses (RFC 6960 4.2), and builds the unsigned
// exception responses.
//
// One Signer per responder certificate; one SignerSet per issuer holds every configured responder certificate
// of that CA and picks the one to use now (rollover). The response's CertIDs are the request's own (same hash
// algorithm, RFC 9919); the responderID is the key hash; the responder certificate travels in `certs` so
// clients can verify a delegated responder. Times come from the caller, who takes them from the issuer's CRL.
//
// Keys: a PEM file, or a PKCS#11 object named by a "pkcs11:" URI (RFC 7512) through OpenSSL's pkcs11 engine
// (libp11). Key types: RSA with PKCS#1 v1.5 or PSS (SHA-256, MGF1-SHA-256, 32-octet salt), RSASSA-PSS keys,
// ECDSA with the curve's hash (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512), Ed25519 (Ed448 takes the same
// path, untested). PKCS#11 keys tested: RSA (PKCS#1 v1.5 and PSS) and ECDSA P-256, in SoftHSM2.
//
// Cost: Sign is one private-key operation plus a hand-written DER encoding of the variable parts (the
// responderID, signature algorithm and certificate are encoded once at Load) and a hash of the ~250-octet
// tbsResponseData; signing contexts are pooled, not rebuilt per call: within a few percent of the bare key
// operation (bench/presign.sh). Load makes one test signature. Never call Sign on an event loop.
// Thread safety: a Signer and a SignerSet are immutable after Load (the context pool is internally locked);
// any number of threads may Sign at once, PKCS#11 keys included (libp11 keeps a session pool per slot).
#pragma once

#include <openssl/ocsp.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

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
  std::optional<UnixSeconds> next_update;  // capped at the responder certificate's notAfter
  // For kRevoked only.
  UnixSeconds revocation_time = 0;
  std::optional<int> reason;  // CRLReason code; absent when the CRL entry has none
  std::optional<UnixSeconds> invalidity_date;
  // The CertID's DER, when the caller already has it (a presigning store): used as is instead of `cert_id`.
  ByteView cert_id_der{};
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

// Where a responder certificate and its key come from.
struct SignerFiles {
  std::filesystem::path certificate{};  // PEM: the delegated responder certificate
  // A PEM file (refused if readable or writable by others), or a "pkcs11:" URI naming the private key object.
  std::string key{};
  // PKCS#11 keys only: the module (e.g. /usr/lib/softhsm/libsofthsm2.so) and a file holding the user PIN
  // (one line; refused if readable or writable by others). The PIN is never logged nor put in an error.
  std::filesystem::path pkcs11_module{};
  std::filesystem::path pin_file{};
  // "" (the key's own: PKCS#1 v1.5 for RSA, PSS for an RSASSA-PSS key), "rsa-pkcs1" or "rsa-pss".
  std::string signature{};
};

// The `signature` values SignerFiles accepts, for the configuration's own check.
inline constexpr std::string_view kSignatureSchemes[] = {"rsa-pkcs1", "rsa-pss"};

class Signer {
 public:
  // Loads the certificate and key and checks the certificate against the CA it answers for: the key matches
  // (a signature made at load verifies with the certificate's key), the certificate carries id-kp-OCSPSigning,
  // was issued (and signed) by `issuer`, and has not expired at `now`. A certificate not yet valid is accepted:
  // it is the next rollover, and Sign refuses it until its notBefore. Errors name the file.
  static Result<Signer> Load(const SignerFiles& files, const X509* issuer, UnixSeconds now);

  Signer(Signer&&) noexcept;
  Signer& operator=(Signer&&) noexcept;
  ~Signer();

  // A DER OCSPResponse (successful) over `answers`, echoing `nonce_extension_value` (the extnValue bytes of
  // the request's nonce extension) when given. Refused (kRefused) when `produced_at` is outside the
  // certificate's validity; every nextUpdate is capped at the certificate's notAfter.
  [[nodiscard]] Result<Bytes> Sign(std::span<const SingleAnswer> answers,
                                   std::optional<ByteView> nonce_extension_value,
                                   UnixSeconds produced_at) const;

  // First 8 octets of the SHA-256 of the certificate's DER, big-endian: stable across restarts, so stored
  // responses can record which certificate signed them and be re-signed when the active one changes.
  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] const X509* certificate() const { return certificate_.get(); }
  [[nodiscard]] UnixSeconds not_before() const { return not_before_; }
  [[nodiscard]] UnixSeconds not_after() const { return not_after_; }
  [[nodiscard]] bool ValidAt(UnixSeconds now) const { return not_before_ <= now && now <= not_after_; }
  // The certificate file it was loaded from, for messages.
  [[nodiscard]] const std::filesystem::path& source() const { return source_; }

 private:
  struct Key;  // the private key, how it signs, and its pooled contexts
  Signer() = default;
  [[nodiscard]] Result<Bytes> SignTbs(ByteView tbs) const;

  std::filesystem::path source_;
  UniquePtr<X509> certificate_;
  std::unique_ptr<Key> key_;
  // Encoded once at Load: [2] KeyHash, the AlgorithmIdentifier, [0] { certificate }.
  Bytes responder_id_der_;
  Bytes signature_algorithm_der_;
  Bytes certs_der_;
  std::uint64_t id_ = 0;
  UnixSeconds not_before_ = 0;
  UnixSeconds not_after_ = 0;
};

// Every responder certificate of one issuer. Active(now) is the one to sign with: valid at `now`, the latest
// notBefore winning, so a new certificate takes over as soon as it becomes valid and the old one is used until
// then (or until it expires).
// Thread safety: immutable after Load.
class SignerSet {
 public:
  // Loads each entry with Signer::Load. At least one certificate must be valid at `now`; the same certificate
  // twice is an error.
  static Result<SignerSet> Load(std::span<const SignerFiles> responders, const X509* issuer, UnixSeconds now);
  // Takes signers already loaded (tests, benchmarks). At least one must be given.
  static Result<SignerSet> FromSigners(std::vector<Signer> signers);

  // The signer for `now`, nullptr when none is valid (every certificate expired, or none valid yet).
  [[nodiscard]] const Signer* Active(UnixSeconds now) const;
  // The signer with this id(), nullptr if none.
  [[nodiscard]] const Signer* Find(std::uint64_t id) const;
  [[nodiscard]] std::span<const std::unique_ptr<Signer>> signers() const { return signers_; }

 private:
  std::vector<std::unique_ptr<Signer>> signers_;  // stable addresses: callers keep `const Signer*`
};

}  // namespace ocsp::signer
