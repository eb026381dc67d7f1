#include <doctest/doctest.h>

#include "store/issuer.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::store;
using ocsp::testing::MakeCertId;
using ocsp::testing::Serial;
using ocsp::testing::TestCa;

namespace {
struct CertIdParts {
  HashAlgorithm algorithm;
  Bytes name_hash;
  Bytes key_hash;
};
CertIdParts Parts(const X509* issuer, const EVP_MD* md) {
  auto id = MakeCertId(issuer, Serial(7), md);
  ASN1_OCTET_STRING* name = nullptr;
  ASN1_OBJECT* algorithm = nullptr;
  ASN1_OCTET_STRING* key = nullptr;
  ASN1_INTEGER* serial = nullptr;
  OCSP_id_get0_info(&name, &algorithm, &key, &serial, id.get());
  return {*HashAlgorithmFromNid(OBJ_obj2nid(algorithm)), Bytes(name->data, name->data + name->length),
          Bytes(key->data, key->data + key->length)};
}
}  // namespace

TEST_CASE("issuer: CertIDs made with SHA-1, SHA-256, SHA-384 and SHA-512 resolve to the same issuer") {
  const TestCa ca = TestCa::Create();
  IssuerDirectory directory;
  auto identity = IssuerIdentity::FromCertificate(ca.certificate.get());
  REQUIRE(identity.has_value());
  const IssuerId id = identity->id;
  REQUIRE(directory.Add(std::move(*identity)).has_value());
  for (const EVP_MD* md : {EVP_sha1(), EVP_sha256(), EVP_sha384(), EVP_sha512()}) {
    const CertIdParts parts = Parts(ca.certificate.get(), md);
    auto index = directory.Resolve(parts.algorithm, parts.name_hash, parts.key_hash);
    REQUIRE(index.has_value());
    CHECK(directory.at(*index).id == id);
  }
}

TEST_CASE("issuer: two CA generations with one subject name are different issuers") {
  const TestCa old_generation = TestCa::Create("/C=JP/O=JPKI/OU=Signing CA");
  const TestCa new_generation = TestCa::Create("/C=JP/O=JPKI/OU=Signing CA");
  IssuerDirectory directory;
  auto old_index = directory.Add(*IssuerIdentity::FromCertificate(old_generation.certificate.get()));
  auto new_index = directory.Add(*IssuerIdentity::FromCertificate(new_generation.certificate.get()));
  REQUIRE(old_index.has_value());
  REQUIRE(new_index.has_value());
  const CertIdParts parts = Parts(new_generation.certificate.get(), EVP_sha1());
  CHECK(directory.Resolve(parts.algorithm, parts.name_hash, parts.key_hash) == *new_index);
}

TEST_CASE("issuer: a key hash with another name hash does not resolve") {
  const TestCa ca = TestCa::Create("/C=JP/O=JPKI/OU=Signing CA");
  const TestCa other = TestCa::Create("/C=JP/O=JPKI/OU=Other CA");
  IssuerDirectory directory;
  REQUIRE(directory.Add(*IssuerIdentity::FromCertificate(ca.certificate.get())).has_value());
  const CertIdParts ours = Parts(ca.certificate.get(), EVP_sha1());
  const CertIdParts theirs = Parts(other.certificate.get(), EVP_sha1());
  CHECK_FALSE(directory.Resolve(HashAlgorithm::kSha1, theirs.name_hash, ours.key_hash).has_value());
  CHECK_FALSE(directory.Resolve(HashAlgorithm::kSha1, theirs.name_hash, theirs.key_hash).has_value());
}

TEST_CASE("issuer: the same CA configured twice is refused") {
  const TestCa ca = TestCa::Create();
  IssuerDirectory directory;
  REQUIRE(directory.Add(*IssuerIdentity::FromCertificate(ca.certificate.get())).has_value());
  CHECK_FALSE(directory.Add(*IssuerIdentity::FromCertificate(ca.certificate.get())).has_value());
}
