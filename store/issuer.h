// Issuer identity: a CA is its key, not its name.
//
// JPKI has three CA key generations under one subject name, so an issuer is identified by the SHA-256 of its
// subjectPublicKey (IssuerId). An OCSP CertID names its issuer by (hash algorithm, issuerNameHash,
// issuerKeyHash); IssuerDirectory resolves any supported algorithm's CertID to the same issuer.
// Thread safety: IssuerIdentity is a value. IssuerDirectory is built once, then read from any thread without
// locking; Resolve() allocates nothing.
#pragma once

#include <openssl/x509.h>

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace ocsp::store {

// CertID hash algorithms we resolve. SHA-1 is what most clients send; RFC 9919 allows SHA-256.
enum class HashAlgorithm : std::uint8_t { kSha1 = 1, kSha256 = 2, kSha384 = 3, kSha512 = 4 };
inline constexpr std::array kHashAlgorithms = {HashAlgorithm::kSha1, HashAlgorithm::kSha256,
                                               HashAlgorithm::kSha384, HashAlgorithm::kSha512};

std::optional<HashAlgorithm> HashAlgorithmFromNid(int nid);
const EVP_MD* Digest(HashAlgorithm algorithm);
std::string_view Name(HashAlgorithm algorithm);

struct IssuerId {
  std::array<std::uint8_t, 32> bytes{};
  friend auto operator<=>(const IssuerId&, const IssuerId&) = default;
  [[nodiscard]] ByteView view() const { return bytes; }
  [[nodiscard]] std::string hex() const { return ToHex(bytes); }
};

struct IssuerIdentity {
  IssuerId id;
  Bytes certificate_der;
  Bytes subject_der;
  std::string subject_text;  // one-line RFC 2253 form, for messages
  struct CertIdHashes {
    Bytes name_hash;
    Bytes key_hash;
  };
  std::array<CertIdHashes, kHashAlgorithms.size()> hashes;  // indexed by HashAlgorithm - 1

  static Result<IssuerIdentity> FromCertificate(const X509* ca_certificate);
  [[nodiscard]] const CertIdHashes& HashesFor(HashAlgorithm algorithm) const {
    return hashes[static_cast<std::size_t>(algorithm) - 1];
  }
};

class IssuerDirectory {
 public:
  // Returns the index Add() gave the issuer. Adding the same key twice is refused.
  Result<std::size_t> Add(IssuerIdentity identity);

  // The index of the issuer whose name and key hashes match, or nullopt. Both hashes must match: a key hash
  // alone could pair an old subject name with a new key.
  [[nodiscard]] std::optional<std::size_t> Resolve(HashAlgorithm algorithm, ByteView name_hash,
                                                   ByteView key_hash) const;
  [[nodiscard]] std::optional<std::size_t> Find(const IssuerId& id) const;

  [[nodiscard]] const IssuerIdentity& at(std::size_t index) const { return issuers_[index]; }
  [[nodiscard]] std::size_t size() const { return issuers_.size(); }

 private:
  std::vector<IssuerIdentity> issuers_;
};

}  // namespace ocsp::store
