#include "store/issuer.h"

#include <algorithm>
#include <cstring>

#include "common/openssl.h"

namespace ocsp::store {

std::optional<HashAlgorithm> HashAlgorithmFromNid(int nid) {
  switch (nid) {
    case NID_sha1: return HashAlgorithm::kSha1;
    case NID_sha256: return HashAlgorithm::kSha256;
    case NID_sha384: return HashAlgorithm::kSha384;
    case NID_sha512: return HashAlgorithm::kSha512;
    default: return std::nullopt;
  }
}

const EVP_MD* Digest(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::kSha1: return EVP_sha1();
    case HashAlgorithm::kSha256: return EVP_sha256();
    case HashAlgorithm::kSha384: return EVP_sha384();
    case HashAlgorithm::kSha512: return EVP_sha512();
  }
  return nullptr;
}

std::string_view Name(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::kSha1: return "sha1";
    case HashAlgorithm::kSha256: return "sha256";
    case HashAlgorithm::kSha384: return "sha384";
    case HashAlgorithm::kSha512: return "sha512";
  }
  return "unknown";
}

Result<IssuerIdentity> IssuerIdentity::FromCertificate(const X509* ca_certificate) {
  IssuerIdentity identity;
  const X509_NAME* subject = X509_get_subject_name(ca_certificate);
  identity.certificate_der = CertificateDer(ca_certificate);
  identity.subject_der = NameDer(subject);
  if (identity.certificate_der.empty() || identity.subject_der.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "cannot encode the CA certificate");
  }
  identity.subject_text = NameText(subject);
  for (HashAlgorithm algorithm : kHashAlgorithms) {
    auto name_hash = NameHash(subject, Digest(algorithm));
    if (!name_hash) return std::unexpected(name_hash.error());
    auto key_hash = PublicKeyHash(ca_certificate, Digest(algorithm));
    if (!key_hash) return std::unexpected(key_hash.error());
    identity.hashes[static_cast<std::size_t>(algorithm) - 1] = {std::move(*name_hash), std::move(*key_hash)};
  }
  const Bytes& sha256_key = identity.HashesFor(HashAlgorithm::kSha256).key_hash;
  std::copy(sha256_key.begin(), sha256_key.end(), identity.id.bytes.begin());
  return identity;
}

Result<std::size_t> IssuerDirectory::Add(IssuerIdentity identity) {
  if (Find(identity.id)) {
    return Fail(ErrorCode::kInvalidArgument,
                "issuer " + identity.subject_text + " (key " + identity.id.hex() + ") is listed twice");
  }
  issuers_.push_back(std::move(identity));
  return issuers_.size() - 1;
}

namespace {
bool Equal(const Bytes& stored, ByteView candidate) {
  return stored.size() == candidate.size() &&
         std::memcmp(stored.data(), candidate.data(), candidate.size()) == 0;
}
}  // namespace

std::optional<std::size_t> IssuerDirectory::Resolve(HashAlgorithm algorithm, ByteView name_hash,
                                                    ByteView key_hash) const {
  for (std::size_t i = 0; i < issuers_.size(); ++i) {
    const auto& hashes = issuers_[i].HashesFor(algorithm);
    if (Equal(hashes.key_hash, key_hash) && Equal(hashes.name_hash, name_hash)) return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> IssuerDirectory::Find(const IssuerId& id) const {
  for (std::size_t i = 0; i < issuers_.size(); ++i) {
    if (issuers_[i].id == id) return i;
  }
  return std::nullopt;
}

}  // namespace ocsp::store
